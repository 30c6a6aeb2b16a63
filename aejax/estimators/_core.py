"""What both estimators share: their parameters, a fit through the engine, the fitted run.

An estimator's named parameters are the common ones (``model``, ``latent_dim``,
``epochs``, ...); any other ``Config`` field (``hidden``, ``beta``, ``corruption``,
``patience``, ...) is passed as a keyword and travels through ``get_params``,
``set_params`` and ``clone`` like a named one. ``fit`` builds a ``Config`` from them,
splits ``X`` into training and validation rows with the seed, standardizes tables on the
training rows (``aejax.data.Standardizer``) and calls ``aejax.train_run`` in memory:
the same engine, determinism and errors as ``aejax train``.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import jax
import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from aejax.assemble import train
from aejax.config import Config, all_keys
from aejax.data._validate import check_array, check_dtype, check_float32_range
from aejax.data.dataset import build_dataset
from aejax.data.pixels import to_unit
from aejax.errors import ConfigError, DataError, did_you_mean
from aejax.models import model_from_config
from aejax.run import Run

# Config fields an estimator sets itself; passing one as a keyword is an error.
MANAGED = frozenset({"seed", "data", "workdir", "progress", "val_fraction", "test_fraction"})
# Rows of every compiled inference call: one program for any number of rows, so a row's
# codes and scores do not depend on the rows scored with it, to the bit.
ROWS = 256
# Below this many rows there is no validation split (and so no early stopping).
MIN_ROWS_FOR_VALIDATION = 20


def sized_from_data(n_features: int) -> dict[str, Any]:
    """The dense model a table of ``n_features`` columns gets when its size is not given.

    One hidden layer of ``clip(2 D, 16, 256)`` units and a code of
    ``clip(ceil(D / 4), 2, 16)`` (at most ``D``): wide enough to model the features'
    correlations, narrow enough that the code cannot copy them.
    """
    width = int(np.clip(2 * n_features, 16, 256))
    latent = int(min(n_features, np.clip(math.ceil(n_features / 4), 2, 16)))
    return {"hidden": (width,), "latent_dim": max(1, latent)}


def seed_of(random_state: Any) -> int:
    """An int seed: ``None`` means 0 (a fit is deterministic by default), an int is itself,
    a ``np.random.RandomState`` draws one."""
    if random_state is None:
        return 0
    if isinstance(random_state, int | np.integer):
        return int(random_state)
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


class EngineEstimator(BaseEstimator):
    """The base of ``AutoencoderTransformer`` and ``AnomalyDetector``: parameters, engine fit.

    Subclasses call ``_init_hparams(hparams)`` in ``__init__`` and ``_fit_engine(X)`` in
    ``fit``; afterwards ``run_`` (an ``aejax.Run``) does inference in the data's units.
    """

    # Defaults a subclass gives Config fields the user did not pass (all data; images).
    _engine_defaults: dict[str, Any] = {}
    _image_defaults: dict[str, Any] = {}

    def _init_hparams(self, hparams: dict[str, Any]) -> None:
        # Private, so scikit-learn's attribute checks ignore it; get_params reports it.
        self._hparams = dict(hparams)

    # --- parameters ------------------------------------------------------------------
    @classmethod
    def _named_params(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name for p in sig.parameters.values() if p.name != "self" and p.kind != p.VAR_KEYWORD
        ]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The named parameters and every Config keyword given (``clone`` uses these)."""
        params = {name: getattr(self, name) for name in self._named_params()}
        params.update(getattr(self, "_hparams", {}))
        return params

    def set_params(self, **params: Any):
        """Sets named parameters and Config keywords (``GridSearchCV`` uses this).

        Other names are kept as Config keywords and checked by ``fit`` (a ``ConfigError``,
        a ValueError, naming the closest field), as scikit-learn validates in ``fit``.
        """
        named = set(self._named_params())
        for key, value in params.items():
            if key in named:
                setattr(self, key, value)
            else:  # checked against the Config fields in fit, as scikit-learn validates
                self._hparams[key] = value
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        tags.input_tags.allow_nan = False
        return tags

    # --- fitting ---------------------------------------------------------------------
    def _sized(self, n_features: int) -> dict[str, Any]:
        """The Config fields a table of ``n_features`` columns gets (``sized_from_data``)."""
        return sized_from_data(n_features)

    def _fit_epochs(self, n_rows: int) -> int:
        """The epochs of a fit on ``n_rows`` rows (``epochs``; subclasses may size it)."""
        return self.epochs

    def _config(self, n_rows: int, n_features: int, val_fraction: float) -> Config:
        """The run's ``Config`` for ``n_rows`` training rows (after the validation split) of
        ``n_features`` values."""
        known = set(all_keys())
        bad = sorted(set(self._hparams) - (known - MANAGED))
        if bad:
            choices = known - MANAGED
            hints = "".join(did_you_mean(k, choices) for k in bad[:1])
            raise ConfigError(
                f"{type(self).__name__}: unknown or reserved keyword(s) {bad}{hints}; "
                f"keywords are Config fields (`aejax config`), except {sorted(MANAGED)}"
            )
        fields: dict[str, Any] = dict(self._engine_defaults)
        if self.image_shape is None and get_kind(self.model) != "image":
            fields.update(self._sized(n_features))
        else:
            fields.update(self._image_defaults)
        fields.update(
            model=self.model if self.model is not None else "ae",
            epochs=self._fit_epochs(n_rows),
            batch_size=max(1, min(self.batch_size, n_rows)),
            lr=self.lr,
            seed=seed_of(self.random_state),
            progress=bool(self.verbose),
            devices=1,
            val_fraction=val_fraction,
            test_fraction=0.0,
        )
        if self.latent_dim is not None:
            fields["latent_dim"] = self.latent_dim
        fields.update(self._hparams)
        if fields.get("data") is None:
            fields.pop("data", None)
        return Config(**fields)

    def _fit_engine(self, X: Any) -> np.ndarray:
        """Validates ``X`` (sets ``n_features_in_``), trains, and sets the fitted state.

        Args:
          X: ``[N, D]`` numbers; with ``image_shape``, rows of ``prod(image_shape)`` pixels
            (floats in [0, 1], or uint8 read as ``k / 255``).

        Returns:
          ``X`` as a validated float array ``[N, D]``.
        """
        X = self._validated(X, reset=True, method="fit")
        val_fraction = self.validation_fraction if X.shape[0] >= MIN_ROWS_FOR_VALIDATION else 0.0
        ds = build_dataset(
            "X",
            self._as_examples(X, "X"),
            seed=seed_of(self.random_state),
            val_fraction=val_fraction,
            test_fraction=0.0,
            where=f"{type(self).__name__}.fit",
        )
        config = self._config(ds.x_train.shape[0], X.shape[1], val_fraction)
        # Settings that could only fail after training are refused here, before it.
        self._check_model(model_from_config(config, ds.input_shape, ds.kind))
        result = train(config, dataset=ds)
        self.config_ = result.config
        self.variables_ = jax.device_get(result.variables)
        self.scaler_ = ds.scaler
        self.history_ = result.history
        self.n_epochs_ = int(result.stats.get("epochs_run", len(result.history)))
        self._model = result.model
        self._validation_rows = ds.x_val.shape[0]
        self._dataset = ds  # the split: the detector scores its validation rows
        return X

    def _check_model(self, model: Any) -> None:
        """Refuses, before training, a model the estimator's settings cannot use (none here)."""

    def _validated(self, X: Any, *, reset: bool, method: str) -> np.ndarray:
        """``X`` through scikit-learn's conventions and aejax's one validator.

        scikit-learn's ``validate_data`` converts lists and DataFrames, records or checks
        ``n_features_in_`` and ``feature_names_in_`` and words the errors its estimator
        checks expect; ``aejax.data._validate`` then refuses what ``aejax train`` refuses
        (complex, text, NaN/Inf with their count and first row, values beyond float32).

        Returns:
          ``[N, D]`` float64 or float32.

        Raises:
          DataError (a ValueError): one line naming the problem.
        """
        where = f"{type(self).__name__}.{method}"
        if self.image_shape is not None and isinstance(X, np.ndarray) and X.dtype == np.uint8:
            X = to_unit(X)  # rows of 8-bit pixels: the floats k / 255 the loaders give
        # Complex and text arrays are named here; object arrays of numbers are converted
        # (scikit-learn's convention) and other objects fail in the conversion.
        if isinstance(X, np.ndarray) and X.dtype.kind in ("c", "U", "S"):
            check_dtype(X, where, what="X")
        try:
            X = validate_data(
                self, X, reset=reset, dtype=[np.float64, np.float32], ensure_all_finite=False
            )
        except DataError:
            raise
        except ValueError as e:  # one line, with scikit-learn's words kept
            raise DataError(f"{where}: {' '.join(str(e).split())}") from None
        check_array(X, where, what="X")
        check_float32_range(X, where, what="X")
        return X

    def _as_examples(self, X: np.ndarray, what: str) -> np.ndarray:
        """``[N, D]`` rows as the model's examples: ``[N, *image_shape]`` for images."""
        if self.image_shape is None:
            return X
        shape = tuple(int(d) for d in self.image_shape)
        if math.prod(shape) != X.shape[1]:
            raise DataError(
                f"{what} has {X.shape[1]} features per row, but image_shape={shape} needs "
                f"{math.prod(shape)}"
            )
        return X.reshape(X.shape[0], *shape)

    def _check_X(self, X: Any, method: str = "predict") -> np.ndarray:
        """Validates ``X`` against the fitted feature count; returns the model's examples."""
        check_is_fitted(self)
        return self._as_examples(self._validated(X, reset=False, method=method), "X")

    @property
    def run_(self) -> Run:
        """The fitted run (``aejax.Run``): inference in the data's units."""
        check_is_fitted(self)
        if getattr(self, "_model", None) is None:  # after unpickling
            input_shape = tuple(self.image_shape or (self.n_features_in_,))
            kind = "image" if self.image_shape is not None else "tabular"
            self._model = model_from_config(self.config_, input_shape, kind)
        return Run(self.config_, self._model, self.variables_, self.scaler_)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "variables_")

    def __getstate__(self):
        state = dict(self.__dict__)
        # The module is rebuilt from config_ on first use; the split is not kept.
        state.pop("_model", None)
        state.pop("_dataset", None)
        return state


def get_kind(model: str) -> str | None:
    """``"image"`` when ``model`` reads only images (``conv_ae``), else None."""
    from aejax.models import get_spec

    try:
        kinds = get_spec(str(model).lower()).kinds
    except ConfigError:
        return None  # Config names the unknown model, with a did-you-mean
    return "image" if "tabular" not in kinds else None
