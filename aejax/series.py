"""Time-series anomaly detection: windows of a series, point scores, thresholds, NAB labels.

The protocol is causal (as NAB's): a model sees only the first ``train_fraction`` of a
series, the *fit part*. Its first ``1 - val_share`` give the training windows, the rest
the clean validation windows, on which early stopping, the EncDec-AD Gaussian and the
``validation`` threshold are fitted. Values are standardized per column with the fit
part's mean and scale. Every point of the series is then scored; metrics count only the
points after the fit part.

Windows: ``window`` consecutive points every ``stride`` points, the last one ending at the
last point (so every point is covered); window ``i`` starts at ``starts[i]`` and keeps the
timestamps ``timestamps[starts[i] : starts[i] + window]``.

Point scores: a point's per-step errors in every window that covers it are averaged
(``point_errors``). The mean, not the max: a sequence autoencoder smears a spike's error
over the steps it reconstructs near it, and the max over ~``window / stride`` windows
picks up the worst of those smears, which widens every detection by a window; the mean
keeps it centred on the point, and each interior point averages the same number of windows.

Scores: ``"mahalanobis"`` (EncDec-AD, Malhotra et al. 2016): a Gaussian ``N(mu, Sigma)``
fitted to the points' ``D``-dim absolute error vectors on the validation part, the score
the squared Mahalanobis distance ``(e - mu)^T Sigma^-1 (e - mu)``; ``"error"``: the
point's mean squared error summed over the columns.

Smoothing (``smooth=K``, off by default): each point's score becomes the mean of its own and
the ``K - 1`` scores before it (causal, a point's score never sees the future). NAB's
windows are wide and real anomalies last; on the four NAB series here a span of 4 windows
raised every method's point ROC-AUC (``benchmarks/nab.py`` reports both).

Thresholds: ``percentile`` of the validation points' scores (``threshold="validation"``,
clean data assumed, NAB's probationary period) or the ``1 - contamination`` quantile of
the scored points' scores (``threshold="contamination"``).

Alarms: a run of consecutive flagged points is one alarm, at its first point (what pages
an operator). ``windows_hit`` is the share of labelled windows (those reaching past the
fit part) holding at least one flagged point; ``alarms_in_windows`` the share of alarms
whose first point lies in a labelled window; ``false_alarms_per_day`` the alarms outside
every window per day of the scored part.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import pathlib
import time
from typing import Any

import numpy as np

from aejax.errors import DataError

SCORES = ("mahalanobis", "error")
_DAY = np.timedelta64(1, "D")


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
    with open(p, newline="") as f:
        header = next(csv.reader(f), [])
    return bool(header) and header[0].strip().lower() == "timestamp"


def read_series(path: str | os.PathLike) -> Series:
    """Reads a ``timestamp,value[,value...]`` CSV (timestamps ISO 8601).

    Rows stay in file order, which is the series' order: timestamps are not required to
    increase (NAB's machine_temperature_system_failure steps back an hour once).

    Raises:
      DataError: no such file, a header without ``timestamp`` first, fewer than 2 columns,
        unparseable timestamps or values, missing values.
    """
    p = pathlib.Path(path)
    where = f"series {p}"
    if not p.is_file():
        raise DataError(f"{where}: no such file")
    with open(p, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or len(rows[0]) < 2 or rows[0][0].strip().lower() != "timestamp":
        raise DataError(f"{where}: expected a header timestamp,value[,value...]")
    columns = tuple(c.strip() for c in rows[0][1:])
    body = [r for r in rows[1:] if r]
    if len(body) < 2:
        raise DataError(f"{where}: fewer than 2 rows")
    try:
        ts = np.array([np.datetime64(r[0].strip(), "ns") for r in body])
    except ValueError as e:
        raise DataError(f"{where}: a timestamp is not ISO 8601: {e}") from None
    try:
        values = np.array([[float(v) for v in r[1:]] for r in body], np.float64)
    except ValueError as e:
        raise DataError(f"{where}: a value is not a number: {e}") from None
    if values.shape != (len(body), len(columns)):
        raise DataError(f"{where}: rows with other than {len(columns) + 1} cells")
    if not np.isfinite(values).all():
        raise DataError(f"{where}: missing or infinite values")
    return Series(p.name, ts, values, columns)


def window_starts(n: int, window: int, stride: int) -> np.ndarray:
    """Starts of the windows of ``window`` points every ``stride`` over ``n`` points; the
    last window ends at point ``n - 1`` (added when the stride skips it)."""
    if window < 1 or stride < 1 or n < window:
        raise DataError(f"windows of {window} every {stride} need at least {window} points; {n}")
    starts = np.arange(0, n - window + 1, stride)
    if starts[-1] != n - window:
        starts = np.append(starts, n - window)
    return starts.astype(np.int64)


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


def fit_gaussian(errors: np.ndarray, ridge: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """``(mu [D], precision [D, D])`` of error vectors ``[K, D]`` (a ridge keeps it invertible)."""
    e = np.asarray(errors, np.float64).reshape(len(errors), -1)
    mu = e.mean(axis=0)
    cov = np.atleast_2d(np.cov(e, rowvar=False)) if len(e) > 1 else np.eye(e.shape[1])
    cov = cov + ridge * max(float(np.trace(cov)) / cov.shape[0], 1e-12) * np.eye(cov.shape[0])
    return mu, np.linalg.inv(cov)


def mahalanobis(errors: np.ndarray, mu: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distances ``[K]`` of ``errors [K, D]`` under ``N(mu, precision^-1)``."""
    d = np.asarray(errors, np.float64).reshape(len(errors), -1) - mu
    return np.einsum("ki,ij,kj->k", d, precision, d)


def smooth_scores(scores: np.ndarray, span: int) -> np.ndarray:
    """Causal rolling mean of ``scores [N]`` over ``span`` points (fewer at the start);
    ``span <= 1`` returns them unchanged."""
    x = np.asarray(scores, np.float64)
    if span <= 1:
        return x
    c = np.concatenate([[0.0], np.cumsum(x)])
    idx = np.arange(len(x))
    lo = np.maximum(0, idx - span + 1)
    return (c[idx + 1] - c[lo]) / (idx + 1 - lo)


def threshold_for(
    scores: np.ndarray,
    val_scores: np.ndarray,
    *,
    percentile: float = 99.5,
    contamination: float | None = None,
) -> tuple[float, str]:
    """``(threshold, rule)``: the ``1 - contamination`` quantile of ``scores`` when
    ``contamination`` is given, else the ``percentile`` of the clean ``val_scores``."""
    if contamination is not None:
        if not 0 < contamination < 0.5:
            raise DataError(f"contamination {contamination}: expected a rate in (0, 0.5)")
        return float(np.quantile(scores, 1.0 - contamination)), f"contamination {contamination:g}"
    if not 0 < percentile < 100:
        raise DataError(f"percentile {percentile}: expected a number in (0, 100)")
    return float(np.percentile(val_scores, percentile)), f"validation p{percentile:g}"


# --- NAB labels and metrics -------------------------------------------------------------


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


def alarm_onsets(flags: np.ndarray) -> np.ndarray:
    """Indices where a run of consecutive flagged points begins."""
    f = np.asarray(flags, bool)
    return np.flatnonzero(f & ~np.concatenate([[False], f[:-1]]))


def series_metrics(
    timestamps: np.ndarray, scores: np.ndarray, flags: np.ndarray, label_windows, start: int
) -> dict[str, Any]:
    """Point ROC-AUC, windows hit, alarms inside windows and false alarms per day on the
    scored points ``start:`` (see the module docstring)."""
    from aejax.estimators.metrics import roc_auc

    ts, s, f = timestamps[start:], scores[start:], np.asarray(flags[start:], bool)
    y = point_labels(ts, label_windows)
    live = [(a, b) for a, b in label_windows if b >= ts[0]]
    onsets = alarm_onsets(f)
    inside = y[onsets].astype(bool)
    days = float((ts[-1] - ts[0]) / _DAY) or 1.0
    return {
        "roc_auc": roc_auc(y, s) if 0 < y.sum() < y.size else None,
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


# --- fitting a model on windows -----------------------------------------------------------


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


def _config(model: str, overrides: dict | None, seed: int, progress: bool):
    from aejax import Config

    base = {"model": model, "epochs": 30, "batch_size": 64, "lr": 3e-3, "patience": 5}
    if model == "seq2seq_ae":
        base.update(latent_dim=16, rnn_hidden=32)
    else:
        base.update(hidden=(64,), latent_dim=8)
    base.update(seed=seed, progress=progress, **(overrides or {}))
    return Config(**base)


def reconstruct(result, x: np.ndarray, batch: int = 512) -> np.ndarray:
    """The trained model's reconstructions of ``x [M, ...]`` in static batches."""
    import jax

    apply = jax.jit(lambda v, xb: result.model.apply(v, xb)[0])
    out = []
    for i in range(0, len(x), batch):
        chunk = x[i : i + batch]
        pad = batch - len(chunk) if len(x) > batch else 0
        xb = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
        out.append(np.asarray(apply(result.variables, xb))[: len(chunk)])
    return np.concatenate(out)


def fit_and_reconstruct(
    values: np.ndarray,
    n_train: int,
    n_fit: int,
    *,
    window: int,
    stride: int,
    model: str = "seq2seq_ae",
    overrides: dict | None = None,
    seed: int = 0,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Trains ``model`` on standardized windows of the fit part; returns ``(starts,
    step_abs_errors [M, W, D], stats)`` over every window of the series (stride ``stride``).

    A sequence model (``seq2seq_ae``) sees ``[W, D]`` windows as ``sequence`` data; any
    other registry model sees them flattened as a ``[W * D]`` table.
    """
    from aejax.data import Dataset
    from aejax.models import MODELS
    from aejax.train import train

    config = _config(model, overrides, seed, progress)
    tr = windows(values, window_starts(n_train, window, stride), window)
    va = windows(values[n_train:n_fit], window_starts(n_fit - n_train, window, 1), window)
    starts = window_starts(len(values), window, stride)
    every = windows(values, starts, window)
    sequence = "sequence" in MODELS[model].kinds if model in MODELS else False
    shape = every.shape[1:]
    if not sequence:
        tr, va, every = (a.reshape(len(a), -1) for a in (tr, va, every))
    kind = "sequence" if sequence else "tabular"
    ds = Dataset(f"windows-{window}", kind, tr, va, va[:1])
    t0 = time.perf_counter()
    result = train(config, dataset=ds)
    fit_seconds = time.perf_counter() - t0
    recon = reconstruct(result, every).reshape(len(every), *shape)
    errors = np.abs(every.reshape(len(every), *shape) - recon)
    stats = {"fit_seconds": round(fit_seconds, 3), "epochs_run": result.stats["epochs_run"]}
    stats["train_windows"], stats["val_windows"] = len(tr), len(va)
    return starts, errors, stats


def score_points(
    starts: np.ndarray, step_errors: np.ndarray, n: int, n_train: int, n_fit: int, score: str
) -> np.ndarray:
    """``[n]`` point scores from per-step absolute errors ``[M, W, D]`` (module docstring)."""
    if score not in SCORES:
        raise DataError(f"score {score!r}: choose one of {SCORES}")
    e = point_errors(step_errors, starts, n)  # [n, D] mean |error| per point
    if score == "error":
        return (point_errors(np.square(step_errors), starts, n)).sum(axis=-1)
    mu, prec = fit_gaussian(e[n_train:n_fit])
    return mahalanobis(e, mu, prec)


def detect_series(
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    model: str = "seq2seq_ae",
    window: int = 32,
    stride: int = 1,
    train_fraction: float = 0.15,
    val_share: float = 0.3,
    score: str = "mahalanobis",
    smooth: int = 0,
    percentile: float = 99.5,
    contamination: float | None = None,
    labels: str | os.PathLike | None = None,
    overrides: dict | None = None,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Causal detection on a ``timestamp,value[,...]`` CSV: writes ``out_dir/scores.csv``
    (``timestamp,score,is_anomaly``), ``scores.png`` and ``detect.json``.

    Returns:
      The summary written to ``detect.json``; with ``labels`` (NAB's windows JSON) it holds
      ``series_metrics`` of the points after the fit part.
    """
    from aejax.data.scaler import Standardizer

    s = read_series(path)
    n = len(s.values)
    label_windows = windows_for(load_nab_windows(labels), path) if labels else None
    n_train, n_fit = causal_parts(n, train_fraction, val_share, window)
    scaler = Standardizer.fit(s.values[:n_fit])
    values = scaler.transform(s.values).astype(np.float64)
    starts, errors, stats = fit_and_reconstruct(
        values,
        n_train,
        n_fit,
        window=window,
        stride=stride,
        model=model,
        overrides=overrides,
        seed=seed,
        progress=progress,
    )
    scores = smooth_scores(score_points(starts, errors, n, n_train, n_fit, score), smooth)
    threshold, rule = threshold_for(
        scores[n_fit:], scores[n_train:n_fit], percentile=percentile, contamination=contamination
    )
    flags = scores > threshold
    summary: dict[str, Any] = {
        "data": str(path),
        "points": n,
        "columns": list(s.columns),
        "model": model,
        "window": window,
        "stride": stride,
        "train_fraction": train_fraction,
        "fit_points": n_fit,
        "fit_until": str(s.timestamps[n_fit - 1]),
        "score": score,
        "smooth": smooth,
        "threshold": threshold,
        "threshold_rule": rule,
        "flagged": int(flags[n_fit:].sum()),
        "seed": seed,
        **stats,
    }
    if label_windows is not None:
        summary.update(series_metrics(s.timestamps, scores, flags, label_windows, n_fit))
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from aejax.train.rundir import write_atomic

    lines = ["timestamp,score,is_anomaly"] + [
        f"{np.datetime_as_string(t, unit='s').replace('T', ' ')},{float(v)!r},{int(f)}"
        for t, v, f in zip(s.timestamps, scores, flags, strict=True)
    ]
    write_atomic(out / "scores.csv", "\n".join(lines) + "\n")
    series_plot(out / "scores.png", s, scores, threshold, n_fit, label_windows, title=model)
    write_atomic(out / "detect.json", json.dumps(summary, indent=2) + "\n")
    summary["out"] = str(out)
    return summary


def series_plot(path, s: Series, scores, threshold, n_fit, label_windows=None, title=None):
    """The series (first column), its scores with the threshold and, when given, the
    labelled windows (red) over the fit part (grey)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    t = s.timestamps
    a.plot(t, s.values[:, 0], lw=0.6, color="tab:blue")
    a.set_ylabel(s.columns[0])
    b.plot(t, scores, lw=0.6, color="tab:purple")
    b.axhline(threshold, color="black", ls="--", lw=1, label="threshold")
    flagged = scores > threshold
    b.scatter(t[flagged], scores[flagged], s=4, color="tab:red", label="flagged")
    b.set_yscale("symlog")
    b.set_ylabel("score")
    for ax in (a, b):
        ax.axvspan(t[0], t[n_fit - 1], color="0.85", lw=0)
        for lo, hi in label_windows or ():
            ax.axvspan(lo, hi, color="tab:red", alpha=0.15, lw=0)
    b.legend(fontsize=8, loc="upper left")
    a.set_title(f"{s.name}: {title or ''} (grey: fit part, red: labelled windows)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


__all__ = [
    "SCORES",
    "Series",
    "alarm_onsets",
    "causal_parts",
    "detect_series",
    "fit_and_reconstruct",
    "fit_gaussian",
    "is_series_csv",
    "load_nab_windows",
    "mahalanobis",
    "point_errors",
    "point_labels",
    "read_series",
    "score_points",
    "series_metrics",
    "smooth_scores",
    "threshold_for",
    "window_starts",
    "windows",
    "windows_for",
]
