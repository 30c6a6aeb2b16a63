"""The Gaussian code shared by the variational models: reparameterized sample and KL."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from aejax import losses


def gaussian_code(
    module: nn.Module, mean: jax.Array, logvar: jax.Array, *, train: bool, beta: float
) -> tuple[jax.Array, dict]:
    """Picks the code from a diagonal Gaussian posterior and weighs its KL to ``N(0, I)``.

    Args:
      module: the calling model; training draws from its ``"sample"`` rng stream.
      mean: ``[B, K]`` float32 posterior means.
      logvar: ``[B, K]`` float32 posterior log-variances.
      train: draw ``z = mean + exp(logvar / 2) * eps`` (the reparameterization trick,
        log-variances clamped by ``aejax.losses.clamp_logvar``); otherwise ``z = mean``.
      beta: weight of the KL term.

    Returns:
      ``(z [B, K], aux)`` where ``aux`` has ``mean``, ``logvar`` and
      ``penalties = {"kl": beta * KL(q(z|x) || N(0, I))}``, each per example.
    """
    if train:
        eps = jax.random.normal(module.make_rng("sample"), mean.shape, mean.dtype)
        z = mean + jnp.exp(0.5 * losses.clamp_logvar(logvar)) * eps
    else:
        z = mean
    kl = beta * losses.kl_diag_gaussian(mean, logvar)
    return z, {"mean": mean, "logvar": logvar, "penalties": {"kl": kl}}
