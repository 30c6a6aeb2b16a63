"""Loaders for local files: .npz, .npy, .csv / .csv.gz and IDX (raw or gzip)."""

from __future__ import annotations

import gzip
import os
import pathlib
import zipfile
import zlib
from typing import NamedTuple

import numpy as np

from aejax.data._validate import check_impute, column_label, missing_error
from aejax.errors import DataError

_GZIP_MAGIC = b"\x1f\x8b"
# IDX type codes -> big-endian numpy dtypes (http://yann.lecun.com/exdb/mnist/).
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
SUPPORTED = ".npz, .npy, .csv, .csv.gz, IDX (*-ubyte, *.idx, *idx*.gz)"


class RawSplits(NamedTuple):
    """Arrays as a source gives them, before validation and splitting."""

    x: np.ndarray
    y: np.ndarray | None = None
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    columns: tuple[str, ...] | None = None  # the names of x's D columns, where known


def _where(path: pathlib.Path) -> str:
    return f"data file {path}"


def _read_bytes(path: pathlib.Path) -> bytes:
    """Reads a file, decompressing it when it starts with the gzip magic bytes."""
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == _GZIP_MAGIC else raw
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{_where(path)}: cannot read it: {e}") from e


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads an IDX file (the MNIST format), raw or gzip-compressed.

    Args:
      path: the file; gzip is detected from its first bytes, not its name.

    Returns:
      An array with the header's shape (e.g. ``[N, 28, 28]`` or ``[N]``) and dtype, in
      native byte order.

    Raises:
      DataError: bad magic number, unknown type code, or a size that disagrees with the header.
    """
    path = pathlib.Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in _IDX_DTYPES:
        raise DataError(
            f"{_where(path)}: not an IDX file (magic bytes {data[:4].hex() or 'missing'}; "
            f"expected 0000 + a type code in {[hex(k) for k in _IDX_DTYPES]} + ndim)"
        )
    dtype, ndim = np.dtype(_IDX_DTYPES[data[2]]), data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{_where(path)}: IDX header truncated ({len(data)} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise DataError(
            f"{_where(path)}: IDX header says shape {shape} of {dtype.name} ({expected} bytes "
            f"with the header), but the file has {len(data)} bytes"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


class Table(NamedTuple):
    """A CSV table as read, before columns are chosen (``load_file`` does that).

    Attributes:
      x: ``[N, D]`` float64; NaN where a cell is missing or not a number.
      columns: the ``D`` header names, or None for a file without a header.
      lines: ``[N]`` int64, the 1-based line of each row in the file (for error messages).
      text: ``{j: [N] str}`` the stripped cells of each column ``j`` that holds a
        non-missing cell that is not a number (a timestamp, an id, a class name).
    """

    x: np.ndarray
    columns: tuple[str, ...] | None
    lines: np.ndarray
    text: dict[int, np.ndarray]

    def missing(self) -> np.ndarray:
        """``[N, D]`` bool: the cells that are empty or a missing marker (``MISSING``)."""
        mask = np.isnan(self.x)
        for j, cells in self.text.items():
            mask[:, j] = _missing_cells(cells)
        return mask


# Cells that mean "no value" (compared lower-cased, after stripping spaces and quotes).
MISSING = ("", "na", "nan", "n/a", "null", "none", "?")
_STRIP = ' \t"'


def _missing_cells(cells: np.ndarray) -> np.ndarray:
    return np.isin(np.char.lower(cells), MISSING)


def _header_names(cells: list[str]) -> tuple[str, ...]:
    names = [c.strip(_STRIP) for c in cells]
    return tuple(n or f"column {j + 1}" for j, n in enumerate(names))


def _parse_columns(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``cells: [N, D]`` stripped str -> ``(x [N, D] float64, number, missing)`` masks."""
    missing = _missing_cells(cells)
    x = np.full(cells.shape, np.nan)
    number = np.zeros(cells.shape, bool)
    for j in range(cells.shape[1]):
        present = ~missing[:, j]
        try:  # one C-speed conversion per column; cell by cell only where it fails
            x[present, j] = cells[present, j].astype(np.float64)
            number[:, j] = present
        except ValueError:
            number[:, j] = present & np.array([_is_number(c) for c in cells[:, j]], bool)
            x[number[:, j], j] = cells[number[:, j], j].astype(np.float64)
    return x, number, missing


def _is_header(number: np.ndarray, missing: np.ndarray) -> bool:
    """Whether the first of ``[N, D]`` parsed rows is a header row.

    It is when it has a word (not a number, not missing) in a column of numbers, or no
    number at all; so a headerless file whose first row has a timestamp stays headerless.
    """
    word = ~number[0] & ~missing[0]
    if not word.any():
        return False
    rest_numbers = (number[1:] | missing[1:]).all(axis=0) & number[1:].any(axis=0)
    return bool((word & rest_numbers).any() or not number[0].any())


