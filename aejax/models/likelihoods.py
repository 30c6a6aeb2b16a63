"""Decoder likelihoods: how decoder outputs become a per-example NLL and a reconstruction."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from aejax import metrics
from aejax.errors import ConfigError

LIKELIHOODS = ("bernoulli", "gaussian", "gaussian_learned")
_LOG_2PI = math.log(2.0 * math.pi)
# A learned log-variance is kept in [-10, 10] (variance 4.5e-5 .. 2.2e4): a standardized
# constant column would otherwise drive its variance to 0 and its NLL to -inf.
LEARNED_LOGVAR_BOUND = 10.0


def _masked_sum(v: jax.Array, mask: jax.Array | None) -> jax.Array:
    if mask is not None:
        v = v * jnp.broadcast_to(mask, v.shape)
    return v.reshape(v.shape[0], -1).sum(axis=1)


@dataclasses.dataclass(frozen=True)
class Likelihood:
    """``p(x | z)`` given the decoder's output parameters.

    Attributes:
      name: ``"bernoulli"`` (decoder outputs logits; data in [0, 1]), ``"gaussian"``
        (outputs means, unit variance: the training term is the summed squared error,
        twice the NLL less a constant) or ``"gaussian_learned"`` (outputs a mean and a
        log-variance per element: a heteroscedastic Gaussian NLL).
    """

    name: str = "bernoulli"

    def __post_init__(self):
        if self.name not in LIKELIHOODS:
            raise ConfigError(f"unknown likelihood {self.name!r}; choose one of {LIKELIHOODS}")

    @property
    def params_per_element(self) -> int:
        """Decoder outputs per data element: 2 for a learned variance, else 1."""
        return 2 if self.name == "gaussian_learned" else 1

    @property
    def proper(self) -> bool:
        """Whether ``nll`` is an exact negative log-likelihood (an ELBO is then meaningful)."""
        return self.name != "gaussian"

    def split(self, out: jax.Array) -> tuple[jax.Array, jax.Array | None]:
        """``[B, ..., C * params_per_element]`` -> (location ``[B, ..., C]``, log-variance)."""
        out = out.astype(jnp.float32)
        if self.name != "gaussian_learned":
            return out, None
        c = out.shape[-1] // 2
        logvar = jnp.clip(out[..., c:], -LEARNED_LOGVAR_BOUND, LEARNED_LOGVAR_BOUND)
        return out[..., :c], logvar

    def mean(self, out: jax.Array) -> jax.Array:
        """The reconstruction in data space: ``sigmoid(logits)`` or the Gaussian mean."""
        loc, _ = self.split(out)
        return jax.nn.sigmoid(loc) if self.name == "bernoulli" else loc

    def nll(self, out: jax.Array, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """The reconstruction term of the objective, per example: ``[B]``.

        Args:
          out: decoder outputs ``[B, ..., C * params_per_element]``.
          x: targets ``[B, ..., C]``.
          mask: optional 0/1 weights broadcastable to ``x`` (unobserved entries, padding);
            masked elements add nothing.
        """
        loc, logvar = self.split(out)
        if self.name == "bernoulli":
            if mask is None:
                return metrics.bce_per_example(loc, x)
            positive = loc > 0
            bce = (
                jnp.where(positive, loc, 0.0)
                - x * loc
                + jnp.log1p(jnp.exp(jnp.where(positive, -loc, loc)))
            )
            return _masked_sum(bce, mask)
        if self.name == "gaussian":
            if mask is None:
                return metrics.squared_error_per_example(loc, x)
            return _masked_sum(jnp.square(loc - x), mask)
        nll = 0.5 * (jnp.square(x - loc) * jnp.exp(-logvar) + logvar + _LOG_2PI)
        return _masked_sum(nll, mask)

    def log_prob(self, out: jax.Array, x: jax.Array) -> jax.Array:
        """Exact ``log p(x | z)`` per example ``[B]`` (nats), for the importance-weighted bound."""
        if self.name == "gaussian":
            loc, _ = self.split(out)
            sq = metrics.squared_error_per_example(loc, x)
            return -0.5 * sq - 0.5 * _LOG_2PI * math.prod(x.shape[1:])
        return -self.nll(out, x)


def likelihood_for(kind: str, requested: str = "auto") -> Likelihood:
    """The likelihood for a data kind: Bernoulli for images, unit Gaussian for tabular data.

    Args:
      kind: ``"image"`` or ``"tabular"``.
      requested: ``"auto"`` or a name of ``LIKELIHOODS`` (``Config.likelihood``).
    """
    if requested == "auto":
        return Likelihood("bernoulli" if kind == "image" else "gaussian")
    return Likelihood(requested)
