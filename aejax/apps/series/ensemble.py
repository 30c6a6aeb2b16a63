"""The ``ensemble`` model of a series: the table detector's ensemble on flattened windows.

``model="ensemble"`` (``detect_series``, ``aejax detect --model ensemble``) fits
``aejax.estimators.ensemble.Ensemble`` (the default detector of a table: 16 small sigmoid
autoencoders and an isolation forest, each put on a robust z and averaged) on the
flattened training windows ``[M, window * D]`` of the training part (``values[:n_train]``,
every ``stride`` points: the windows the autoencoder models train on), each of the
``window * D`` columns standardized with the training windows' own mean and standard
deviation (``Standardizer``; the values are already standardized per series column, this
evens out the positions in the window). Every window of the series (stride ``stride``) gets
``Ensemble.scores``; each point the mean score of the windows covering it
(``window_points``, as ``forest_points``); and the point scores are put on a robust z over
the validation points ``n_train:n_fit`` (``robust_z``), as the ``vote`` score is. Its one
score is that vote (``ENSEMBLE_SCORES``): the autoencoder scores ``error`` and
``mahalanobis`` are refused.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from aejax.apps.series.vote import robust_z
from aejax.apps.series.windows import window_points, window_starts, windows
from aejax.errors import ConfigError, DataError

ENSEMBLE = "ensemble"
ENSEMBLE_SCORES = ("vote",)


def ensemble_options(overrides: dict | None = None):
    """``EnsembleOptions`` from ``--set``-style ``overrides`` (its field names: ``members``,
    ``hidden``, ``code``, ``passes``, ``batch_size``, ``lr``, ``activation``,
    ``feature_fraction``, ``trees``; ``epochs`` and ``latent_dim`` read as ``passes`` and
    ``code``, as ``AnomalyDetector`` does); ConfigError names an unknown key."""
    import dataclasses

    from aejax.estimators.ensemble import EnsembleOptions

    overrides = dict(overrides or {})
    for alias, name in (("epochs", "passes"), ("latent_dim", "code")):
        if alias in overrides:
            overrides[name] = overrides.pop(alias)
    known = [f.name for f in dataclasses.fields(EnsembleOptions)]
    extra = sorted(set(overrides) - set(known))
    if extra:
        raise ConfigError(
            f"model 'ensemble' on a series: {', '.join(extra)} not among its settings "
            f"({', '.join(known)})"
        )
    return EnsembleOptions(**overrides)


def check_ensemble_score(score: Any) -> None:
    """Raises ConfigError unless ``score`` is one the ensemble gives (``ENSEMBLE_SCORES``)."""
    if score not in ENSEMBLE_SCORES:
        raise ConfigError(
            f"score {score!r} is an autoencoder's: model 'ensemble' scores "
            f"{', '.join(ENSEMBLE_SCORES)} (its autoencoders' and forest's robust z)"
        )


def ensemble_points(
    values: np.ndarray,
    n_train: int,
    n_fit: int,
    window: int,
    stride: int,
    *,
    seed: int = 0,
    overrides: dict | None = None,
) -> tuple[np.ndarray, dict]:
    """``(points [N] float64, stats)``: the ensemble's point scores of ``values [N, D]``
    (module docstring), a robust z over the validation points ``n_train:n_fit``.

    ``stats``: ``fit_seconds`` (the fit and the scoring of every window) and
    ``train_windows``.
    """
    from aejax.data.scaler import Standardizer
    from aejax.estimators.ensemble import Ensemble

    options = ensemble_options(overrides)
    n = len(values)
    if not 0 <= n_train < n_fit <= n:
        raise DataError(f"ensemble: validation part {n_train}:{n_fit} outside [0, {n}]")
    t0 = time.perf_counter()
    tr = windows(values, window_starts(n_train, window, stride), window)
    tr = tr.reshape(len(tr), -1)  # [M_train, W * D]
    scaler = Standardizer.fit(tr)
    detector = Ensemble(options).fit(scaler.transform(tr), seed)
    starts = window_starts(n, window, stride)
    every = windows(values, starts, window).reshape(len(starts), -1)  # [M, W * D]
    points = window_points(detector.scores(scaler.transform(every)), starts, window, n)
    stats = {"fit_seconds": round(time.perf_counter() - t0, 3), "train_windows": len(tr)}
    return robust_z(points, points[n_train:n_fit]), stats
