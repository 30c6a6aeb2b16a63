"""scikit-learn estimators on the aejax engine: ``AutoencoderTransformer`` (a transformer)
and ``AnomalyDetector`` (an outlier detector, with PyOD's attributes too)."""

from aejax.estimators.detector import AnomalyDetector
from aejax.estimators.transformer import AutoencoderTransformer

_WHY = " (the scikit-learn transformer; aejax.models.Autoencoder is the Linen module)"


def __getattr__(name: str):
    if name == "Autoencoder":  # renamed: aejax.models.Autoencoder is the Linen module
        from aejax.errors import renamed

        raise renamed("aejax.estimators", name, "AutoencoderTransformer", _WHY)
    raise AttributeError(f"module 'aejax.estimators' has no attribute {name!r}")


__all__ = ["AnomalyDetector", "AutoencoderTransformer"]
