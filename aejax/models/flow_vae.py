"""A VAE whose posterior is a normalizing flow on the Gaussian code: planar or radial flows
(Rezende & Mohamed 2015) or an inverse autoregressive flow (Kingma et al. 2016).

One model, ``flow_vae``; ``flow`` picks the layers and ``flow_length`` their number ``K``.
The encoder gives a diagonal Gaussian ``q_0(z_0|x) = N(mean, diag(exp(logvar)))`` and
``z_K = f_K o ... o f_1(z_0)``, so ``q_K(z_K|x) = q_0(z_0|x) - sum_k log|det df_k/dz_{k-1}|``
(in logs) and the bound is

    ELBO = log p(x|z_K) + log p(z_K) - log q_0(z_0|x) + sum_k log|det df_k/dz_{k-1}|,

``p(z) = N(0, I)``. The layers (``z: [N, L]``):

- ``planar``: ``f(z) = z + u_hat tanh(w.z + b)``, ``log|det| = log|1 + u_hat.psi(z)|``,
  ``psi = (1 - tanh^2(w.z + b)) w``; invertible by the paper's appendix A:
  ``u_hat = u + (m(w.u) - w.u) w / |w|^2``, ``m(a) = -1 + softplus(a)``, so ``w.u_hat > -1``.
- ``radial``: ``f(z) = z + beta h(r) (z - z_c)``, ``r = |z - z_c|``, ``h = 1 / (alpha + r)``,
  ``log|det| = (L - 1) log(1 + beta h) + log(1 + beta alpha h^2)``; invertible with
  ``alpha = softplus(.) > 0`` and ``beta = -alpha + softplus(.) >= -alpha`` (appendix A).
- ``iaf``: ``[m, s] = MADE(z)`` (``aejax.models.made``), ``sigma = sigmoid(s + 1)``,
  ``f(z) = sigma z + (1 - sigma) m``, ``log|det| = sum log sigma`` (the paper's Algorithm
  1, its numerically stable "LSTM-type" update); the Jacobian is triangular, the ordering
  reversed from one step to the next.

The flow parameters are global (not computed from ``x``), as pythae's ``vae_lin_nf`` and
``vae_iaf``. Differences: Kingma et al. feed the encoder's context ``h`` to each MADE;
here, as in pythae, the MADE sees ``z`` only. pythae's planar flow does not enforce
``u_hat``; here it does. pythae's IAF step is ``(z - mu) exp(-alpha)``; here Kingma's
sigmoid update, its bias ``+1`` keeping ``sigma`` near 1 at the start (their advice).
pythae's two models are one here; ``made_hidden`` defaults to its ``vae_iaf`` MADE (3
hidden layers of 128) and ``flow_length`` to its 2 blocks.

Terms, reported as iwae's (``aejax.models.iwae``) so that with ``beta = 1`` the
per-example loss is exactly ``-ELBO`` (one draw):

- ``reconstruction``: the likelihood's term ``Likelihood.nll`` at ``z_K`` in training, at
  the deterministic code ``f(mean)`` in evaluation (as a VAE decodes its mean);
- ``kl = log q_K(z_K|x) - log p(z_K)``, the one-draw Monte Carlo KL (there is no closed
  form; it can be negative), weighted by ``beta`` or its warm-up (no capacity: ``|KL - C|``
  of a noisy estimate is biased);
- ``bound_correction = -log p(x|z_K) - reconstruction``: 0 in training for an exact
  likelihood (Bernoulli); the ``"gaussian"`` likelihood's training term is the summed
  squared error, and the bound uses its exact unit-variance density
  (``iwae.log_likelihood``); in evaluation it also carries the draw-vs-mean difference.

Randomness: training draws ``eps`` from the ``"sample"`` stream, evaluation from a fixed
key (the validation loss is the same estimator every epoch). ``encode`` is ``f(mean)``,
the image of ``q_0``'s mode, the code the decoder reads. With ``flow_length = 0`` the
model is a VAE whose KL is estimated by Monte Carlo.

Likelihood bounds (``aejax.bounds``): ``posterior(x)`` is ``q_0``'s ``(mean, logvar)``
and ``posterior_flow(z_0) -> (z_K, log_det)`` the flow, so the importance weights are
``log p(x|z_K) + log p(z_K) - log q_0(z_0|x) + log_det``, the density of the flow's
posterior; ``analytic_kl`` is False (the bounds' KL by Monte Carlo).
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from aejax.fields import field, integer, integers, one_of
from aejax.models import losses
from aejax.models.autoencoder import Autoencoder, standard_normal_log_prob
from aejax.models.compose import dense_parts
from aejax.models.iwae import log_likelihood
from aejax.models.made import MADE
from aejax.models.objective import ramp
from aejax.models.options import Dense, KLWeight
from aejax.models.spec import Common, DataInfo, ModelSpec

FLOWS = ("planar", "radial", "iaf")
IAF_BIAS = 1.0  # sigma = sigmoid(s + IAF_BIAS): near identity-scale at the start
_LOG_2PI = math.log(2.0 * math.pi)
_EVAL_SEED = 0xF10  # the fixed key of the draw in evaluation


@dataclasses.dataclass(frozen=True)
class FlowVAEOptions(KLWeight, Dense):
    """``flow_vae``: the dense network, the flow and the KL's weight or warm-up."""

    GROUP: ClassVar = (
        "flow_vae",
        "flow_vae's posterior flow (Rezende & Mohamed 2015; Kingma et al. 2016)",
    )
    flow: str = field(
        "iaf",
        "the posterior's flow layers: planar, radial (Rezende & Mohamed 2015) or iaf "
        "(inverse autoregressive flow, Kingma et al. 2016)",
        one_of(*FLOWS),
    )
    flow_length: int = field(
        2, "K, flow layers on the Gaussian code (iaf: MADE steps); 0 = a VAE", integer(0)
    )
    made_hidden: tuple[int, ...] = field(
        (128, 128, 128), "hidden widths of each iaf step's MADE", integers(1, nonempty=True)
    )


