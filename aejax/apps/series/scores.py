"""Point scores and their post-processing: the EncDec-AD Gaussian (Mahalanobis), causal
smoothing, NAB's anomaly likelihood, refractory alarms, the option checks and thresholds
(see ``aejax.apps.series``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from aejax.apps.series.vote import vote_scores
from aejax.apps.series.windows import point_errors
from aejax.errors import ConfigError, DataError

SCORES = ("mahalanobis", "error", "vote")


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


def alarm_onsets(flags: np.ndarray) -> np.ndarray:
    """Indices where a run of consecutive flagged points begins."""
    f = np.asarray(flags, bool)
    return np.flatnonzero(f & ~np.concatenate([[False], f[:-1]]))


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


def score_points(
    starts: np.ndarray,
    step_errors: np.ndarray,
    n: int,
    n_train: int,
    n_fit: int,
    score: str,
    forest: np.ndarray | None = None,
) -> np.ndarray:
    """``[n]`` point scores from per-step absolute errors ``[M, W, D]`` (module docstring).

    ``score="vote"`` needs ``forest [n]``, an isolation forest's point scores on the same
    windows (``aejax.apps.series.vote.forest_points``): the result is the mean of its and
    the ``error`` score's robust z over the validation points (``vote_scores``).
    """
    if score not in SCORES:
        raise DataError(f"score {score!r}: choose one of {SCORES}")
    if (score == "vote") != (forest is not None):
        raise DataError(
            "score 'vote' needs the forest's point scores (forest_points), and only it takes them"
        )
    if score in ("error", "vote"):
        err = point_errors(np.square(step_errors), starts, n).sum(axis=-1)
        return err if score == "error" else vote_scores([err, forest], n_train, n_fit)
    e = point_errors(step_errors, starts, n)  # [n, D] mean |error| per point
    mu, prec = fit_gaussian(e[n_train:n_fit])
    return mahalanobis(e, mu, prec)
