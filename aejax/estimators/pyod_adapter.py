"""``AejaxOD``: ``aejax.AnomalyDetector`` as a PyOD detector (``pyod.models.base.BaseDetector``).

A drop-in for PyOD code: ``fit`` sets ``decision_scores_``, ``threshold_`` and ``labels_``
through PyOD's own ``_process_decision_scores`` (the ``1 - contamination`` percentile),
and ``decision_function`` returns anomaly scores, so PyOD's ``predict``,
``predict_proba`` and ``fit_predict_score`` work unchanged. Importing this module needs
``pyod`` (``pip install pyod``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pyod.models.base import BaseDetector
from sklearn.utils.validation import check_array, check_is_fitted

from aejax.estimators.detector import AnomalyDetector


class AejaxOD(BaseDetector):
    """PyOD's interface over ``AnomalyDetector``.

    Args:
      contamination: PyOD's outlier fraction in (0, 0.5] (its default, 0.1).
      model: a registry model name.
      epochs: as ``AnomalyDetector`` (None: about 1500 steps).
      random_state: the seed (None means 0).
      hparams: other ``AnomalyDetector`` keywords, e.g. ``{"hidden": (64,)}``.

    Attributes:
      detector_: the fitted ``AnomalyDetector``.
      decision_scores_, threshold_, labels_: PyOD's, of the training rows.
    """

    def __init__(
        self,
        contamination: float = 0.1,
        model: str = "ae",
        epochs: int | None = None,
        random_state: Any = None,
        hparams: dict | None = None,
    ):
        super().__init__(contamination=contamination)
        self.model = model
        self.epochs = epochs
        self.random_state = random_state
        self.hparams = hparams

    def fit(self, X: Any, y: Any = None) -> AejaxOD:
        """Trains on ``X: [N, D]`` (``y`` ignored, as PyOD's unsupervised detectors do)."""
        X = check_array(X)
        self._set_n_classes(y)
        self.detector_ = AnomalyDetector(
            model=self.model,
            contamination=self.contamination,
            epochs=self.epochs,
            random_state=self.random_state,
            **(self.hparams or {}),
        ).fit(X)
        self.decision_scores_ = self.detector_.decision_scores_
        self._process_decision_scores()
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """``[N]`` anomaly scores (higher = more anomalous)."""
        check_is_fitted(self, ["detector_"])
        return self.detector_.anomaly_score(X)
