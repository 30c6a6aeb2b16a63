"""Batched, jit-compiled encode / reconstruct over whole arrays (host in, host out)."""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from aejax import xla
from aejax.errors import DataError

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_input(
    x: np.ndarray, input_shape: tuple[int, ...], what: str = "input", *, image: bool = False
) -> np.ndarray:
    """Validates ``x: [N, *input_shape]`` for a trained model and returns it as float32.

    Args:
      x: the examples; a single example of shape ``input_shape`` is taken as a batch of one.
      input_shape: the per-example shape the model was built for.
      what: names the array in error messages.
      image: the model reads images in [0, 1] (a Bernoulli head). Integer pixels are taken
        as 8-bit (0..255) and divided by 255, as the loaders do; bools become 0/1; floats
        must already lie in [0, 1].

    Returns:
      ``[N, *input_shape]`` float32.

    Raises:
      DataError: wrong rank or per-example shape, non-numeric dtype, empty, NaN/Inf, values
        beyond the float32 range, or (``image``) pixels outside 0..255 or [0, 1].
    """
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise DataError(f"{what}: expected numeric data, got dtype {x.dtype}")
    if x.ndim == len(input_shape) and tuple(x.shape) == tuple(input_shape):
        x = x[None]
    if tuple(x.shape[1:]) != tuple(input_shape):
        raise DataError(
            f"{what}: the model expects examples of shape {tuple(input_shape)}, "
            f"got an array of shape {x.shape}"
        )
    if x.shape[0] == 0:
        raise DataError(f"{what}: no examples")
    if x.dtype.kind == "f":
        bad = ~np.isfinite(x)
        if bad.any():
            rows = np.unique(np.nonzero(bad.reshape(x.shape[0], -1))[0])
            raise DataError(
                f"{what}: {int(bad.sum())} NaN/Inf values in {rows.size} "
                f"example(s), first at row {int(rows[0])}"
            )
        if x.dtype.itemsize > 4 and np.abs(x).max() > _FLOAT32_MAX:
            raise DataError(f"{what}: values beyond the float32 range (±{_FLOAT32_MAX:.3g})")
    if not image:
        return x.astype(np.float32)
    lo, hi = x.min(), x.max()
    if x.dtype.kind in "iu":
        if lo < 0 or hi > 255:
            raise DataError(f"{what}: integer pixels in [{lo}, {hi}]; expected 8-bit values 0..255")
        return x.astype(np.float32) / np.float32(255.0)
    if x.dtype.kind == "f" and (lo < 0.0 or hi > 1.0):
        raise DataError(
            f"{what}: float pixels in [{lo:.6g}, {hi:.6g}]; this model reads images "
            "in [0, 1]: divide 8-bit pixels by 255"
        )
    return x.astype(np.float32)


def _apply_impl(model: nn.Module, params: Any, x: jax.Array, method: str):
    if method == "encode":
        return model.apply({"params": params}, x, method=model.encode)
    return model.apply({"params": params}, x)


@functools.cache
def _jitted_apply() -> Any:
    """Jitted on first use, not at import: reading the platform initializes the backend."""
    return xla.jit(_apply_impl, static_argnames=("model", "method"))


def _apply(model: nn.Module, params: Any, x: jax.Array, method: str):
    return _jitted_apply()(model, params, x, method)


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
    """Codes ``[N, latent_dim]`` for ``x: [N, *input_shape]`` (images: see ``check_input``)."""
    x = check_input(x, model.input_shape, image=model.likelihood == "bernoulli")
    return _batched(model, params, x, batch_size, "encode")


def reconstruct(
    model: nn.Module, params: Any, x: np.ndarray, batch_size: int = 1024
) -> tuple[np.ndarray, dict]:
    """Reconstructions ``[N, *input_shape]`` in data space and the aux dict (``z``, ``out``).

    Raises:
      DataError: see ``check_input`` (wrong shape, NaN/Inf, pixels out of range).
    """
    x = check_input(x, model.input_shape, image=model.likelihood == "bernoulli")
    return _batched(model, params, x, batch_size, "call")
