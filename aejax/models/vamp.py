"""The VampPrior VAE (Tomczak & Welling 2018): a prior that is a mixture of posteriors.

The prior is ``p(z) = (1/K) sum_k q(z | u_k)``: the encoder's own diagonal Gaussian
posterior at ``K`` learned pseudo-inputs ``u_k`` of the data's shape, through the *same*
encoder (shared weights) as the data. Its KL has no closed form, so the ``kl`` term is the
single-sample Monte Carlo estimate at the reparameterized code ``z ~ q(z|x)``:

    kl_i = log q(z_i | x_i) - log p(z_i),
    log p(z) = logsumexp_k log N(z; mean_k, var_k) - log K,

an unbiased estimate of ``KL(q(z|x) || p(z))`` (one draw: it can be negative). It keeps
the name ``kl``, so ``beta`` and the KL warm-up weigh it as they weigh a VAE's (a capacity
``|KL - C|`` of a noisy estimate is biased and is not offered). Log-variances are clamped
as ``GaussianCode`` clamps them, for the posterior and for every component alike.

Composition. ``Autoencoder.__call__`` runs ``code(encoder(x))`` and then
``penalty(model, x, z)`` with the bound model, so the prior is a ``penalty``: a Linen
module (``VampPrior``) that holds the pseudo-inputs and runs ``model.encoder`` on them.
It recomputes ``q(z|x)``'s parameters from ``x`` (the same ops on the same operands as
the model's own pass, which XLA's common-subexpression elimination merges under jit).
The code (``VampCode``) is ``GaussianCode`` without its ``N(0, I)`` KL. The model is a
``VampAutoencoder``, whose ``log_prior(z)`` and ``sample(n)`` are the mixture's: the
capability (``Autoencoder.log_prior``, ``analytic_kl``) through which the likelihood
bounds (``aejax.bounds``, the KL then by Monte Carlo) and sampling use the learned prior.

Randomness: training draws ``z`` in the code from the ``"sample"`` stream and the term
reads that ``z``. Evaluation decodes the posterior mean (as a VAE's does) and runs
without rng streams; the term then draws its own ``z`` from a fixed key, so the validation
loss is an unbiased estimate, the same from epoch to epoch. ``sample_prior`` picks a
component uniformly, then draws from its Gaussian (both from ``"sample"``).

``K`` (``pseudo_inputs``) defaults to 100, not the paper's 500 for MNIST: with ``K``
near the training set's size the prior can memorize it (the paper's caution about the
"optimal" aggregated-posterior prior), and digits has 1,293 training images. On digits
(dense, hidden 64, latent 8, 40 epochs, IW-500 test NLL, binarized test set) the standard
prior gave 23.29 nats, ``K = 10`` 23.14, ``K = 100`` 23.04 and ``K = 500`` 23.03: 100
captures the gain at a fifth of the prior's encoder work. Set 500 for MNIST as the paper.

The pseudo-inputs start as the authors' code starts them (github.com/jmtomczak/
vae_vampprior): ``N(0.05, 0.01^2)`` per element, clipped to the data range ``[0, 1]``
(their hardtanh) for images; ``N(0, 0.01^2)`` unclipped for standardized data.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from aejax.fields import Allowed, field
from aejax.models import losses
from aejax.models.autoencoder import Autoencoder
from aejax.models.codes import GaussianCode
from aejax.models.compose import dense_parts
from aejax.models.objective import ramp
from aejax.models.options import Dense, KLWeight
from aejax.models.spec import Common, DataInfo, ModelSpec

_LOG_2PI = math.log(2.0 * math.pi)
_EVAL_SEED = 0x7A3B  # the fixed key of the term's draw in evaluation


def _count(v) -> bool:
    return not isinstance(v, bool) and int(v) == v and v >= 1


@dataclasses.dataclass(frozen=True)
class VampOptions(KLWeight, Dense):
    """``vamp``: the dense network, the KL's weight or warm-up and the pseudo-inputs.

    No capacity (``KLWeight``, not ``Variational``): ``|KL - C|`` of the one-sample Monte
    Carlo KL is biased.
    """

    GROUP: ClassVar = ("vamp", "vamp's learned mixture prior (Tomczak & Welling 2018)")
    pseudo_inputs: int = field(
        100,
        "K, the learned pseudo-inputs whose posteriors form the prior mixture (the paper: "
        "500 on MNIST)",
        Allowed("an integer >= 1", _count),
    )


def log_normal_diag(z: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """``log N(z; mean, diag(exp(logvar)))`` of one example: ``[L]`` each -> a scalar."""
    return -0.5 * jnp.sum(jnp.square(z - mean) * jnp.exp(-logvar) + logvar + _LOG_2PI)


def mixture_log_prob(z: jax.Array, means: jax.Array, logvars: jax.Array) -> jax.Array:
    """``log (1/K) sum_k N(z; means_k, exp(logvars_k))`` of one example.

    Args:
      z: ``[L]``.
      means, logvars: ``[K, L]``, the components.

    Returns:
      A scalar, by ``logsumexp`` (exact where the components' densities underflow).
    """
    per_component = jax.vmap(log_normal_diag, in_axes=(None, 0, 0))(z, means, logvars)
    return jax.nn.logsumexp(per_component) - math.log(means.shape[0])


def mc_kl(
    z: jax.Array, mean: jax.Array, logvar: jax.Array, means: jax.Array, logvars: jax.Array
) -> jax.Array:
    """``log q(z|x) - log p(z)`` per example: the one-sample Monte Carlo KL.

    Args:
      z: ``[B, L]``, one draw from each posterior.
      mean, logvar: ``[B, L]``, the posteriors ``q(z|x)``.
      means, logvars: ``[K, L]``, the prior's components.

    Returns:
      ``[B]`` nats.
    """
    log_q = jax.vmap(log_normal_diag)(z, mean, logvar)
    log_p = jax.vmap(mixture_log_prob, in_axes=(0, None, None))(z, means, logvars)
    return log_q - log_p


class VampCode(nn.Module):
    """``GaussianCode``'s posterior and reparameterized sample, without its ``N(0, I)`` KL.

    Outputs ``mean`` and ``logvar`` (``[B, L]``); no terms (the ``VampPrior`` adds ``kl``).
    """

    latent_dim: int

    def setup(self):
        self.gaussian = GaussianCode(self.latent_dim)

    @property
    def features(self) -> int:
        return 2 * self.latent_dim

    def posterior(self, h: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``h: [B, 2L]`` -> ``(mean, logvar)``, each ``[B, L]``."""
        return self.gaussian.posterior(h)

    def encode(self, h: jax.Array) -> jax.Array:
        return self.gaussian.encode(h)

    def __call__(self, h: jax.Array, *, train: bool = False) -> tuple[jax.Array, dict]:
        z, parts = self.gaussian(h, train=train)
        return z, {"terms": {}, "outputs": parts["outputs"], "stats": {}}

    def sample_prior(self, n: int) -> jax.Array:
        raise NotImplementedError(
            "the VampPrior is a mixture of the encoder's posteriors: draw from it with the "
            "model's sample(n) (VampAutoencoder), which reads the pseudo-inputs"
        )


class VampPrior(nn.Module):
    """``p(z) = (1/K) sum_k q(z | u_k)`` with learned pseudo-inputs ``u: [K, *input_shape]``.

    Every method takes the bound ``Autoencoder`` (``model``) whose encoder and code map the
    pseudo-inputs to their posteriors; it is the model's ``penalty`` (module docstring).

    Attributes:
      input_shape: the data's per-example shape (the pseudo-inputs').
      components: ``K``.
      bounded: clip the pseudo-inputs to ``[0, 1]`` (image data) and start them at 0.05;
        otherwise unclipped around 0 (standardized data).
    """

    input_shape: tuple[int, ...]
    components: int = 100
    bounded: bool = True

    def setup(self):
        center = 0.05 if self.bounded else 0.0

        def init(key, shape):
            return center + 0.01 * jax.random.normal(key, shape, jnp.float32)

        self.raw = self.param("pseudo_inputs", init, (self.components, *self.input_shape))

    def pseudo_inputs(self) -> jax.Array:
        """``u: [K, *input_shape]`` as the encoder reads them."""
        return jnp.clip(self.raw, 0.0, 1.0) if self.bounded else self.raw

    def mixture(self, model: nn.Module) -> tuple[jax.Array, jax.Array]:
        """The components' ``(means, logvars)``, ``[K, L]`` each (log-variances clamped)."""
        mean, logvar = model.code.posterior(model.encoder(self.pseudo_inputs()))
        return mean, losses.clamp_logvar(logvar)

    def log_prob(self, model: nn.Module, z: jax.Array) -> jax.Array:
        """``log p(z)`` per code: ``z: [..., L]`` -> ``[...]`` nats."""
        means, logvars = self.mixture(model)
        flat = z.reshape(-1, z.shape[-1])
        out = jax.vmap(mixture_log_prob, in_axes=(0, None, None))(flat, means, logvars)
        return out.reshape(z.shape[:-1])

    def sample_prior(self, model: nn.Module, n: int) -> jax.Array:
        """``n`` draws ``[n, L]``: a uniform component, then its Gaussian (``"sample"`` stream)."""
        means, logvars = self.mixture(model)
        pick_key, eps_key = jax.random.split(self.make_rng("sample"))
        k = jax.random.randint(pick_key, (n,), 0, self.components)
        eps = jax.random.normal(eps_key, (n, means.shape[1]), jnp.float32)
        return means[k] + jnp.exp(0.5 * logvars[k]) * eps

    def __call__(self, model: nn.Module, x: jax.Array, z: jax.Array) -> dict[str, jax.Array]:
        """The term ``{"kl": [B]}`` for ``x: [B, *input_shape]`` and the model's code ``z``.

        With a ``"sample"`` stream (training) ``z`` is the model's draw from ``q(z|x)``;
        without one (evaluation, ``z`` = the mean) a draw from a fixed key replaces it.
        """
        mean, logvar = model.code.posterior(model.encoder(x))
        logvar = losses.clamp_logvar(logvar)
        if not self.has_rng("sample"):
            eps = jax.random.normal(jax.random.key(_EVAL_SEED), mean.shape, jnp.float32)
            z = mean + jnp.exp(0.5 * logvar) * eps
        means, logvars = self.mixture(model)
        return {"kl": mc_kl(z, mean, logvar, means, logvars)}


class VampAutoencoder(Autoencoder):
    """``Autoencoder`` whose prior is its ``VampPrior`` (the ``penalty``), not ``N(0, I)``.

    The capability the likelihood bounds and sampling read: ``log_prior(z)`` is the
    mixture density (so ``analytic_kl`` is False and ``aejax.bounds`` estimates the KL by
    Monte Carlo) and ``sample(n)`` decodes draws from the mixture.
    """

    def log_prior(self, z: jax.Array) -> jax.Array:
        """``log p(z)`` of codes ``z: [..., L]`` under the VampPrior -> ``[...]`` nats."""
        return self.penalty.log_prob(self, z)

    def sample(self, n: int) -> jax.Array:
        """``n`` mixture draws decoded (``"sample"`` rng stream): ``[n, *input_shape]``."""
        return self.decode(self.penalty.sample_prior(self, n))


def _build(options: VampOptions, common: Common, data: DataInfo) -> VampAutoencoder:
    """A dense VAE with a VampPrior: ``dense_parts`` around a ``VampCode``, prior as penalty.

    A ``"bernoulli"`` likelihood (data in [0, 1]) clips the pseudo-inputs to [0, 1].
    """
    parts = dense_parts(options, common, data, VampCode(common.latent_dim))
    prior = VampPrior(
        tuple(data.input_shape),
        options.pseudo_inputs,
        bounded=common.likelihood.name == "bernoulli",
    )
    return VampAutoencoder(
        tuple(data.input_shape), likelihood=common.likelihood, penalty=prior, **parts
    )


def _weights(options: VampOptions, total_steps: int):
    """``kl`` weighs ``beta``, or rises to it over ``kl_warmup_steps``; no capacity."""
    warmup = options.kl_warmup_steps
    kl = ramp(warmup, options.beta) if warmup > 0 else options.beta
    return {"kl": kl}, None, max(total_steps, warmup)


VAMP = ModelSpec(
    _build,
    VampOptions,
    weights=_weights,
    test_config={"hidden": (32,), "latent_dim": 4, "pseudo_inputs": 8},
    posterior=True,
)
