"""Threshold rules on anomaly scores (higher = more anomalous): pure numpy functions.

Each returns the score above which an example is an outlier (``score > threshold``).

- ``contamination_threshold``: the ``1 - c`` quantile of the training scores, so a
  fraction ``c`` of them lies above (exactly ``round(c N)`` when there are no ties).
- ``mad_threshold``: the automatic rule, needing neither labels nor a contamination
  guess: ``median + k * 1.4826 * MAD`` of the cube roots of the scores. A reconstruction
  score is a sum of squared errors, near a scaled chi-square, and the cube root of a
  chi-square is near normal (Wilson & Hilferty 1931), so at ``k = 3`` the rule flags well
  under 1% of a clean sample (0.2% of chi-square samples with 2 to 100 degrees of
  freedom) and each planted outlier whose error stands out.
- ``iqr_threshold``: Tukey's fence ``Q3 + k * IQR`` of the cube roots.
- ``percentile_threshold``: a percentile of scores of clean rows (novelty mode: the
  detector's held-out validation rows).
- ``best_f1_threshold``: the threshold of best F1 against labels (1 = anomaly).

``"auto"`` is the default ensemble's rule (``aejax.estimators.ensemble.AUTO_FENCE``): its
scores are robust z-scores, so the fence is a fixed number on them (0.75, chosen by F1
leaving ADBench sets out).
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.metrics import precision_recall_curve

from aejax.errors import ConfigError, did_you_mean

RULES = ("auto", "contamination", "mad", "iqr", "validation", "f1")
_MAD_TO_SIGMA = 1.4826  # MAD of a standard normal is 1 / 1.4826


def contamination_threshold(scores: np.ndarray, contamination: float) -> float:
    """The ``1 - contamination`` quantile of ``scores: [N]``; ``contamination`` in (0, 0.5]."""
    return float(np.quantile(np.asarray(scores, np.float64), 1.0 - contamination))


def mad_threshold(scores: np.ndarray, k: float = 3.0) -> float:
    """``(median + k * 1.4826 * MAD)^3`` of ``cbrt(scores: [N])``, on the score scale.

    A zero MAD (over half the scores equal) falls back to the largest score: nothing is
    flagged rather than half the data.
    """
    roots = np.cbrt(np.asarray(scores, np.float64))
    median = np.median(roots)
    mad = np.median(np.abs(roots - median))
    if mad == 0:
        return float(np.max(scores))
    return float((median + k * _MAD_TO_SIGMA * mad) ** 3)


def iqr_threshold(scores: np.ndarray, k: float = 1.5) -> float:
    """Tukey's upper fence ``Q3 + k * (Q3 - Q1)`` of ``cbrt(scores)``, on the score scale."""
    roots = np.cbrt(np.asarray(scores, np.float64))
    q1, q3 = np.quantile(roots, [0.25, 0.75])
    if q3 == q1:
        return float(np.max(scores))
    return float((q3 + k * (q3 - q1)) ** 3)


def percentile_threshold(clean_scores: np.ndarray, percentile: float = 99.0) -> float:
    """The ``percentile``-th percentile of the scores of rows known to be normal."""
    return float(np.percentile(np.asarray(clean_scores, np.float64), percentile))


def best_f1_threshold(scores: np.ndarray, y: np.ndarray) -> float:
    """The threshold that maximizes F1 of ``score > threshold`` against ``y`` (1 = anomaly).

    Raises:
      ValueError: ``y`` is not 0/1 of the scores' length, or has no anomaly.
    """
    scores = np.asarray(scores, np.float64)
    y = np.asarray(y)
    if y.shape != scores.shape or not np.isin(y, (0, 1)).all():
        raise ValueError(
            f"threshold='f1' needs labels y of shape {scores.shape} with 1 = anomaly and "
            f"0 = normal; got shape {y.shape} and values {np.unique(y)[:5]}"
        )
    if not y.any():
        raise ValueError("threshold='f1' needs at least one anomaly (y == 1) in the labels")
    precision, recall, cut = precision_recall_curve(y, scores)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    best = int(np.argmax(f1[:-1]))  # the last point has no threshold
    # precision_recall_curve flags score >= cut; the largest score below it flags the same.
    below = scores[scores < cut[best]]
    return float(below.max()) if below.size else float(np.nextafter(cut[best], -np.inf))


def resolve_rule(
    contamination: object, threshold: object, *, ensemble: bool, model: object = None
) -> str | float:
    """The threshold rule ``AnomalyDetector``'s parameters ask for, validated.

    Args:
      contamination: None, ``"auto"`` or a fraction in (0, 0.5].
      threshold: None, a rule of ``RULES`` or a finite number.
      ensemble: whether the detector is the default ensemble (its default rule is
        ``"auto"``; one model's is ``"mad"``).
      model: the model named in errors.

    Returns:
      A rule name or a fixed score threshold.

    Raises:
      ConfigError (a ValueError): ``contamination`` outside (0, 0.5] (a share of
        outliers: above half, the "outliers" would be the majority and the rule would
        flag normal rows), a threshold that is neither a finite number nor a rule,
        ``"contamination"`` without a contamination, ``"auto"`` for one model.
    """
    c, t = contamination, threshold
    if c is not None and not (isinstance(c, str) and c == "auto"):
        if isinstance(c, bool) or not isinstance(c, numbers.Real) or not 0 < c <= 0.5:
            raise ConfigError(
                f"contamination={c!r}: expected a fraction in (0, 0.5], the share of "
                "outliers (above half, the outliers would be the majority), 'auto' or None"
            )
    if t is None and c is not None and c != "auto":
        return "contamination"
    if t is None:
        return "auto" if ensemble else "mad"
    if isinstance(t, numbers.Real) and not isinstance(t, bool):
        if not np.isfinite(t):
            raise ConfigError(
                f"threshold={t!r}: a fixed threshold must be a finite score (or one of "
                f"{', '.join(RULES)})"
            )
        return float(t)
    if t not in RULES:
        raise ConfigError(
            f"threshold={t!r}: expected a number or one of {', '.join(RULES)}"
            f"{did_you_mean(t, RULES)}"
        )
    if t == "auto" and not ensemble:
        raise ConfigError(
            "threshold='auto' is the default ensemble's rule (model=None, tables); "
            f"model={model!r} takes 'mad', 'iqr', 'validation', 'contamination', 'f1'"
        )
    if t == "contamination" and (c is None or c == "auto"):
        raise ConfigError("threshold='contamination' needs contamination= in (0, 0.5]")
    return t
