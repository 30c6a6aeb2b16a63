"""Range-aware ROC/PR of point scores on labelled anomaly ranges: Range-AUC and VUS.

Paparrizos et al., "Volume Under the Surface: a new accuracy evaluation measure for
time-series anomaly detection" (VLDB 2022), as TSB-AD (Liu & Paparrizos, NeurIPS 2024)
computes it: ``basic_metricor.RangeAUC_volume_opt`` in ``TSB_AD/evaluation/basic_metrics.py``
(the definitions below follow that code; this is a vectorized re-implementation, not a copy).

For one buffer length ``w`` (``range_auc``):

- *soft labels*: each labelled range ``[s, e]`` keeps label 1; the ``w // 2`` points on
  either side get ``sqrt(1 - d / w)`` at distance ``d = 1 .. w // 2`` from the range's edge
  (buffers of neighbouring ranges add up, then are clipped at 1);
- *extended ranges*: ``[s - w // 2, e + w // 2]`` (clipped to the series), merged where two
  touch or overlap;
- thresholds: ``thresholds`` scores taken at evenly spaced ranks of the scores sorted
  high to low (``np.linspace(0, N - 1, thresholds).astype(int)``, TSB-AD's 250); a point
  is predicted at threshold ``t`` when ``score >= t``;
- at each threshold, with ``B`` the soft labels of the predicted buffer points (outside
  the ranges), ``P`` the labelled points and ``TP0`` the predicted labelled points:
  ``TP = TP0 + B``, ``P' = P + B / 2``, ``recall = min(TP / P', 1)``, the *existence
  reward* ``E`` = the share of extended ranges holding a predicted point,
  ``TPR = recall * E``, ``FPR = (predicted - TP) / (N - P')``, ``precision = TP /
  predicted``;
- ``range-ROC``: the trapezoid area of ``(0, 0), (FPR_j, TPR_j) ..., (1, 1)``;
  ``range-PR``: ``sum_j (TPR_j - TPR_{j-1}) * precision_j`` with ``TPR_0 = 0`` (the
  ``(1, 1)`` end left out), as the reference.

``vus`` averages both over ``w = 0, 1, ..., max_buffer`` (the volume under the surface,
TSB-AD's ``VUS-ROC`` / ``VUS-PR``; TSB-AD calls it with ``max_buffer = 2 * period``).

Identities: with one labelled range and ``w <= 1`` (no buffer) ``E = 1`` wherever a
labelled point is predicted, so the range-ROC and range-PR are the point ROC-AUC and the
step-wise average precision at the sampled thresholds, and exactly scikit-learn's
``roc_auc_score`` and ``average_precision_score`` once ``thresholds >= N`` (every score is
a threshold). Deviations from the reference: none in the arithmetic; it runs in
``O(N log N + T * (N_buffer * W + ranges * W))`` (a matrix product over the buffer points)
instead of the reference's ``O(W * T * N)`` loop, so a buffer of a day of 5-minute points
costs a fraction of a second.
"""

from __future__ import annotations

import numpy as np

from aejax.errors import DataError

THRESHOLDS = 250  # TSB-AD's ``thre``


def label_ranges(y: np.ndarray) -> np.ndarray:
    """``[R, 2]`` int64 ``(start, end)`` (both inside) of the runs of 1 in ``y [N]``."""
    y = np.asarray(y).astype(bool).astype(np.int8)
    edges = np.diff(np.concatenate([[0], y, [0]]))
    return np.stack([np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1], axis=1)


def _check(y, scores) -> tuple[np.ndarray, np.ndarray]:
    y, scores = np.asarray(y), np.asarray(scores, np.float64)
    if y.ndim != 1 or y.shape != scores.shape or y.size < 2:
        raise DataError(
            f"VUS: expected labels and scores of one shape [N], N >= 2; got "
            f"{y.shape} and {scores.shape}"
        )
    if not np.isin(y, (0, 1)).all():
        raise DataError(f"VUS: labels must be 0 or 1; got {np.unique(y)[:5]}")
    if y.min() == y.max():
        raise DataError("VUS: the labels hold one class only, VUS needs both")
    if not np.isfinite(scores).all():
        raise DataError("VUS: the scores hold NaN/Inf")
    return y.astype(bool), scores


def _extended(ranges: np.ndarray, half: int, n: int) -> list[tuple[int, int]]:
    """The ranges widened by ``half`` on both sides, clipped to ``[0, n - 1]``, merged
    where they touch (the reference's ``new_sequence``)."""
    out: list[list[int]] = []
    for s, e in ranges:
        lo, hi = max(int(s) - half, 0), min(int(e) + half, n - 1)
        if out and out[-1][1] >= lo:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return [(a, b) for a, b in out]


