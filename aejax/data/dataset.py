"""The Dataset container and the seeded train/val/test split that every loader ends with."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from aejax.data._validate import (
    check_fractions,
    check_impute,
    check_labels,
    check_no_missing,
    impute_missing,
    to_model_input,
)
from aejax.data.scaler import Standardizer
from aejax.errors import DataError

KINDS = ("image", "tabular", "ratings", "sequence")


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Train/val/test arrays ready for a model, C-contiguous: float32, or uint8 pixels.

    Attributes:
      name: the spec it was loaded from, e.g. ``"digits"``.
      kind: ``"image"`` (``x_*`` are ``[N, H, W, C]``: uint8 8-bit pixels, which every
        consumer reads as ``k / 255`` through ``aejax.data.pixels.to_unit``, or float32
        in [0, 1]), ``"tabular"``
        (``x_*`` are ``[N, D]``, standardized with ``scaler``) or ``"ratings"`` (``x_*``
        are ``[N, D]`` rows of a ratings matrix, centred training ratings, 0 where
        unobserved: ``aejax.data.ratings``), or ``"sequence"`` (``x_*`` are ``[N, T, D]``,
        standardized per feature, with ``[N, T, D]`` 0/1 prefix masks ``mask_*`` of the
        valid steps and no targets: ``aejax.data.sequence``).
      x_train: ``[N_train, ...]`` float32 (or uint8 pixels), N_train >= 1.
      x_val: ``[N_val, ...]`` likewise; 0 rows only when val_fraction was 0.
      x_test: ``[N_test, ...]`` likewise.
      y_train, y_val, y_test: ``[N_*]`` int64 labels where the source has them, else None.
      scaler: tabular only: the Standardizer fitted on ``x_train`` in raw units.
      feature_names: tabular only: the ``D`` column names (a CSV header's, after dropped
        and label columns are taken out), or None when the source has none.
      mask_train: ratings only: ``[N_train, D]`` 0/1, the observed entries of ``x_train``
        (what the masked loss scores; ``x_train`` is 0 elsewhere).
      target_val, target_test: ratings only: ``[N_*, D]`` the held-out ratings of each row
        of ``x_val`` / ``x_test`` (which hold the rows' *training* ratings: the input).
      mask_val, mask_test: ratings only: ``[N_*, D]`` 0/1, the held-out entries scored.
      ratings: ratings only: the ``aejax.data.ratings.RatingsLayout`` (ids, rows, split).
      class_names: the name of each label 0..C-1 where the source names them
        (``images:DIR``: the sorted class subfolders), else None.
    """

    name: str
    kind: str
    x_train: np.ndarray
    x_val: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray | None = None
    y_val: np.ndarray | None = None
    y_test: np.ndarray | None = None
    scaler: Standardizer | None = None
    feature_names: tuple[str, ...] | None = None
    mask_train: np.ndarray | None = None
    target_val: np.ndarray | None = None
    mask_val: np.ndarray | None = None
    target_test: np.ndarray | None = None
    mask_test: np.ndarray | None = None
    ratings: Any = None
    class_names: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise DataError(f"data set {self.name!r}: kind {self.kind!r} is not one of {KINDS}")
        masked = (self.mask_train, self.target_val, self.mask_val, self.target_test, self.mask_test)
        if self.kind == "sequence":
            _check_sequence_masks(self)
        elif (self.kind == "ratings") != all(a is not None for a in masked):
            raise DataError(
                f"data set {self.name!r}: {self.kind} data with "
                f"{sum(a is not None for a in masked)} of the 5 mask/target arrays; ratings "
                "data need all of them, other kinds none"
            )
        if self.kind == "ratings":
            for split, arrays in (
                ("train", (self.x_train, self.mask_train)),
                ("val", (self.x_val, self.target_val, self.mask_val)),
                ("test", (self.x_test, self.target_test, self.mask_test)),
            ):
                if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 2:
                    raise DataError(
                        f"data set {self.name!r}: {split} arrays of shapes "
                        f"{[a.shape for a in arrays]}; expected one [N, D] shape"
                    )
        if self.feature_names is not None:
            names = tuple(str(n) for n in self.feature_names)
            if self.kind != "tabular" or len(names) != self.x_train.shape[-1]:
                raise DataError(
                    f"data set {self.name!r}: {len(names)} feature_names for {self.kind} "
                    f"examples of shape {self.input_shape}; expected one per column of a table"
                )
            object.__setattr__(self, "feature_names", names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The per-example shape, e.g. ``(8, 8, 1)`` or ``(30,)``."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """``(x, mask, target)`` of split ``"train"``, ``"val"`` or ``"test"``.

        ``mask`` and ``target`` are None except for ratings data (training: ``target`` is
        None, the loss scores ``x`` itself under ``mask_train``).
        """
        x = {"train": self.x_train, "val": self.x_val, "test": self.x_test}[name]
        mask = {"train": self.mask_train, "val": self.mask_val, "test": self.mask_test}[name]
        target = {"train": None, "val": self.target_val, "test": self.target_test}[name]
        return x, mask, target

    def summary(self) -> dict:
        """Returns ``{"name", "kind", "input_shape", "n_train", "n_val", "n_test"}``."""
        return {
            "name": self.name,
            "kind": self.kind,
            "input_shape": self.input_shape,
            "n_train": int(self.x_train.shape[0]),
            "n_val": int(self.x_val.shape[0]),
            "n_test": int(self.x_test.shape[0]),
        }


def _check_sequence_masks(ds: Dataset) -> None:
    """Sequence data (``aejax.data.sequence``): ``[N, T, D]`` arrays, no targets, and masks
    on every split or on none (then every step is valid)."""
    masks = (ds.mask_train, ds.mask_val, ds.mask_test)
    if ds.target_val is not None or ds.target_test is not None:
        raise DataError(f"data set {ds.name!r}: sequence data take masks but no targets")
    if any(m is None for m in masks) and any(m is not None for m in masks):
        raise DataError(f"data set {ds.name!r}: sequence masks on some splits only")
    for x, m in zip((ds.x_train, ds.x_val, ds.x_test), masks, strict=True):
        if x.ndim != 3 or (m is not None and m.shape != x.shape):
            raise DataError(
                f"data set {ds.name!r}: sequence arrays of shape {x.shape} with masks of "
                f"shape {None if m is None else m.shape}; expected [N, T, D] for both"
            )


def _count(fraction: float, n: int) -> int:
    """``ceil(fraction * n)``, immune to rounding such as ``0.07 * 100 = 7.000000000000001``."""
    return math.ceil(round(fraction * n, 9))


def min_examples(val_fraction: float, test_fraction: float, n_train: int = 1) -> int:
    """The fewest rows ``build_dataset`` can split into at least ``n_train`` training examples.

    Args:
      val_fraction: as in ``build_dataset``, in [0, 1).
      test_fraction: as in ``build_dataset`` (0 when the source has its own test split).
      n_train: the training examples wanted, >= 1.

    Returns:
      The smallest ``N``; e.g. 3 for the defaults (0.1, 0.2) and one training example:
      one row each.
    """
    check_fractions(val_fraction, test_fraction)  # below 1, so the search ends
    n = 1
    while True:
        pool = n - _count(test_fraction, n)
        if pool - _count(val_fraction, pool) >= n_train:
            return n
        n += 1


def _take(a: np.ndarray | None, idx: np.ndarray) -> np.ndarray | None:
    return None if a is None else np.ascontiguousarray(a[idx])


def build_dataset(
    name: str,
    x: np.ndarray,
    y: np.ndarray | None = None,
    *,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    where: str | None = None,
    feature_names: tuple[str, ...] | None = None,
    impute: str = "none",
) -> Dataset:
    """Validates, splits and scales raw arrays into a Dataset.

    The split is a ``np.random.default_rng(seed)`` permutation of the rows of ``x``. Without
    ``x_test``, the first ``ceil(test_fraction * N)`` permuted rows become the test split;
    the validation split is the first ``ceil(val_fraction * N_pool)`` rows of the remaining
    (training) pool, and the rest is the training split. A given ``x_test`` is kept whole, in
    its order, and ``test_fraction`` is unused.

    Missing values (NaN) in a table are refused with ``impute="none"``; with
    ``impute="mean"`` each is filled, after the split and before the Standardizer is
    fitted, with its column's mean over the training split (so the validation and test
    rows never inform it).

    Args:
      name: the spec, stored as ``Dataset.name``.
      x: ``[N, D]`` tabular, or ``[N, H, W]`` / ``[N, H, W, C]`` images (integers in
        0..255, or floats in [0, 1]).
      y: ``[N]`` integer labels or None.
      x_test: the source's own test split, same layout as ``x``, or None.
      y_test: ``[N_test]`` labels of ``x_test`` or None.
      seed: seeds the permutation; the same seed gives identical arrays.
      val_fraction: fraction of the training pool held out for validation, in [0, 1).
      test_fraction: fraction of ``x`` held out for test when ``x_test`` is None, in [0, 1).
      where: names the source in error messages (default: ``data set '<name>'``).
      feature_names: tabular only: ``D`` column names, stored as ``Dataset.feature_names``
        and used in error messages; or None.
      impute: ``"none"`` (refuse NaN) or ``"mean"`` (fill NaN in tables with the training
        split's column means).

    Returns:
      A Dataset; tabular data are standardized with a Standardizer fitted on ``x_train``.

    Raises:
      DataError: bad fractions or impute, invalid arrays (NaN refused or, in images, always;
        Inf always), mismatched layouts, no training example left, a column with no
        observed training value to impute from.
    """
    where = where or f"data set {name!r}"
    check_fractions(val_fraction, test_fraction)
    check_impute(impute)
    columns = None if feature_names is None else tuple(str(n) for n in feature_names)
    if impute == "none":
        check_no_missing(x, where, what="x", columns=columns)
        if x_test is not None:
            check_no_missing(x_test, where, what="x_test", columns=columns)
    kind, x = to_model_input(x, where, what="x", allow_nan=impute == "mean")
    if kind != "tabular" and (impute != "none" or columns is not None):
        raise DataError(
            f"{where}: x holds images of shape {x.shape[1:]}; impute and feature_names apply "
            "only to tables ([N, D])"
        )
    if columns is not None and len(columns) != x.shape[1]:
        raise DataError(f"{where}: {len(columns)} feature_names for {x.shape[1]} columns of x")
    y = check_labels(y, x.shape[0], where, what="y")
    if x_test is not None:
        test_kind, x_test = to_model_input(x_test, where, what="x_test", allow_nan=impute == "mean")
        if test_kind != kind or x_test.shape[1:] != x.shape[1:]:
            raise DataError(
                f"{where}: x_test has examples of shape {x_test.shape[1:]}, x has "
                f"{x.shape[1:]}; they must match"
            )
        y_test = check_labels(y_test, x_test.shape[0], where, what="y_test")
        if (y is None) != (y_test is None):
            raise DataError(f"{where}: labels given for only one of the train and test splits")
    elif y_test is not None:
        raise DataError(f"{where}: y_test given without x_test")

    n = x.shape[0]
    n_given_test = 0 if x_test is None else x_test.shape[0]
    perm = np.random.default_rng(seed).permutation(n)
    if x_test is None:
        n_test = _count(test_fraction, n)
        test_idx, perm = perm[:n_test], perm[n_test:]
        x_test, y_test = np.ascontiguousarray(x[test_idx]), _take(y, test_idx)
    n_val = _count(val_fraction, perm.shape[0])
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    if train_idx.shape[0] == 0:
        need = min_examples(val_fraction, 0.0 if n_given_test else test_fraction)
        raise DataError(
            f"{where}: {n} example(s) are too few to split with val_fraction={val_fraction} "
            f"and test_fraction={test_fraction}: no training example would remain. At least "
            f"{need} are needed with these fractions; lower them to train on fewer "
            "(--set val_fraction=... --set test_fraction=...)."
        )
    x_train, x_val = np.ascontiguousarray(x[train_idx]), np.ascontiguousarray(x[val_idx])

    scaler = None
    if kind == "tabular":
        if impute == "mean":
            x_train, (x_val, x_test) = impute_missing(
                x_train, [x_val, x_test], where, columns=columns
            )
        scaler = Standardizer.fit(x_train)
        x_train, x_val, x_test = (scaler.transform(a) for a in (x_train, x_val, x_test))
    return Dataset(
        name=name,
        kind=kind,
        x_train=x_train,
        x_val=x_val,
        x_test=x_test,
        y_train=_take(y, train_idx),
        y_val=_take(y, val_idx),
        y_test=y_test,
        scaler=scaler,
        feature_names=columns,
    )
