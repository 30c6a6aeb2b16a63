"""``aejax.AnomalyDetector``: an autoencoder outlier detector with scikit-learn's and
PyOD's conventions."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from scipy import ndimage
from sklearn.base import OutlierMixin
from sklearn.utils.validation import check_is_fitted

from aejax.data._validate import check_labels
from aejax.data.scaler import Standardizer
from aejax.errors import ConfigError, DataError, did_you_mean
from aejax.estimators import thresholds
from aejax.estimators._core import MIN_ROWS_FOR_VALIDATION, ROWS, EngineEstimator, seed_of
from aejax.estimators.ensemble import AUTO_FENCE, Ensemble, EnsembleOptions
from aejax.evaluate import has_posterior

SCORES = ("auto", "combined", "reconstruction", "elbo", "latent", "vote", "isolation")
# The scores of each path: the default ensemble (model=None on tables) and one engine model.
ENSEMBLE_SCORES = ("auto", "vote", "reconstruction", "isolation")
ENGINE_SCORES = ("auto", "combined", "reconstruction", "elbo", "latent")
# Keywords the ensemble reads besides the named parameters (``EnsembleOptions``).
ENSEMBLE_KEYWORDS = ("members", "hidden", "activation", "feature_fraction", "trees")


class AnomalyDetector(OutlierMixin, EngineEstimator):
    """Reconstruction-based anomaly detection over any registry model.

    >>> det = aejax.AnomalyDetector().fit(X)   # any numeric table [N, D]
    >>> det.anomaly_score(X)                    # [N], higher = more anomalous
    >>> det.predict(X)                          # -1 outlier, +1 inlier (scikit-learn)
    >>> det.labels_                             # 0/1 of the training rows (PyOD)

    scikit-learn's convention: ``score_samples`` is higher for normal rows,
    ``decision_function = score_samples - offset_`` is negative for outliers, and
    ``predict`` gives -1 for them. PyOD's: ``anomaly_score`` (PyOD's
    ``decision_function``) is higher for anomalies, ``decision_scores_``, ``threshold_``
    and ``labels_`` (1 = outlier) describe the training rows.

    Defaults (``model=None``), chosen by leaving ADBench sets out (``python -m benchmarks
    anomaly-cv``, docs/results.md): on a table, an ensemble (``aejax.estimators.ensemble``)
    of 16 small autoencoders (one hidden layer of 64 sigmoid units each side of a code of
    ``round(sqrt(D))``, 3 passes over bootstrap minibatches of 64) and an isolation forest
    of 100 trees, each member's error and the forest's score mapped to a robust z and
    averaged (the ``vote`` score); the threshold is a fence of 0.75 on that z (``"auto"``,
    chosen by F1 the same way).
    On images (``image_shape``) one registry ``ae`` with a code of 32, about 1400 steps
    and the smoothed reconstruction score (chosen on digits 2, 3, 4 and 8 of one-class
    MNIST). A fit is deterministic (``random_state=None`` means seed 0), and a row's score
    does not depend on the rows scored with it.

    Args:
      model: None (or ``"ensemble"``): the default ensemble on tables, ``ae`` on images; or
        a registry name:
        one autoencoder trained by the engine (an image model, ``conv_ae``, needs
        ``image_shape``); the ensemble reads the keywords ``members``, ``hidden`` (an int),
        ``activation``, ``feature_fraction`` and ``trees`` (``EnsembleOptions``), with
        ``epochs`` its passes and ``latent_dim`` its members' code width.
      contamination: the expected fraction of outliers in ``X``, in (0, 0.5]: the
        threshold is the ``1 - contamination`` quantile of the training scores. None or
        ``"auto"``: no guess; the ``threshold`` rule decides.
      threshold: None (from ``contamination``, else ``"auto"`` for the ensemble and
        ``"mad"`` for one model); a rule name: ``"auto"`` (the ensemble: score above
        ``AUTO_FENCE`` = 0.75, chosen by F1 leaving ADBench sets out),
        ``"mad"`` / ``"iqr"`` (robust fences of the log training scores),
        ``"validation"`` (novelty mode: ``X`` is clean, the threshold is the
        ``percentile``-th percentile of the held-out validation rows' scores),
        ``"contamination"``, ``"f1"`` (best F1 against the ``y`` given to ``fit``); or a
        number: a fixed score threshold.
      score_type: the ensemble: ``"vote"`` (its default), ``"reconstruction"`` (the
        members' errors alone) or ``"isolation"`` (the forest's alone). One model:
        ``"reconstruction"`` (summed squared error of the standardized row:
        the residual, off the learned manifold), ``"latent"`` (the Mahalanobis distance
        of the code to the training rows' codes: how extreme a row is on the manifold),
        ``"combined"`` (both at once: ``SSE / median SSE + T^2 / median T^2`` over the
        training rows, T the latent distance; the autoencoder analog of the combined
        index of PCA process monitoring, Yue & Qin 2001), ``"elbo"`` (the negative ELBO,
        models with a posterior), or ``"auto"``: ``elbo`` for models with a posterior,
        else ``reconstruction`` for images and ``combined`` for tables.
      percentile: the percentile of ``threshold="validation"``.
      residual_sigma: images: the residual ``x - reconstruction`` is smoothed by a
        Gaussian of this many pixels (``scipy.ndimage.gaussian_filter``) before its
        squares are summed, so a stroke drawn a pixel aside (a variation the decoder
        blurs) weighs less than a missing or extra one; None: 1.0 on images (0 on
        tables, which have no neighbourhood). On one-class MNIST it lifts the dense AE
        from 95.2 to 96.4 mean ROC-AUC (PCA's residual gains too: results.md).
      latent_dim, epochs, batch_size, lr, validation_fraction, image_shape, random_state,
      verbose, **hparams: as for ``aejax.AutoencoderTransformer``; ``epochs=None``: 10 on tables,
        ``clip(ceil(1400 / steps_per_epoch), 10, 300)`` on images.

    Attributes:
      decision_scores_: ``[N]`` anomaly scores of the training rows (higher = worse).
      threshold_: the anomaly-score threshold (``score > threshold_`` is an outlier).
      offset_: ``-threshold_`` (scikit-learn: ``decision_function = score_samples - offset_``).
      labels_: ``[N]`` int 0/1 of the training rows, 1 = outlier.
      threshold_rule_: the rule that set ``threshold_``.
      score_: the score actually used (``"auto"`` resolved).
      latent_mean_, latent_precision_: ``latent`` and ``combined`` scores: the training
        codes' mean ``[L]`` and the inverse of their (ridged) covariance ``[L, L]``.
      score_scales_: ``combined``: the training rows' median SSE and median T^2.
      model_: ``"ensemble"`` or the registry model fitted.
      ensemble_, scaler_: the default ensemble (``Ensemble``) and the ``Standardizer`` of
        its rows (one model: ``run_``, ``config_``, ``variables_`` instead).
    """

    _image_defaults: dict[str, Any] = {"latent_dim": 32}
    IMAGE_STEPS = 1400  # images, epochs=None: about this many steps
    TABLE_EPOCHS = 10  # tables, epochs=None

    def __init__(
        self,
        model: str | None = None,
        contamination: float | str | None = None,
        threshold: float | str | None = None,
        score_type: str = "auto",
        percentile: float = 99.0,
        residual_sigma: float | None = None,
        latent_dim: int | None = None,
        epochs: int | None = None,
        batch_size: int = 64,
        lr: float = 1e-3,
        validation_fraction: float = 0.1,
        image_shape: tuple[int, ...] | None = None,
        random_state: Any = None,
        verbose: bool = False,
        **hparams: Any,
    ):
        self.model = model
        self.contamination = contamination
        self.threshold = threshold
        self.score_type = score_type
        self.percentile = percentile
        self.residual_sigma = residual_sigma
        self.latent_dim = latent_dim
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.validation_fraction = validation_fraction
        self.image_shape = image_shape
        self.random_state = random_state
        self.verbose = verbose
        self._init_hparams(hparams)

    # --- fitting ---------------------------------------------------------------------
    def _rule(self) -> str | float:
        """The threshold rule the parameters ask for (``thresholds.resolve_rule``)."""
        return thresholds.resolve_rule(
            self.contamination, self.threshold, ensemble=self._uses_ensemble(), model=self.model
        )

    def _check_settings(self, n_rows: int, y: Any) -> tuple[str | float, np.ndarray | None]:
        """Every setting that could only fail after training, checked before it.

        Args:
          n_rows: the rows of ``X``.
          y: the labels given to ``fit`` (used by ``threshold="f1"`` only).

        Returns:
          ``(rule, labels)``: the threshold rule and, for ``"f1"``, ``[N]`` int64 0/1 labels.

        Raises:
          ConfigError: see ``_rule``; an unknown ``score_type``; ``"validation"`` without
            validation rows or with ``percentile`` outside (0, 100]; ``"f1"`` without labels.
          DataError: ``"f1"`` labels of another length than the rows, not 0/1, or
            without an anomaly.
        """
        rule = self._rule()
        if self.score_type not in SCORES:
            raise ConfigError(
                f"score_type={self.score_type!r}: expected one of {', '.join(SCORES)}"
                f"{did_you_mean(self.score_type, SCORES)}"
            )
        if self._uses_ensemble() and self.score_type not in ENSEMBLE_SCORES:
            raise ConfigError(
                f"score_type={self.score_type!r} needs one autoencoder (model='ae', ...); the "
                f"default ensemble (model=None) scores {', '.join(ENSEMBLE_SCORES)}"
            )
        if not self._uses_ensemble() and self.score_type not in ENGINE_SCORES:
            raise ConfigError(
                f"score_type={self.score_type!r} is the default ensemble's (model=None, "
                f"tables); model={self.model!r} scores {', '.join(ENGINE_SCORES)}"
            )
        if rule == "validation":
            p = self.percentile
            if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 < p <= 100:
                raise ConfigError(f"percentile={p!r}: expected a number in (0, 100]")
            if not self.validation_fraction or n_rows < MIN_ROWS_FOR_VALIDATION:
                raise ConfigError(
                    "threshold='validation' needs validation rows: validation_fraction > 0 and "
                    f"at least {MIN_ROWS_FOR_VALIDATION} rows (X has {n_rows})"
                )
        if rule != "f1":
            return rule, None
        if y is None:
            raise ConfigError(
                "threshold='f1' needs labels: fit(X, y) with y = 1 for anomalies (aejax "
                "detect: an .npz with y, or --label-column)"
            )
        where = f"{type(self).__name__}.fit"
        labels = check_labels(y, n_rows, where, what="y")
        if not np.isin(labels, (0, 1)).all() or not labels.any():
            raise DataError(
                f"{where}: threshold='f1' needs labels y of 1 (anomaly) and 0 (normal) with at "
                f"least one anomaly; got values {np.unique(labels)[:6].tolist()}"
            )
        return rule, labels

    def fit(self, X: Any, y: Any = None) -> AnomalyDetector:
        """Trains on ``X: [N, D]`` and sets the threshold; ``y`` (1 = anomaly) is used only
        by ``threshold="f1"``. Every setting and input is checked before training.
        Returns ``self``."""
        n_rows = getattr(X, "shape", (len(X),) if hasattr(X, "__len__") else (0,))[0]
        rule, labels = self._check_settings(int(n_rows), y)
        for stale in ("ensemble_", "variables_"):
            self.__dict__.pop(stale, None)
        if self._uses_ensemble():
            return self._fit_ensemble(X, rule, labels)
        X = self._fit_engine(X)
        self.model_ = self.config_.model
        self.score_ = self._resolve_score()
        if self.score_ in ("latent", "combined"):
            self._fit_latent(self._dataset.x_train)
        self.decision_scores_ = self._scores_of(self._as_examples(X, "X"), what="fit")
        self.threshold_rule_ = rule if isinstance(rule, str) else "fixed"
        self.threshold_ = self._threshold(rule, labels)
        self.offset_ = -self.threshold_
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(np.int64)
        del self._dataset
        return self

    # --- the default ensemble (model=None on tables) ----------------------------------
    def _uses_ensemble(self) -> bool:
        return self.model in (None, "ensemble") and self.image_shape is None

    def _ensemble_options(self) -> EnsembleOptions:
        """``EnsembleOptions`` from the named parameters and ``ENSEMBLE_KEYWORDS``."""
        extra = sorted(set(self._hparams) - set(ENSEMBLE_KEYWORDS))
        if extra:
            raise ConfigError(
                f"AnomalyDetector: keyword(s) {extra} are not read by the default ensemble "
                f"(model=None): it takes {', '.join(ENSEMBLE_KEYWORDS)}; set model='ae' (or "
                "another registry model) for the Config fields of one autoencoder"
            )
        fields = dict(self._hparams)
        hidden = fields.get("hidden")
        if isinstance(hidden, tuple | list) and len(hidden) == 1:
            fields["hidden"] = hidden[0]
        if self.epochs is not None:
            fields["passes"] = self.epochs
        if self.latent_dim is not None:
            fields["code"] = self.latent_dim
        return EnsembleOptions(batch_size=self.batch_size, lr=self.lr, **fields)

    def _fit_ensemble(self, X: Any, rule: str | float, labels: Any) -> AnomalyDetector:
        """Fits the default ensemble on the standardized rows of ``X`` (all of them, or all
        but the held-out validation rows for ``threshold="validation"``)."""
        options = self._ensemble_options()
        score = "vote" if self.score_type == "auto" else self.score_type
        vote = Ensemble(options, score)  # refuses a bad vote before any work
        X = self._validated(X, reset=True, method="fit")
        seed = seed_of(self.random_state)
        self.scaler_ = Standardizer.fit(X)
        x = self.scaler_.transform(X)
        fit_rows, held = np.arange(len(x)), None
        if rule == "validation":
            order = np.random.default_rng(seed).permutation(len(x))
            n_val = max(1, int(round(self.validation_fraction * len(x))))
            fit_rows, held = np.sort(order[n_val:]), np.sort(order[:n_val])
        self.ensemble_ = vote.fit(x[fit_rows], seed)
        self.model_, self.score_ = "ensemble", score
        self.n_epochs_ = options.passes
        steps = np.array_split(self.ensemble_.losses, options.passes)
        self.history_ = [{"epoch": i + 1, "loss": float(np.mean(v))} for i, v in enumerate(steps)]
        self.decision_scores_ = self._scores_of(X, what="fit")
        self.threshold_rule_ = rule if isinstance(rule, str) else "fixed"
        if rule == "validation":
            clean = self._scores_of(X[held], what="fit")
            self.threshold_ = thresholds.percentile_threshold(clean, self.percentile)
        else:
            self.threshold_ = self._threshold(rule, labels)
        self.offset_ = -self.threshold_
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(np.int64)
        return self

    def _check_model(self, model: Any) -> None:
        if self.score_type == "elbo" and not has_posterior(model):
            raise ConfigError(
                f"score_type='elbo' needs a model with a posterior (vae, conv_vae); {self.model!r} "
                "has none: use score_type='reconstruction' or 'latent'"
            )

    def _sized(self, n_features: int) -> dict[str, Any]:
        return {"hidden": (64,), "latent_dim": min(2, n_features)}

    def _fit_epochs(self, n_rows: int) -> int:
        """``epochs``; None: ``TABLE_EPOCHS`` on tables, about ``IMAGE_STEPS`` steps over
        ``n_rows`` training rows on images."""
        if self.epochs is not None:
            return self.epochs
        if self.image_shape is None:
            return self.TABLE_EPOCHS
        steps_per_epoch = max(1, n_rows // max(1, min(self.batch_size, n_rows)))
        return int(np.clip(np.ceil(self.IMAGE_STEPS / steps_per_epoch), 10, 300))

    def _resolve_score(self) -> str:
        if self.score_type == "auto":
            if has_posterior(self.run_.model):
                return "elbo"
            return "reconstruction" if self.image_shape is not None else "combined"
        return self.score_type  # "elbo" without a posterior is refused before training

    def _threshold(self, rule: str | float, y: Any) -> float:
        scores = self.decision_scores_
        if not isinstance(rule, str):
            return rule
        if rule == "auto":  # the ensemble's scores are robust z: a fixed fence on them
            return AUTO_FENCE
        if rule == "contamination":
            return thresholds.contamination_threshold(scores, self.contamination)
        if rule == "mad":
            return thresholds.mad_threshold(scores)
        if rule == "iqr":
            return thresholds.iqr_threshold(scores)
        if rule == "f1":  # labels checked before training
            return thresholds.best_f1_threshold(scores, y)
        # "validation": novelty mode, the held-out rows' scores (rows checked before training)
        clean = self._scores_of(self._dataset.x_val, standardized=True)
        return thresholds.percentile_threshold(clean, self.percentile)

    # --- scores ----------------------------------------------------------------------
    def _scores_of(
        self, examples: np.ndarray, standardized: bool = False, what: str = "predict"
    ) -> np.ndarray:
        """Anomaly scores ``[N]`` float64 of model examples (raw units unless
        ``standardized``), every one finite.

        Raises:
          DataError: rows whose score is not finite: values so far from the training rows
            (in training standard deviations) that the float32 model overflows on them.
        """
        if hasattr(self, "ensemble_"):
            x = examples if standardized else self.scaler_.transform(examples)
            scores, scaler = self.ensemble_.scores(x), self.scaler_
        else:
            scores, scaler = self._raw_scores(examples, standardized), self.run_.scaler
        if not np.isfinite(scores).all():
            raise _overflow_error(examples, scores, scaler, standardized, what)
        return scores

    def _raw_scores(self, examples: np.ndarray, standardized: bool) -> np.ndarray:
        run = self.run_
        if standardized and run.scaler is not None:
            examples = run.scaler.inverse_transform(examples)
        if self.score_ in ("latent", "combined"):
            d = self._codes(examples) - self.latent_mean_
            t2 = np.einsum("nd,de,ne->n", d, self.latent_precision_, d)
            if self.score_ == "latent":
                return np.sqrt(t2)
        if self.score_ == "reconstruction" and self._sigma() > 0:
            return self._pixel_errors(examples).sum(axis=1)
        terms = run.score(examples, ROWS)
        if self.score_ == "elbo":
            return np.asarray(terms["reconstruction"], np.float64) + np.asarray(
                terms["kl"], np.float64
            )
        sse = np.asarray(terms["sse"], np.float64)
        if self.score_ == "combined":
            sse_scale, t2_scale = self.score_scales_
            return sse / sse_scale + t2 / t2_scale
        return sse

    def _codes(self, examples: np.ndarray) -> np.ndarray:
        """``[N, latent]`` float64 codes of model examples in data units."""
        return np.asarray(self.run_.encode(examples, ROWS), np.float64).reshape(len(examples), -1)

    def transform_codes(self, X: Any) -> np.ndarray:
        """``[N, latent]`` float64 codes of ``X`` (a VAE's posterior means; the default
        ensemble: ``[N, members * code]``, its members' codes side by side)."""
        examples = self._check_X(X)
        if hasattr(self, "ensemble_"):
            return self.ensemble_.codes(self.scaler_.transform(examples))
        return self._codes(examples)

    def _fit_latent(self, x_train_std: np.ndarray) -> None:
        """The training codes' mean and (ridged) precision for the Mahalanobis score."""
        run = self.run_
        x = x_train_std if run.scaler is None else run.scaler.inverse_transform(x_train_std)
        codes = self._codes(x)
        self.latent_mean_ = codes.mean(axis=0)
        cov = np.atleast_2d(np.cov(codes, rowvar=False)) if len(codes) > 1 else None
        if cov is None:
            cov = np.eye(codes.shape[1])
        ridge = 1e-6 * max(1e-12, float(np.trace(cov)) / cov.shape[0])
        self.latent_precision_ = np.linalg.pinv(cov + ridge * np.eye(cov.shape[0]))
        if self.score_ == "combined":
            d = codes - self.latent_mean_
            t2 = np.einsum("nd,de,ne->n", d, self.latent_precision_, d)
            sse = np.asarray(run.score(x, ROWS)["sse"], np.float64)
            tiny = np.finfo(np.float64).tiny
            self.score_scales_ = (max(float(np.median(sse)), tiny), max(float(np.median(t2)), tiny))

    def anomaly_score(self, X: Any) -> np.ndarray:
        """``[N]`` float64 anomaly scores (higher = more anomalous; PyOD's
        ``decision_function``)."""
        return self._scores_of(self._check_X(X))

    def score_samples(self, X: Any) -> np.ndarray:
        """``[N]`` float64 normality scores: ``-anomaly_score`` (higher = more normal)."""
        return -self.anomaly_score(X)

    def decision_function(self, X: Any) -> np.ndarray:
        """``[N]`` float64 ``threshold_ - anomaly_score``: negative for outliers."""
        check_is_fitted(self)
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> np.ndarray:
        """``[N]`` int: -1 for outliers (``anomaly_score > threshold_``), +1 for inliers."""
        return np.where(self.decision_function(X) >= 0, 1, -1)

    def feature_scores(self, X: Any) -> np.ndarray:
        """``[N, D]`` float64 squared errors per feature of the standardized rows (tables)
        or per pixel of the smoothed residual (images, ``residual_sigma``): which features
        make a row anomalous. Rows sum to the ``"reconstruction"`` score."""
        examples = self._check_X(X)
        if hasattr(self, "ensemble_"):
            return self.ensemble_.feature_errors(self.scaler_.transform(examples))
        return self._pixel_errors(examples)

    def _sigma(self) -> float:
        if self.image_shape is None:
            return 0.0
        return 1.0 if self.residual_sigma is None else float(self.residual_sigma)

    def _pixel_errors(self, examples: np.ndarray) -> np.ndarray:
        """``[N, D]`` squared (standardized, or smoothed for images) residuals."""
        run = self.run_
        recon = np.asarray(run.reconstruct(examples, ROWS), np.float64)
        if run.scaler is not None:
            err = (examples - recon) / run.scaler.scale.astype(np.float64)
        else:
            err = examples.astype(np.float64) - recon
        sigma = self._sigma()
        if sigma > 0:  # [N, H, W, C]: smooth over H and W only
            err = ndimage.gaussian_filter(err, sigma=(0, sigma, sigma, 0)[: err.ndim])
        return (err**2).reshape(len(examples), -1)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags = None
        return tags

    @property
    def run_(self):
        """One model's fitted run (``aejax.Run``); the default ensemble has none."""
        if getattr(self, "ensemble_", None) is not None:
            raise AttributeError(
                "run_: the default ensemble (model=None) is not one run; use ensemble_, or "
                "fit with model='ae' (or another registry model) for a run"
            )
        return EngineEstimator.run_.fget(self)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "variables_") or hasattr(self, "ensemble_")


def _overflow_error(examples, scores, scaler, standardized: bool, what: str) -> DataError:
    """Names the rows with a non-finite score and how far out their values lie."""
    bad = np.flatnonzero(~np.isfinite(scores))
    first = examples[bad[0]].astype(np.float64)
    if scaler is not None and not standardized:
        first = (first - scaler.mean) / scaler.scale
    how_far = (
        f" (values up to {np.max(np.abs(first)):.3g} training standard deviations from the "
        "training mean)"
        if scaler is not None
        else ""
    )
    return DataError(
        f"AnomalyDetector.{what}: {bad.size} row(s) get no finite anomaly score, first row "
        f"{int(bad[0])} (counting from 0){how_far}: the float32 model overflows on values this "
        "far from the training data; remove or clip such rows"
    )