# --- the layers: z [N, L] -> (f(z) [N, L], log|det df/dz| [N]) ---------------------------
class Planar(nn.Module):
    """``f(z) = z + u_hat tanh(w.z + b)`` with the invertibility constraint on ``u_hat``."""

    @nn.compact
    def __call__(self, z: jax.Array) -> tuple[jax.Array, jax.Array]:
        d = z.shape[-1]
        init = nn.initializers.normal(1.0 / math.sqrt(d))
        w = self.param("w", init, (d,), jnp.float32)
        u = self.param("u", init, (d,), jnp.float32)
        b = self.param("b", nn.initializers.zeros, (), jnp.float32)
        wu = jnp.dot(w, u)
        u_hat = u + (jax.nn.softplus(wu) - 1.0 - wu) * w / jnp.dot(w, w)
        t = jnp.tanh(z @ w + b)  # [N]
        out = z + t[:, None] * u_hat[None]
        log_det = jnp.log(jnp.abs(1.0 + (1.0 - t * t) * jnp.dot(w, u_hat)))
        return out, log_det


class Radial(nn.Module):
    """``f(z) = z + beta (z - z_c) / (alpha + |z - z_c|)``, ``alpha > 0``, ``beta >= -alpha``."""

    @nn.compact
    def __call__(self, z: jax.Array) -> tuple[jax.Array, jax.Array]:
        d = z.shape[-1]
        center = self.param("center", nn.initializers.normal(1.0), (d,), jnp.float32)
        raw_alpha = self.param("alpha", nn.initializers.zeros, (), jnp.float32)
        raw_beta = self.param("beta", nn.initializers.zeros, (), jnp.float32)
        alpha = jax.nn.softplus(raw_alpha)
        beta = jax.nn.softplus(raw_beta) - alpha
        diff = z - center[None]
        r = jnp.sqrt(jnp.sum(diff * diff, axis=-1))
        h = 1.0 / (alpha + r)  # [N]
        out = z + (beta * h)[:, None] * diff
        log_det = (d - 1) * jnp.log1p(beta * h) + jnp.log1p(beta * alpha * h * h)
        return out, log_det


class IAFStep(nn.Module):
    """``f(z) = sigma z + (1 - sigma) m``, ``[m, s] = MADE(z)``, ``sigma = sigmoid(s + 1)``."""

    hidden: tuple[int, ...]
    reverse: bool = False

    @nn.compact
    def __call__(self, z: jax.Array) -> tuple[jax.Array, jax.Array]:
        m, s = MADE(self.hidden, 2, self.reverse, zero_output=True)(z)
        s = s + IAF_BIAS
        sigma = jax.nn.sigmoid(s)
        return sigma * z + (1.0 - sigma) * m, jnp.sum(jax.nn.log_sigmoid(s), axis=-1)


