"""Checks shared by every loader: numeric, non-empty, finite, matching labels, image range."""

from __future__ import annotations

import warnings

import numpy as np

from aejax.errors import DataError

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_array(x: np.ndarray, where: str, *, what: str = "data") -> np.ndarray:
    """Checks that ``x`` is a numeric, non-empty, finite array of examples.

    Args:
      x: ``[N, ...]`` array, one example per row; ``N`` and every feature dim must be > 0.
      where: names the source in error messages, e.g. ``"data file /x/y.csv"``.
      what: names the array in error messages, e.g. ``"x_test"``.

    Returns:
      ``x`` as a numpy array (unchanged dtype).

    Raises:
      DataError: non-numeric dtype, fewer than 2 dims, 0 rows or 0 features, NaN/Inf.
    """
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise DataError(f"{where}: {what} has non-numeric dtype {x.dtype}; expected numbers")
    if x.ndim < 2:
        raise DataError(
            f"{where}: {what} has shape {x.shape}; expected one example per row "
            "([N, D] tabular or [N, H, W(, C)] images)"
        )
    if x.shape[0] == 0:
        raise DataError(f"{where}: {what} is empty (0 rows)")
    if 0 in x.shape[1:]:
        raise DataError(f"{where}: {what} has no features (shape {x.shape})")
    check_finite(x, where, what=what)
    return x


def check_finite(x: np.ndarray, where: str, *, what: str = "data") -> None:
    """Raises DataError naming the count and the first row of NaN/Inf values in ``x``.

    Args:
      x: ``[N, ...]`` numeric array.
      where: names the source in error messages.
      what: names the array in error messages.
    """
    if x.dtype.kind != "f":
        return
    bad = ~np.isfinite(x)
    if bad.any():
        rows = bad.reshape(bad.shape[0], -1).any(axis=1) if bad.ndim > 1 else bad
        first = int(np.argmax(rows))
        raise DataError(
            f"{where}: {what} has {int(bad.sum())} NaN/Inf values "
            f"(first in row {first}, counting from 0)"
        )


def check_labels(y: np.ndarray | None, n: int, where: str, *, what: str = "y") -> np.ndarray | None:
    """Checks labels and returns them as int64.

    Args:
      y: ``[N]`` (or ``[N, 1]``) integer-valued labels, or None.
      n: the number of examples ``N`` they must match.
      where: names the source in error messages.
      what: names the array in error messages.

    Returns:
      ``[N]`` int64 C-contiguous labels, or None when ``y`` is None.

    Raises:
      DataError: non-numeric, wrong length, NaN/Inf or non-integer labels.
    """
    if y is None:
        return None
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.dtype.kind not in "biuf":
        raise DataError(f"{where}: labels {what} have non-numeric dtype {y.dtype}")
    if y.ndim != 1:
        raise DataError(f"{where}: labels {what} have shape {y.shape}; expected [N]")
    if y.shape[0] != n:
        raise DataError(f"{where}: {y.shape[0]} labels in {what} for {n} examples")
    check_finite(y, where, what=f"labels {what}")
    if y.dtype.kind == "f" and not np.array_equal(y, np.round(y)):
        raise DataError(f"{where}: labels {what} are not whole numbers; expected class ids")
    return np.ascontiguousarray(y, dtype=np.int64)


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    """Raises DataError unless both fractions lie in [0, 1)."""
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= float(value) < 1.0:  # also rejects NaN
            raise DataError(f"{name}={value} is outside [0, 1)")


def to_model_input(x: np.ndarray, where: str, *, what: str = "data") -> tuple[str, np.ndarray]:
    """Checks ``x`` and gives it the layout and range the models expect.

    Args:
      x: ``[N, D]`` tabular, ``[N, H, W]`` or ``[N, H, W, C]`` images. Integer images must
        hold values in 0..255 (they are divided by 255, with a warning when they hold only
        0 and 1); float and bool images must lie in [0, 1].
      where: names the source in error messages.
      what: names the array in error messages.

    Returns:
      ``(kind, x)``: ``"tabular"`` and ``[N, D]`` float64 in raw units, or ``"image"`` and
      ``[N, H, W, C]`` float32 in [0, 1]; C-contiguous either way.

    Raises:
      DataError: any failed check in ``check_array``, other ranks, out-of-range images.
    """
    x = check_array(x, where, what=what)
    if x.dtype.kind == "f" and x.dtype.itemsize > 4 and np.abs(x).max() > _FLOAT32_MAX:
        raise DataError(
            f"{where}: {what} has values beyond the float32 range (±{_FLOAT32_MAX:.3g})"
        )
    if x.ndim == 2:  # float64 until standardized, so large offsets keep their precision
        return "tabular", np.ascontiguousarray(x, dtype=np.float64)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise DataError(
            f"{where}: {what} has shape {x.shape}; expected [N, D], [N, H, W] or [N, H, W, C]"
        )
    if x.dtype.kind == "b":  # binary images are already 0/1
        x = x.astype(np.float32)
    lo, hi = x.min(), x.max()
    if x.dtype.kind in "biu":
        if lo < 0 or hi > 255:
            raise DataError(
                f"{where}: integer images in {what} hold values in [{lo}, {hi}]; "
                "expected 0..255 (8-bit pixels)"
            )
        if hi <= 1:
            # Binary images stored as integers would silently become near-black pixels.
            warnings.warn(
                f"{where}: integer images in {what} hold only values in [{lo}, {hi}]; they "
                "are read as 8-bit pixels and divided by 255. Store binary images as bool or "
                "float to read them as 0/1.",
                stacklevel=3,
            )
        return "image", np.ascontiguousarray(x, dtype=np.float32) / np.float32(255.0)
    if lo < 0.0 or hi > 1.0:
        raise DataError(
            f"{where}: float images in {what} hold values in [{lo:.6g}, {hi:.6g}]; expected "
            "[0, 1]: scale them first (e.g. divide 8-bit pixels by 255)"
        )
    return "image", np.ascontiguousarray(x, dtype=np.float32)
