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


# --- maximum mean discrepancy (wae, info_vae) -------------------------------------------
MMD_KERNELS = ("imq", "rbf")


def squared_distances(a: jax.Array, b: jax.Array) -> jax.Array:
    """``a: [N, L]``, ``b: [M, L]`` -> ``[N, M]`` squared Euclidean distances (>= 0).

    Expanded as ``|a|^2 + |b|^2 - 2 a.b`` (memory ``N M``, not ``N M L``), at full float32
    precision: the kernel of near neighbours depends on the small differences.
    """
    cross = jnp.matmul(a, b.T, precision=jax.lax.Precision.HIGHEST)
    aa = jnp.sum(jnp.square(a), axis=1)
    bb = jnp.sum(jnp.square(b), axis=1)
    return jnp.maximum(aa[:, None] + bb[None, :] - 2.0 * cross, 0.0)


def imq_kernel(sq_dist: jax.Array, c: jax.typing.ArrayLike) -> jax.Array:
    """The inverse multiquadratic kernel of squared distances: ``C / (C + d^2)``, elementwise."""
    return c / (c + sq_dist)


def rbf_kernel(sq_dist: jax.Array, c: jax.typing.ArrayLike) -> jax.Array:
    """The Gaussian (RBF) kernel of squared distances: ``exp(-d^2 / C)``, elementwise."""
    return jnp.exp(-sq_dist / c)


def mmd(
    z: jax.Array,
    y: jax.Array,
    kernel: str = "imq",
    scales: tuple[float, ...] = (1.0,),
    prior_var: float = 1.0,
) -> jax.Array:
    """The unbiased MMD^2 estimate between two samples (Gretton et al. 2012):

        sum_{i != j} [k(z_i, z_j) + k(y_i, y_j)] / (n (n - 1)) - 2 sum_{i, j} k(z_i, y_j) / n^2,

    summed over one kernel per scale, ``C = s * 2 * L * prior_var`` (Tolstikhin et al.
    2018's IMQ constant; the RBF uses the same ``C`` as its ``2 sigma^2``).

    Args:
      z: ``[n, L]`` codes of one batch.
      y: ``[n, L]`` draws from the prior.
      kernel: ``"imq"`` (``C / (C + d^2)``) or ``"rbf"`` (``exp(-d^2 / C)``).
      scales: the kernel's ``C`` in multiples of ``2 * L * prior_var``.
      prior_var: ``sigma^2`` of the prior ``N(0, sigma^2 I)``.

    Returns:
      A float32 scalar (~0, possibly slightly negative, when both samples share a law; for
      ``n = 1`` the within-sample sums are empty and count 0).
    """
    k = {"imq": imq_kernel, "rbf": rbf_kernel}[kernel]
    z, y = z.astype(jnp.float32), y.astype(jnp.float32)
    n, latent = z.shape
    off_diag = 1.0 - jnp.eye(n, dtype=jnp.float32)
    pairs = jnp.float32(max(n * (n - 1), 1))
    d_zz, d_yy, d_zy = squared_distances(z, z), squared_distances(y, y), squared_distances(z, y)
    c_base = 2.0 * latent * prior_var
    total = jnp.float32(0.0)
    for s in scales:
        c = jnp.float32(s * c_base)
        within = jnp.sum((k(d_zz, c) + k(d_yy, c)) * off_diag) / pairs
        total = total + within - 2.0 * jnp.sum(k(d_zy, c)) / (n * n)
    return total
