"""scikit-learn estimators on the aejax engine: ``Autoencoder`` (a transformer) and
``AnomalyDetector`` (an outlier detector, with PyOD's attributes too)."""

from aejax.estimators.detector import AnomalyDetector
from aejax.estimators.transformer import Autoencoder

__all__ = ["Autoencoder", "AnomalyDetector"]
