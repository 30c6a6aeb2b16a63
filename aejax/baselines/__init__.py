"""Non-neural baselines that the autoencoders are compared against."""

from aejax.baselines.pca import PCA, fit_pca

__all__ = ["PCA", "fit_pca"]
