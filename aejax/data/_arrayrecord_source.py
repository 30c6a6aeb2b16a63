"""One split of an ``arrayrecord:DIR`` data set read on demand (``aejax.data.arrayrecord``)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from aejax.errors import DataError


@dataclasses.dataclass(frozen=True)
class _FileInstruction:
    """A whole file for ``ArrayRecordDataSource``, its record count known (no reopening)."""

    filename: str
    skip: int
    take: int
    examples_in_shard: int


class ArrayRecordSource:
    """One split's examples, read on demand: ``len`` and ``source[i] -> [H, W, C]``.

    Thread-safe (grain's ``ArrayRecordDataSource`` shares one thread-safe reader per file,
    opened lazily) and light to pickle (no open file travels). ``source[i]`` is a read-only
    view of the record's bytes.

    Args:
      paths: the split's ArrayRecord files, in order.
      counts: the records each holds (counted when opened).
      shape: ``(H, W, C)`` of one example.
      dtype: uint8 or float32.
      where: names the split in errors.
    """

    def __init__(self, paths: list[str], counts: list[int], shape, dtype, where: str):
        import grain

        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.where = where
        self.record_bytes = math.prod(self.shape) * self.dtype.itemsize
        self._n = sum(counts)
        files = [_FileInstruction(p, 0, c, c) for p, c in zip(paths, counts, strict=True) if c]
        self._records = grain.sources.ArrayRecordDataSource(files) if files else None

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return f"ArrayRecordSource({self.where}, {self._n} x {self.shape} {self.dtype})"

    def _array(self, record: bytes, i: int) -> np.ndarray:
        if len(record) != self.record_bytes:
            raise DataError(
                f"{self.where}: record {i} has {len(record)} bytes; expected "
                f"{self.record_bytes} ({self.shape} {self.dtype})"
            )
        return np.frombuffer(record, self.dtype).reshape(self.shape)

    def _key(self, i) -> int:
        i = int(i)
        if not 0 <= i < self._n:
            raise IndexError(f"{self.where}: record {i} outside [0, {self._n})")
        return i

    def __getitem__(self, i) -> np.ndarray:
        """``[H, W, C]``: example ``i``."""
        i = self._key(i)
        return self._array(self._records[i], i)

    def __getitems__(self, keys: Sequence[int]) -> list[np.ndarray]:
        """The examples ``keys``, read together (``[H, W, C]`` each)."""
        keys = [self._key(i) for i in keys]
        if not keys:
            return []
        return [
            self._array(r, i) for r, i in zip(self._records.__getitems__(keys), keys, strict=True)
        ]
