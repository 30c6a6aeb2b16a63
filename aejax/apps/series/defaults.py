"""The ``aejax detect`` defaults for a series, chosen on NAB by leaving one series out.

``python -m benchmarks nab-cv`` (benchmarks/results/2026-12-07-cpu-nab-cv) scored a grid of
settings (model ``seq2seq_ae`` or ``ae``; windows of 32 points or of one day; score
``error`` or ``mahalanobis``; post none, ``smooth`` over 128 points, ``likelihood`` or
both) on the 14 NAB series of the data folder; for each series it picked the setting with
the best mean point ROC-AUC on the other 13. The defaults are the picks on all 14:

- ``ae`` (the CLI's model): windows of a day, the ``error`` score, a causal mean over 128
  points, then Numenta's anomaly likelihood (12 of the 14 folds picked it, the other 2
  the same without the likelihood; left-out point ROC-AUC 0.738);
- ``seq2seq_ae``: windows of a day, ``error``, the 128-point mean, no likelihood (13 of
  14 folds; left-out 0.698);
- any other model takes the ``ae`` setting.

The window of 32 and the ``mahalanobis`` score, the old defaults chosen on 4 series, were
picked by no fold.
"""

from __future__ import annotations

SERIES_MODEL = "ae"
DEFAULTS: dict[str, dict] = {
    "ae": {"window": "day", "score": "error", "smooth": 128, "post": "likelihood"},
    "seq2seq_ae": {"window": "day", "score": "error", "smooth": 128, "post": "none"},
}


def series_defaults(model: str | None) -> dict:
    """``{"window", "score", "smooth", "post"}``: the defaults of ``model`` on a series."""
    return dict(DEFAULTS.get(model or SERIES_MODEL, DEFAULTS[SERIES_MODEL]))