def range_curves(
    y: np.ndarray, scores: np.ndarray, buffers, thresholds: int = THRESHOLDS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(tpr, fpr, precision)``, each ``[len(buffers), thresholds]``: the range-based
    points of every buffer length in ``buffers`` at the sampled thresholds (module
    docstring), of ``scores [N]`` against 0/1 labels ``y [N]``."""
    y, scores = _check(y, scores)
    buffers = np.asarray(buffers, np.int64).reshape(-1)
    if buffers.size == 0 or buffers.min() < 0:
        raise DataError(f"VUS: buffer lengths must be >= 0; got {buffers[:5]}")
    if int(thresholds) < 2:
        raise DataError(f"VUS: thresholds {thresholds}: expected at least 2")
    n = y.size
    ranges = label_ranges(y)
    p = float(y.sum())
    ascending = np.sort(scores)
    thr = ascending[::-1][np.linspace(0, n - 1, int(thresholds)).astype(int)]  # [T], high->low
    n_pred = n - np.searchsorted(ascending, thr, side="left")  # scores >= thr
    tp0 = y.sum() - np.searchsorted(np.sort(scores[y]), thr, side="left")
    # Soft labels of the buffer points (outside every range) for each buffer length.
    half_max = int(buffers.max()) // 2
    zone = np.zeros(n, bool)
    for s, e in ranges:
        zone[max(s - half_max, 0) : s] = True
        zone[e + 1 : e + 1 + half_max] = True
    z = np.flatnonzero(zone & ~y)  # [Z]
    soft = np.zeros((buffers.size, z.size))
    for s, e in ranges:
        d = np.where(z < s, s - z, z - e).astype(np.float64)  # distance to this range's edge
        w = buffers[:, None].astype(np.float64)
        near = (d[None, :] >= 1) & (d[None, :] <= buffers[:, None] // 2)
        soft += np.where(near, np.sqrt(np.clip(1 - d[None, :] / np.maximum(w, 1), 0, 1)), 0.0)
    soft = np.minimum(soft, 1.0)
    predicted = (scores[z][None, :] >= thr[:, None]).astype(np.float64)  # [T, Z]
    b = soft @ predicted.T  # [K, T]: soft labels of the predicted buffer points
    existence = np.empty((buffers.size, thr.size))
    for k, w in enumerate(buffers):
        tops = np.array([scores[a : c + 1].max() for a, c in _extended(ranges, int(w) // 2, n)])
        existence[k] = (tops[None, :] >= thr[:, None]).mean(axis=1)
    tp = tp0[None, :] + b
    p_new = p + b / 2
    tpr = np.minimum(tp / p_new, 1.0) * existence
    fpr = (n_pred[None, :] - tp) / (n - p_new)
    precision = tp / n_pred[None, :]
    return tpr, fpr, precision


def _areas(tpr: np.ndarray, fpr: np.ndarray, precision: np.ndarray):
    """Per row: the range-ROC (trapezoids from (0, 0) to (1, 1)) and the range-PR."""
    k = tpr.shape[0]
    t = np.concatenate([np.zeros((k, 1)), tpr, np.ones((k, 1))], axis=1)
    f = np.concatenate([np.zeros((k, 1)), fpr, np.ones((k, 1))], axis=1)
    roc = (np.diff(f, axis=1) * (t[:, 1:] + t[:, :-1]) / 2).sum(axis=1)
    pr = (np.diff(t[:, :-1], axis=1) * precision).sum(axis=1)
    return roc, pr


def range_auc(
    y: np.ndarray, scores: np.ndarray, buffer: int, thresholds: int = THRESHOLDS
) -> tuple[float, float]:
    """``(range-ROC, range-PR)`` of ``scores [N]`` against 0/1 labels ``y [N]`` with soft
    labels over ``buffer`` points (``w`` in the module docstring)."""
    roc, pr = _areas(*range_curves(y, scores, [buffer], thresholds))
    return float(roc[0]), float(pr[0])


def vus(
    y: np.ndarray, scores: np.ndarray, max_buffer: int, thresholds: int = THRESHOLDS
) -> dict[str, float]:
    """``{"vus_roc", "vus_pr"}``: the range-ROC and range-PR of ``scores [N]`` against 0/1
    labels ``y [N]`` averaged over the buffer lengths ``0 .. max_buffer`` (TSB-AD's
    ``RangeAUC_volume_opt``; module docstring).

    Raises:
      DataError: labels of one class, NaN scores, shapes that differ, ``max_buffer < 0``.
    """
    if int(max_buffer) < 0:
        raise DataError(f"VUS: max_buffer {max_buffer}: expected >= 0")
    roc, pr = _areas(*range_curves(y, scores, np.arange(int(max_buffer) + 1), thresholds))
    return {"vus_roc": float(roc.mean()), "vus_pr": float(pr.mean())}
