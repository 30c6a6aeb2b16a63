"""Windows of a series: where they start, their size (``window="day"``), their stride, the
causal split into training and validation parts, and per-point errors averaged over the
windows that cover each point (see ``aejax.apps.series``)."""

from __future__ import annotations

import numpy as np

from aejax.errors import DataError


def window_starts(n: int, window: int, stride: int) -> np.ndarray:
    """Starts of the windows of ``window`` points every ``stride`` over ``n`` points; the
    last window ends at point ``n - 1`` (added when the stride skips it)."""
    if window < 1 or stride < 1 or n < window:
        raise DataError(f"windows of {window} every {stride} need at least {window} points; {n}")
    starts = np.arange(0, n - window + 1, stride)
    if starts[-1] != n - window:
        starts = np.append(starts, n - window)
    return starts.astype(np.int64)


COVER = 32  # stride=None: about this many windows cover each point (window // COVER)


def points_per_day(timestamps: np.ndarray) -> int:
    """Points in one day at the series' sampling interval: a day over the median of the
    positive steps between consecutive timestamps, rounded, at least 1."""
    ts = np.asarray(timestamps).astype("datetime64[ns]")
    steps = np.diff(ts).astype(np.int64)
    steps = steps[steps > 0]
    if not steps.size:
        raise DataError("window 'day': the timestamps never increase, no sampling interval")
    return max(1, int(round(86_400e9 / float(np.median(steps)))))


def resolve_window(
    window: int | str, timestamps: np.ndarray, train_fraction: float, val_share: float
) -> int:
    """``window`` as points: an int as given; ``"day"``: ``points_per_day``, at most the
    points of the training part and of the validation part (``causal_parts``), at least 2."""
    if isinstance(window, str):
        if window != "day":
            raise DataError(f"window {window!r}: expected a number of points or 'day'")
        n_fit = int(round(train_fraction * len(timestamps)))
        n_train = int(round((1 - val_share) * n_fit))
        return max(2, min(points_per_day(timestamps), n_train, n_fit - n_train))
    return int(window)


def default_stride(window: int) -> int:
    """``window // COVER``, at least 1 (``stride=None``; module docstring)."""
    return max(1, int(window) // COVER)


def windows(values: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """``[M, window, D]`` float32: ``values[starts[i] : starts[i] + window]``."""
    idx = starts[:, None] + np.arange(window)[None, :]
    return np.ascontiguousarray(values[idx], np.float32)


def point_errors(step_errors: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
    """``[n, ...]``: the mean over the windows covering each point of ``step_errors [M, W,
    ...]`` (the point's per-step errors in each window); 0 for an uncovered point."""
    m, w = step_errors.shape[:2]
    total = np.zeros((n, *step_errors.shape[2:]), np.float64)
    count = np.zeros(n, np.float64)
    for j in range(w):  # W vectorized adds instead of M * W scalar ones
        np.add.at(total, starts + j, step_errors[:, j])
        np.add.at(count, starts + j, 1.0)
    return total / np.maximum(count, 1.0).reshape(-1, *[1] * (total.ndim - 1))


def window_points(per_window: np.ndarray, starts: np.ndarray, window: int, n: int) -> np.ndarray:
    """``[n]`` float64: each point's mean over the windows covering it of their scores
    ``per_window [M]`` (window ``i`` covers ``starts[i] : starts[i] + window``;
    ``point_errors`` of the score repeated over the window's steps); 0 if uncovered."""
    per_window = np.asarray(per_window, np.float64)
    if per_window.shape != (len(starts),):
        raise DataError(f"window scores of shape {per_window.shape}; expected [{len(starts)}]")
    per_step = np.repeat(per_window[:, None], window, axis=1)  # [M, W]
    return point_errors(per_step, starts, n)


def causal_parts(n: int, train_fraction: float, val_share: float, window: int) -> tuple[int, int]:
    """``(n_train, n_fit)``: points ``:n_train`` train, ``n_train:n_fit`` validate."""
    if not 0 < train_fraction < 1:
        raise DataError(f"train_fraction {train_fraction}: expected a number in (0, 1)")
    n_fit = int(round(train_fraction * n))
    n_train = int(round((1 - val_share) * n_fit))
    if n_train < window or n_fit - n_train < window:
        raise DataError(
            f"the first {train_fraction:g} of {n} points ({n_fit}) leave {n_train} to train on "
            f"and {n_fit - n_train} to validate on; each needs at least one window of "
            f"{window}: lower --window or raise --train-fraction"
        )
    return n_train, n_fit
