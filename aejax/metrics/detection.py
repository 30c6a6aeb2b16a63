"""Anomaly-detection metrics on scores (higher = more anomalous) and 0/1 labels
(1 = anomaly): scikit-learn underneath, one checked entry point each."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def _check(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y)
    scores = np.asarray(scores, np.float64)
    if y.ndim != 1 or y.shape != scores.shape or y.size == 0:
        raise ValueError(
            f"expected labels and scores of one shape [N], N >= 1; got {y.shape} and {scores.shape}"
        )
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be 0 (normal) or 1 (anomaly); got {np.unique(y)[:5]}")
    if y.min() == y.max():
        raise ValueError("the labels hold one class only: ROC-AUC and AP need both")
    if not np.isfinite(scores).all():
        raise ValueError("the scores hold NaN/Inf")
    return y.astype(np.int64), scores


def roc_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of ``scores: [N]`` against ``y: [N]`` (1 = anomaly)."""
    y, scores = _check(y, scores)
    return float(skm.roc_auc_score(y, scores))


def average_precision(y: np.ndarray, scores: np.ndarray) -> float:
    """Average precision (area under the precision-recall curve, step-wise)."""
    y, scores = _check(y, scores)
    return float(skm.average_precision_score(y, scores))


def precision_at_n(y: np.ndarray, scores: np.ndarray, n: int | None = None) -> float:
    """The share of anomalies among the ``n`` top-scored rows (default ``n``: the number of
    anomalies, PyOD's convention, which makes it the R-precision). Ties at the cut are
    broken by row order (``np.argsort`` stable)."""
    y, scores = _check(y, scores)
    n = int(y.sum()) if n is None else int(n)
    if not 1 <= n <= y.size:
        raise ValueError(f"n={n}: expected 1 <= n <= {y.size}")
    top = np.argsort(-scores, kind="stable")[:n]
    return float(y[top].mean())


def detection_report(y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """``{"roc_auc", "average_precision", "precision_at_n"}`` of ``scores`` against ``y``."""
    return {
        "roc_auc": roc_auc(y, scores),
        "average_precision": average_precision(y, scores),
        "precision_at_n": precision_at_n(y, scores),
    }
