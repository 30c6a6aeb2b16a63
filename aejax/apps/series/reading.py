"""Reading a time series: a ``timestamp,value[,...]`` CSV as ``Series`` (timestamps ``[N]``,
values ``[N, D]``), its timestamps checked for order (``read_series``)."""

from __future__ import annotations

import dataclasses
import os
import pathlib

import numpy as np

from aejax.errors import ConfigError, DataError


@dataclasses.dataclass(frozen=True)
class Series:
    """A ``timestamp,value[,value...]`` CSV: ``timestamps [N]`` datetime64[ns], ``values
    [N, D]`` float64 and the ``D`` value columns' names."""

    name: str
    timestamps: np.ndarray
    values: np.ndarray
    columns: tuple[str, ...]


def is_series_csv(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a CSV whose first header cell is ``timestamp`` (any case)."""
    p = pathlib.Path(path)
    if p.suffix.lower() != ".csv" or not p.is_file():
        return False
    # Bytes, not text: a file in another encoding is not a series, and read_csv words why.
    with open(p, "rb") as f:
        first = f.readline(4096).lstrip(b"\xef\xbb\xbf")
    return first.split(b",")[0].strip().strip(b'"').lower() == b"timestamp"


TIMESTAMPS = ("increasing", "sort", "file")


def read_series(path: str | os.PathLike, *, timestamps: str = "increasing") -> Series:
    """Reads a ``timestamp,value[,value...]`` CSV (timestamps ISO 8601).

    The file goes through the table reader and the validator every entry point shares
    (``aejax.data.files.read_csv``, ``aejax.data._validate``): UTF-8 text, no ragged rows,
    numbers in every value cell, nothing missing, no Inf; errors name the row as a text
    editor does (the header is row 1).

    Args:
      path: the CSV file.
      timestamps: ``"increasing"`` (default): they must increase strictly down the file,
        since the causal fit takes the first rows as the past; ``"sort"``: rows are sorted
        by timestamp first (stable), duplicates are still refused; ``"file"``: rows stay
        in file order whatever the timestamps say (NAB's machine_temperature_system_failure
        repeats an hour once: its rows are in time order, its clock is not).

    Raises:
      DataError: no such file, not UTF-8, a header without ``timestamp`` first, fewer than
        2 columns or 2 rows, ragged rows, unparseable timestamps or values, missing or
        infinite values, timestamps that do not increase (the first such row named, with
        what it found: earlier than or equal to the row before).
      ConfigError: ``timestamps`` is not one of ``TIMESTAMPS``.
    """
    from aejax.data._validate import check_finite
    from aejax.data.files import read_csv

    if timestamps not in TIMESTAMPS:
        raise ConfigError(f"timestamps={timestamps!r}: expected one of {', '.join(TIMESTAMPS)}")
    p = pathlib.Path(path)
    where = f"series {p}"
    if not p.is_file():
        raise DataError(f"{where}: no such file")
    table = read_csv(p)
    columns = table.columns
    if columns is None or len(columns) < 2 or columns[0].strip().lower() != "timestamp":
        raise DataError(f"{where}: expected a header timestamp,value[,value...]")
    if len(table.lines) < 2:
        raise DataError(f"{where}: fewer than 2 rows")
    missing = table.missing()
    if missing.any():
        i, j = np.argwhere(missing)[0]
        raise DataError(
            f"{where}: {int(missing.sum())} missing cell(s), first in row {table.lines[i]}, "
            f"column {j + 1} ({columns[j]!r}); fill them in or remove those rows"
        )
    for j in sorted(k for k in table.text if k > 0):
        i = int(np.argmax(np.isnan(table.x[:, j])))
        raise DataError(
            f"{where}: row {table.lines[i]}, column {j + 1} ({columns[j]!r}) is "
            f"{str(table.text[j][i])!r}, not a number"
        )
    cells = table.text.get(0, table.x[:, 0].astype(str))
    try:
        ts = np.array(cells, dtype="datetime64[ns]")
    except ValueError:
        bad = next(i for i, c in enumerate(cells) if not _is_timestamp(c))
        raise DataError(
            f"{where}: row {table.lines[bad]}: timestamp {str(cells[bad])!r} is not ISO 8601 "
            "(e.g. 2014-01-07 02:00:00)"
        ) from None
    values = table.x[:, 1:]
    check_finite(values, where, what="values", lines=table.lines)
    lines = table.lines
    if timestamps == "sort":
        order = np.argsort(ts, kind="stable")
        ts, values, lines = ts[order], values[order], lines[order]
    if timestamps != "file":
        _check_increasing(ts, lines, where, sorted_=timestamps == "sort")
    return Series(p.name, ts, values, tuple(columns[1:]))


def _is_timestamp(cell: str) -> bool:
    try:
        np.datetime64(str(cell), "ns")
    except ValueError:
        return False
    return True


def _when(t: np.datetime64) -> str:
    return np.datetime_as_string(t, unit="s").replace("T", " ")


def _check_increasing(ts: np.ndarray, lines: np.ndarray, where: str, *, sorted_: bool) -> None:
    """Refuses timestamps that do not increase strictly, naming the first such row."""
    step = np.diff(ts)
    bad = np.flatnonzero(step <= np.timedelta64(0, "ns"))
    if not bad.size:
        return
    i = int(bad[0]) + 1
    found = "the same as" if ts[i] == ts[i - 1] else "earlier than"
    hint = (
        "remove or merge the duplicate rows"
        if sorted_ or found == "the same as"
        else "sort the rows (CLI: --timestamps sort; Python: timestamps='sort'), or keep the "
        "file's order (--timestamps file) if the rows are in time order and the clock is not"
    )
    raise DataError(
        f"{where}: timestamps must increase strictly: row {lines[i]} ({_when(ts[i])}) is {found} "
        f"row {lines[i - 1]} ({_when(ts[i - 1])}); {int(bad.size)} such step(s) in all; {hint}"
    )
