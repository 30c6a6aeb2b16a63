"""Codes: what sits between encoder and decoder (identity, diagonal Gaussian, ...).

A code module maps encoder features ``h`` to the code ``z`` and reports, per example and
*unweighted*, the terms it adds to the objective (the Gaussian's KL divergence, a vector
quantizer's commitment). Every code has the same three methods:

- ``__call__(h, *, train) -> (z, {"terms": {name: [B]}, "outputs": {...}, "stats": {...}})``;
- ``encode(h) -> z``, deterministic (a Gaussian's mean);
- ``sample_prior(n) -> z`` for generation, drawing from the ``"sample"`` rng stream.

``features`` is the width (or channel count) the encoder must produce for it.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from aejax.models import losses


class IdentityCode(nn.Module):
    """A deterministic code: ``z = h`` (the plain autoencoder)."""

    latent_dim: int

    @property
    def features(self) -> int:
        return self.latent_dim

    def __call__(self, h: jax.Array, *, train: bool = False) -> tuple[jax.Array, dict]:
        del train
        return h, {"terms": {}, "outputs": {}, "stats": {}}

    def encode(self, h: jax.Array) -> jax.Array:
        return h

    def sample_prior(self, n: int) -> jax.Array:
        raise NotImplementedError(
            "a deterministic autoencoder has no prior; aejax.sample fits a Gaussian mixture "
            "to its training codes instead"
        )


class GaussianCode(nn.Module):
    """A diagonal Gaussian posterior ``q(z|x) = N(mean, diag(exp(logvar)))``, prior ``N(0, I)``.

    The encoder gives ``2 * latent_dim`` features: the means, then the log-variances.
    Training (``train=True``) draws ``z = mean + exp(logvar / 2) * eps`` (the
    reparameterization trick, ``eps`` from the ``"sample"`` rng stream, log-variances
    clamped by ``aejax.models.losses.clamp_logvar``); otherwise ``z = mean``. The term ``kl`` is
    ``KL(q(z|x) || N(0, I))`` in nats, unweighted: the objective applies beta, a warm-up or
    a capacity schedule.
    """

    latent_dim: int

    @property
    def features(self) -> int:
        return 2 * self.latent_dim

    def posterior(self, h: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``h: [B, 2K]`` -> ``(mean, logvar)``, each ``[B, K]`` float32."""
        return h[:, : self.latent_dim], h[:, self.latent_dim :]

    def __call__(self, h: jax.Array, *, train: bool = False) -> tuple[jax.Array, dict]:
        mean, logvar = self.posterior(h)
        if train:
            eps = jax.random.normal(self.make_rng("sample"), mean.shape, mean.dtype)
            z = mean + jnp.exp(0.5 * losses.clamp_logvar(logvar)) * eps
        else:
            z = mean
        kl = losses.kl_diag_gaussian(mean, logvar)
        return z, {"terms": {"kl": kl}, "outputs": {"mean": mean, "logvar": logvar}, "stats": {}}

    def encode(self, h: jax.Array) -> jax.Array:
        return self.posterior(h)[0]

    def sample_prior(self, n: int) -> jax.Array:
        return jax.random.normal(self.make_rng("sample"), (n, self.latent_dim))
