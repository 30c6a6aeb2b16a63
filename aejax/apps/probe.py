"""Feature learning: a linear probe on a run's codes, beside PCA codes and the raw features.

The probe is scikit-learn's ``LogisticRegression(max_iter=max_iter)``, its defaults
otherwise (L2, C=1, lbfgs; no scaling of its inputs), as in the benchmarks' anchors. It is
fitted on the training pool, the training and validation splits together (``fit_on="train"``:
the training split only), and scored on the test split, for three representations of the
same examples:

- ``codes``: the run's codes (a VAE's posterior means; a code grid flattened);
- ``pca``: PCA codes of the same size, fitted on the examples the probe is fitted on;
- ``raw``: the inputs themselves (pixels in [0, 1], or standardized table columns).

``aejax probe RUN [--json]`` prints the three accuracies.
"""

from __future__ import annotations

import pathlib
import time
import warnings
from typing import Any

import numpy as np

from aejax import inference
from aejax.baselines import fit_pca
from aejax.data import Dataset
from aejax.data.pixels import to_unit
from aejax.errors import DataError

FIT_ON = ("train+val", "train")


def probe_features(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    max_iter: int = 2000,
    standardize: bool = False,
) -> dict[str, Any]:
    """Fits the logistic-regression probe on ``x_train: [N, D]`` and scores it on ``x_test``.

    Args:
      x_train: ``[N, D]`` features of the training examples; ``y_train``: ``[N]`` labels.
      x_test: ``[M, D]`` features of the test examples; ``y_test``: ``[M]`` labels.
      max_iter: lbfgs iterations at most.
      standardize: scale each feature to zero mean and unit variance on the training split
        first (off by default: the anchors use scikit-learn's defaults).

    Returns:
      ``{"accuracy", "iterations", "converged"}``: test accuracy in [0, 1], the solver's
      iterations, and whether it converged before ``max_iter`` (a ConvergenceWarning is
      reported here instead of raised).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    x_train = np.asarray(x_train).reshape(x_train.shape[0], -1)
    x_test = np.asarray(x_test).reshape(x_test.shape[0], -1)
    if standardize:
        mean, std = x_train.mean(axis=0), x_train.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    clf = LogisticRegression(max_iter=max_iter)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        clf.fit(x_train, y_train)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return {
        "accuracy": float(clf.score(x_test, y_test)),
        "iterations": int(np.max(clf.n_iter_)),
        "converged": converged,
    }


def linear_probe(
    run: Any,
    *,
    dataset: Dataset | None = None,
    max_iter: int = 2000,
    standardize: bool = False,
    baselines: bool = True,
    fit_on: str = "train+val",
) -> dict[str, Any]:
    """Test accuracy of a linear probe on a run's codes, on PCA codes and on raw features.

    Args:
      run: a run directory, an ``aejax.Run`` (``load_run``) or the ``RunResult`` of
        ``aejax.train_run``/``train_and_evaluate``.
      dataset: the run's data, already loaded (default: a ``RunResult``'s own, else loaded
        as the run's config says).
      max_iter: lbfgs iterations at most (the anchors: 2000).
      standardize: standardize each representation's features on the training split first.
      fit_on: ``"train+val"`` (default: every labelled example outside the test split, as
        the benchmarks' anchors are measured: on mnist-lite raw pixels 89.6%, PCA-32
        88.7%) or ``"train"`` (the training split only).
      baselines: also probe PCA codes and the raw features (``False``: the codes only, for
        several runs on the same data).

    Returns:
      ``{"model", "data", "fit_on", "n_fit", "n_test", "code_size", "pca_components", "max_iter",
      "standardize", "codes_accuracy", "pca_accuracy", "raw_accuracy", "iterations":
      {name: n}, "converged": {name: bool}, "seconds"}`` (without ``pca_*`` and ``raw_*``
      when ``baselines`` is False); the probe is fitted on ``fit_on`` and scored on the
      test split.

    Raises:
      DataError: the data has no labels, no test split, or a single class; an unknown
        ``fit_on``.
      CheckpointError: ``run`` is a directory that ``aejax.load_run`` cannot read.
    """
    t0 = time.perf_counter()
    if fit_on not in FIT_ON:
        raise DataError(f"fit_on={fit_on!r}: one of {', '.join(FIT_ON)}")
    config, model, variables, scaler, ds = _resolve(run, dataset)
    if ds.y_train is None or ds.y_test is None:
        raise DataError(
            f"data set {ds.name!r} has no labels: a linear probe predicts them from the codes "
            "(local tables: name the label column with --set label_column=...)"
        )
    if ds.x_test.shape[0] == 0:
        raise DataError(f"data set {ds.name!r} has no test examples to score the probe on")
    # Floats in [0, 1] for uint8 pixels: the raw and PCA probes read the pixels too.
    x_fit, x_test, y_fit = to_unit(ds.x_train), to_unit(ds.x_test), ds.y_train
    if fit_on == "train+val" and ds.x_val.shape[0]:
        x_fit = np.concatenate([x_fit, to_unit(ds.x_val)])
        y_fit = np.concatenate([ds.y_train, ds.y_val])
    if np.unique(y_fit).size < 2:
        raise DataError(f"data set {ds.name!r}: the labels it is fitted on hold a single class")

    def codes(x):
        if scaler is not None and ds.scaler is not None:
            # Through the run's saved statistics, as a user's raw rows would go.
            x = scaler.transform(ds.scaler.inverse_transform(x)).astype(np.float32)
        z = inference.encode(model, variables, x)
        return np.asarray(z, np.float32).reshape(x.shape[0], -1)

    z_fit, z_test = codes(x_fit), codes(x_test)
    k = z_fit.shape[1]
    raw_fit = x_fit.reshape(x_fit.shape[0], -1)
    raw_test = x_test.reshape(x_test.shape[0], -1)
    n_pca = min(k, raw_fit.shape[0], raw_fit.shape[1])
    out: dict[str, Any] = {
        "model": config.model,
        "data": ds.name,
        "fit_on": fit_on,
        "n_fit": int(raw_fit.shape[0]),
        "n_test": int(raw_test.shape[0]),
        "code_size": int(k),
        "pca_components": int(n_pca),
        "raw_features": int(raw_fit.shape[1]),
        "max_iter": max_iter,
        "standardize": standardize,
    }
    features = {"codes": (z_fit, z_test)}
    if baselines:
        pca = fit_pca(x_fit, n_pca)
        p_fit, p_test = (np.asarray(pca.transform(x), np.float32) for x in (x_fit, x_test))
        features.update(pca=(p_fit, p_test), raw=(raw_fit, raw_test))
    iterations, converged = {}, {}
    for name, (a, b) in features.items():
        r = probe_features(a, y_fit, b, ds.y_test, max_iter=max_iter, standardize=standardize)
        out[f"{name}_accuracy"] = r["accuracy"]
        iterations[name], converged[name] = r["iterations"], r["converged"]
    out.update(iterations=iterations, converged=converged, seconds=time.perf_counter() - t0)
    return out


def _resolve(run: Any, dataset: Dataset | None):
    """``(config, model, variables, scaler, dataset)`` of a workdir, Run or RunResult."""
    from aejax.assemble import dataset_for
    from aejax.train.result import RunResult

    if isinstance(run, RunResult):
        # Its dataset is what the model was trained on, already in model units.
        return run.config, run.model, run.variables, None, dataset or run.dataset
    if isinstance(run, (str, pathlib.Path)):
        from aejax.run import load_run

        run = load_run(run)
    config, model, variables, scaler = run
    ds = dataset if dataset is not None else dataset_for(config)
    if ds.input_shape != tuple(model.input_shape):
        raise DataError(
            f"data {ds.name!r} has examples of shape {ds.input_shape}, but the run was "
            f"trained on {tuple(model.input_shape)}"
        )
    return config, model, variables, scaler, ds
