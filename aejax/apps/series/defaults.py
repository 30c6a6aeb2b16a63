"""The defaults of ``detect_series`` and ``aejax detect`` on a series (one table: the CLI
passes unset options through and ``detect_series`` resolves them here), chosen on NAB by
leaving one series out.

``python -m benchmarks nab-cv`` (benchmarks/results/2026-12-07-cpu-nab-cv) scored a grid of
settings (model ``seq2seq_ae`` or ``ae``; windows of 32 points or of one day; score
``error``, ``mahalanobis`` or ``vote``; post none, ``smooth`` over 128 points,
``likelihood`` or both; and the model ``ensemble``, ``aejax.apps.series.ensemble``, under
the same windows and posts) on the 14 NAB series of the data folder; for each series it
picked the setting with the best mean point ROC-AUC on the other 13. The ``aejax`` pick on
all 14 (``ensemble``, a day, no post: left out 0.766) ships only when it beats
IsolationForest left out (0.801); it did not, so the model ``ae`` stays the default, with
each model's defaults the picks on all 14 of its own family:

- ``ae`` (the CLI's model): windows of a day, the ``vote`` score (the error's and an
  IsolationForest's robust z, averaged), no smoothing, then Numenta's anomaly likelihood
  (13 of the 14 folds picked it, the other the same without the likelihood; left-out point
  ROC-AUC 0.790, IsolationForest's own pick 0.801);
- ``seq2seq_ae``: the same (12 of 14 folds; the other 2 smoothed over 128 points before
  the likelihood; left-out 0.732);
- ``ensemble`` (added after the figures without it were seen): windows of a day, its
  ``vote``, no smoothing, no post (11 of 14 folds; left-out 0.779, the best left-out
  VUS-PR, 0.604, IsolationForest's 0.586);
- any other model takes the ``ae`` setting.

The window of 32 and the ``mahalanobis`` score were picked by no fold.
"""

from __future__ import annotations

SERIES_MODEL = "ae"
DEFAULTS: dict[str, dict] = {
    "ae": {"window": "day", "score": "vote", "smooth": 0, "post": "likelihood"},
    "seq2seq_ae": {"window": "day", "score": "vote", "smooth": 0, "post": "likelihood"},
    "ensemble": {"window": "day", "score": "vote", "smooth": 0, "post": "none"},
}


def series_defaults(model: str | None) -> dict:
    """``{"window", "score", "smooth", "post"}``: the defaults of ``model`` on a series."""
    return dict(DEFAULTS.get(model or SERIES_MODEL, DEFAULTS["ae"]))
