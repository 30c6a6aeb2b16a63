"""Batched, jit-compiled encode / reconstruct over whole arrays (host in, host out)."""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from aejax.errors import DataError


def check_input(x: np.ndarray, input_shape: tuple[int, ...], what: str = "input") -> np.ndarray:
    """Validates ``x: [N, *input_shape]`` for a trained model and returns it as float32.

    Raises:
      DataError: wrong rank or per-example shape, non-numeric dtype, empty, or NaN/Inf.
    """
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise DataError(f"{what}: expected numeric data, got dtype {x.dtype}")
    if x.ndim == len(input_shape) and tuple(x.shape) == tuple(input_shape):
        x = x[None]
    if tuple(x.shape[1:]) != tuple(input_shape):
        raise DataError(f"{what}: the model expects examples of shape {tuple(input_shape)}, "
                        f"got an array of shape {x.shape}")
    if x.shape[0] == 0:
        raise DataError(f"{what}: no examples")
    x = x.astype(np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        rows = np.unique(np.nonzero(bad.reshape(x.shape[0], -1))[0])
        raise DataError(f"{what}: {int(bad.sum())} NaN/Inf values in {rows.size} example(s), "
                        f"first at row {int(rows[0])}")
    return x


@functools.partial(jax.jit, static_argnames=("model", "method"))
def _apply(model: nn.Module, params: Any, x: jax.Array, method: str):
    if method == "encode":
        return model.apply({"params": params}, x, method=model.encode)
    return model.apply({"params": params}, x)


def _batched(model, params, x, batch_size, method):
    n = x.shape[0]
    outs = []
    for i in range(0, n, batch_size):
        chunk = x[i : i + batch_size]
        pad = batch_size - chunk.shape[0] if n > batch_size else 0
        if pad:  # keep one static shape so the last chunk reuses the compiled function
            chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
        out = _apply(model, params, jnp.asarray(chunk), method)
        outs.append(jax.tree.map(lambda a, p=pad: np.asarray(a)[: a.shape[0] - p], out))
    return jax.tree.map(lambda *a: np.concatenate(a), *outs)


def encode(model: nn.Module, params: Any, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Codes ``[N, latent_dim]`` for ``x: [N, *input_shape]``."""
    x = check_input(x, model.input_shape)
    return _batched(model, params, x, batch_size, "encode")


def reconstruct(
    model: nn.Module, params: Any, x: np.ndarray, batch_size: int = 1024
) -> tuple[np.ndarray, dict]:
    """Reconstructions ``[N, *input_shape]`` in data space and the aux dict (``z``, ``out``)."""
    x = check_input(x, model.input_shape)
    return _batched(model, params, x, batch_size, "call")
