"""Rows in equal, padded chunks: one static shape per data set, so nothing recompiles."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np


def pad_rows(chunk: np.ndarray, rows: int, fill: float = 0.0) -> np.ndarray:
    """``chunk: [r, ...]`` filled up to ``[rows, ...]`` with ``fill`` (a last chunk that
    reuses the compiled shape); ``chunk`` itself when it has ``rows`` rows."""
    if chunk.shape[0] == rows:
        return chunk
    chunk = np.asarray(chunk)
    pad = np.full((rows - chunk.shape[0], *chunk.shape[1:]), fill, chunk.dtype)
    return np.concatenate([chunk, pad])


def padded_chunks(
    arrays: Mapping[str, np.ndarray | None],
    rows: int,
    *,
    fill: Mapping[str, float] | None = None,
) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
    """Equal chunks of ``rows`` rows of every array, the last one padded.

    Args:
      arrays: ``{name: [N, ...]}`` with the same ``N`` (None entries are left out).
      rows: the rows of every chunk, >= 1.
      fill: the padding value per name (default 0).

    Yields:
      ``({name: [rows, ...]}, weight)``: ``weight: [rows]`` float32, 1 on the real rows
      and 0 on the padding, for weighted sums that padding does not change.
    """
    present = {k: a for k, a in arrays.items() if a is not None}
    n = next(iter(present.values())).shape[0]
    fill = fill or {}
    for start in range(0, n, rows):
        real = min(rows, n - start)
        chunk = {
            k: pad_rows(a[start : start + real], rows, fill.get(k, 0.0)) for k, a in present.items()
        }
        yield chunk, (np.arange(rows) < real).astype(np.float32)
