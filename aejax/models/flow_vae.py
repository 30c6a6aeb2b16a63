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
- ``iaf``: ``[m, s] = MADE(z, h)`` (``aejax.models.made``), ``sigma = sigmoid(s + 1)``,
  ``f(z) = sigma z + (1 - sigma) m``, ``log|det| = sum log sigma`` (the paper's Algorithm
  1, its numerically stable "LSTM-type" update); the Jacobian is triangular, the ordering
  reversed from one step to the next.

Amortization (``flow_amortized``, default true): the encoder gives, besides ``mean`` and
``logvar``, each planar layer's ``(w, u, b)`` or radial layer's ``(z_c, alpha, beta)`` per
example (as van den Berg et al. 2018 do for planar flows), or for ``iaf`` a context vector
``h`` of ``made_hidden[0]`` features that every step's MADE reads unmasked in its first
hidden layer (Kingma et al.'s ``AutoregressiveNN(z, h)``); so ``q_K`` is a different
flow for every ``x``. With ``flow_amortized=false`` the flow's parameters are global, as
in pythae's ``vae_lin_nf`` and ``vae_iaf`` (their MADE sees ``z`` only).

Differences from pythae: one model for its two; its planar flow does not enforce
``u_hat`` (here it does); its IAF step is ``(z - mu) exp(-alpha)`` (here Kingma's sigmoid
update, the bias ``+1`` keeping ``sigma`` near 1 at the start, as they advise). From the
papers: one draw per example (no importance-weighted training), no free bits or KL
annealing beyond ``kl_warmup_steps``. ``made_hidden`` defaults to pythae's ``vae_iaf``
MADE (3 hidden layers of 128) and ``flow_length`` to its 2 blocks.

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
and ``posterior_flow(x, z_0) -> (z_K, log_det)`` the flow of ``x``, so the importance
weights are ``log p(x|z_K) + log p(z_K) - log q_0(z_0|x) + log_det``, the density of the
flow's posterior; ``analytic_kl`` is False (the bounds' KL by Monte Carlo).
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
    flow_amortized: bool = field(
        True,
        "the encoder gives the flow's parameters per example (planar, radial) or a context "
        "every iaf step reads (Kingma et al.); false: global flow parameters, as pythae",
    )


# --- the layers: z [N, L] (and their parameters per row) -> (f(z) [N, L], log|det| [N]) ---
def planar(z, w, u, b) -> tuple[jax.Array, jax.Array]:
    """The planar map of rows ``z, w, u: [N, L]``, ``b: [N]``, with ``u_hat`` (appendix A)."""
    wu = jnp.sum(w * u, axis=-1)
    ww = jnp.maximum(jnp.sum(w * w, axis=-1), 1e-12)
    u_hat = u + ((jax.nn.softplus(wu) - 1.0 - wu) / ww)[:, None] * w
    t = jnp.tanh(jnp.sum(z * w, axis=-1) + b)
    out = z + t[:, None] * u_hat
    log_det = jnp.log(jnp.abs(1.0 + (1.0 - t * t) * jnp.sum(w * u_hat, axis=-1)))
    return out, log_det


def radial(z, center, raw_alpha, raw_beta) -> tuple[jax.Array, jax.Array]:
    """The radial map of rows ``z, center: [N, L]``, ``raw_alpha, raw_beta: [N]``:
    ``alpha = softplus(raw_alpha)``, ``beta = softplus(raw_beta) - alpha`` (appendix A)."""
    alpha = jax.nn.softplus(raw_alpha)
    beta = jax.nn.softplus(raw_beta) - alpha
    diff = z - center
    r = jnp.sqrt(jnp.sum(diff * diff, axis=-1))
    h = 1.0 / (alpha + r)
    out = z + (beta * h)[:, None] * diff
    log_det = (z.shape[-1] - 1) * jnp.log1p(beta * h) + jnp.log1p(beta * alpha * h * h)
    return out, log_det


class Planar(nn.Module):
    """A planar layer: parameters ``(w, u, b)`` of its own, or per row from ``ctx``."""

    amortized: bool = False

    @staticmethod
    def context_size(latent: int) -> int:
        return 2 * latent + 1

    @nn.compact
    def __call__(self, z: jax.Array, ctx: jax.Array | None = None):
        """``z: [N, L]``, ``ctx: [N, 2L + 1]`` (amortized) -> ``(f(z), log|det|)``."""
        n, d = z.shape
        if self.amortized:
            return planar(z, ctx[:, :d], ctx[:, d : 2 * d], ctx[:, 2 * d])
        init = nn.initializers.normal(1.0 / math.sqrt(d))
        w = self.param("w", init, (d,), jnp.float32)
        u = self.param("u", init, (d,), jnp.float32)
        b = self.param("b", nn.initializers.zeros, (), jnp.float32)
        rows = (n, d)
        return planar(z, jnp.broadcast_to(w, rows), jnp.broadcast_to(u, rows), jnp.full(n, b))


class Radial(nn.Module):
    """A radial layer: parameters ``(center, alpha, beta)`` of its own, or per row from ``ctx``."""

    amortized: bool = False

    @staticmethod
    def context_size(latent: int) -> int:
        return latent + 2

    @nn.compact
    def __call__(self, z: jax.Array, ctx: jax.Array | None = None):
        """``z: [N, L]``, ``ctx: [N, L + 2]`` (amortized) -> ``(f(z), log|det|)``."""
        n, d = z.shape
        if self.amortized:
            return radial(z, ctx[:, :d], ctx[:, d], ctx[:, d + 1])
        center = self.param("center", nn.initializers.normal(1.0), (d,), jnp.float32)
        raw_alpha = self.param("alpha", nn.initializers.zeros, (), jnp.float32)
        raw_beta = self.param("beta", nn.initializers.zeros, (), jnp.float32)
        return radial(
            z, jnp.broadcast_to(center, (n, d)), jnp.full(n, raw_alpha), jnp.full(n, raw_beta)
        )