def _read_slowly(path: pathlib.Path, lines: list[str], first: int, ncols: int) -> Table:
    """The general reader: missing cells, text columns, ragged rows named by line."""
    rows, numbers = [], []
    for i in range(first, len(lines)):
        if not lines[i].strip():
            continue
        cells = lines[i].split(",")
        if len(cells) != ncols:
            raise DataError(
                f"{_where(path)}: row {i + 1} has {len(cells)} columns, expected {ncols}"
            )
        rows.append(cells)
        numbers.append(i + 1)
    cells = np.char.strip(np.array(rows, dtype=str), _STRIP)
    x, number, missing = _parse_columns(cells)
    columns = None
    if _is_header(number, missing):
        columns = _header_names(rows[0])
        cells, x, number, missing, numbers = cells[1:], x[1:], number[1:], missing[1:], numbers[1:]
        if not numbers:
            raise DataError(f"{_where(path)}: empty (a header row and no data rows)")
    text = {int(j): cells[:, j] for j in np.flatnonzero((~number & ~missing).any(axis=0))}
    return Table(x, columns, np.asarray(numbers, np.int64), text)


def read_csv(path: str | os.PathLike) -> Table:
    """Reads a comma-separated table (optionally gzip-compressed).

    The first row is a header when it holds a word (not a number, not missing) in a column
    of numbers, or no number at all. Blank lines are skipped. Missing cells are empty or,
    in any case, ``NA``, ``NaN``, ``N/A``, ``null``, ``None`` or ``?``. Row and column
    numbers in errors count from 1, as in a text editor. Clean numeric files take numpy's
    C parser; others a slower path that records text columns and missing cells.

    Args:
      path: the ``.csv`` or ``.csv.gz`` file.

    Returns:
      Table: ``x: [N, D]`` float64 (NaN where missing or not a number), the header's column
      names (or None), each row's line and the cells of text columns.

    Raises:
      DataError: not UTF-8 text, no data rows, ragged rows.
    """
    path = pathlib.Path(path)
    raw = _read_bytes(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(
            f"{_where(path)}: not UTF-8 text: byte 0x{raw[e.start]:02x} in row {line} is not "
            "UTF-8 (a Latin-1 or Windows-1252 file?); save it as UTF-8, e.g. "
            "iconv -f latin1 -t utf-8"
        ) from None
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise DataError(f"{_where(path)}: empty (no rows)")
    head = lines[first].split(",")
    ncols = len(head)
    words = [c for c in head if not _is_number(c) and c.strip(_STRIP).lower() not in MISSING]
    start = first + 1 if words else first  # a header row if the rest parses as numbers
    if not any(line.strip() for line in lines[start:]):
        raise DataError(f"{_where(path)}: empty (a header row and no data rows)")
    try:
        x = np.loadtxt(lines[start:], delimiter=",", comments=None, dtype=np.float64, ndmin=2)
    except ValueError:
        return _read_slowly(path, lines, first, ncols)
    numbers = np.array([i + 1 for i in range(start, len(lines)) if lines[i].strip()], np.int64)
    if x.shape != (numbers.shape[0], ncols):  # loadtxt read the rows otherwise than we count
        return _read_slowly(path, lines, first, ncols)
    return Table(x, _header_names(head) if words else None, numbers, {})


def _load_npz(path: pathlib.Path) -> RawSplits:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{_where(path)}: cannot read it as .npz ({e})") from e

    def pick(*names: str) -> np.ndarray | None:
        return next((arrays[n] for n in names if n in arrays), None)

    if pick("x_train", "X_train") is not None:
        if pick("x_test", "X_test") is None:
            raise DataError(f"{_where(path)}: has x_train but no x_test (keys {sorted(arrays)})")
        return RawSplits(
            pick("x_train", "X_train"),
            pick("y_train", "Y_train"),
            pick("x_test", "X_test"),
            pick("y_test", "Y_test"),
        )
    if pick("x", "X") is not None:
        return RawSplits(pick("x", "X"), pick("y", "Y"))
    if len(arrays) == 1:
        return RawSplits(next(iter(arrays.values())))
    raise DataError(
        f"{_where(path)}: cannot tell which array holds the data: keys {sorted(arrays)}; "
        "expected 'x' (+ 'y'), 'x_train' + 'x_test' (+ 'y_train', 'y_test'), or one array"
    )


def _load_npy(path: pathlib.Path) -> RawSplits:
    try:
        return RawSplits(np.load(path, allow_pickle=False))
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{_where(path)}: cannot read it as .npy ({e})") from e


def _is_idx(name: str) -> bool:
    return name.endswith(("-ubyte", ".idx")) or ("idx" in name and name.endswith(".gz"))


def _load_idx(path: pathlib.Path) -> RawSplits:
    """Reads IDX images, with the labels of a sibling ``*-labels-idx1-*`` file if present."""
    x = read_idx(path)
    labels = path.with_name(path.name.replace("images-idx3", "labels-idx1"))
    y = read_idx(labels) if labels != path and labels.exists() else None
    return RawSplits(x, y)


def _names(columns: tuple[str, ...], limit: int = 30) -> str:
    shown = ", ".join(repr(c) for c in columns[:limit])
    return shown if len(columns) <= limit else f"{shown}, ... ({len(columns)} in all)"


def _resolve(spec, columns: tuple[str, ...] | None, ncols: int, where: str, what: str) -> int:
    """A column given by header name or 0-based index (an int, or a string of one) -> index.

    A header name wins over an index, so a column literally named ``"3"`` is that column.
    """
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        j = int(spec)
    else:
        name = str(spec).strip()
        if columns is not None and name in columns:
            if columns.count(name) > 1:
                raise DataError(
                    f"{where}: {what}={name!r} names {columns.count(name)} columns of the "
                    "header; give the one you mean by its 0-based index"
                )
            return columns.index(name)
        try:
            j = int(name)
        except ValueError:
            if columns is None:
                raise DataError(
                    f"{where}: {what}={name!r}, but the file has no column names (a CSV "
                    "without a header row, or an array); give a 0-based column index "
                    "(negative counts from the end)"
                ) from None
            raise DataError(
                f"{where}: {what}={name!r} is not a column; the columns are {_names(columns)}"
            ) from None
    if not -ncols <= j < ncols:
        raise DataError(f"{where}: {what}={j} is outside its {ncols} columns")
    return j % ncols


def _choose(
    columns: tuple[str, ...] | None,
    ncols: int,
    where: str,
    label_column: int | str | None,
    drop_columns: tuple,
) -> tuple[int | None, list[int]]:
    """Resolves the options against the file's columns: ``(label index, kept indices)``."""
    if isinstance(drop_columns, (str, int)):
        drop_columns = (drop_columns,)
    drop = {_resolve(c, columns, ncols, where, "drop_columns") for c in drop_columns}
    label = None
    if label_column is not None:
        label = _resolve(label_column, columns, ncols, where, "label_column")
        if label in drop:
            raise DataError(
                f"{where}: label_column={label_column!r} is also in drop_columns; the labels "
                "cannot be left out"
            )
    keep = [j for j in range(ncols) if j not in drop and j != label]
    if not keep:
        raise DataError(
            f"{where}: no feature columns left after taking out drop_columns and label_column"
        )
    return label, keep


def _option_name(j: int, columns: tuple[str, ...] | None) -> str | int:
    """How to give column ``j`` in an option: its name, or its index if need be."""
    name = None if columns is None else columns[j]
    return j if name is None or "," in name or name != name.strip() else name


def _text_error(table: Table, text: list[int], where: str) -> DataError:
    """Names every text column with an example cell, and how to leave them out."""
    entries = []
    for j in text:
        bad = np.flatnonzero(~_missing_cells(table.text[j]) & np.isnan(table.x[:, j]))
        r = bad[0]
        entries.append(
            f"{column_label(j, table.columns)}: row {table.lines[r]}, column {j + 1} is "
            f"{str(table.text[j][r])!r}, not a number ({bad.size} such cell(s))"
        )
    names = [_option_name(j, table.columns) for j in text]
    listed = "\n".join(f"  - {e}" for e in entries)
    return DataError(
        f"{where}: {len(text)} column(s) hold text, not numbers:\n{listed}\n"
        f"Leave {'it' if len(text) == 1 else 'them'} out with --set "
        f"drop_columns={','.join(map(str, names))} (Python: drop_columns={tuple(names)!r}), or, if "
        f"{'it holds' if len(text) == 1 else 'one holds'} the labels, name it with "
        f"--set label_column={names[0] if len(text) == 1 else 'NAME'}."
    )


def _table_labels(table: Table, j: int, missing: np.ndarray, where: str) -> np.ndarray:
    """``[N]`` labels from column ``j``: numbers as they are, text as sorted class ids."""
    if missing.any():
        raise DataError(
            f"{where}: the label column {column_label(j, table.columns)} has "
            f"{int(missing.sum())} missing cell(s) (first in row {table.lines[np.argmax(missing)]})"
            "; labels are not imputed: fill them in or remove those rows"
        )
    if j in table.text:  # class names: ids in sorted order ("cat" -> 0, "dog" -> 1)
        return np.unique(table.text[j], return_inverse=True)[1].astype(np.int64)
    return table.x[:, j]


def _from_table(
    table: Table,
    path: pathlib.Path,
    label_column: int | str | None,
    drop_columns: tuple,
    impute: str,
) -> RawSplits:
    """Drops, splits off the labels, then refuses text and (unless imputed) missing cells."""
    where = _where(path)
    label, keep = _choose(table.columns, table.x.shape[1], where, label_column, drop_columns)
    text = [j for j in keep if j in table.text]
    if text:
        raise _text_error(table, text, where)
    missing = table.missing()
    y = None if label is None else _table_labels(table, label, missing[:, label], where)
    x, nan = table.x[:, keep], missing[:, keep]
    # Infinities cannot be imputed; build_dataset names them (and any NaN) in one message.
    if impute == "none" and nan.any() and not np.isinf(x).any():
        counts = nan.sum(axis=0)
        entries = [
            f"{column_label(j, table.columns)}: {counts[k]} (first: row "
            f"{table.lines[np.argmax(nan[:, k])]}, column {j + 1})"
            for k, j in enumerate(keep)
            if counts[k]
        ]
        raise missing_error(where, int(counts.sum()), entries)
    columns = None if table.columns is None else tuple(table.columns[j] for j in keep)
    return RawSplits(x, y, columns=columns)


def _from_arrays(
    raw: RawSplits, path: pathlib.Path, label_column: int | str | None, drop_columns: tuple
) -> RawSplits:
    """label_column and drop_columns of an ``.npy``/``.npz`` table: by index only."""
    if label_column is None and not drop_columns:
        return raw
    where = _where(path)
    if label_column is not None and (
        raw.y is not None or raw.x_test is not None or np.ndim(raw.x) != 2
    ):
        raise DataError(f"{where}: label_column applies only to one [N, D] table without labels")
    if np.ndim(raw.x) != 2:
        raise DataError(
            f"{where}: drop_columns applies only to [N, D] tables; x has shape {np.shape(raw.x)}"
        )
    d = raw.x.shape[1]
    if raw.x_test is not None and (np.ndim(raw.x_test) != 2 or raw.x_test.shape[1] != d):
        raise DataError(
            f"{where}: x_test has shape {np.shape(raw.x_test)}, x has {d} columns; they must match"
        )
    label, keep = _choose(None, d, where, label_column, drop_columns)
    return RawSplits(
        raw.x[:, keep],
        raw.y if label is None else raw.x[:, label],
        None if raw.x_test is None else raw.x_test[:, keep],
        raw.y_test,
    )


def load_file(
    path: str | os.PathLike,
    *,
    label_column: int | str | None = None,
    drop_columns: tuple = (),
    impute: str = "none",
) -> RawSplits:
    """Reads a local data file into raw arrays (validated later by ``build_dataset``).

    ``drop_columns`` and ``label_column`` both name columns of the file as stored: a CSV
    header's name, or a 0-based index (an int or a string of one; negative counts from the
    end). A header name wins, so a column named ``"3"`` is found by that name. ``.npy`` and
    ``.npz`` tables have no names, only indices.

    Args:
      path: an existing ``.npz``, ``.npy``, ``.csv``, ``.csv.gz`` or IDX file.
      label_column: the column of a 2-D table to split off as labels. Numbers must be
        whole (class ids); a text column's classes become ids 0, 1, ... in sorted order.
      drop_columns: columns of a 2-D table to leave out (a timestamp, an id), taken out
        before anything else is checked.
      impute: ``"none"`` refuses missing CSV cells here, naming their columns; ``"mean"``
        keeps them as NaN for ``build_dataset`` to fill with training means.

    Returns:
      RawSplits: ``x`` as stored (``[N, D]`` or ``[N, H, W(, C)]``), labels if the file has
      them, ``x_test``/``y_test`` for an ``.npz`` with ``x_train``/``x_test``, and a CSV
      header's names of the ``D`` feature columns.

    Raises:
      DataError: missing or unreadable file, unsupported type, ambiguous ``.npz`` keys;
        unknown or out-of-range columns; text columns left in; missing labels; missing
        cells with ``impute="none"``.
    """
    path = pathlib.Path(path)
    check_impute(impute)
    if path.is_dir():
        raise DataError(f"{_where(path)}: a directory, not a data file ({SUPPORTED})")
    if not path.is_file():
        raise DataError(f"{_where(path)}: no such file")
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return _from_table(read_csv(path), path, label_column, drop_columns, impute)
    if name.endswith(".npz"):
        raw = _load_npz(path)
    elif name.endswith(".npy"):
        raw = _load_npy(path)
    elif _is_idx(name):
        raw = _load_idx(path)
    else:
        raise DataError(f"{_where(path)}: unsupported file type; supported: {SUPPORTED}")
    return _from_arrays(raw, path, label_column, drop_columns)
