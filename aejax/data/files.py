"""Loaders for local files: .npz, .npy, .csv / .csv.gz and IDX (raw or gzip)."""

from __future__ import annotations

import gzip
import os
import pathlib
import zipfile
import zlib
from typing import NamedTuple

import numpy as np

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


def _locate_csv_error(path: pathlib.Path, lines: list[str], first: int, ncols: int) -> None:
    """Raises a DataError naming the first ragged row or non-numeric cell (1-based)."""
    for i in range(first, len(lines)):
        if not lines[i].strip():
            continue
        cells = lines[i].split(",")
        if len(cells) != ncols:
            raise DataError(
                f"{_where(path)}: row {i + 1} has {len(cells)} columns, expected {ncols}"
            )
        for j, cell in enumerate(cells):
            if not _is_number(cell):
                raise DataError(
                    f"{_where(path)}: row {i + 1}, column {j + 1} is {cell.strip()!r}, not a number"
                )


def read_csv(path: str | os.PathLike) -> np.ndarray:
    """Reads a numeric comma-separated table (optionally gzip-compressed).

    A first row holding any non-numeric cell is a header and is skipped. Blank lines are
    skipped. Row and column numbers in errors count from 1, as in a text editor.

    Args:
      path: the ``.csv`` or ``.csv.gz`` file.

    Returns:
      ``[N, D]`` float64.

    Raises:
      DataError: not UTF-8 text, no data rows, ragged rows, or non-numeric cells.
    """
    path = pathlib.Path(path)
    try:
        text = _read_bytes(path).decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{_where(path)}: not UTF-8 text ({e})") from e
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise DataError(f"{_where(path)}: empty (no rows)")
    ncols = len(lines[first].split(","))
    if not all(_is_number(cell) for cell in lines[first].split(",")):
        first += 1  # a header row
        if not any(line.strip() for line in lines[first:]):
            raise DataError(f"{_where(path)}: empty (a header row and no data rows)")
    try:
        # The C parser is fast; the Python scan below only runs to word the error.
        return np.loadtxt(lines[first:], delimiter=",", comments=None, dtype=np.float64, ndmin=2)
    except ValueError as e:
        _locate_csv_error(path, lines, first, ncols)
        raise DataError(f"{_where(path)}: cannot parse it as numbers: {e}") from e


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


def _split_label_column(raw: RawSplits, label_column: int, path: pathlib.Path) -> RawSplits:
    if raw.y is not None or raw.x_test is not None or np.ndim(raw.x) != 2:
        raise DataError(
            f"{_where(path)}: label_column applies only to one [N, D] table without labels"
        )
    x = raw.x
    d = x.shape[1]
    if not -d <= label_column < d:
        raise DataError(f"{_where(path)}: label_column={label_column} is outside its {d} columns")
    keep = np.delete(np.arange(d), label_column)
    return RawSplits(x[:, keep], x[:, label_column])


def load_file(path: str | os.PathLike, *, label_column: int | None = None) -> RawSplits:
    """Reads a local data file into raw arrays (validated later by ``build_dataset``).

    Args:
      path: an existing ``.npz``, ``.npy``, ``.csv``, ``.csv.gz`` or IDX file.
      label_column: a column (may be negative) of a 2-D table to split off as labels.

    Returns:
      RawSplits: ``x`` as stored (``[N, D]`` or ``[N, H, W(, C)]``), labels if the file has
      them, and ``x_test``/``y_test`` for an ``.npz`` with ``x_train``/``x_test``.

    Raises:
      DataError: missing or unreadable file, unsupported type, ambiguous ``.npz`` keys.
    """
    path = pathlib.Path(path)
    if path.is_dir():
        raise DataError(f"{_where(path)}: a directory, not a data file ({SUPPORTED})")
    if not path.is_file():
        raise DataError(f"{_where(path)}: no such file")
    name = path.name.lower()
    if name.endswith(".npz"):
        raw = _load_npz(path)
    elif name.endswith(".npy"):
        raw = _load_npy(path)
    elif name.endswith((".csv", ".csv.gz")):
        raw = RawSplits(read_csv(path))
    elif _is_idx(name):
        raw = _load_idx(path)
    else:
        raise DataError(f"{_where(path)}: unsupported file type; supported: {SUPPORTED}")
    return raw if label_column is None else _split_label_column(raw, label_column, path)
