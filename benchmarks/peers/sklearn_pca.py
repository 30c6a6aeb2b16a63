"""scikit-learn's PCA as a peer of ``aejax.fit_pca``: same split, same k, same metric code."""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA


def fit(x_train: np.ndarray, n_components: int, seed: int = 0) -> PCA:
    """Fits ``sklearn.decomposition.PCA`` on ``x_train: [N, *shape]`` flattened to ``[N, D]``."""
    pca = PCA(n_components=n_components, random_state=seed)
    return pca.fit(x_train.reshape(x_train.shape[0], -1))


def reconstruct(pca: PCA, x: np.ndarray) -> np.ndarray:
    """Projects ``x: [N, *shape]`` onto the fitted subspace and back, ``[N, *shape]``."""
    flat = x.reshape(x.shape[0], -1)
    return pca.inverse_transform(pca.transform(flat)).reshape(x.shape).astype(np.float32)
