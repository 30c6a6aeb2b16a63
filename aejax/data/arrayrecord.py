"""The ``arrayrecord:DIR`` data kind: image data sets too big for memory, as ArrayRecord files.

Layout of ``DIR``::

    aejax-arrayrecord.json    {"format": 1, "shape": [H, W, C], "dtype": "uint8" | "float32",
                               "splits": {"train": {"files": [...], "examples": N,
                                                    "labels": true | false},
                                          "test": {...}},            (test: optional)
                               "class_names": [...]}                 (optional)
    train-00000.array_record  the examples' raw C-order bytes, one record each, in order;
    train-00001.array_record  files of at most ~1 GiB of raw bytes (``SHARD_BYTES``)
    train-labels.npy          [N] int64, where the split has labels (small: read whole)
    test-00000.array_record, test-labels.npy   the same for the test split

``writer`` writes one split in chunks, so that a 2 GB data set is never held in memory;
``open_arrayrecord`` opens the splits for random access (``grain.sources.
ArrayRecordDataSource``): ``source[i]`` is example ``i``, ``[H, W, C]`` numpy, what
``aejax.data.stream.streamed_dataset`` reads. Records are written with ``group_size:1``
(random access reads one record, not a group) and zstd level 1 compression (smooth images
take about a third of their raw size; reading a 12 KB record takes ~16 us against ~9 us
uncompressed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import math
import os
import uuid
from collections.abc import Sequence

import numpy as np

from aejax.data._arrayrecord_source import ArrayRecordSource
from aejax.data._validate import check_labels
from aejax.errors import DataError

PREFIX = "arrayrecord:"
META = "aejax-arrayrecord.json"
FORMAT = 1
SPLITS = ("train", "test")
DTYPES = ("uint8", "float32")
SHARD_BYTES = 1 << 30  # raw example bytes per file, at most (one example at least)
_OPTIONS = "group_size:1,zstd:1"
_LOCK = ".aejax-arrayrecord.lock"


def _file_name(split: str, k: int) -> str:
    return f"{split}-{k:05d}.array_record"


def _labels_name(split: str) -> str:
    return f"{split}-labels.npy"


def _example_shape(shape, where: str) -> tuple[int, int, int]:
    """``(H, W, C)`` from ``(H, W)`` or ``(H, W, C)`` of positive ints."""
    try:
        dims = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        dims = ()
    if len(dims) not in (2, 3) or min(dims) < 1 or list(dims) != list(shape):
        raise DataError(f"{where}: shape {shape!r}; expected (H, W) or (H, W, C) of positive ints")
    return dims if len(dims) == 3 else (*dims, 1)


def _pixel_dtype(dtype, where: str) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError as e:
        raise DataError(f"{where}: dtype {dtype!r} is not a numpy dtype") from e
    if dt.name in DTYPES:
        return dt
    if dt.kind in "iub":
        raise DataError(f"{where}: dtype {dt}: integer pixels are stored as uint8 (0..255)")
    raise DataError(f"{where}: dtype {dt}; expected uint8 pixels or float32 in [0, 1]")


def _read_meta(directory: str) -> dict | None:
    """The directory's json, checked, or None when it has none."""
    path = os.path.join(directory, META)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not readable JSON ({e})") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataError(f"{path}: not an aejax ArrayRecord description of format {FORMAT}")
    shape = meta.get("shape")
    if not isinstance(shape, list) or len(shape) != 3:
        raise DataError(f"{path}: shape {shape!r}; expected [H, W, C]")
    _example_shape(shape, path)
    if meta.get("dtype") not in DTYPES:
        raise DataError(f"{path}: dtype {meta.get('dtype')!r} is not one of {DTYPES}")
    splits = meta.get("splits")
    if not isinstance(splits, dict) or not set(splits) <= set(SPLITS):
        raise DataError(f"{path}: 'splits' must map some of {SPLITS} to their files")
    for name, s in splits.items():
        ok = isinstance(s, dict) and isinstance(s.get("files"), list)
        ok = ok and all(isinstance(f, str) and os.sep not in f for f in s["files"])
        n = s.get("examples") if ok else None
        if not (ok and isinstance(n, int) and n >= 0 and isinstance(s.get("labels", False), bool)):
            raise DataError(f"{path}: split {name!r} must be {{'files': [names], 'examples': N}}")
    names = meta.get("class_names")
    if names is not None and not (
        isinstance(names, list) and all(isinstance(c, str) for c in names)
    ):
        raise DataError(f"{path}: class_names must be a list of strings")
    return meta


