"""NAB labels and metrics: labelled anomaly windows, point labels, alarm onsets and
``series_metrics`` (point ROC-AUC, VUS-ROC and VUS-PR, windows hit, alarms inside windows,
false alarms per day)."""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

import numpy as np

from aejax.apps.series.scores import alarm_onsets
from aejax.apps.series.windows import points_per_day
from aejax.errors import DataError

_DAY = np.timedelta64(1, "D")
# VUS's largest buffer is TSB-AD's 2 * the series' period (``aejax.metrics.vus``); the
# period is taken as one day of points (NAB's series are daily operational data), at most
# 300 points (TSB-AD's period estimate looks at most 300 lags back).
VUS_PERIOD_CAP = 300


def vus_buffer(timestamps: np.ndarray) -> int:
    """The default largest VUS buffer of a series: ``2 * min(points_per_day, 300)``."""
    return 2 * min(points_per_day(timestamps), VUS_PERIOD_CAP)


def load_nab_windows(path: str | os.PathLike) -> dict[str, list[tuple[np.datetime64, ...]]]:
    """NAB's ``combined_windows.json``: ``{"dir/series.csv": [[start, end], ...]}`` ->
    the same keys with ``(start, end)`` datetime64[ns] pairs (both ends inside)."""
    p = pathlib.Path(path)
    try:
        raw = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"labels {p}: cannot read NAB windows: {e}") from None
    if not isinstance(raw, dict):
        raise DataError(f"labels {p}: expected an object of series -> [[start, end], ...]")
    out = {}
    for key, pairs in raw.items():
        try:
            out[key] = [(np.datetime64(a, "ns"), np.datetime64(b, "ns")) for a, b in pairs]
        except (TypeError, ValueError) as e:
            raise DataError(f"labels {p}: bad window of {key!r}: {e}") from None
    return out


def windows_for(labels: dict, series_path: str | os.PathLike) -> list[tuple[np.datetime64, ...]]:
    """The windows of ``series_path`` in ``labels``: the key that ends with its
    ``dir/name.csv`` (or, failing that, its name). Raises DataError when none matches."""
    p = pathlib.Path(series_path)
    for tail in (f"{p.parent.name}/{p.name}", p.name):
        hits = [k for k in labels if k == tail or k.endswith("/" + tail)]
        if len(hits) == 1:
            return labels[hits[0]]
    raise DataError(f"labels: no windows for {p.name} (keys like {sorted(labels)[:3]})")


def point_labels(timestamps: np.ndarray, label_windows) -> np.ndarray:
    """``[N]`` int64: 1 where a timestamp lies in a labelled window (ends included)."""
    y = np.zeros(len(timestamps), np.int64)
    for a, b in label_windows:
        y[(timestamps >= a) & (timestamps <= b)] = 1
    return y


def series_metrics(
    timestamps: np.ndarray,
    scores: np.ndarray,
    flags: np.ndarray,
    label_windows,
    start: int,
    max_buffer: int | None = None,
) -> dict[str, Any]:
    """Point ROC-AUC, VUS-ROC and VUS-PR (largest buffer ``max_buffer``, default
    ``vus_buffer(timestamps)``), windows hit, alarms inside windows and false alarms per day
    on the scored points ``start:`` of ``timestamps, scores, flags [N]`` (see the module
    docstring of ``aejax.apps.series``)."""
    from aejax.metrics.detection import roc_auc
    from aejax.metrics.vus import vus

    ts, s, f = timestamps[start:], scores[start:], np.asarray(flags[start:], bool)
    y = point_labels(ts, label_windows)
    live = [(a, b) for a, b in label_windows if b >= ts[0]]
    onsets = alarm_onsets(f)
    inside = y[onsets].astype(bool)
    days = float((ts[-1] - ts[0]) / _DAY) or 1.0
    both = 0 < y.sum() < y.size
    buffer = vus_buffer(timestamps) if max_buffer is None else int(max_buffer)
    v = vus(y, s, buffer) if both else {"vus_roc": None, "vus_pr": None}
    return {
        "roc_auc": roc_auc(y, s) if both else None,
        **v,
        "vus_buffer": buffer,
        "windows": len(live),
        "windows_hit": (
            float(np.mean([f[(ts >= a) & (ts <= b)].any() for a, b in live])) if live else None
        ),
        "alarms": int(onsets.size),
        "alarms_in_windows": float(inside.mean()) if onsets.size else None,
        "false_alarms_per_day": float((~inside).sum()) / days,
        "scored_points": int(ts.size),
        "scored_days": round(days, 3),
    }
