"""Cholesky factors and triangular solves of small batched matrices in plain XLA ops.

jaxlib's CPU kernels for these (LAPACK ``potrf``/``trsm`` through XLA's FFI) split a
batch over XLA's intra-op thread pool and wait for the pieces on that same pool: when
two such kernels of one program run at once on a machine with two pool threads (2
cores), each holds a thread waiting for work that has no thread to run on, and the
process hangs for ever at 0% CPU (seen with ``rhvae`` on this project's 2-core machine:
both ``tf_XLAEigen`` threads in ``jax::ParallelBatchMap`` -> ``BlockingCounter::Wait``
under ``TriMatrixEquationSolver``). The metrics here are ``[B, L, L]`` with ``L`` the
latent size (tens), so a column-by-column loop unrolled at trace time is cheap, calls no
custom kernel, and is differentiated by JAX like any other op.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

_HI = jax.lax.Precision.HIGHEST


def cholesky(a: jax.Array) -> jax.Array:
    """The lower Cholesky factor ``C`` (``C C^T = a``) of SPD matrices ``[..., L, L]``."""
    n = a.shape[-1]
    c = jnp.zeros_like(a)
    for j in range(n):
        row = c[..., j, :j]  # [..., j]
        d = jnp.sqrt(a[..., j, j] - jnp.sum(row * row, axis=-1))
        c = c.at[..., j, j].set(d)
        if j + 1 < n:
            below = jnp.einsum("...ik,...k->...i", c[..., j + 1 :, :j], row, precision=_HI)
            c = c.at[..., j + 1 :, j].set((a[..., j + 1 :, j] - below) / d[..., None])
    return c


def solve_lower_transposed(c: jax.Array, b: jax.Array) -> jax.Array:
    """``x`` with ``C^T x = b`` for lower triangular ``c [..., L, L]``, ``b [..., L]``."""
    n = c.shape[-1]
    xs = [None] * n
    for j in reversed(range(n)):
        acc = b[..., j]
        for k in range(j + 1, n):
            acc = acc - c[..., k, j] * xs[k]
        xs[j] = acc / c[..., j, j]
    return jnp.stack(xs, axis=-1)