class IAFStep(nn.Module):
    """``f(z) = sigma z + (1 - sigma) m``, ``[m, s] = MADE(z, ctx)``, ``sigma = sigmoid(s + 1)``."""

    hidden: tuple[int, ...]
    reverse: bool = False
    amortized: bool = False

    @nn.compact
    def __call__(self, z: jax.Array, ctx: jax.Array | None = None):
        """``z: [N, L]``, ``ctx: [N, C]`` (the encoder's context) -> ``(f(z), log|det|)``."""
        made = MADE(self.hidden, 2, self.reverse, zero_output=True)
        m, s = made(z, ctx if self.amortized else None)
        s = s + IAF_BIAS
        sigma = jax.nn.sigmoid(s)
        return sigma * z + (1.0 - sigma) * m, jnp.sum(jax.nn.log_sigmoid(s), axis=-1)


class FlowCode(nn.Module):
    """``q_K(z_K|x)``: a diagonal Gaussian ``q_0`` pushed through ``length`` flow layers.

    The encoder gives ``2 L`` features (means, log-variances), then, when ``amortized``,
    the flow's context (``context_width``): each planar or radial layer's parameters, or
    the IAF's context vector (``made_hidden[0]`` wide, read by every step). ``__call__``
    draws ``z_K`` (training: ``"sample"`` stream; evaluation: a fixed key) and reports the
    one-draw ``kl = log q_K(z_K|x) - log N(z_K; 0, I)``; outputs ``mean``, ``logvar``;
    stats the batch's mean ``log_det``.
    """

    latent_dim: int
    flow: str = "iaf"
    length: int = 2
    made_hidden: tuple[int, ...] = (128, 128, 128)
    amortized: bool = True

    def setup(self):
        a = self.amortized
        if self.flow == "planar":
            self.layers = [Planar(a) for _ in range(self.length)]
        elif self.flow == "radial":
            self.layers = [Radial(a) for _ in range(self.length)]
        else:
            self.layers = [IAFStep(self.made_hidden, k % 2 == 1, a) for k in range(self.length)]

    def _layer_context(self) -> int:
        """Context features each layer reads (planar, radial) or all share (iaf)."""
        if self.flow == "planar":
            return Planar.context_size(self.latent_dim)
        if self.flow == "radial":
            return Radial.context_size(self.latent_dim)
        return self.made_hidden[0]

    @property
    def context_width(self) -> int:
        if not self.amortized or self.length == 0:
            return 0
        per = self._layer_context()
        return per if self.flow == "iaf" else per * self.length

    @property
    def features(self) -> int:
        return 2 * self.latent_dim + self.context_width

    def posterior(self, h: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``h: [B, F]`` -> ``q_0``'s ``(mean, logvar)``, each ``[B, L]`` float32."""
        h = h.astype(jnp.float32)
        return h[:, : self.latent_dim], h[:, self.latent_dim : 2 * self.latent_dim]

    def context(self, h: jax.Array) -> jax.Array:
        """``h: [B, F]`` -> the flow's context ``[B, context_width]`` float32."""
        return h[:, 2 * self.latent_dim :].astype(jnp.float32)

    def flow_layers(self, z0: jax.Array, ctx: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``z_0: [..., B, L]``, ``ctx: [B, C]`` (``context``) -> ``(z_K [..., B, L],
        sum_k log|det df_k/dz_{k-1}| [..., B])``."""
        lead = z0.shape[:-1]
        z = z0.reshape(-1, z0.shape[-1]).astype(jnp.float32)
        c = None
        if self.context_width:
            c = jnp.broadcast_to(ctx, (*lead, ctx.shape[-1])).reshape(z.shape[0], -1)
        per = self._layer_context()
        total = jnp.zeros(z.shape[:1], jnp.float32)
        for k, layer in enumerate(self.layers):
            own = c if c is None or self.flow == "iaf" else c[:, k * per : (k + 1) * per]
            z, log_det = layer(z, own)
            total = total + log_det
        return z.reshape(*lead, z.shape[-1]), total.reshape(lead)

    def draw(self, h: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """One draw per row: ``(z_K [B, L], log q_K(z_K|x) [B], log_det [B])``."""
        mean, logvar = self.posterior(h)
        logvar = losses.clamp_logvar(logvar)
        eps = jax.random.normal(key, mean.shape, jnp.float32)
        z, log_det = self.flow_layers(mean + jnp.exp(0.5 * logvar) * eps, self.context(h))
        log_q0 = -0.5 * jnp.sum(jnp.square(eps) + logvar + _LOG_2PI, axis=-1)
        return z, log_q0 - log_det, log_det

    def encode(self, h: jax.Array) -> jax.Array:
        """``h`` -> ``f(mean): [B, L]``, the deterministic code."""
        return self.flow_layers(self.posterior(h)[0], self.context(h))[0]

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

    def posterior_flow(self, x: jax.Array, z0: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``x: [B, *input_shape]``, draws ``z_0: [..., B, L]`` of its ``q_0`` ->
        ``(z_K [..., B, L], log_det [..., B])``."""
        return self.code.flow_layers(z0, self.code.context(self.encoder(x)))

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
        bool(options.flow_amortized),
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
