"""The one validator of input data: every entry point (``aejax train``, ``aejax detect``,
the series reader, the scikit-learn estimators, inference) calls these checks, so a file, an
array or a table is refused with the same one-line ``DataError`` wherever it comes in.

Checks: numeric dtype (complex, text and objects named), non-empty, one example per row,
finite (count and first row), within the float32 range the models compute in, labels of
matching length, images in range, missing values in tables.
"""

from __future__ import annotations

import warnings

import numpy as np

from aejax.errors import DataError

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_dtype(x: np.ndarray, where: str, *, what: str = "data") -> None:
    """Refuses an array that does not hold real numbers, naming what it holds instead.

    Args:
      x: any numpy array.
      where: names the source in error messages, e.g. ``"data file /x/y.npy"``.
      what: names the array in error messages, e.g. ``"x"``.

    Raises:
      DataError: complex numbers (the message holds scikit-learn's "Complex data not
        supported"), text, Python objects or any other non-numeric dtype.
    """
    kind = np.asarray(x).dtype.kind
    if kind in "biuf":
        return
    dtype = np.asarray(x).dtype
    if kind == "c":
        what_it_is = (
            "complex numbers: Complex data not supported; pass the real and imaginary "
            "parts (or the modulus) as real columns"
        )
    elif kind in "US":
        what_it_is = "text"
    elif kind == "O":
        what_it_is = "Python objects"
    else:
        what_it_is = "not numbers"
    problem = f"has non-numeric dtype {dtype} ({what_it_is}); expected real numbers"
    raise DataError(f"{where}: {what} {problem}")


def check_array(
    x: np.ndarray,
    where: str,
    *,
    what: str = "data",
    allow_nan: bool = False,
    lines: np.ndarray | None = None,
) -> np.ndarray:
    """Checks that ``x`` is a numeric, non-empty, finite array of examples.

    Args:
      x: ``[N, ...]`` array, one example per row; ``N`` and every feature dim must be > 0.
      where: names the source in error messages, e.g. ``"data file /x/y.csv"``.
      what: names the array in error messages, e.g. ``"x_test"``.
      allow_nan: let NaN (missing values, to be imputed) through; Inf is still an error.
      lines: ``[N]`` the 1-based row of each example in its file, to name rows as a text
        editor does; None names them by 0-based index.

    Returns:
      ``x`` as a numpy array (unchanged dtype).

    Raises:
      DataError: non-numeric dtype, fewer than 2 dims, 0 rows or 0 features, NaN/Inf.
    """
    x = np.asarray(x)
    check_dtype(x, where, what=what)
    if x.ndim < 2:
        raise DataError(
            f"{where}: {what} has shape {x.shape}; expected one example per row "
            "([N, D] tabular or [N, H, W(, C)] images)"
        )
    if x.shape[0] == 0:
        raise DataError(f"{where}: {what} is empty (0 rows)")
    if 0 in x.shape[1:]:
        raise DataError(f"{where}: {what} has no features (shape {x.shape})")
    check_finite(x, where, what=what, allow_nan=allow_nan, lines=lines)
    return x


def check_float32_range(x: np.ndarray, where: str, *, what: str = "data") -> None:
    """Refuses values beyond the float32 range (the models compute in float32).

    Args:
      x: numeric array; NaN is skipped (``check_finite`` words it).
      where: names the source in error messages.
      what: names the array in error messages.
    """
    # fmax skips NaN, so a missing value cannot hide a value beyond the float32 range.
    if (
        x.dtype.kind == "f"
        and x.dtype.itemsize > 4
        and x.size
        and np.fmax.reduce(np.abs(x), None) > _FLOAT32_MAX
    ):
        raise DataError(
            f"{where}: {what} has values beyond the float32 range (±{_FLOAT32_MAX:.3g})"
        )


