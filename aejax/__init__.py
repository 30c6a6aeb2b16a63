"""aejax: autoencoders in JAX — pure Flax modules, jit-compiled training, PCA baselines.

Every public name below is loaded on first use (PEP 562): ``import aejax`` imports no jax,
scikit-learn or Orbax and changes nothing in the process; ``aejax.denoise`` imports
``aejax.apps.restore`` the first time it is read. ``dir(aejax)`` lists them all.

Names that read alike:
- ``aejax.train`` is the engine's package (``aejax.fit`` trains objects); the config-level
  function is ``aejax.train_run(config, workdir)`` (``aejax.assemble.train``), which was
  ``aejax.train.train`` before 0.2.
- ``aejax.AutoencoderTransformer`` is the scikit-learn transformer (``aejax.Autoencoder``
  before 0.2); ``aejax.models.Autoencoder`` is the Linen module every model builds.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"

# name -> (module, attribute); attribute None: the module itself.
_EXPORTS: dict[str, tuple[str, str | None]] = {
    # subpackages and modules
    "train": ("aejax.train", None),  # the engine package; aejax.fit, aejax.train_run
    # stacked_ae's layer-wise pretraining (aejax.train.pretrain): aejax.pretrain.pretrain(...)
    "pretrain": ("aejax.train.pretrain", None),
    "series": ("aejax.apps.series", None),  # windows, point scores, NAB labels
    "losses": ("aejax.models.losses", None),
    "metrics": ("aejax.metrics", None),
    "objective": ("aejax.models.objective", None),
    # errors
    "AejaxError": ("aejax.errors", "AejaxError"),
    "CheckpointError": ("aejax.errors", "CheckpointError"),
    "ConfigError": ("aejax.errors", "ConfigError"),
    "DataError": ("aejax.errors", "DataError"),
    "DeviceHangError": ("aejax.errors", "DeviceHangError"),
    "TrainingDivergedError": ("aejax.errors", "TrainingDivergedError"),
    # data, models, config, objective
    "Augment": ("aejax.data.augment", "Augment"),
    "parse_augment": ("aejax.data.augment", "parse_augment"),
    "Corruption": ("aejax.data.corruption", "Corruption"),
    "parse_corruption": ("aejax.data.corruption", "parse_corruption"),
    "PCA": ("aejax.baselines", "PCA"),
    "fit_pca": ("aejax.baselines", "fit_pca"),
    "Config": ("aejax.config", "Config"),
    "Dataset": ("aejax.data", "Dataset"),
    "load_dataset": ("aejax.data", "load_dataset"),
    "MODELS": ("aejax.models", "MODELS"),
    "create_model": ("aejax.models", "create_model"),
    "model_from_config": ("aejax.models", "model_from_config"),
    "Objective": ("aejax.models.objective", "Objective"),
    "make_objective": ("aejax.models.objective", "make_objective"),
    # the engine
    "TrainState": ("aejax.train", "TrainState"),
    "make_eval_step": ("aejax.train", "make_eval_step"),
    "make_optimizer": ("aejax.train", "make_optimizer"),
    "make_optimizers": ("aejax.train", "make_optimizers"),
    "make_train_step": ("aejax.train", "make_train_step"),
    "train_run": ("aejax.assemble", "train"),
    "fit": ("aejax.train", "fit"),
    # runs, evaluation, inference
    "importance_weighted_bound": ("aejax.bounds", "importance_weighted_bound"),
    "evaluate_model": ("aejax.inference", "evaluate_model"),
    "load_run": ("aejax.run", "load_run"),
    "train_and_evaluate": ("aejax.evaluate", "train_and_evaluate"),
    "Run": ("aejax.run", "Run"),
    "decode": ("aejax.inference", "decode"),
    "encode": ("aejax.inference", "encode"),
    "reconstruct": ("aejax.inference", "reconstruct"),
    "score": ("aejax.inference", "score"),
    # applications
    "denoise": ("aejax.apps.restore", "denoise"),
    "inpaint": ("aejax.apps.restore", "inpaint"),
    "super_resolve": ("aejax.apps.restore", "super_resolve"),
    "embed_run": ("aejax.apps.embed", "embed_run"),
    "linear_probe": ("aejax.apps.probe", "linear_probe"),
    "detect_series": ("aejax.apps.series", "detect_series"),
    "load_nab_windows": ("aejax.apps.series", "load_nab_windows"),
    "read_series": ("aejax.apps.series", "read_series"),
    "interpolate": ("aejax.sampling", "interpolate"),
    "sample": ("aejax.sampling", "sample"),
    "recommend": ("aejax.apps.recommend", "recommend"),  # the function: AutoRec's top-k items
    # experiments: a grid of runs, and runs side by side
    "sweep": ("aejax.apps.sweep", "sweep"),
    "compare": ("aejax.apps.compare", "compare"),
    # scikit-learn estimators and detection metrics
    "AnomalyDetector": ("aejax.estimators", "AnomalyDetector"),
    "AutoencoderTransformer": ("aejax.estimators", "AutoencoderTransformer"),
    "average_precision": ("aejax.metrics.detection", "average_precision"),
    "precision_at_n": ("aejax.metrics.detection", "precision_at_n"),
    "roc_auc": ("aejax.metrics.detection", "roc_auc"),
}

_RENAMED = {
    "Autoencoder": (
        "AutoencoderTransformer",
        " (the scikit-learn transformer; aejax.models.Autoencoder is the Linen module)",
    ),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module, attr = _EXPORTS[name]
        value = importlib.import_module(module)
        if attr is not None:
            value = getattr(value, attr)
        globals()[name] = value  # cached: the next read is a plain attribute
        return value
    if name in _RENAMED:
        from aejax.errors import renamed

        raise renamed("aejax", name, *_RENAMED[name])
    raise AttributeError(f"module 'aejax' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


class _Package(types.ModuleType):
    """Keeps an exported function from being replaced by the submodule of the same name.

    Importing a submodule sets it as an attribute of its package: after
    ``import aejax.apps.recommend``, ``aejax.apps.recommend`` would be the module, not the function
    ``aejax.apps.recommend.recommend`` that ``__all__`` promises.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        target = _EXPORTS.get(name)
        if isinstance(value, types.ModuleType) and target is not None and target[1] is not None:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
