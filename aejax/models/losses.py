"""Training objectives as per-example pure functions; the caller takes the mean."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def step_is_finite(per_example: jax.Array, grads) -> jax.Array:
    """Scalar bool: the batch loss and the gradients' global norm are finite.

    Two reductions instead of a NaN/Inf scan of every gradient and parameter (one pass over
    the parameters less per step). It is as strict: a NaN/Inf anywhere in either makes its
    sum non-finite, and so does a finite gradient whose square overflows (|g| > 1.8e19),
    which would otherwise put inf into Adam's second moment. Finite gradients cannot make
    Adam/AdamW parameters non-finite: each step moves a parameter by at most ~3x the
    learning rate.

    Args:
      per_example: ``[B]`` losses.
      grads: the gradient pytree.
    """
    return jnp.isfinite(jnp.sum(per_example)) & jnp.isfinite(optax.global_norm(grads))


# Bounds for log-variances: exp(20) ~ 5e8 and exp(-30) ~ 1e-13 keep exp() and its gradient
# finite in float32 while never binding for a healthy model.
LOGVAR_MIN, LOGVAR_MAX = -30.0, 20.0


def clamp_logvar(logvar: jax.Array) -> jax.Array:
    """Clips log-variances to [LOGVAR_MIN, LOGVAR_MAX] so exp() cannot overflow to inf."""
    return jnp.clip(logvar, LOGVAR_MIN, LOGVAR_MAX)


def kl_diag_gaussian(
    mu: jax.Array,
    logvar: jax.Array,
    prior_mu: jax.Array | float = 0.0,
    prior_logvar: jax.Array | float = 0.0,
) -> jax.Array:
    """KL(N(mu, exp(logvar)) || N(prior_mu, exp(prior_logvar))) per example, summed over dims.

    Log-variances are clamped first (see ``clamp_logvar``).

    Args:
      mu: ``[B, K]`` posterior means.
      logvar: ``[B, K]`` posterior log-variances.
      prior_mu: prior mean (scalar or broadcastable to ``[B, K]``); standard normal by default.
      prior_logvar: prior log-variance, likewise.

    Returns:
      ``[B]`` KL divergences in nats.
    """
    logvar, prior_logvar = clamp_logvar(logvar), clamp_logvar(jnp.asarray(prior_logvar))
    var_ratio = jnp.exp(logvar - prior_logvar)
    mean_term = jnp.square(mu - prior_mu) * jnp.exp(-prior_logvar)
    kl = 0.5 * (var_ratio + mean_term - 1.0 - logvar + prior_logvar)
    return kl.reshape(kl.shape[0], -1).sum(axis=1)