class SplitWriter:
    """Writes one split of ``DIR`` chunk by chunk; made by ``writer`` (see there)."""

    def __init__(self, directory, split, shape, dtype, labels, class_names, shard_bytes):
        self.directory = os.fspath(directory)
        self.where = f"{PREFIX}{self.directory} ({split} split)"
        if split not in SPLITS:
            raise DataError(f"{self.where}: split {split!r} is not one of {SPLITS}")
        self.split = split
        self.shape = _example_shape(shape, self.where)
        self.dtype = _pixel_dtype(dtype, self.where)
        self.labels = labels
        self.class_names = None if class_names is None else [str(c) for c in class_names]
        self.record_bytes = math.prod(self.shape) * self.dtype.itemsize
        self.per_file = max(1, int(shard_bytes) // self.record_bytes)
        os.makedirs(self.directory, exist_ok=True)
        self._check_new(_read_meta(self.directory))
        self._token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._temps: list[str] = []  # the files written, under temporary names
        self._writer = None
        self._in_file = 0  # records in the open file
        self.examples = 0
        self._chunks = 0
        self._y: list[np.ndarray] = []
        self._closed = False

    def _check_new(self, meta: dict | None) -> None:
        """Refuses a split that exists (json entry or files) and a json of another layout."""
        path = os.path.join(self.directory, META)
        if meta is not None:
            if self.split in meta["splits"]:
                raise DataError(
                    f"{path}: already holds the {self.split} split; an ArrayRecord split is "
                    "never overwritten: write to a new directory"
                )
            if tuple(meta["shape"]) != self.shape or meta["dtype"] != self.dtype.name:
                raise DataError(
                    f"{path}: holds examples {tuple(meta['shape'])} {meta['dtype']}; this "
                    f"writer's are {self.shape} {self.dtype.name}"
                )
            names = meta.get("class_names")
            if None not in (names, self.class_names) and names != self.class_names:
                raise DataError(f"{path}: class_names {names}, this writer's {self.class_names}")
        for name in (_file_name(self.split, 0), _labels_name(self.split)):
            if os.path.exists(os.path.join(self.directory, name)):
                raise DataError(
                    f"{os.path.join(self.directory, name)}: exists; an ArrayRecord split is "
                    "never overwritten: write to a new directory"
                )

    def write(self, x: np.ndarray, y: np.ndarray | None = None) -> None:
        """Appends a chunk of examples.

        Args:
          x: ``[n, H, W, C]`` (or ``[n, H, W]`` when C is 1) of the writer's dtype: uint8
            pixels, or float32 in [0, 1].
          y: ``[n]`` integer labels: on every chunk, or on none.

        Raises:
          DataError: another shape or dtype, float pixels outside [0, 1] or NaN, labels on
            some chunks only, bad labels, or a writer already closed.
        """
        where = f"{self.where}: chunk {self._chunks}"
        if self._closed:
            raise DataError(f"{where}: the writer is closed")
        x = np.asarray(x)
        if x.ndim == 3 and self.shape[2] == 1:
            x = x[..., None]
        if x.ndim != 4 or x.shape[1:] != self.shape:
            raise DataError(
                f"{where}: has shape {x.shape}; expected [n, {', '.join(map(str, self.shape))}]"
            )
        if x.dtype != self.dtype:
            raise DataError(f"{where}: has dtype {x.dtype}, the writer's is {self.dtype}: cast it")
        if self.dtype == np.float32 and not np.all((x >= 0) & (x <= 1)):
            raise DataError(f"{where}: has pixels outside [0, 1] (or NaN)")
        if self.labels is None:
            self.labels = y is not None
        if (y is not None) != self.labels:
            raise DataError(
                f"{where}: labels {'missing' if self.labels else 'given'}; give them on every "
                "chunk or on none"
            )
        if y is not None:
            self._y.append(check_labels(y, x.shape[0], where, what="y"))
        x = np.ascontiguousarray(x)
        for example in x:
            if self._writer is None or self._in_file == self.per_file:
                self._next_file()
            self._writer.write(example.tobytes())
            self._in_file += 1
        self.examples += x.shape[0]
        self._chunks += 1

    def _next_file(self) -> None:
        from array_record.python.array_record_module import ArrayRecordWriter

        if self._writer is not None:
            self._writer.close()
        k = len(self._temps)
        temp = os.path.join(self.directory, f".{_file_name(self.split, k)}.tmp-{self._token}")
        self._temps.append(temp)
        self._writer = ArrayRecordWriter(temp, _OPTIONS)
        self._in_file = 0

    def close(self) -> None:
        """Renames the files to their names and records the split in the json.

        Raises:
          DataError: no example written, or the split (or a test split's labels) clashes with
            what the directory got meanwhile; the files written are removed then.
        """
        if self._closed:
            return
        self._closed = True
        try:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            if self.examples == 0:
                raise DataError(f"{self.where}: no example written")
            with _locked(self.directory):
                self._commit()
        except BaseException:
            self._remove_temps()
            raise

    def _commit(self) -> None:
        meta = _read_meta(self.directory)
        self._check_new(meta)
        if meta is None:
            meta = {"format": FORMAT, "shape": list(self.shape), "dtype": self.dtype.name}
            meta["splits"] = {}
        for other in meta["splits"].values():
            if other.get("labels", False) != self.labels:
                raise DataError(
                    f"{self.where}: labels {'given' if self.labels else 'missing'}, the "
                    "directory's other split has them the other way: both or neither"
                )
        if self.class_names is not None:
            meta["class_names"] = self.class_names
        names = [_file_name(self.split, k) for k in range(len(self._temps))]
        for name in names:
            if os.path.exists(os.path.join(self.directory, name)):
                raise DataError(f"{os.path.join(self.directory, name)}: exists; not overwritten")
        if self.labels:
            temp = os.path.join(self.directory, f".{self.split}-labels.tmp-{self._token}.npy")
            self._temps.append(temp)
            np.save(temp, np.concatenate(self._y))
            names.append(_labels_name(self.split))
        for temp, name in zip(self._temps, names, strict=True):
            os.replace(temp, os.path.join(self.directory, name))
        self._temps = []
        n_files = len(names) - bool(self.labels)
        meta["splits"][self.split] = {
            "files": names[:n_files],
            "examples": self.examples,
            "labels": bool(self.labels),
        }
        temp = os.path.join(self.directory, f".{META}.tmp-{self._token}")
        with open(temp, "w") as f:
            json.dump(meta, f, indent=1)
        os.replace(temp, os.path.join(self.directory, META))

    def abort(self) -> None:
        """Stops writing and removes the files written; the directory is left as it was."""
        self._closed = True
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None
        self._remove_temps()

    def _remove_temps(self) -> None:
        for temp in self._temps:
            with contextlib.suppress(FileNotFoundError):
                os.remove(temp)
        self._temps = []

    def __enter__(self) -> SplitWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


@contextlib.contextmanager
def _locked(directory: str):
    """Holds the directory's lock file: one writer at a time updates the json."""
    fd = os.open(os.path.join(directory, _LOCK), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def writer(
    directory,
    *,
    split: str = "train",
    shape: Sequence[int],
    dtype="uint8",
    labels: bool | None = None,
    class_names: Sequence[str] | None = None,
    shard_bytes: int = SHARD_BYTES,
) -> SplitWriter:
    """A writer of one split of an ``arrayrecord:DIR`` data set (see the module docstring).

    Use it as a context manager: ``close`` at the end of the block renames the files (written
    under temporary names) and records the split in ``DIR/aejax-arrayrecord.json`` (keeping
    the splits already there); an exception in the block removes them instead.

    Args:
      directory: ``DIR``, made if missing.
      split: ``"train"`` or ``"test"``.
      shape: ``(H, W, C)``, or ``(H, W)`` for one channel (stored as ``(H, W, 1)``).
      dtype: ``"uint8"`` pixels or ``"float32"`` in [0, 1].
      labels: whether every chunk carries labels; None: as the first chunk does.
      class_names: the labels' names, recorded in the json, or None.
      shard_bytes: raw example bytes per file, at most (one example at least).

    Returns:
      A ``SplitWriter``: ``w.write(x [n, H, W, C], y [n] or None)`` any number of times.

    Raises:
      DataError: the split exists in ``DIR`` (never overwritten), a json of another shape
        or dtype, a shape that is not an image's, a dtype other than uint8 / float32.
    """
    return SplitWriter(directory, split, shape, dtype, labels, class_names, shard_bytes)


@dataclasses.dataclass(frozen=True)
class ArrayRecordData:
    """An ``arrayrecord:DIR`` data set, opened.

    Attributes:
      source: the train split, ``[N]`` examples ``[H, W, C]``.
      y: ``[N]`` int64 labels, or None.
      test_source: the test split, or None when the directory has none.
      y_test: ``[N_test]`` int64 labels, or None.
      shape: ``(H, W, C)``.
      dtype: uint8 (pixels) or float32 (in [0, 1]).
      class_names: the labels' names, or None.
      where: ``"arrayrecord:DIR"``, for messages.
    """

    source: ArrayRecordSource
    y: np.ndarray | None
    test_source: ArrayRecordSource | None
    y_test: np.ndarray | None
    shape: tuple[int, int, int]
    dtype: np.dtype
    class_names: tuple[str, ...] | None
    where: str


def _open_split(directory: str, meta: dict, split: str, where: str):
    from array_record.python.array_record_module import ArrayRecordReader

    entry = meta["splits"][split]
    paths = [os.path.join(directory, f) for f in entry["files"]]
    counts = []
    for p in paths:
        if not os.path.isfile(p):
            raise DataError(f"{where}: {split} file {p} is missing")
        try:
            reader = ArrayRecordReader(p)
            counts.append(int(reader.num_records()))
            reader.close()
        except Exception as e:  # the C++ reader's errors carry no common type
            raise DataError(f"{where}: {p} is not a readable ArrayRecord file ({e})") from e
    if sum(counts) != entry["examples"]:
        held = ", ".join(f"{os.path.basename(p)}: {c}" for p, c in zip(paths, counts, strict=True))
        raise DataError(
            f"{where}: the {split} files hold {sum(counts)} records ({held}); "
            f"{META} says {entry['examples']}"
        )
    source = ArrayRecordSource(
        paths, counts, meta["shape"], meta["dtype"], f"{where} ({split} split)"
    )
    labels_path = os.path.join(directory, _labels_name(split))
    if not entry.get("labels", os.path.exists(labels_path)):
        return source, None
    try:
        y = np.load(labels_path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"{where}: {labels_path} is not a readable .npy file ({e})") from e
    if y.dtype.kind not in "iu":
        raise DataError(f"{where}: {labels_path} holds {y.dtype}; expected int64 labels")
    return source, check_labels(y, len(source), f"{where} ({labels_path})", what=split)


def open_arrayrecord(path) -> ArrayRecordData:
    """Opens an ``arrayrecord:DIR`` data set (written by ``writer``) for random access.

    Args:
      path: ``DIR`` or ``"arrayrecord:DIR"``.

    Returns:
      An ``ArrayRecordData``; no example is read until asked for.

    Raises:
      DataError: no such directory, a missing or invalid json, a missing or unreadable file,
        files holding another count of records than the json says, labels of another length,
        labels on one split only.
    """
    directory = os.fspath(path).removeprefix(PREFIX)
    where = f"{PREFIX}{directory}"
    if not os.path.isdir(directory):
        raise DataError(f"{where}: no such directory")
    meta = _read_meta(directory)
    if meta is None:
        raise DataError(f"{where}: no {META} (not written by aejax.data.arrayrecord.writer)")
    if "train" not in meta["splits"]:
        raise DataError(f"{where}: {META} has no train split")
    source, y = _open_split(directory, meta, "train", where)
    test_source = y_test = None
    if "test" in meta["splits"]:
        test_source, y_test = _open_split(directory, meta, "test", where)
        if (y is None) != (y_test is None):
            raise DataError(f"{where}: labels for only one of the train and test splits")
    names = meta.get("class_names")
    return ArrayRecordData(
        source=source,
        y=y,
        test_source=test_source,
        y_test=y_test,
        shape=tuple(meta["shape"]),
        dtype=np.dtype(meta["dtype"]),
        class_names=None if names is None else tuple(names),
        where=where,
    )
