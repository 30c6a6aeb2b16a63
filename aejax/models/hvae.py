"""The Hamiltonian VAE, HVAE (Caterini, Doucet & Sejdinovic 2018, "Hamiltonian Variational
Auto-Encoder"): a VAE whose posterior draw is moved by tempered leapfrog steps.

A VAE's dense network and Gaussian code ``q(z|x)``. Per example, from ``z_0 = mean +
sigma eps`` and a momentum ``rho_0 = gamma / sqrt(beta_0)`` (``eps, gamma ~ N(0, I)``, so
``rho_0 ~ N(0, I / beta_0)``), ``K = n_lf`` leapfrog steps on the potential ``U(z) = -log
p(x | z) - log p(z)``, each followed by the tempering of the momentum:

    rho' = rho - (eps_lf / 2) grad U(z);   z = z + eps_lf rho'
    rho  = sqrt(beta_{k-1} / beta_k) (rho' - (eps_lf / 2) grad U(z))

with the paper's quadratic schedule ``1 / sqrt(beta_k) = (1 - 1 / sqrt(beta_0)) k^2 / K^2 + 1 /
sqrt(beta_0)`` (``beta_K = 1``; ``tempering=none``: ``beta_k = beta_0``, no rescaling). The
map ``(z_0, rho_0) -> (z_K, rho_K)`` is a flow: leapfrog steps preserve volume and the
tempering scales the ``L`` momenta by ``sqrt(beta_0 / beta_K)``, so its log-Jacobian is
``(L / 2) (log beta_0 - log beta_K)``. The bound on ``log p(x)`` (an ELBO on the space of
``(z, rho)`` with target ``p(x, z) N(rho; 0, I)``), per example:

    bound = log p(x, z_K) + log N(rho_K; 0, I) - log q(z_0 | x) - log N(rho_0; 0, I / beta_0)
            + (L / 2) (log beta_0 - log beta_K)

every density exact (normalizing constants kept), so ``eps_lf = 0`` (no motion) gives back
the VAE's one-draw ELBO exactly for any ``beta_0`` (with ``n_lf = 0``, or
``tempering=none``, only when ``beta_0 = 1``). Written out, the terms in ``beta_0`` cancel
and the bound is ``log p(x, z_K) - |rho_K|^2 / 2 - log q(z_0 | x) + |gamma|^2 / 2``;
pythae's training loss leaves out ``|gamma|^2 / 2`` and the ``2 pi`` constants (no
gradient), so its value is not a bound; ours is, to the nat. ``grad U`` is ``jax.grad`` of
the summed potential (examples are independent), differentiated again by the training step (pythae's
``create_graph=True``); one gradient per step is reused by the next, ``K + 1`` decoder
passes in all, in a ``lax.scan`` (one compile for any ``K``).

Options as pythae's ``HVAEConfig`` (defaults ``n_lf=3``, ``eps_lf=0.001``,
``beta_zero=0.3``): ``learn_eps_lf`` learns one step size per latent dimension (the
paper's ``eps in R^L``; pythae learns one scalar), kept positive as ``exp`` of a
parameter; ``learn_beta_zero`` learns ``beta_0 = sigmoid(b)`` in ``(0, 1)`` (pythae learns
``sqrt(beta_0)`` unconstrained). Both live in the submodule ``leapfrog``, trained with the
autoencoder.

Terms, as iwae's: ``reconstruction`` (the likelihood's term at ``z_K`` in training, at the
posterior mean in evaluation), ``kl`` (the analytic ``KL(q(z|x) || N(0, I))``) and
``hmc_correction = -bound - reconstruction - kl``, all weighing 1: the per-example loss is
exactly ``-bound``. Evaluation draws ``eps, gamma`` from a fixed key (the same estimator
every epoch).

``posterior=True``: ``aejax.bounds`` importance-samples ``log p(x)`` with the base Gaussian
``q(z_0|x)`` as proposal. Any proposal of full support gives a valid IW-k lower bound that
tends to ``log p(x)`` as ``k`` grows, so the IW-k NLL stays valid; but its test ELBO is the
base Gaussian's, not this model's (looser in general: the flow is what the bound adds).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from aejax.errors import ConfigError
from aejax.fields import Allowed, field, integer, number, one_of
from aejax.models import losses
from aejax.models.autoencoder import Autoencoder
from aejax.models.codes import GaussianCode
from aejax.models.compose import dense_parts
from aejax.models.iwae import log_likelihood
from aejax.models.options import Dense
from aejax.models.spec import Common, DataInfo, ModelSpec

TEMPERINGS = ("quadratic", "none")
_LOG_2PI = math.log(2.0 * math.pi)
_EVAL_SEED = 0x4AE  # the fixed key of the draws in evaluation


@dataclasses.dataclass(frozen=True)
class HVAEOptions(Dense):
    """``hvae``: the dense network, the leapfrog steps and the tempering."""

    GROUP: ClassVar = ("hvae", "hvae's tempered leapfrog flow (Caterini et al. 2018)")
    n_lf: int = field(3, "K, leapfrog steps per example (0 = the VAE's draw)", integer(0))
    eps_lf: float = field(0.001, "the leapfrog step size", number(0, finite=True))
    beta_zero: float = field(
        0.3,
        "beta_0, the initial inverse temperature: rho_0 ~ N(0, I / beta_0)",
        Allowed("a number in (0, 1]", lambda v: 0.0 < v <= 1.0),
    )
    tempering: str = field(
        "quadratic",
        "the momentum's tempering: quadratic (the paper's, beta_0 -> 1 over the K steps) or "
        "none (beta_k = beta_0)",
        one_of(*TEMPERINGS),
    )
    learn_eps_lf: bool = field(False, "learn the step size, one per latent dimension")
    learn_beta_zero: bool = field(False, "learn beta_0 (in (0, 1), as a sigmoid)")

    def __post_init__(self):
        super().__post_init__()
        if self.learn_eps_lf and self.eps_lf <= 0:
            raise ConfigError("learn_eps_lf=true needs eps_lf > 0 (it is learned as a log)")
        if self.learn_beta_zero and self.beta_zero >= 1:
            raise ConfigError("learn_beta_zero=true needs beta_zero < 1 (it is learned as a logit)")


# --- the flow, pure functions --------------------------------------------------------------
def sqrt_betas(beta_zero: jax.typing.ArrayLike, n_lf: int, tempering: str) -> jax.Array:
    """``sqrt(beta_k)`` for ``k = 0..K``: ``[K + 1]``.

    ``quadratic``: ``1 / sqrt(beta_k) = (1 - 1 / sqrt(beta_0)) (k / K)^2 + 1 / sqrt(beta_0)``;
    ``none``: ``beta_k = beta_0``.
    """
    root = jnp.sqrt(jnp.asarray(beta_zero, jnp.float32))
    k = jnp.arange(n_lf + 1, dtype=jnp.float32)
    if tempering == "none" or n_lf == 0:
        return jnp.broadcast_to(root, k.shape)
    inv = (1.0 - 1.0 / root) * jnp.square(k / n_lf) + 1.0 / root
    return 1.0 / inv


def integrate(
    potential: Callable[[jax.Array], tuple[jax.Array, jax.Array]],
    z: jax.Array,
    rho: jax.Array,
    eps: jax.typing.ArrayLike,
    alphas: jax.Array,
):
    """Tempered leapfrog: ``len(alphas)`` steps from ``(z, rho)``, each ``rho *= alphas[k]``.

    Args:
      potential: ``z: [B, L] -> (U: [B], aux)``, examples independent (``grad`` of the sum).
      z, rho: ``[B, L]`` start.
      eps: step size, a scalar or ``[1, L]``.
      alphas: ``[K]`` momentum factors ``sqrt(beta_{k-1} / beta_k)`` (ones: plain leapfrog).

    Returns:
      ``(z_K, rho_K, U(z_K): [B], aux at z_K)``.
    """

    def energy(z):
        u, aux = potential(z)
        return jnp.sum(u), (u, aux)

    grad = jax.grad(energy, has_aux=True)
    g, (u, aux) = grad(z)

    def step(carry, alpha):
        z, rho, g, _, _ = carry
        rho = rho - 0.5 * eps * g
        z = z + eps * rho
        g, (u, aux) = grad(z)
        rho = alpha * (rho - 0.5 * eps * g)
        return (z, rho, g, u, aux), None

    (z, rho, _, u, aux), _ = jax.lax.scan(step, (z, rho, g, u, aux), alphas)
    return z, rho, u, aux


def flow_bound(potential, mean, logvar, eps0, gamma, step, beta_zero, n_lf: int, tempering: str):
    """The HVAE bound of ``log p(x)`` per example (module docstring), from given draws.

    Args:
      potential: ``U(z) = -log p(x, z)``: ``z: [B, L] -> (U: [B], aux)``.
      mean, logvar: ``[B, L]`` of ``q(z_0 | x)``.
      eps0, gamma: ``[B, L]`` standard normal draws: ``z_0 = mean + sigma eps0``, ``rho_0 =
        gamma / sqrt(beta_0)``.
      step: the leapfrog step size, a scalar or ``[1, L]``.
      beta_zero: ``beta_0`` in ``(0, 1]``.
      n_lf: ``K`` steps; tempering: ``"quadratic"`` or ``"none"``.

    Returns:
      ``(bound: [B], z_K: [B, L], aux at z_K)``.
    """
    roots = sqrt_betas(beta_zero, n_lf, tempering)
    z0 = mean + jnp.exp(0.5 * logvar) * eps0
    zk, rhok, uk, aux = integrate(potential, z0, gamma / roots[0], step, roots[:-1] / roots[1:])
    log_q0 = -0.5 * jnp.sum(jnp.square(eps0) + logvar + _LOG_2PI, axis=1)
    log_rho0 = -0.5 * jnp.sum(jnp.square(gamma) - jnp.log(beta_zero) + _LOG_2PI, axis=1)
    log_rhok = -0.5 * jnp.sum(jnp.square(rhok) + _LOG_2PI, axis=1)
    log_det = mean.shape[1] * (jnp.log(roots[0]) - jnp.log(roots[-1]))
    return -uk + log_rhok - log_q0 - log_rho0 + log_det, zk, aux


class LeapfrogParams(nn.Module):
    """The step size ``[1, L]`` and ``beta_0`` (scalar): learned parameters or constants."""

    latent_dim: int
    eps_lf: float
    beta_zero: float
    learn_eps: bool
    learn_beta: bool

    @nn.compact
    def __call__(self) -> tuple[jax.Array, jax.Array]:
        shape = (1, self.latent_dim)
        if self.learn_eps:
            log_eps = self.param("log_eps", nn.initializers.constant(math.log(self.eps_lf)), shape)
            eps = jnp.exp(log_eps)
        else:
            eps = jnp.full(shape, self.eps_lf, jnp.float32)
        if self.learn_beta:
            logit = math.log(self.beta_zero / (1.0 - self.beta_zero))
            beta = jax.nn.sigmoid(self.param("beta_logit", nn.initializers.constant(logit), ()))
        else:
            beta = jnp.float32(self.beta_zero)
        return eps, beta


class HamiltonianAutoencoder(Autoencoder):
    """A dense VAE trained on the HVAE bound (module docstring).

    Attributes (besides ``Autoencoder``'s): ``n_lf``, ``tempering`` and ``leapfrog`` (a
    ``LeapfrogParams``).
    """

    n_lf: int = 3
    tempering: str = "quadratic"
    leapfrog: nn.Module | None = None

    def potential(self, x, mask=None):
        """``U(z) = -log p(x | z) - log p(z)``: ``z: [B, L] -> ([B], decoder output)``."""

        def u(z):
            out = self.decoder(z)
            return -(log_likelihood(self.likelihood, out, x, mask) + self.log_prior(z)), out

        return u

    def bound(self, x, mean, logvar, eps0, gamma, mask=None):
        """The HVAE bound ``[B]``, ``z_K: [B, L]`` and the decoder output at ``z_K``.

        Args:
          x: ``[B, *input_shape]`` targets.
          mean, logvar: ``[B, L]`` of ``q(z|x)`` (log-variances clamped).
          eps0, gamma: ``[B, L]`` standard normal draws of ``z_0`` and ``rho_0``.
          mask: optional observed entries, broadcastable to ``x``.
        """
        step, beta0 = self.leapfrog()
        if self.is_initializing():  # the decoder's parameters, made outside the transforms
            self.decoder(mean)
        u = self.potential(x, mask)
        return flow_bound(u, mean, logvar, eps0, gamma, step, beta0, self.n_lf, self.tempering)

    def __call__(self, x, *, train: bool = False, mask=None, target=None):
        """``(recon, aux)`` as ``Autoencoder``'s; terms ``reconstruction``, ``kl``,
        ``hmc_correction`` (per example ``[B]``, summing to ``-bound``)."""
        mean, logvar = self.code.posterior(self.encoder(x))
        mean = mean.astype(jnp.float32)
        logvar = losses.clamp_logvar(logvar.astype(jnp.float32))
        target = x if target is None else target
        key = self.make_rng("sample") if train else jax.random.key(_EVAL_SEED)
        eps0, gamma = jax.random.normal(key, (2, *mean.shape), jnp.float32)
        bound, z, out = self.bound(target, mean, logvar, eps0, gamma, mask)
        return hmc_outputs(self, bound, z, out, mean, logvar, target, mask, train)


def hmc_outputs(model, bound, z, out, mean, logvar, target, mask, train: bool):
    """``(recon, aux)`` of a Hamiltonian model (hvae, rhvae) from its bound ``[B]``.

    ``z``, ``out``: ``z_K`` and the decoder output there (training); in evaluation the
    reconstruction is the VAE's, at the posterior mean. The terms ``reconstruction``,
    ``kl`` and ``hmc_correction`` sum to ``-bound`` per example.
    """
    if not train:
        z = mean
        out = model.decoder(mean)
    recon = model.likelihood.nll(out, target, mask)
    kl = losses.kl_diag_gaussian(mean, logvar)
    step, beta0 = model.leapfrog()
    aux = {
        "z": z,
        "decoder_output": out,
        "terms": {"reconstruction": recon, "kl": kl, "hmc_correction": -bound - recon - kl},
        "stats": {"eps_lf": jnp.mean(step), "beta_zero": beta0},
        "mean": mean,
        "logvar": logvar,
    }
    return model.likelihood.mean(out), aux


def leapfrog_params(options: HVAEOptions, latent_dim: int) -> LeapfrogParams:
    """The step sizes and ``beta_0`` module of the options (learned or fixed)."""
    return LeapfrogParams(
        latent_dim,
        float(options.eps_lf),
        float(options.beta_zero),
        bool(options.learn_eps_lf),
        bool(options.learn_beta_zero),
    )


def _build(options: HVAEOptions, common: Common, data: DataInfo) -> HamiltonianAutoencoder:
    """A dense VAE (``dense_parts`` around a ``GaussianCode``) with the leapfrog flow."""
    parts = dense_parts(options, common, data, GaussianCode(common.latent_dim))
    leapfrog = leapfrog_params(options, common.latent_dim)
    return HamiltonianAutoencoder(
        tuple(data.input_shape),
        likelihood=common.likelihood,
        n_lf=int(options.n_lf),
        tempering=options.tempering,
        leapfrog=leapfrog,
        **parts,
    )


def bound_weights(options, total_steps: int):
    """``kl`` and ``hmc_correction`` weigh 1: the loss is exactly ``-bound`` (hvae, rhvae)."""
    del options
    return {"kl": 1.0, "hmc_correction": 1.0}, None, total_steps


HVAE = ModelSpec(
    _build,
    HVAEOptions,
    weights=bound_weights,
    test_config={
        "hidden": (32,),
        "latent_dim": 4,
        "n_lf": 2,
        "eps_lf": 0.01,
        "learn_eps_lf": True,
        "learn_beta_zero": True,
    },
    posterior=True,
)
