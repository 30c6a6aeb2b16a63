"""Time-series anomaly detection: windows of a series, point scores, thresholds, NAB labels.

The protocol is causal (as NAB's): a model sees only the first ``train_fraction`` of a
series, the *fit part*. Its first ``1 - val_share`` give the training windows, the rest
the clean validation windows, on which early stopping, the EncDec-AD Gaussian and the
``validation`` threshold are fitted. Values are standardized per column with the fit
part's mean and scale. Every point of the series is then scored; metrics count only the
points after the fit part.

Windows: ``window`` consecutive points every ``stride`` points, the last one ending at the
last point (so every point is covered); window ``i`` starts at ``starts[i]`` and keeps the
timestamps ``timestamps[starts[i] : starts[i] + window]``. ``window="day"`` sets it from
the timestamps to one day of points (``points_per_day``: 288 for 5-minute data, 24 for
hourly), at most what the training and the validation parts each hold (``resolve_window``):
a window that spans the series' seasonal period lets the model reconstruct a whole cycle,
so a day that departs from the usual shape stands out, where 32 points see a fraction of
it (EncDec-AD and most of the literature set the window from the domain's period; NAB's
series are daily operational data). ``stride=None`` takes ``window // 32`` (at least 1):
each point still lies in about 32 windows, and an epoch costs about as many steps as
windows of 32 at stride 1.

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

Anomaly likelihood (``post="likelihood"``, off by default; Ahmad et al. 2017, NAB's HTM
detector): each score is compared with a Gaussian fitted to the scores of the last 8640
points (from the validation part on): the likelihood ``L_t`` is the normal CDF of the
last 10 scores' mean, and a point is flagged when ``L_t >= 1 - 1e-5``
(``anomaly_likelihood``). The Gaussian follows the scores, so scores that drift after the
fit part stop raising alarms; only a sudden rise does. The settings are the paper's, not
tuned here. ``refractory=R`` (off) lets an alarm silence new ones for ``R`` points
(``suppress_alarms``).

Alarms: a run of consecutive flagged points is one alarm, at its first point (what pages
an operator). ``windows_hit`` is the share of labelled windows (those reaching past the
fit part) holding at least one flagged point; ``alarms_in_windows`` the share of alarms
whose first point lies in a labelled window; ``false_alarms_per_day`` the alarms outside
every window per day of the scored part.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import time
from typing import Any

import numpy as np

from aejax._json import dumps_strict
from aejax.errors import ConfigError, DataError
from aejax.outputs import atomic_path, check_output_dir

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


POSTS = ("none", "likelihood")
LIKELIHOOD_HISTORY = 8640  # W, points of history (the paper's; 30 days of 5-minute points)
LIKELIHOOD_SHORT = 10  # W', points of the short-term mean (the paper's)
LIKELIHOOD_EPSILON = 1e-5  # an alarm when L_t >= 1 - epsilon (the paper's)


def _log10_tail(z: np.ndarray) -> np.ndarray:
    """``log10 Q(z)`` of the standard normal tail ``Q(z) = P(Z > z)``, exact far out in
    the tail (``Q(40)`` underflows, its log does not); ``-inf`` at ``z = +inf``."""
    from scipy.special import log_ndtr  # scipy comes with scikit-learn

    return log_ndtr(-np.asarray(z, np.float64)) / np.log(10.0)


def _check_windows(history: int, short: int) -> None:
    if history < 2 or not 1 <= short <= history:
        raise DataError(
            f"anomaly likelihood: history {history} and short {short}: expected "
            "history >= 2 and 1 <= short <= history"
        )


def anomaly_likelihood(
    scores: np.ndarray,
    *,
    history: int = LIKELIHOOD_HISTORY,
    short: int = LIKELIHOOD_SHORT,
    start: int = 0,
    log: bool = False,
) -> np.ndarray:
    """Numenta's anomaly likelihood of raw scores ``[N]``: ``[N]`` float64, causal.

    Ahmad, Lavin, Purdy and Agha (2017), "Unsupervised real-time anomaly detection for
    streaming data", Neurocomputing 262, eqs. (2)-(5) (NAB's HTM detector). For each point
    ``t >= start``, with ``H_t = scores[max(start, t - history + 1) : t + 1]`` (the last
    ``history`` points, fewer at the start, the current one included as in the paper):

        mu_t, sigma_t = mean(H_t), std(H_t, ddof=1)
        m_t = mean(scores[max(start, t - short + 1) : t + 1])
        L_t = 1 - Q((m_t - mu_t) / sigma_t)

    ``Q`` the standard normal tail. ``L_t`` is one-sided (a recent mean below the history's
    gives ``L_t < 0.5``; nupic's code folds it onto the upper tail, the paper does not). The
    Gaussian follows the scores' own level and spread, so a score that drifts slowly after
    the fit part raises no alarm, a sudden rise does: the paper flags ``L_t >= 1 - epsilon``
    (``epsilon = 1e-5``). Points before ``start`` (such as a model's in-sample training
    points, whose scores are biased low) are left out of every history and get 0.5, as does
    a point with a single history point. A constant history gives ``0.5`` when ``m_t``
    equals it and ``1`` when ``m_t`` is above it.

    Args:
      scores: ``[N]`` raw scores, higher is more anomalous.
      history: ``W``, points of the rolling Gaussian (the paper's 8640).
      short: ``W'``, points of the short-term mean (the paper's 10), at most ``history``.
      start: the first point of every history.
      log: return NAB's log-likelihood score ``-log10(1 - L_t) / 10`` instead, computed
        from ``log Q`` so it keeps ranking where ``L_t`` rounds to 1 (NAB caps it at 1, this
        does not); ``L_t >= 1 - epsilon`` is ``score >= -log10(epsilon) / 10`` (0.5 for the
        paper's epsilon).

    Raises:
      DataError: ``scores`` not 1-d, ``history < 2``, ``short`` not in ``[1, history]``,
        ``start`` outside ``[0, N]``.
    """
    x = np.asarray(scores, np.float64)
    if x.ndim != 1:
        raise DataError(f"anomaly_likelihood: scores of shape {x.shape}; expected [N]")
    _check_windows(history, short)
    if not 0 <= start <= len(x):
        raise DataError(f"anomaly_likelihood: start {start} outside [0, {len(x)}]")
    n = len(x)
    z = np.zeros(n)
    if start < n:
        h = x[start:] - x[start]  # a causal shift: sums of a constant history stay exact
        c = np.concatenate([[0.0], np.cumsum(h)])
        c2 = np.concatenate([[0.0], np.cumsum(h * h)])
        t = np.arange(len(h))
        lo = np.maximum(0, t - history + 1)
        k = (t + 1 - lo).astype(np.float64)
        mu = (c[t + 1] - c[lo]) / k
        mean_sq = (c2[t + 1] - c2[lo]) / k
        var = np.maximum(mean_sq - mu * mu, 0.0) * k / np.maximum(k - 1, 1)
        lo_s = np.maximum(0, t - short + 1)
        d = (c[t + 1] - c[lo_s]) / (t + 1 - lo_s) - mu
        # A spread at the level of rounding is none: then only the sign of d counts.
        flat = var <= 1e-20 * mean_sq
        tol = 1e-9 * np.sqrt(mean_sq)
        with np.errstate(divide="ignore", invalid="ignore"):
            zz = np.where(
                flat,
                np.where(d > tol, np.inf, np.where(d < -tol, -np.inf, 0.0)),
                d / np.sqrt(np.where(flat, 1.0, var)),
            )
        zz[k < 2] = 0.0
        z[start:] = zz
    log_tail = _log10_tail(z)  # log10 (1 - L)
    return -log_tail / 10.0 if log else -np.expm1(log_tail * np.log(10.0))


def likelihood_threshold(epsilon: float = LIKELIHOOD_EPSILON) -> float:
    """The log-likelihood score (``anomaly_likelihood(log=True)``) at which ``L_t`` reaches
    ``1 - epsilon``: ``-log10(epsilon) / 10``."""
    if not 0 < epsilon < 0.5:
        raise DataError(f"epsilon {epsilon}: expected a tail probability in (0, 0.5)")
    return float(-np.log10(epsilon) / 10.0)


def suppress_alarms(flags: np.ndarray, period: int) -> np.ndarray:
    """``[N]`` bool: ``flags [N]`` with every run of flagged points cleared whose first point
    comes less than ``period`` points after the first point of the last run kept (a
    refractory period: one event, one alarm). ``period <= 1`` keeps every run."""
    f = np.asarray(flags, bool).copy()
    if period <= 1 or not f.any():
        return f
    onsets = alarm_onsets(f)
    ends = np.flatnonzero(f & ~np.concatenate([f[1:], [False]])) + 1  # run i: onsets[i]:ends[i]
    last = None
    for a, b in zip(onsets, ends, strict=True):  # a loop over runs, not points
        if last is not None and a - last < period:
            f[a:b] = False
        else:
            last = a
    return f


def _is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)


def check_contamination(contamination: Any) -> None:
    """Raises ConfigError unless ``contamination`` is a share of outliers in (0, 0.5]."""
    if not _is_real(contamination) or not 0 < contamination <= 0.5:
        raise ConfigError(
            f"contamination {contamination!r}: expected a fraction in (0, 0.5], the share of "
            "outliers (above half, the outliers would be the majority)"
        )


def check_percentile(percentile: Any) -> None:
    """Raises ConfigError unless ``percentile`` lies in (0, 100]."""
    if not _is_real(percentile) or not 0 < percentile <= 100:
        raise ConfigError(f"percentile {percentile!r}: expected a number in (0, 100]")


def check_options(
    *,
    window: Any,
    stride: Any,
    train_fraction: Any,
    val_share: Any,
    score: Any,
    smooth: Any,
    refractory: Any,
    percentile: Any,
    contamination: Any,
) -> None:
    """Refuses, before any data is read or model fitted, options ``detect_series`` could
    only trip over later (or, like ``window=0``, not at all).

    Raises:
      ConfigError: naming the option and its allowed values.
    """
    if not (window == "day" or (_is_int(window) and window >= 1)):
        raise ConfigError(f"window {window!r}: expected a number of points >= 1, or 'day'")
    if stride is not None and not (_is_int(stride) and stride >= 1):
        raise ConfigError(f"stride {stride!r}: expected a number of points >= 1 (or None)")
    for name, value in (("train_fraction", train_fraction), ("val_share", val_share)):
        if not _is_real(value) or not 0 < value < 1:
            raise ConfigError(f"{name} {value!r}: expected a number in (0, 1)")
    if score not in SCORES:
        raise ConfigError(f"score {score!r}: choose one of {', '.join(SCORES)}")
    for name, value in (("smooth", smooth), ("refractory", refractory)):
        if not (_is_int(value) and value >= 0):
            raise ConfigError(f"{name} {value!r}: expected a number of points >= 0")
    check_percentile(percentile)
    if contamination is not None:
        check_contamination(contamination)


def threshold_for(
    scores: np.ndarray,
    val_scores: np.ndarray,
    *,
    percentile: float = 99.5,
    contamination: float | None = None,
) -> tuple[float, str]:
    """``(threshold, rule)``: the ``1 - contamination`` quantile of ``scores`` when
    ``contamination`` is given, else the ``percentile`` of the clean ``val_scores``
    (100: their max)."""
    if contamination is not None:
        check_contamination(contamination)
        return float(np.quantile(scores, 1.0 - contamination)), f"contamination {contamination:g}"
    check_percentile(percentile)
    rule = "validation max" if percentile == 100 else f"validation p{percentile:g}"
    return float(np.percentile(val_scores, percentile)), rule


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
    from aejax.inference import batched_apply

    return batched_apply(result.model, result.variables, x, "call", min(batch, len(x)))[0]


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
    window: int | str = 32,
    stride: int | None = None,
    train_fraction: float = 0.15,
    val_share: float = 0.3,
    score: str = "mahalanobis",
    smooth: int = 0,
    post: str = "none",
    history: int = LIKELIHOOD_HISTORY,
    short: int = LIKELIHOOD_SHORT,
    epsilon: float = LIKELIHOOD_EPSILON,
    refractory: int = 0,
    percentile: float = 99.5,
    contamination: float | None = None,
    labels: str | os.PathLike | None = None,
    overrides: dict | None = None,
    seed: int = 0,
    progress: bool = False,
    timestamps: str = "increasing",
    force: bool = False,
) -> dict[str, Any]:
    """Causal detection on a ``timestamp,value[,...]`` CSV: writes ``out_dir/scores.csv``
    (``timestamp,score,is_anomaly``), ``scores.png`` and ``detect.json``; ``out_dir`` may
    exist, but not those files in it unless ``force`` (checked first,
    ``aejax.outputs.check_output_dir``).

    ``post="likelihood"`` turns the (optionally ``smooth``-ed) scores into NAB's
    log-likelihood score (``anomaly_likelihood(log=True)``, histories from the validation
    part on, ``history`` and ``short`` points) and flags ``L_t >= 1 - epsilon`` instead of
    the validation percentile (``contamination``, when given, still wins).
    ``refractory=R`` clears every run of flags starting less than ``R`` points after the
    last alarm kept (``suppress_alarms``). ``window="day"`` spans one day of points from the
    timestamps (``resolve_window``: the seasonal period of daily data; on NAB it lifted
    seq2seq_ae's point ROC-AUC, see docs/results.md); ``stride=None`` is ``window // 32``.
    The default stays 32 points: a day is domain knowledge, not every series is daily.
    ``timestamps`` says how rows are ordered (``read_series``): by default the timestamps
    must increase strictly, so the fit part is the past.

    Raises:
      ConfigError: an option outside its range (``check_options``), before anything is read.
      DataError: what ``read_series`` refuses; a series too short for the windows.

    Returns:
      The summary written to ``detect.json``; with ``labels`` (NAB's windows JSON) it holds
      ``series_metrics`` of the points after the fit part.
    """
    check_output_dir(out_dir, ("scores.csv", "scores.png", "detect.json"), force=force)
    # Every option is checked before the file is read and the model trained.
    check_options(
        window=window,
        stride=stride,
        train_fraction=train_fraction,
        val_share=val_share,
        score=score,
        smooth=smooth,
        refractory=refractory,
        percentile=percentile,
        contamination=contamination,
    )
    if post not in POSTS:
        raise DataError(f"post {post!r}: choose one of {POSTS}")
    if post == "likelihood":
        _check_windows(history, short)
        likelihood_threshold(epsilon)
    _config(model, overrides, seed, progress)  # an unknown model or Config field
    from aejax.data.scaler import Standardizer

    s = read_series(path, timestamps=timestamps)
    n = len(s.values)
    label_windows = windows_for(load_nab_windows(labels), path) if labels else None
    requested = window
    window = resolve_window(window, s.timestamps, train_fraction, val_share)
    stride = default_stride(window) if stride is None else int(stride)
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
    if post == "likelihood":
        scores = anomaly_likelihood(scores, history=history, short=short, start=n_train, log=True)
    if post == "likelihood" and contamination is None:
        threshold, rule = likelihood_threshold(epsilon), f"likelihood >= 1 - {epsilon:g}"
        flags = scores >= threshold
    else:
        threshold, rule = threshold_for(
            scores[n_fit:],
            scores[n_train:n_fit],
            percentile=percentile,
            contamination=contamination,
        )
        flags = scores > threshold
    flags = suppress_alarms(flags, refractory)
    summary: dict[str, Any] = {
        "data": str(path),
        "points": n,
        "columns": list(s.columns),
        "model": model,
        "window": window,
        **({"window_rule": requested} if isinstance(requested, str) else {}),
        "stride": stride,
        "train_fraction": train_fraction,
        "fit_points": n_fit,
        "fit_until": str(s.timestamps[n_fit - 1]),
        "score": score,
        "smooth": smooth,
        "post": post,
        **({"history": history, "short": short} if post == "likelihood" else {}),
        "refractory": refractory,
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
    with atomic_path(out / "scores.png") as tmp:
        series_plot(
            tmp, s, scores, threshold, n_fit, label_windows, title=model, flags=flags
        )
    write_atomic(out / "detect.json", dumps_strict(summary))
    summary["out"] = str(out)
    return summary


def series_plot(
    path, s: Series, scores, threshold, n_fit, label_windows=None, title=None, flags=None
):
    """The series (first column), its scores with the threshold, the flagged points
    (``flags [N]``, default ``scores > threshold``) and, when given, the labelled windows
    (red) over the fit part (grey)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    t = s.timestamps
    a.plot(t, s.values[:, 0], lw=0.6, color="tab:blue")
    a.set_ylabel(s.columns[0])
    b.plot(t, scores, lw=0.6, color="tab:purple")
    b.axhline(threshold, color="black", ls="--", lw=1, label="threshold")
    flagged = scores > threshold if flags is None else np.asarray(flags, bool)
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
    "POSTS",
    "SCORES",
    "Series",
    "alarm_onsets",
    "anomaly_likelihood",
    "causal_parts",
    "default_stride",
    "detect_series",
    "fit_and_reconstruct",
    "fit_gaussian",
    "is_series_csv",
    "likelihood_threshold",
    "load_nab_windows",
    "mahalanobis",
    "point_errors",
    "point_labels",
    "points_per_day",
    "read_series",
    "resolve_window",
    "score_points",
    "series_metrics",
    "smooth_scores",
    "suppress_alarms",
    "threshold_for",
    "window_starts",
    "windows",
    "windows_for",
]
