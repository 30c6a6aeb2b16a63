"""Streamed data: image splits read from disk on demand instead of held in memory.

A ``StreamedArray`` stands where a Dataset holds a numpy array: it has the array's
``shape``, ``dtype`` and ``nbytes``, and indexing it (an int, a slice, or an array of row
indices: a batch) reads those examples from its source through a ``grain.MapDataset``.
Nothing reads a whole streamed split: the training loop gathers each batch of the epoch's
permutation in grain's background threads (``aejax.train.streamed``), evaluations read
fixed-size chunks, and the PCA baseline is fitted on a seeded sample of the training split
(``sample``).

The split of a streamed data set is ``build_dataset``'s, computed on row indices: for the
same seed and fractions, ``x_train[i]`` of the streamed data set is ``x_train[i]`` of the
same data loaded into memory, so both train to the same bits.

Sources are anything with ``len`` and ``__getitem__(i) -> [H, W, C]`` (uint8 pixels, or
float32 in [0, 1]): ``aejax.data.arrayrecord``'s ArrayRecord files, a TFDS
``data_source`` split (``tfds:NAME``) or a folder of image files (``images:DIR``).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from aejax.data._validate import check_fractions
from aejax.data.dataset import Dataset, _count
from aejax.errors import DataError

STREAM_MODES = ("auto", "on", "off")
# auto streams a data set whose training pool would take more than this share of the RAM.
AUTO_MEMORY_FRACTION = 0.25
PCA_SAMPLE = 10_000  # training examples the PCA baseline of a streamed data set is fitted on


class StreamedArray:
    """``[N, *shape]`` examples of ``source`` read on demand (see the module docstring).

    Args:
      source: ``len`` + ``__getitem__(i)`` returning one example.
      rows: ``[N]`` int64 the source's rows this array holds, in order (a split).
      shape: the per-example shape, e.g. ``(64, 64, 3)``.
      dtype: the examples' dtype (uint8 pixels, or float32 in [0, 1]).
      where: names the data in errors.
    """

    def __init__(self, source, rows: np.ndarray, shape: tuple, dtype, where: str):
        self.source = source
        self.rows = np.asarray(rows, np.int64)
        self.example_shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        self.where = where

    @property
    def shape(self) -> tuple[int, ...]:
        return (int(self.rows.shape[0]), *self.example_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.example_shape)

    @property
    def nbytes(self) -> int:
        return self.shape[0] * math.prod(self.example_shape) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"StreamedArray({self.where}, shape={self.shape}, dtype={self.dtype})"

    def grain_dataset(self):
        """This split as a ``grain.MapDataset`` of single examples ``[*shape]``."""
        import grain

        return grain.MapDataset.source(_Rows(self)).map(self._check)

    def read(self, index: np.ndarray) -> np.ndarray:
        """``[len(index), *shape]``: the examples at positions ``index`` of this array."""
        index = np.asarray(index, np.int64).reshape(-1)
        out = np.empty((index.shape[0], *self.example_shape), self.dtype)
        for j, i in enumerate(index):
            out[j] = self._check(self.source[int(self.rows[i])], int(self.rows[i]))
        return out

    def _check(self, value: Any, row: int | None = None) -> np.ndarray:
        value = np.asarray(value)
        if value.shape != self.example_shape:
            if value.size != math.prod(self.example_shape):  # [H, W] for [H, W, 1] is fine
                _bad(self, row, f"shape {value.shape}, expected {self.example_shape}")
            value = value.reshape(self.example_shape)
        if self.dtype == np.float32 and not np.all((value >= 0) & (value <= 1)):
            _bad(self, row, "pixels outside [0, 1] (or NaN)")
        return value.astype(self.dtype, copy=False)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self.read(np.array([key]))[0]
        if isinstance(key, slice):
            return self.read(np.arange(*key.indices(len(self))))
        key = np.asarray(key)
        if key.dtype == bool:
            key = np.flatnonzero(key)
        if key.ndim != 1 or not np.issubdtype(key.dtype, np.integer):
            raise TypeError(f"{self!r}: index with an int, a slice or a 1-D array of ints")
        return self.read(key)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """The whole split in memory: what a consumer that cannot stream reads."""
        out = self.read(np.arange(len(self)))
        return out if dtype is None else out.astype(dtype)

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """``[min(n, N), *shape]``: a seeded sample of rows (in their order): all if few."""
        if len(self) <= n:
            return self.read(np.arange(len(self)))
        return self.read(np.sort(np.random.default_rng(seed).choice(len(self), n, replace=False)))


class _Rows(Sequence):
    """The rows of a ``StreamedArray``'s source in the array's order, for grain."""

    def __init__(self, array: StreamedArray):
        self.array = array

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, i):
        return self.array.source[int(self.array.rows[i])]


def _bad(array: StreamedArray, row: int | None, what: str):
    at = "" if row is None else f" record {row}"
    raise DataError(f"{array.where}:{at} has {what}")


def streamed(x) -> bool:
    """Whether ``x`` is a streamed split (not a numpy array)."""
    return isinstance(x, StreamedArray)


def rows_for_fit(x, n: int = PCA_SAMPLE, seed: int = 0) -> np.ndarray:
    """``x`` itself, or a seeded sample of ``n`` rows of a streamed split (baselines)."""
    return x.sample(n, seed) if streamed(x) else x


def check_stream_mode(mode: str) -> None:
    if mode not in STREAM_MODES:
        raise DataError(f"stream={mode!r} is not one of {', '.join(STREAM_MODES)}")


def memory_bytes() -> int | None:
    """The machine's physical RAM in bytes, or None when unknown."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def want_stream(mode: str, n: int, example_shape: tuple, dtype) -> bool:
    """Whether ``mode`` streams ``n`` examples: ``auto`` when they would take more than
    ``AUTO_MEMORY_FRACTION`` of the RAM."""
    check_stream_mode(mode)
    if mode != "auto":
        return mode == "on"
    ram = memory_bytes()
    nbytes = n * math.prod(example_shape) * np.dtype(dtype).itemsize
    return ram is not None and nbytes > AUTO_MEMORY_FRACTION * ram


