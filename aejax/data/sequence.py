"""The ``sequence`` data kind: ``[N, T, D]`` float sequences with per-step masks.

Declared, never guessed from ``ndim``: a ``sequence:PATH`` data spec (an ``.npz`` holding
``x: [N, T, D]`` and optionally ``lengths: [N]`` or ``mask: [N, T]``) or
``build_sequence_dataset`` called with arrays. A ``[N, T, D]`` array without either is
still refused as a bad image, as before.

Masks: ``Dataset.mask_*`` are ``[N, T, D]`` float32 0/1, the same shape as ``x_*`` (what
the engine's batches already carry for ratings data), 1 on the valid steps. Valid steps
come first (a prefix mask): sequence ``i`` is ``x[i, :lengths[i]]``, the rest is padding,
held at 0 in ``x``. The seq2seq model reads the lengths off the mask, so padding changes
neither its code, nor its loss, nor its scores. Features are standardized with a
``Standardizer`` fitted on the valid steps of the training split only.
"""

from __future__ import annotations

import pathlib

import numpy as np

from aejax.data._validate import check_fractions
from aejax.data.dataset import Dataset, _count
from aejax.data.scaler import Standardizer
from aejax.errors import DataError


def lengths_of(mask: np.ndarray) -> np.ndarray:
    """``[N]`` int lengths of ``[N, T]`` or ``[N, T, D]`` prefix masks."""
    m = np.asarray(mask)
    if m.ndim == 3:
        m = m.max(axis=-1)
    return (m > 0).sum(axis=1).astype(np.int64)


def prefix_mask(lengths: np.ndarray, t: int, d: int) -> np.ndarray:
    """``[N, T, D]`` float32: 1 on the first ``lengths[i]`` steps of row ``i``."""
    steps = np.arange(t)[None, :] < np.asarray(lengths)[:, None]
    return np.ascontiguousarray(np.broadcast_to(steps[..., None], (len(lengths), t, d)), np.float32)


def _check(x, lengths, mask, where: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise DataError(f"{where}: x has non-numeric dtype {x.dtype}")
    if x.ndim != 3 or min(x.shape) < 1:
        raise DataError(f"{where}: sequences must be [N, T, D] with N, T, D >= 1; got {x.shape}")
    n, t, _ = x.shape
    if lengths is not None and mask is not None:
        raise DataError(f"{where}: give lengths or mask, not both")
    if mask is not None:
        m = np.asarray(mask)
        if m.shape not in ((n, t), x.shape):
            raise DataError(f"{where}: mask of shape {m.shape}; expected {(n, t)} or {x.shape}")
        if m.ndim == 3:
            m = m.max(axis=-1)
        if not np.isin(m, (0, 1)).all():
            raise DataError(f"{where}: mask values must be 0 or 1")
        lengths = lengths_of(m)
        if not np.array_equal(m > 0, np.arange(t)[None, :] < lengths[:, None]):
            raise DataError(f"{where}: masks must be prefixes (valid steps first, then padding)")
    if lengths is None:
        lengths = np.full(n, t, np.int64)
    lengths = np.asarray(lengths)
    if lengths.shape != (n,) or lengths.dtype.kind not in "iu":
        raise DataError(f"{where}: lengths must be [N] integers; got {lengths.shape}")
    if lengths.min() < 1 or lengths.max() > t:
        raise DataError(f"{where}: lengths must lie in 1..{t}")
    x = x.astype(np.float64)
    valid = np.arange(t)[None, :] < lengths[:, None]
    if not np.isfinite(x[valid]).all():
        raise DataError(f"{where}: x holds NaN or Inf on valid steps")
    return np.where(valid[..., None], x, 0.0), lengths.astype(np.int64)


def build_sequence_dataset(
    name: str,
    x: np.ndarray,
    *,
    lengths: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    shuffle: bool = True,
    where: str | None = None,
) -> Dataset:
    """Splits ``[N, T, D]`` sequences into a ``kind="sequence"`` Dataset.

    Args:
      name: stored as ``Dataset.name``.
      x: ``[N, T, D]`` numeric; padding (beyond each length) may hold anything finite or not.
      lengths: ``[N]`` valid steps per sequence (default: all ``T``), or
      mask: ``[N, T]`` / ``[N, T, D]`` 0/1 prefix masks (not both).
      seed: seeds the permutation when ``shuffle``.
      val_fraction, test_fraction: as in ``build_dataset``.
      shuffle: False keeps the order: test is the last rows, validation the ones before
        (causal splits of windows of one series).
      where: names the source in error messages.

    Returns:
      A Dataset of kind ``"sequence"`` with ``[N_*, T, D]`` masks, standardized per
      feature on the valid training steps (``scaler``).
    """
    where = where or f"data set {name!r}"
    check_fractions(val_fraction, test_fraction)
    x, lengths = _check(x, lengths, mask, where)
    n, t, d = x.shape
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)[::-1]
    n_test = _count(test_fraction, n)
    test_idx, pool = order[:n_test], order[n_test:]
    n_val = _count(val_fraction, pool.shape[0])
    val_idx, train_idx = pool[:n_val], pool[n_val:]
    if not shuffle:
        test_idx, val_idx, train_idx = (np.sort(i) for i in (test_idx, val_idx, train_idx))
    if train_idx.shape[0] == 0:
        raise DataError(f"{where}: {n} sequence(s) are too few to keep a training one")
    valid_train = np.arange(t)[None, :] < lengths[train_idx][:, None]
    scaler = Standardizer.fit(x[train_idx][valid_train])
    arrays = {}
    for split, idx in (("train", train_idx), ("val", val_idx), ("test", test_idx)):
        m = prefix_mask(lengths[idx], t, d)
        arrays[f"x_{split}"] = np.ascontiguousarray(scaler.transform(x[idx]) * m, np.float32)
        arrays[f"mask_{split}"] = m
    return Dataset(name=name, kind="sequence", scaler=scaler, **arrays)


def load_sequences(path: str, **kwargs) -> Dataset:
    """A ``sequence:PATH`` spec: an ``.npz`` with ``x`` and optional ``lengths`` or ``mask``."""
    p = pathlib.Path(path).expanduser()
    where = f"data file {p}"
    if not p.is_file() or p.suffix != ".npz":
        raise DataError(f"{where}: sequence:PATH needs an existing .npz (x, lengths or mask)")
    with np.load(p) as f:
        if "x" not in f:
            raise DataError(f"{where}: no array 'x' ([N, T, D]) in it; it has {sorted(f)}")
        x = f["x"]
        lengths = f["lengths"] if "lengths" in f else None
        mask = f["mask"] if "mask" in f else None
    return build_sequence_dataset(
        f"sequence:{path}", x, lengths=lengths, mask=mask, where=where, **kwargs
    )


__all__ = ["build_sequence_dataset", "lengths_of", "load_sequences", "prefix_mask"]
