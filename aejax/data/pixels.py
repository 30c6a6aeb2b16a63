"""8-bit pixels: image data sets keep their pixels as uint8 (a quarter of float32's memory)
and every consumer reads them through ``to_unit``, the one conversion to floats in [0, 1].

The compiled functions (the train and evaluation steps, inference, the bounds) call it at
their start, so a batch travels to the device as uint8; host code that computes on pixels
(baselines, metrics, plots) calls it on the host. Either way pixel ``k`` becomes exactly
``float32(k) / float32(255)``, the value the loaders stored before images were kept as
uint8, so results are the same to the bit.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
import numpy as np

# Pixel k -> float32(k) / float32(255), rounded once (numpy divides exactly). Under jit a
# lookup of these 256 values, not a division: XLA turns ``x / 255`` into a multiply by the
# rounded reciprocal, which differs from the exact quotient in the last bit for ~half of
# the 256 values (measured on CPU, jax 0.10).
UNIT_VALUES = np.arange(256, dtype=np.float32) / np.float32(255.0)
UNIT_VALUES.setflags(write=False)


def is_pixels(x: Any) -> bool:
    """Whether ``x`` holds 8-bit pixels (dtype uint8), which ``to_unit`` converts."""
    return np.dtype(getattr(x, "dtype", np.float32)) == np.uint8


def to_unit(x: Any) -> Any:
    """Floats in [0, 1] of 8-bit pixels; any other array unchanged.

    Args:
      x: ``[...]`` uint8 pixels (numpy or jax, traced or not), or any other array.

    Returns:
      ``[...]`` float32 ``k / 255`` for uint8 (a numpy array for numpy input, a jax array
      for jax input); otherwise ``x`` itself.
    """
    if not is_pixels(x):
        return x
    if isinstance(x, np.ndarray):
        return UNIT_VALUES[x]
    return jnp.asarray(UNIT_VALUES)[x]


def to_unit_batch(batch: dict) -> dict:
    """``to_unit`` on a batch's ``x`` and ``target`` (a new dict; other entries as given)."""
    return {k: to_unit(v) if k in ("x", "target") else v for k, v in batch.items()}


def float_images(ds: Any) -> Any:
    """A Dataset with its uint8 ``x_train``/``x_val``/``x_test`` as floats in [0, 1] (the
    layout before pixels were kept as uint8: 4x the memory); any other Dataset as given.

    For code that computes on the pixels on the host (the benchmarks' PyTorch and
    scikit-learn peers).
    """
    if not is_pixels(ds.x_train):
        return ds
    splits = {k: to_unit(getattr(ds, k)) for k in ("x_train", "x_val", "x_test")}
    return dataclasses.replace(ds, **splits)
