"""``aejax.AutoencoderTransformer``: any registry model as a scikit-learn transformer.

Named apart from ``aejax.models.Autoencoder`` (the Linen module it trains); it was
``aejax.Autoencoder`` before aejax 0.2.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.base import TransformerMixin
from sklearn.utils.validation import check_is_fitted

from aejax import inference
from aejax.estimators._core import ROWS, EngineEstimator


class AutoencoderTransformer(TransformerMixin, EngineEstimator):
    """An autoencoder as a scikit-learn transformer: ``transform`` gives the codes.

    >>> ae = aejax.AutoencoderTransformer(latent_dim=4, epochs=50, random_state=0).fit(X)
    >>> Z = ae.transform(X)            # [N, 4] float32 codes (a VAE's posterior means)
    >>> X_hat = ae.inverse_transform(Z)  # [N, D] in X's units

    Tables are standardized inside (on the training rows) and mapped back by
    ``inverse_transform``, so it works on raw data and after a ``StandardScaler`` alike.
    The same ``random_state`` gives the same bits on CPU; ``None`` means seed 0.

    Args:
      model: a registry name (``aejax models``): ``ae``, ``vae``, ``sparse_ae``, ...;
        an image model (``conv_ae``) needs ``image_shape``.
      latent_dim: the code width; None: ``clip(ceil(D / 4), 2, 16)`` for tables (the
        hidden widths are then sized from the data too, unless ``hidden`` is given), the
        Config default (8) for images.
      epochs: passes over the training rows (early stopping with ``patience=...``).
      batch_size: rows per step (at most the training rows).
      lr: the peak learning rate.
      validation_fraction: rows held out to pick the best epoch (and stop early); 0 with
        fewer than 20 rows.
      image_shape: ``(H, W, C)``: each row of ``X`` holds ``H*W*C`` pixels in [0, 1]
        (row-major), reshaped for the model; None: ``X`` is a table.
      random_state: the seed of the parameters, the split, the batch order and the noise.
      verbose: show the training progress bar.
      **hparams: any other ``Config`` field (``aejax config`` lists them), e.g.
        ``hidden=(64,)``, ``beta=4.0``, ``corruption="masking:0.2"``, ``patience=10``.

    Attributes:
      n_features_in_: ``D``.
      config_: the ``aejax.Config`` of the fit.
      variables_: the best validation epoch's ``{"params": ..., ...}`` (numpy).
      scaler_: the ``Standardizer`` of the training rows (tables), else None.
      history_: the per-epoch metrics records.
      n_epochs_: epochs run.
      run_: an ``aejax.Run`` of the fit (``sample``, ``interpolate``, ``score``).
    """

    _engine_defaults: dict[str, Any] = {}

    def __init__(
        self,
        model: str = "ae",
        latent_dim: int | None = None,
        epochs: int = 100,
        batch_size: int = 64,
        lr: float = 1e-3,
        validation_fraction: float = 0.1,
        image_shape: tuple[int, ...] | None = None,
        random_state: Any = None,
        verbose: bool = False,
        **hparams: Any,
    ):
        self.model = model
        self.latent_dim = latent_dim
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.validation_fraction = validation_fraction
        self.image_shape = image_shape
        self.random_state = random_state
        self.verbose = verbose
        self._init_hparams(hparams)

    def fit(self, X: Any, y: Any = None) -> AutoencoderTransformer:
        """Trains on ``X: [N, D]`` (``y`` is ignored); returns ``self``."""
        self._fit_engine(X)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Codes ``[N, latent_dim]`` float32 of ``X: [N, D]`` (grids are flattened)."""
        codes = np.asarray(self.run_.encode(self._check_X(X, "transform"), ROWS))
        return codes.reshape(codes.shape[0], -1)

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Decoder means ``[N, D]`` float32, in ``X``'s units, of codes ``[N, latent_dim]``.

        Raises:
          DataError: codes of another width than ``latent_dim`` (named: expected vs
            given), non-numeric, empty or NaN/Inf codes.
        """
        check_is_fitted(self)
        run = self.run_
        z = np.asarray(X)
        shape = inference.code_shape(run.model, run.variables)
        if z.ndim == 2 and z.shape[1] == math.prod(shape) and len(shape) > 1:
            z = z.reshape(z.shape[0], *shape)  # a flattened code grid (vq_vae)
        what = f"{type(self).__name__}.inverse_transform"
        z = inference.check_codes(z, run.model, run.variables, what)
        out = np.asarray(run.decode(z, ROWS))
        return out.reshape(out.shape[0], -1)

    def score(self, X: Any, y: Any = None) -> float:
        """Minus the mean squared reconstruction error per value, in ``X``'s units
        (higher is better, as ``GridSearchCV`` expects)."""
        examples = self._check_X(X, "score")
        recon = np.asarray(self.run_.reconstruct(examples, ROWS), np.float64)
        return -float(np.mean((recon - examples.astype(np.float64)) ** 2))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # JAX computes in float32: float64 input gives float32 codes.
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
