"""The anomaly detectors the ``anomaly`` suite compares: the baselines and the aejax detector.

Every method is a ``Method``: ``fit(x, seed)`` on rows ``x: [N, D]`` returns a fitted
object, ``score(fitted, x)`` gives ``[M]`` anomaly scores of rows ``x: [M, D]``, higher
meaning more anomalous. The suite times the two apart. ``kind`` is ``"tabular"`` (a raw
numeric table, ADBench) or ``"image"`` (flat rows of 28x28 pixels in [0, 1], one-class MNIST).

Baselines (scikit-learn and PyOD, their defaults unless said here):

- ``IsolationForest``: ``sklearn.ensemble.IsolationForest(random_state=seed)``, 100 trees,
  on the raw features; the score is ``-score_samples``.
- ``PCA``: the squared reconstruction error of ``sklearn.decomposition.PCA`` keeping 90% of
  the variance (``n_components=0.9``, the smallest number of components that explains it),
  tables standardized first (each column to zero mean and unit variance on the rows it is
  fitted on; a constant column is only centred), pixels as they are.
- ``kNN``: the mean Euclidean distance to the 5 nearest fitted rows
  (``sklearn.neighbors.NearestNeighbors``), tables standardized as for PCA. Scoring the
  very rows it was fitted on (the transductive protocol) leaves each row's own match out.
- ``PyOD AutoEncoder``: ``pyod.models.auto_encoder.AutoEncoder(random_state=seed,
  verbose=0)`` (the ``bench`` extra; torch), its own standardization; the score is
  ``decision_function``. Torch runs on ``PYOD_THREADS`` threads (see there).

The aejax entries (``AEJAX_TABULAR``, ``AEJAX_IMAGE``) call the public estimator
``aejax.AnomalyDetector``; they are skipped, with the reason, while it does not exist.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np

# One torch thread: on this 2-core machine shared with other processes, PyOD's AutoEncoder
# fitted 6_cardio in 0.67 s at 1 thread against 17.8 s at 2 (its OpenMP threads stall each
# other under load, as the PyTorch twins' did: benchmarks/README.md).
PYOD_THREADS = 1
KNN_K = 5
PCA_VARIANCE = 0.9
IMAGE_SHAPE = (28, 28, 1)


@dataclasses.dataclass(frozen=True)
class Method:
    """One detector of the suite.

    Attributes:
      name: the label in the tables.
      fit: ``(x [N, D], seed) -> fitted``.
      score: ``(fitted, x [M, D]) -> [M]`` scores, higher = more anomalous.
      stochastic: whether ``seed`` changes the result (deterministic ones run once).
      requires: ``"pyod"`` or ``"aejax.AnomalyDetector"``: what must be importable.
      settings: what the method was run with, for the JSON record.
    """

    name: str
    fit: Callable[[np.ndarray, int], Any]
    score: Callable[[Any, np.ndarray], np.ndarray]
    stochastic: bool
    requires: str | None = None
    settings: dict = dataclasses.field(default_factory=dict)


def unavailable(method: Method) -> str | None:
    """Why ``method`` cannot run here, or None when it can."""
    if method.requires == "pyod" and importlib.util.find_spec("pyod") is None:
        return "pyod is not installed (pip install 'aejax[bench]' or pip install pyod)"
    if method.requires == "aejax.AnomalyDetector":
        import aejax

        if not hasattr(aejax, "AnomalyDetector"):
            return "aejax.AnomalyDetector does not exist in this checkout yet"
    return None


class _Standardizer:
    """Column means and scales of ``x: [N, D]``; a constant column keeps scale 1."""

    def __init__(self, x: np.ndarray):
        self.mean = x.mean(axis=0)
        std = x.std(axis=0)
        self.std = np.where(std > 0, std, 1.0)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.std


def _identity(x: np.ndarray) -> np.ndarray:
    return x


def _prepare(x: np.ndarray, standardize: bool) -> Callable[[np.ndarray], np.ndarray]:
    return _Standardizer(x) if standardize else _identity


# -- IsolationForest ---------------------------------------------------------------------


def _iforest_fit(x: np.ndarray, seed: int):
    from sklearn.ensemble import IsolationForest

    return IsolationForest(random_state=seed).fit(x)


def _iforest_score(forest, x: np.ndarray) -> np.ndarray:
    return -forest.score_samples(x)


# -- PCA reconstruction error ------------------------------------------------------------


def _pca_fitter(standardize: bool) -> Callable[[np.ndarray, int], Any]:
    def fit(x: np.ndarray, seed: int):
        from sklearn.decomposition import PCA

        del seed  # svd_solver="full": deterministic
        prep = _prepare(x, standardize)
        return prep, PCA(n_components=PCA_VARIANCE, svd_solver="full").fit(prep(x))

    return fit


def _pca_score(fitted, x: np.ndarray) -> np.ndarray:
    prep, pca = fitted
    z = prep(x)
    return np.square(z - pca.inverse_transform(pca.transform(z))).sum(axis=1)


def _pca_smoothed_score(fitted, x: np.ndarray) -> np.ndarray:
    """PCA's residual smoothed as the detector smooths its own (``residual_sigma=1``), so
    the gain of the smoothing is not credited to the autoencoder."""
    from scipy import ndimage

    prep, pca = fitted
    z = prep(x)
    err = (z - pca.inverse_transform(pca.transform(z))).reshape(-1, *IMAGE_SHAPE[:2])
    return np.square(ndimage.gaussian_filter(err, sigma=(0, 1.0, 1.0))).sum(axis=(1, 2))


# -- kNN mean distance -------------------------------------------------------------------


def _knn_fitter(standardize: bool) -> Callable[[np.ndarray, int], Any]:
    def fit(x: np.ndarray, seed: int):
        from sklearn.neighbors import NearestNeighbors

        del seed
        prep = _prepare(x, standardize)
        return x, prep, NearestNeighbors(n_neighbors=KNN_K).fit(prep(x))

    return fit


def _knn_score(fitted, x: np.ndarray) -> np.ndarray:
    train, prep, nn = fitted
    if x is train:  # transductive: each row's nearest fitted row is itself, at distance 0
        dist, _ = nn.kneighbors(prep(x), n_neighbors=KNN_K + 1)
        return dist[:, 1:].mean(axis=1)
    dist, _ = nn.kneighbors(prep(x))
    return dist.mean(axis=1)


# -- PyOD AutoEncoder --------------------------------------------------------------------


def _pyod_fit(x: np.ndarray, seed: int):
    import torch
    from pyod.models.auto_encoder import AutoEncoder

    torch.set_num_threads(PYOD_THREADS)
    return AutoEncoder(random_state=seed, verbose=0).fit(x)


def _pyod_vae_fit(x: np.ndarray, seed: int):
    import torch
    from pyod.models.vae import VAE

    torch.set_num_threads(PYOD_THREADS)
    return VAE(random_state=seed, verbose=0).fit(x)


def _pyod_score(model, x: np.ndarray) -> np.ndarray:
    return model.decision_function(x)


# -- aejax.AnomalyDetector ---------------------------------------------------------------


def _aejax_fitter(**options) -> Callable[[np.ndarray, int], Any]:
    def fit(x: np.ndarray, seed: int):
        import aejax

        return aejax.AnomalyDetector(random_state=seed, **options).fit(x)

    return fit


def _aejax_score(detector, x: np.ndarray) -> np.ndarray:
    return detector.anomaly_score(x)


def _pca(kind: str) -> Method:
    standardize = kind == "tabular"
    settings = {"n_components": PCA_VARIANCE, "svd_solver": "full", "standardize": standardize}
    return Method("PCA", _pca_fitter(standardize), _pca_score, False, settings=settings)


def _knn(kind: str) -> Method:
    standardize = kind == "tabular"
    settings = {"k": KNN_K, "score": "mean distance", "standardize": standardize}
    return Method("kNN", _knn_fitter(standardize), _knn_score, False, settings=settings)


IFOREST = Method(
    "IsolationForest", _iforest_fit, _iforest_score, True, settings={"n_estimators": 100}
)
PYOD_AE = Method(
    "PyOD AutoEncoder",
    _pyod_fit,
    _pyod_score,
    True,
    requires="pyod",
    settings={"defaults": True, "verbose": 0, "torch_threads": PYOD_THREADS},
)

PYOD_VAE = Method(
    "PyOD VAE",
    _pyod_vae_fit,
    _pyod_score,
    True,
    requires="pyod",
    settings={"defaults": True, "verbose": 0, "torch_threads": PYOD_THREADS},
)

# The baselines of each protocol, in table order.
BASELINES = {
    "tabular": (IFOREST, _pca("tabular"), _knn("tabular"), PYOD_AE, PYOD_VAE),
    "image": (
        _pca("image"),
        Method(
            "PCA (smoothed residual)",
            _pca_fitter(False),
            _pca_smoothed_score,
            False,
            settings={"n_components": PCA_VARIANCE, "residual_sigma": 1.0},
        ),
        _knn("image"),
        IFOREST,
    ),
}

# The aejax detector: every default on tables; a dense AE, a conv AE and a VAE on images.
AEJAX_TABULAR = (
    Method(
        "aejax AnomalyDetector",
        _aejax_fitter(),
        _aejax_score,
        True,
        requires="aejax.AnomalyDetector",
        settings={"defaults": True},
    ),
)
AEJAX_IMAGE = tuple(
    Method(
        f"aejax AnomalyDetector ({model})",
        _aejax_fitter(model=model, image_shape=IMAGE_SHAPE),
        _aejax_score,
        True,
        requires="aejax.AnomalyDetector",
        settings={"model": model, "image_shape": list(IMAGE_SHAPE)},
    )
    for model in ("ae", "conv_ae", "vae")
)
AEJAX = {"tabular": AEJAX_TABULAR, "image": AEJAX_IMAGE}


def methods_for(kind: str, which: str) -> tuple[Method, ...]:
    """The methods of ``kind`` (``"tabular"`` or ``"image"``) to run: ``which`` is
    ``"baselines"``, ``"aejax"`` or ``"all"`` (the aejax detector first)."""
    return {
        "baselines": BASELINES[kind],
        "aejax": AEJAX[kind],
        "all": AEJAX[kind] + BASELINES[kind],
    }[which]
