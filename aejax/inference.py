"""Batched, jit-compiled encode / reconstruct over whole arrays (host in, host out)."""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
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


def as_variables(params_or_variables: Any) -> dict:
    """A bare ``params`` tree means ``{"params": tree}``; Linen variables pass through."""
    if isinstance(params_or_variables, dict) and "params" in params_or_variables:
        return params_or_variables
    return {"params": params_or_variables}


def reads_images(model: nn.Module) -> bool:
    """Whether the model reads [0, 1] pixels (a Bernoulli decoder)."""
    return model.likelihood.name == "bernoulli"


def _apply_impl(model: nn.Module, variables: Any, x: jax.Array, method: str):
    if method == "call":
        recon, aux = model.apply(variables, x)
        return recon, {k: v for k, v in aux.items() if k != "stats"}
    return model.apply(variables, x, method=getattr(model, method))


@functools.cache
def _jitted_apply() -> Any:
    """Jitted on first use, not at import: reading the platform initializes the backend."""
    return xla.jit(_apply_impl, static_argnames=("model", "method"))


def batched_apply(model: nn.Module, variables: Any, x: np.ndarray, method: str, batch_size: int):
    """``model.<method>`` over ``x: [N, ...]`` in chunks of one static shape, host in and out.

    Every chunk is dispatched before any result is fetched, and the results come back in
    one transfer, so host-device copies overlap the computation.
    """
    n = x.shape[0]
    rows = min(batch_size, n)
    fn, variables = _jitted_apply(), as_variables(variables)
    outs = []
    for i in range(0, n, rows):
        chunk = x[i : i + rows]
        pad = rows - chunk.shape[0]
        if pad:  # keep one static shape so the last chunk reuses the compiled function
            chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
        outs.append((fn(model, variables, chunk, method), pad))
    host = jax.device_get([o for o, _ in outs])
    pieces = [
        jax.tree.map(lambda a, p=pad: np.asarray(a)[: a.shape[0] - p], o)
        for o, (_, pad) in zip(host, outs, strict=True)
    ]
    return pieces[0] if len(pieces) == 1 else jax.tree.map(lambda *a: np.concatenate(a), *pieces)


def _prepare(model, x, scaler, what="input"):
    x = check_input(x, model.input_shape, what, image=reads_images(model))
    return x if scaler is None else scaler.transform(x).astype(np.float32)


def encode(
    model: nn.Module, variables: Any, x: np.ndarray, batch_size: int = 1024, *, scaler=None
) -> np.ndarray:
    """Codes ``[N, latent_dim]`` (or a code grid) for ``x: [N, *input_shape]``.

    Args:
      model: a registry model.
      variables: its parameters, or ``{"params": ..., **model_state}``.
      x: examples in the data's own units (images: see ``check_input``).
      batch_size: rows per compiled call.
      scaler: the run's ``Standardizer`` (tabular runs): applied to ``x`` first.
    """
    return batched_apply(model, variables, _prepare(model, x, scaler), "encode", batch_size)


def decode(
    model: nn.Module, variables: Any, z: np.ndarray, batch_size: int = 1024, *, scaler=None
) -> np.ndarray:
    """Reconstructions ``[N, *input_shape]`` in data units for codes ``z: [N, ...]``.

    ``scaler`` (tabular runs) maps the model's standardized output back to data units.
    """
    z = np.asarray(z, np.float32)
    if z.ndim < 2 or z.shape[0] == 0:
        raise DataError(f"decode: expected codes [N, ...] with N >= 1, got shape {z.shape}")
    if not np.isfinite(z).all():
        raise DataError("decode: the codes hold NaN/Inf values")
    out = batched_apply(model, variables, z, "decode", batch_size)
    return out if scaler is None else scaler.inverse_transform(out).astype(np.float32)


def reconstruct(
    model: nn.Module, variables: Any, x: np.ndarray, batch_size: int = 1024, *, scaler=None
) -> tuple[np.ndarray, dict]:
    """Reconstructions ``[N, *input_shape]`` in data units and the model's aux outputs.

    ``aux`` holds ``z``, ``decoder_output`` and the per-example ``terms`` (and a code's
    own outputs); with ``scaler`` the input is standardized first and the reconstruction
    mapped back to data units.

    Raises:
      DataError: see ``check_input`` (wrong shape, NaN/Inf, pixels out of range).
    """
    recon, aux = batched_apply(model, variables, _prepare(model, x, scaler), "call", batch_size)
    if scaler is not None:
        recon = scaler.inverse_transform(recon).astype(np.float32)
    return recon, aux


def score(
    model: nn.Module, variables: Any, x: np.ndarray, batch_size: int = 1024, *, scaler=None
) -> dict[str, np.ndarray]:
    """Per-example scores ``{name: [N]}``: every unweighted term the model reports
    (``reconstruction`` NLL, ``kl``, ...) and ``sse``, the summed squared error in the
    model's (standardized) space. Higher means less typical of the training data.
    """
    xs = _prepare(model, x, scaler)
    recon, aux = batched_apply(model, variables, xs, "call", batch_size)
    sse = np.square(recon.reshape(len(xs), -1) - xs.reshape(len(xs), -1)).sum(axis=1)
    return {**aux["terms"], "sse": sse}