def streamed_dataset(
    name: str,
    source,
    example_shape: tuple,
    dtype,
    y: np.ndarray | None = None,
    *,
    test_source=None,
    y_test: np.ndarray | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    class_names: tuple | None = None,
) -> Dataset:
    """A Dataset of streamed image splits, split exactly as ``build_dataset`` splits.

    Args:
      name: the spec.
      source: the examples (``len`` + ``__getitem__(i) -> [*example_shape]``).
      example_shape: ``(H, W, C)``.
      dtype: uint8 (pixels) or float32 (in [0, 1], checked as read).
      y: ``[N]`` int64 labels of ``source``, or None.
      test_source: the source's own test split (kept whole, in order), or None.
      y_test: its ``[N_test]`` labels.
      seed, val_fraction, test_fraction: as ``build_dataset``.
      class_names: the labels' names, or None.

    Raises:
      DataError: an empty source, a shape that is not an image's, bad fractions, or too few
        examples to leave one for training.
    """
    check_fractions(val_fraction, test_fraction)
    where = f"data set {name!r}"
    dtype = np.dtype(dtype)
    if len(example_shape) != 3 or dtype not in (np.uint8, np.float32):
        raise DataError(
            f"{where}: examples of shape {tuple(example_shape)} and dtype {dtype}: streaming "
            "reads images [H, W, C] of uint8 pixels (or float32 in [0, 1])"
        )
    n = len(source)
    if n == 0:
        raise DataError(f"{where}: has no examples")
    perm = np.random.default_rng(seed).permutation(n)
    if test_source is None:
        n_test = _count(test_fraction, n)
        test_rows, perm = perm[:n_test], perm[n_test:]
        test_source, y_test = source, None if y is None else y[test_rows]
    else:
        test_rows = np.arange(len(test_source))
    n_val = _count(val_fraction, perm.shape[0])
    val_rows, train_rows = perm[:n_val], perm[n_val:]
    if train_rows.shape[0] == 0:
        raise DataError(f"{where}: {n} example(s) leave no training example to stream")

    def split(src, rows, what) -> StreamedArray:
        return StreamedArray(src, rows, example_shape, dtype, f"{where} ({what} split)")

    take: Callable[[np.ndarray], Any] = (lambda r: None) if y is None else (lambda r: y[r])
    return Dataset(
        name=name,
        kind="image",
        x_train=split(source, train_rows, "train"),
        x_val=split(source, val_rows, "validation"),
        x_test=split(test_source, test_rows, "test"),
        y_train=take(train_rows),
        y_val=take(val_rows),
        y_test=None if y_test is None else np.asarray(y_test, np.int64),
        class_names=class_names,
    )