class FlowCode(nn.Module):
    """``q_K(z_K|x)``: a diagonal Gaussian ``q_0`` pushed through ``length`` flow layers.

    The encoder gives ``2 L`` features (means, log-variances). ``__call__`` draws
    ``z_K`` (training: ``"sample"`` stream; evaluation: a fixed key) and reports the
    one-draw ``kl = log q_K(z_K|x) - log N(z_K; 0, I)``; outputs ``mean``, ``logvar``;
    stats the batch's mean ``log_det``.
    """

    latent_dim: int
    flow: str = "iaf"
    length: int = 2
    made_hidden: tuple[int, ...] = (128, 128, 128)

    def setup(self):
        if self.flow == "planar":
            self.layers = [Planar() for _ in range(self.length)]
        elif self.flow == "radial":
            self.layers = [Radial() for _ in range(self.length)]
        else:
            self.layers = [IAFStep(self.made_hidden, k % 2 == 1) for k in range(self.length)]

    @property
    def features(self) -> int:
        return 2 * self.latent_dim

    def posterior(self, h: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``h: [B, 2L]`` -> ``q_0``'s ``(mean, logvar)``, each ``[B, L]`` float32."""
        h = h.astype(jnp.float32)
        return h[:, : self.latent_dim], h[:, self.latent_dim :]

    def flow_layers(self, z0: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``z_0: [..., L]`` -> ``(z_K [..., L], sum_k log|det df_k/dz_{k-1}| [...])``."""
        lead = z0.shape[:-1]
        z = z0.reshape(-1, z0.shape[-1]).astype(jnp.float32)
        total = jnp.zeros(z.shape[:1], jnp.float32)
        for layer in self.layers:
            z, log_det = layer(z)
            total = total + log_det
        return z.reshape(*lead, z.shape[-1]), total.reshape(lead)

    def draw(self, h: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """One draw per row: ``(z_K [B, L], log q_K(z_K|x) [B], log_det [B])``."""
        mean, logvar = self.posterior(h)
        logvar = losses.clamp_logvar(logvar)
        eps = jax.random.normal(key, mean.shape, jnp.float32)
        z, log_det = self.flow_layers(mean + jnp.exp(0.5 * logvar) * eps)
        log_q0 = -0.5 * jnp.sum(jnp.square(eps) + logvar + _LOG_2PI, axis=-1)
        return z, log_q0 - log_det, log_det

    def encode(self, h: jax.Array) -> jax.Array:
        """``h`` -> ``f(mean): [B, L]``, the deterministic code."""
        return self.flow_layers(self.posterior(h)[0])[0]

    def __call__(self, h: jax.Array, *, train: bool = False) -> tuple[jax.Array, dict]:
        key = self.make_rng("sample") if train else jax.random.key(_EVAL_SEED)
        z, log_q, log_det = self.draw(h, key)
        mean, logvar = self.posterior(h)
        kl = log_q - standard_normal_log_prob(z)
        return z, {
            "terms": {"kl": kl},
            "outputs": {"mean": mean, "logvar": logvar},
            "stats": {"log_det": log_det.mean()},
        }

    def sample_prior(self, n: int) -> jax.Array:
        return jax.random.normal(self.make_rng("sample"), (n, self.latent_dim))


class FlowAutoencoder(Autoencoder):
    """A dense VAE with a flow posterior; its loss is ``-ELBO`` (module docstring)."""

    @property
    def analytic_kl(self) -> bool:
        """False: a flow posterior's KL has no closed form (the bounds estimate it)."""
        return False

    def posterior_flow(self, z0: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``z_0: [..., L]`` draws of ``q_0`` -> ``(z_K [..., L], log_det [...])``."""
        return self.code.flow_layers(z0)

    def __call__(self, x, *, train: bool = False, mask=None, target=None):
        """``(recon, aux)`` as ``Autoencoder``'s; terms ``reconstruction``, ``kl``,
        ``bound_correction`` (per example ``[B]``; with unit weights they sum to ``-ELBO``)."""
        h = self.encoder(x)
        z, code = self.code(h, train=train)
        target = x if target is None else target
        out = self.decoder(z)
        log_px = log_likelihood(self.likelihood, out, target, mask)
        if not train:  # the VAE's reconstruction: the deterministic code decoded
            z = self.code.encode(h)
            out = self.decoder(z)
        recon = self.likelihood.nll(out, target, mask)
        terms = {"reconstruction": recon, **code["terms"], "bound_correction": -log_px - recon}
        aux = {"z": z, "decoder_output": out, "terms": terms, "stats": code["stats"]}
        return self.likelihood.mean(out), {**aux, **code["outputs"]}


def _build(options: FlowVAEOptions, common: Common, data: DataInfo) -> FlowAutoencoder:
    """A dense VAE (``dense_parts``) around a ``FlowCode``."""
    code = FlowCode(
        common.latent_dim,
        options.flow,
        int(options.flow_length),
        tuple(int(w) for w in options.made_hidden),
    )
    parts = dense_parts(options, common, data, code)
    return FlowAutoencoder(tuple(data.input_shape), likelihood=common.likelihood, **parts)


def _weights(options: FlowVAEOptions, total_steps: int):
    """``kl`` weighs ``beta`` (or rises to it over ``kl_warmup_steps``), the correction 1."""
    warmup = options.kl_warmup_steps
    kl = ramp(warmup, options.beta) if warmup > 0 else options.beta
    return {"kl": kl, "bound_correction": 1.0}, None, max(total_steps, warmup)


FLOW_VAE = ModelSpec(
    _build,
    FlowVAEOptions,
    weights=_weights,
    test_config={"hidden": (32,), "latent_dim": 4, "flow_length": 2, "made_hidden": (16,)},
    posterior=True,
)