def check_table(
    x: np.ndarray,
    where: str,
    *,
    what: str = "x",
    allow_nan: bool = False,
    lines: np.ndarray | None = None,
) -> np.ndarray:
    """``check_array`` for a table, with the float32 range: ``[N, D]`` as float64.

    Args:
      x: ``[N, D]`` numbers.
      where: names the source in error messages.
      what: names the array in error messages.
      allow_nan: let NaN (missing values, to be imputed) through.
      lines: ``[N]`` 1-based file rows for the messages, or None.

    Returns:
      ``[N, D]`` float64, C-contiguous.

    Raises:
      DataError: what ``check_array`` refuses; other ranks; values beyond float32.
    """
    x = check_array(x, where, what=what, allow_nan=allow_nan, lines=lines)
    if x.ndim != 2:
        raise DataError(f"{where}: {what} has shape {x.shape}; expected a table [N, D]")
    check_float32_range(x, where, what=what)
    return np.ascontiguousarray(x, dtype=np.float64)


def check_finite(
    x: np.ndarray,
    where: str,
    *,
    what: str = "data",
    allow_nan: bool = False,
    lines: np.ndarray | None = None,
) -> None:
    """Raises DataError naming the count and the first row of NaN/Inf values in ``x``.

    Args:
      x: ``[N, ...]`` numeric array.
      where: names the source in error messages.
      what: names the array in error messages.
      allow_nan: check only for Inf (NaN marks missing values that will be imputed).
      lines: ``[N]`` 1-based file rows to name the first bad row by, or None (0-based index).
    """
    if x.dtype.kind != "f":
        return
    bad = np.isinf(x) if allow_nan else ~np.isfinite(x)
    if bad.any():
        rows = bad.reshape(bad.shape[0], -1).any(axis=1) if bad.ndim > 1 else bad
        first = int(np.argmax(rows))
        kinds = "infinite" if allow_nan else "NaN/Inf"
        hint = "; impute fills only missing (NaN) values" if allow_nan else ""
        row = f"row {first}, counting from 0" if lines is None else f"row {int(lines[first])}"
        raise DataError(
            f"{where}: {what} has {int(bad.sum())} {kinds} values (first in {row}){hint}"
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
    check_dtype(y, where, what=f"labels {what}")
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


def to_model_input(
    x: np.ndarray, where: str, *, what: str = "data", allow_nan: bool = False
) -> tuple[str, np.ndarray]:
    """Checks ``x`` and gives it the layout and range the models expect.

    Args:
      x: ``[N, D]`` tabular, ``[N, H, W]`` or ``[N, H, W, C]`` images. Integer images must
        hold values in 0..255 (they are kept as 8-bit pixels, read as ``k / 255``: see
        ``aejax.data.pixels``; with a warning when they hold only 0 and 1); float and bool
        images must lie in [0, 1].
      where: names the source in error messages.
      what: names the array in error messages.
      allow_nan: tabular only: let NaN (missing values) through for ``impute_missing``;
        NaN in images is an error regardless.

    Returns:
      ``(kind, x)``: ``"tabular"`` and ``[N, D]`` float64 in raw units, or ``"image"`` and
      ``[N, H, W, C]`` uint8 pixels (from integers) or float32 in [0, 1] (from floats and
      bools); C-contiguous either way.

    Raises:
      DataError: any failed check in ``check_array``, other ranks, out-of-range images.
    """
    x = check_array(x, where, what=what, allow_nan=allow_nan and np.ndim(x) == 2)
    check_float32_range(x, where, what=what)
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
        # Kept as 8-bit pixels: a quarter of float32's memory; every consumer reads them
        # as k / 255 through aejax.data.pixels.to_unit.
        return "image", np.ascontiguousarray(x, dtype=np.uint8)
    if lo < 0.0 or hi > 1.0:
        raise DataError(
            f"{where}: float images in {what} hold values in [{lo:.6g}, {hi:.6g}]; expected "
            "[0, 1]: scale them first (e.g. divide 8-bit pixels by 255)"
        )
    return "image", np.ascontiguousarray(x, dtype=np.float32)


# --- tables: column names and missing values -----------------------------------------------

IMPUTE = ("none", "mean")
_IMPUTE_HINT = (
    "Fill them with each column's mean over the training split (CLI: --set impute=mean; "
    "Python: impute='mean'), or remove those rows."
)


def check_impute(impute: str) -> None:
    """Raises DataError unless ``impute`` is one of ``IMPUTE``."""
    if impute not in IMPUTE:
        raise DataError(f"impute={impute!r} is not one of {', '.join(map(repr, IMPUTE))}")


def column_label(j: int, columns: tuple[str, ...] | None) -> str:
    """Names column ``j`` (0-based) in errors: ``'age' (column 3)``, or ``column 3``."""
    return f"column {j + 1}" if columns is None else f"{columns[j]!r} (column {j + 1})"


def missing_error(where: str, total: int, entries: list[str]) -> DataError:
    """The refusal of missing values: ``entries`` has one line per affected column."""
    lines = "\n".join(f"  - {e}" for e in entries)
    return DataError(
        f"{where}: {total} missing value(s) in {len(entries)} column(s) (impute='none'):\n"
        f"{lines}\n{_IMPUTE_HINT}"
    )


def check_no_missing(
    x: np.ndarray, where: str, *, what: str = "x", columns: tuple[str, ...] | None = None
) -> None:
    """Refuses NaN in a table, naming each column with its count and first row.

    Only a table with NaN and no Inf is refused here; ``check_finite`` words the error of
    any other non-finite data (Inf cannot be imputed).

    Args:
      x: ``[N, D]`` numeric; any other rank or dtype passes (``to_model_input`` checks it).
      where: names the source in error messages.
      what: names the array in error messages.
      columns: ``D`` names for the message, or None.
    """
    x = np.asarray(x)
    if x.ndim != 2 or x.dtype.kind != "f" or np.isinf(x).any():
        return
    nan = np.isnan(x)
    counts = nan.sum(axis=0)
    if not counts.any():
        return
    entries = [
        f"{column_label(j, columns)}: {counts[j]} (first in row {int(np.argmax(nan[:, j]))} "
        f"of {what}, counting from 0)"
        for j in np.flatnonzero(counts)
    ]
    raise missing_error(where, int(counts.sum()), entries)


def impute_missing(
    x_train: np.ndarray,
    others: list[np.ndarray],
    where: str,
    *,
    columns: tuple[str, ...] | None = None,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Fills NaN in every split with the column's mean over the training split.

    Only observed training values enter a mean, so nothing leaks from validation or test.

    Args:
      x_train: ``[N_train, D]`` float64, NaN where a value is missing.
      others: ``[N_*, D]`` float64 arrays (validation, test), filled with the same means.
      where: names the source in error messages.
      columns: ``D`` names for the messages, or None.

    Returns:
      ``(x_train, others)`` without NaN (copies where anything was filled).

    Raises:
      DataError: a column has no observed value in the training split.
    """
    observed = ~np.isnan(x_train)
    n_observed = observed.sum(axis=0)
    empty = np.flatnonzero(n_observed == 0)
    if empty.size:
        names = ", ".join(column_label(j, columns) for j in empty)
        raise DataError(
            f"{where}: impute='mean' needs an observed value in the training split, but "
            f"{names} {'has' if empty.size == 1 else 'have'} none in its "
            f"{x_train.shape[0]} rows; leave {'it' if empty.size == 1 else 'them'} out "
            "(--set drop_columns=...)"
        )
    means = np.where(observed, x_train, 0.0).sum(axis=0) / n_observed

    def fill(a: np.ndarray) -> np.ndarray:
        nan = np.isnan(a)
        return np.where(nan, means, a) if nan.any() else a

    return fill(x_train), [fill(a) for a in others]