TEST_SAMPLE = 10_000  # test examples a streamed data set's report is computed on
# ... at most this many bytes of float32 each (64x64x3 images: 512 examples), so the
# report's memory stays bounded whatever the image size.
REPORT_BYTES = 24 * 2**20


def report_sample(ds: Dataset, seed: int = 0) -> Dataset:
    """``ds`` itself, or for streamed splits an in-memory Dataset of seeded samples: at
    most ``PCA_SAMPLE`` training examples (the PCA and mean baselines are fitted on them),
    ``TEST_SAMPLE`` test examples (every test figure is computed on them), each at most
    ``REPORT_BYTES`` as float32, and no validation split. The report of a run never reads
    a whole streamed split."""
    if not streamed(ds.x_train):
        return ds

    def pick(x, y, n: int):
        idx = np.arange(len(x))
        if len(x) > n:
            idx = np.sort(np.random.default_rng(seed).choice(len(x), n, replace=False))
        return x.read(idx), None if y is None else np.asarray(y)[idx]

    fit = max(500, REPORT_BYTES // (4 * math.prod(ds.input_shape)))
    x_train, y_train = pick(ds.x_train, ds.y_train, min(PCA_SAMPLE, fit))
    x_test, y_test = pick(ds.x_test, ds.y_test, min(TEST_SAMPLE, fit))
    empty = x_train[:0]
    return dataclasses.replace(
        ds,
        x_train=x_train,
        y_train=y_train,
        x_val=empty,
        y_val=None if ds.y_val is None else ds.y_val[:0],
        x_test=x_test,
        y_test=y_test,
    )


def stream_or_load(
    name: str,
    source,
    example_shape: tuple,
    dtype,
    y: np.ndarray | None = None,
    *,
    stream: str = "auto",
    test_source=None,
    y_test: np.ndarray | None = None,
    class_names: tuple | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
) -> Dataset:
    """``streamed_dataset`` when ``stream`` says so (``want_stream``), else the same
    examples read into memory and split by ``build_dataset``: the same arrays either way.
    """
    n = len(source) + (0 if test_source is None else len(test_source))
    splits = {"seed": seed, "val_fraction": val_fraction, "test_fraction": test_fraction}
    if want_stream(stream, n, example_shape, dtype):
        return streamed_dataset(
            name, source, example_shape, dtype, y, test_source=test_source, y_test=y_test,
            class_names=class_names, **splits,
        )  # fmt: skip
    from aejax.data.dataset import build_dataset

    def whole(src) -> np.ndarray:
        rows = np.arange(len(src))
        return StreamedArray(src, rows, example_shape, dtype, f"data set {name!r}").read(rows)

    x_test = None if test_source is None else whole(test_source)
    ds = build_dataset(name, whole(source), y, x_test=x_test, y_test=y_test, **splits)
    return dataclasses.replace(ds, class_names=class_names)
