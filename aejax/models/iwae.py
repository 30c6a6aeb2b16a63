"""The importance-weighted autoencoder (Burda et al. 2016) and its variants MIWAE, PIWAE, CIWAE.

One model, ``iwae``, with a VAE's dense network and Gaussian code; the options choose the
bound it maximizes. Each example draws ``N = M K`` codes ``z_{m,k} = mean + sigma eps_{m,k}``
(``M = iw_groups``, ``K = iw_samples``) and weighs them by

    log w_{m,k} = log p(x | z_{m,k}) + log p(z_{m,k}) - log q(z_{m,k} | x).

``iw_variant`` (Rainforth et al. 2018, "Tighter variational bounds are not necessarily
better"):

- ``iwae``: ``IWAE_N = logsumexp_{m,k} log w - log N``, one bound over all ``M K`` draws;
- ``miwae``: ``MIWAE = mean_m (logsumexp_k log w_{m,k} - log K)``, the mean of ``M``
  independent ``K``-sample bounds (``K = 1``: the ELBO averaged over ``M`` draws);
- ``ciwae``: ``beta ELBO + (1 - beta) IWAE_N`` with ``beta = ciwae_beta`` and
  ``ELBO = mean_{m,k} log w`` from the same draws;
- ``piwae``: the decoder ``theta`` trained on ``IWAE_N``, the encoder ``phi`` on ``MIWAE``.

PIWAE in one loss. ``bound = D + (E - stop_gradient(E))`` with two passes over the same
draws ``eps``:

- ``D`` = ``IWAE_N`` computed from ``stop_gradient(mean)``, ``stop_gradient(logvar)`` (so
  from stopped codes) through the live decoder: ``dD/dtheta`` is IWAE's decoder gradient
  (at fixed ``phi`` the IWAE bound depends on ``theta`` only through ``log p(x | z)`` at
  these codes) and ``dD/dphi = 0``;
- ``E`` = ``MIWAE`` computed from the live codes through the decoder applied with
  ``stop_gradient`` of its parameters: ``dE/dphi`` is MIWAE's encoder gradient (the
  reparameterized path through the decoder's input and ``log q``, ``theta`` held as a
  value) and ``dE/dtheta = 0``.

So the decoder's gradient is exactly IWAE's, the encoder's exactly MIWAE's, and the
value is ``D``'s: the ``IWAE_N`` bound (``E - stop_gradient(E)`` is 0). The decoder runs
twice per step (``N`` codes each). Evaluation reports ``IWAE_N`` for PIWAE.

Terms. The bound does not split into a reconstruction and a KL, so the model reports the
VAE's two terms and the rest of the negative bound:

- ``reconstruction``: the likelihood's term (``Likelihood.nll``) at one code: the first
  draw in training, the posterior mean in evaluation (as a VAE's);
- ``kl``: the analytic ``KL(q(z|x) || N(0, I))``;
- ``iw_correction = -bound - reconstruction - kl``.

All three weigh 1, so the per-example loss is exactly ``-bound`` and its gradient
exactly ``-d bound``: the cotangents that reach ``reconstruction`` and ``kl`` through
their own weight and through ``iw_correction`` are ``+g`` and ``-g`` and sum to an exact 0.
The epoch records' ``elbo`` (``-(reconstruction + kl)``) is the one-draw ELBO of a VAE;
``iw_correction`` is ``ELBO_1 - bound`` (mostly negative: what importance weighting gains).

The bound uses exact densities: ``log p(x|z)`` is ``Likelihood.log_prob`` (the
``"gaussian"`` likelihood's training term is the summed squared error, twice its NLL less
a constant; the bound uses the unit-variance Gaussian's log-density, with a mask counting
only observed entries), ``log q`` is computed as ``-0.5 sum(eps^2 + logvar + log 2 pi)``
(the same function of ``(eps, phi)`` as ``log N(z; mean, var)``, so the same gradient),
log-variances clamped as ``GaussianCode`` clamps them.

Randomness: training draws ``eps: [B, M, K, L]`` from the ``"sample"`` stream; evaluation
from a fixed key, so the validation loss is the same estimator from epoch to epoch.
``posterior=True``: ``aejax.bounds`` (test ELBO, IW-k NLL) applies as to a VAE.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import jax
import jax.numpy as jnp

from aejax.fields import Allowed, field, one_of
from aejax.models import losses
from aejax.models.autoencoder import Autoencoder
from aejax.models.codes import GaussianCode
from aejax.models.compose import dense_parts
from aejax.models.options import Dense
from aejax.models.spec import Common, DataInfo, ModelSpec

VARIANTS = ("iwae", "miwae", "piwae", "ciwae")
_LOG_2PI = math.log(2.0 * math.pi)
_EVAL_SEED = 0x1BAE  # the fixed key of the draws in evaluation


def _count(v) -> bool:
    return not isinstance(v, bool) and int(v) == v and v >= 1


def _unit(v) -> bool:
    return not isinstance(v, bool) and 0.0 <= v <= 1.0


@dataclasses.dataclass(frozen=True)
class IWAEOptions(Dense):
    """``iwae``: the dense network and the importance-weighted bound it maximizes."""

    GROUP: ClassVar = (
        "iwae",
        "iwae's importance-weighted bounds (Burda et al. 2016; Rainforth et al. 2018)",
    )
    iw_samples: int = field(
        5, "K, importance samples per bound (1 = the ELBO)", Allowed("an integer >= 1", _count)
    )
    iw_groups: int = field(
        1,
        "M, groups of K draws: miwae averages M K-sample bounds; iwae and ciwae use all M*K "
        "draws in one bound; piwae both",
        Allowed("an integer >= 1", _count),
    )
    iw_variant: str = field(
        "iwae",
        "the bound: iwae (all M*K draws), miwae (mean of M K-sample bounds), piwae (decoder "
        "on iwae, encoder on miwae), ciwae (ciwae_beta*ELBO + (1-ciwae_beta)*iwae)",
        one_of(*VARIANTS),
    )
    ciwae_beta: float = field(
        0.5,
        "ciwae's weight of the ELBO in beta*ELBO + (1-beta)*IWAE (1 = the ELBO, 0 = iwae)",
        Allowed("a number in [0, 1]", _unit),
    )


# --- the bounds of log weights -----------------------------------------------------------
def iwae_bound(log_w: jax.Array) -> jax.Array:
    """``logsumexp(log w) - log N`` over every draw: ``[B, ...]`` -> ``[B]``."""
    flat = log_w.reshape(log_w.shape[0], -1)
    return jax.nn.logsumexp(flat, axis=1) - math.log(flat.shape[1])


def miwae_bound(log_w: jax.Array) -> jax.Array:
    """The mean over ``M`` groups of ``K``-sample bounds: ``[B, M, K]`` -> ``[B]``."""
    return jnp.mean(jax.nn.logsumexp(log_w, axis=2) - math.log(log_w.shape[2]), axis=1)


def elbo_bound(log_w: jax.Array) -> jax.Array:
    """The Monte Carlo ELBO, the mean log weight: ``[B, ...]`` -> ``[B]``."""
    return jnp.mean(log_w.reshape(log_w.shape[0], -1), axis=1)


def ciwae_bound(log_w: jax.Array, beta: float) -> jax.Array:
    """``beta ELBO + (1 - beta) IWAE`` of the same draws: ``[B, ...]`` -> ``[B]``."""
    return beta * elbo_bound(log_w) + (1.0 - beta) * iwae_bound(log_w)


def bound_value(log_w: jax.Array, variant: str, beta: float = 0.5) -> jax.Array:
    """The variant's bound of ``log_w: [B, M, K]`` -> ``[B]`` (PIWAE's value: ``IWAE``)."""
    if variant == "miwae":
        return miwae_bound(log_w)
    if variant == "ciwae":
        return ciwae_bound(log_w, beta)
    return iwae_bound(log_w)


def log_likelihood(likelihood, out: jax.Array, x: jax.Array, mask=None) -> jax.Array:
    """Exact ``log p(x | z)`` per example, ``[B]``, with an optional mask of observed entries.

    ``likelihood.nll`` is exact except for ``"gaussian"`` (the summed squared error): its
    unit-variance log-density is ``-SSE / 2 - n log(2 pi) / 2``, ``n`` the observed entries.
    """
    if likelihood.proper:
        return -likelihood.nll(out, x, mask)
    if mask is None:
        n = math.prod(x.shape[1:])
    else:
        n = jnp.broadcast_to(mask, x.shape).reshape(x.shape[0], -1).sum(axis=1)
    return -0.5 * likelihood.nll(out, x, mask) - 0.5 * _LOG_2PI * n


class IWAutoencoder(Autoencoder):
    """A dense VAE whose objective is an importance-weighted bound (module docstring).

    Attributes (besides ``Autoencoder``'s): ``iw_samples`` (K), ``iw_groups`` (M),
    ``iw_variant`` (one of ``VARIANTS``), ``ciwae_beta``.
    """

    iw_samples: int = 5
    iw_groups: int = 1
    iw_variant: str = "iwae"
    ciwae_beta: float = 0.5

    def log_weights(self, x, mean, logvar, eps, mask=None, *, stop_decoder=False):
        """``log w: [B, M, K]`` and the decoder outputs ``[B, M K, ...]``.

        Args:
          x: ``[B, *input_shape]`` targets.
          mean, logvar: ``[B, L]`` of ``q(z|x)`` (log-variances clamped).
          eps: ``[B, M, K, L]`` standard normal draws.
          mask: optional observed entries, broadcastable to ``x``.
          stop_decoder: apply the decoder with ``stop_gradient`` of its variables.
        """
        b, m, k, latent = eps.shape
        z = mean[:, None, None] + jnp.exp(0.5 * logvar)[:, None, None] * eps
        flat = z.reshape(b * m * k, latent)
        if stop_decoder and not self.is_initializing():
            frozen = jax.tree.map(jax.lax.stop_gradient, self.decoder.variables)
            out = self.decoder.clone(parent=None).apply(frozen, flat)
        else:
            out = self.decoder(flat)
        xs = jnp.repeat(x, m * k, axis=0)
        ms = None if mask is None else jnp.repeat(jnp.broadcast_to(mask, x.shape), m * k, axis=0)
        log_px = log_likelihood(self.likelihood, out, xs, ms).reshape(b, m, k)
        log_pz = self.log_prior(z)
        log_qz = -0.5 * jnp.sum(jnp.square(eps) + logvar[:, None, None] + _LOG_2PI, axis=-1)
        return log_px + log_pz - log_qz, out.reshape(b, m * k, *out.shape[1:])

    def bound(self, x, mean, logvar, eps, mask=None, *, train: bool = False):
        """The variant's per-example bound ``[B]`` and the outputs ``[B, M K, ...]``.

        PIWAE in training: ``D + (E - stop_gradient(E))`` (module docstring).
        """
        if self.iw_variant == "piwae" and train:
            stop = jax.lax.stop_gradient
            log_w, out = self.log_weights(x, stop(mean), stop(logvar), eps, mask)
            decoder_part = iwae_bound(log_w)
            log_w_enc, _ = self.log_weights(x, mean, logvar, eps, mask, stop_decoder=True)
            encoder_part = miwae_bound(log_w_enc)
            return decoder_part + (encoder_part - stop(encoder_part)), out
        log_w, out = self.log_weights(x, mean, logvar, eps, mask)
        return bound_value(log_w, self.iw_variant, self.ciwae_beta), out

    def __call__(self, x, *, train: bool = False, mask=None, target=None):
        """``(recon, aux)`` as ``Autoencoder``'s; terms ``reconstruction``, ``kl``,
        ``iw_correction`` (per example ``[B]``, summing to ``-bound``)."""
        mean, logvar = self.code.posterior(self.encoder(x))
        mean = mean.astype(jnp.float32)
        logvar = losses.clamp_logvar(logvar.astype(jnp.float32))
        target = x if target is None else target
        shape = (x.shape[0], self.iw_groups, self.iw_samples, mean.shape[1])
        key = self.make_rng("sample") if train else jax.random.key(_EVAL_SEED)
        eps = jax.random.normal(key, shape, jnp.float32)
        bound, outs = self.bound(target, mean, logvar, eps, mask, train=train)
        if train:  # the VAE's terms at the first draw, already decoded
            z, out = mean + jnp.exp(0.5 * logvar) * eps[:, 0, 0], outs[:, 0]
        else:
            z = mean
            out = self.decoder(mean)
        recon = self.likelihood.nll(out, target, mask)
        kl = losses.kl_diag_gaussian(mean, logvar)
        terms = {"reconstruction": recon, "kl": kl, "iw_correction": -bound - recon - kl}
        aux = {
            "z": z,
            "decoder_output": out,
            "terms": terms,
            "stats": {},
            "mean": mean,
            "logvar": logvar,
        }
        return self.likelihood.mean(out), aux


def _build(options: IWAEOptions, common: Common, data: DataInfo) -> IWAutoencoder:
    """A dense VAE (``dense_parts`` around a ``GaussianCode``) with the chosen bound."""
    parts = dense_parts(options, common, data, GaussianCode(common.latent_dim))
    return IWAutoencoder(
        tuple(data.input_shape),
        likelihood=common.likelihood,
        iw_samples=int(options.iw_samples),
        iw_groups=int(options.iw_groups),
        iw_variant=options.iw_variant,
        ciwae_beta=float(options.ciwae_beta),
        **parts,
    )


def _weights(options: IWAEOptions, total_steps: int):
    """``kl`` and ``iw_correction`` weigh 1: the loss is exactly ``-bound``."""
    del options
    return {"kl": 1.0, "iw_correction": 1.0}, None, total_steps


IWAE = ModelSpec(
    _build,
    IWAEOptions,
    weights=_weights,
    test_config={
        "hidden": (32,),
        "latent_dim": 4,
        "iw_samples": 3,
        "iw_groups": 2,
        "iw_variant": "piwae",
    },
    posterior=True,
)
