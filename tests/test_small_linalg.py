"""Cholesky and triangular solves in plain XLA ops (aejax.models.small_linalg): the values
and gradients of LAPACK's, and no LAPACK kernel left in rhvae's training step (those
kernels deadlock XLA's 2-thread pool on a 2-core machine)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import aejax
from aejax.models.objective import make_objective
from aejax.models.small_linalg import cholesky, solve_lower_transposed
from aejax.train.state import init_state


def _spd(key, b=4, n=6):
    a = jax.random.normal(key, (b, n, n))
    return a, a @ a.transpose(0, 2, 1) + 0.5 * jnp.eye(n)[None]


def test_values_are_numpy_s():
    _, spd = _spd(jax.random.key(0))
    c = np.asarray(jax.jit(cholesky)(spd))
    np.testing.assert_allclose(c, np.linalg.cholesky(np.asarray(spd, np.float64)), atol=2e-5)
    assert np.all(np.triu(c, 1) == 0)
    b = np.asarray(jax.random.normal(jax.random.key(1), (4, 6)))
    x = np.asarray(jax.jit(solve_lower_transposed)(jnp.asarray(c), jnp.asarray(b)))
    np.testing.assert_allclose(np.einsum("bji,bj->bi", c, x), b, atol=1e-4)  # C^T x = b


def test_gradients_through_a_symmetric_input_are_lapack_s():
    a, _ = _spd(jax.random.key(2))

    def loss(chol, a):
        c = chol(a @ a.transpose(0, 2, 1) + 0.5 * jnp.eye(a.shape[-1])[None])
        x = solve_lower_transposed(c, jnp.ones(a.shape[:2]))
        return jnp.sum(jnp.log(jnp.diagonal(c, axis1=-2, axis2=-1))) + jnp.sum(x * x)

    ours = jax.jit(jax.grad(lambda a: loss(cholesky, a)))(a)
    lapack = jax.jit(jax.grad(lambda a: loss(jnp.linalg.cholesky, a)))(a)
    np.testing.assert_allclose(ours, lapack, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(lapack))))


def test_rhvae_s_training_step_calls_no_lapack_kernel():
    config = aejax.Config(model="rhvae", data="digits", latent_dim=3, hidden=(8,))
    model = aejax.model_from_config(config, (8, 8, 1), "image", n_train=64)
    optimizers = aejax.make_optimizers(config, 10, model)
    state = init_state(model, optimizers, (8, 8, 1), 0)
    step = aejax.make_train_step(model, optimizers, make_objective(config, 10))
    jaxpr = str(jax.make_jaxpr(step)(state, {"x": jnp.zeros((4, 8, 8, 1))}, state.rng))
    assert "cholesky" not in jaxpr and "triangular_solve" not in jaxpr
