"""The ``vote`` score of a series: an autoencoder's error and an isolation forest, each put
on a robust z scale over the clean validation points, averaged.

An autoencoder's reconstruction error and an isolation forest on the same windows fail on
different series (on NAB the forest led on traffic and AWS series, the autoencoder on the
tweets and temperatures: benchmarks/results/2026-12-07-cpu-nab-cv). Each member's point
scores ``s [N]`` become ``(s - median(s_val)) / IQR(s_val)``, ``s_val`` their values on the
validation part (``n_train:n_fit``: clean, and never a later point, so the vote stays
causal), and the vote is the mean of those. The IQR, not the standard deviation: a few
large validation scores do not shrink a member's say.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from aejax.apps.series.windows import window_points, window_starts, windows
from aejax.errors import DataError

FOREST_TREES = 100


def forest_points(
    values: np.ndarray,
    n_train: int,
    window: int,
    stride: int,
    *,
    seed: int = 0,
    trees: int = FOREST_TREES,
) -> np.ndarray:
    """``[N]`` float64: an IsolationForest's point scores on ``values [N, D]``.

    The forest (scikit-learn, ``trees`` trees, ``random_state=seed``) is fitted on the
    flattened windows ``[M, window * D]`` of the training part (``values[:n_train]``, every
    ``stride`` points: the autoencoders' training windows); every window of the series
    (stride ``stride``) gets its anomaly score ``-score_samples``, and each point the mean
    score of the windows covering it (``point_errors``).
    """
    from sklearn.ensemble import IsolationForest

    tr = windows(values, window_starts(n_train, window, stride), window)
    starts = window_starts(len(values), window, stride)
    every = windows(values, starts, window).reshape(len(starts), -1)
    forest = IsolationForest(n_estimators=trees, random_state=seed)
    forest.fit(tr.reshape(len(tr), -1))
    return window_points(-forest.score_samples(every), starts, window, len(values))


def robust_z(scores: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``(scores - median(reference)) / IQR(reference)``: ``[N]`` float64 from ``scores [N]``
    and ``reference [K]``. A reference whose IQR is 0 is scaled by its standard deviation,
    and by 1 when that is 0 too (a constant reference: only the shift is left)."""
    ref = np.asarray(reference, np.float64).ravel()
    if ref.size == 0:
        raise DataError("robust_z: an empty reference (no validation points)")
    q1, med, q3 = np.percentile(ref, [25.0, 50.0, 75.0])
    scale = q3 - q1
    if not scale > 0:
        scale = float(ref.std()) if ref.std() > 0 else 1.0
    return (np.asarray(scores, np.float64) - med) / scale


def vote_scores(members: Sequence[np.ndarray], n_train: int, n_fit: int) -> np.ndarray:
    """``[N]``: the mean of each member's ``robust_z`` (``members``: point scores ``[N]``
    each, higher more anomalous), its median and IQR taken on the validation points
    ``n_train:n_fit``."""
    if not members:
        raise DataError("vote: no member scores")
    if not 0 <= n_train < n_fit <= len(members[0]):
        raise DataError(f"vote: validation part {n_train}:{n_fit} outside [0, {len(members[0])}]")
    if any(np.shape(m) != np.shape(members[0]) for m in members):
        raise DataError(f"vote: member scores of shapes {[np.shape(m) for m in members]}")
    return np.mean([robust_z(m, np.asarray(m)[n_train:n_fit]) for m in members], axis=0)
