"""Where a config becomes objects: ``assemble(config)`` and the config-level ``train``.

Below this module the library takes objects: ``aejax.train.fit`` trains a model, an
objective, optimizers and a dataset it is given. ``train(config, workdir)`` is the thin
wrapper that builds them here, runs stacked pretraining (``aejax.train.pretrain``, an
application above the engine) when the config asks for it, then calls ``fit``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
from collections.abc import Callable
from typing import Any

import aejax.train.pretrain as pretrain
from aejax.config import Config
from aejax.data import Dataset, load_dataset
from aejax.data.augment import Augment, parse_augment
from aejax.data.corruption import Corruption, corruption_for
from aejax.errors import ConfigError
from aejax.models import model_from_config
from aejax.models.objective import Objective, make_objective
from aejax.train.loop import check_data, fit, take_lock
from aejax.train.optim import make_optimizers, make_schedule
from aejax.train.result import LoopSettings, RunResult
from aejax.train.rundir import check_workdir
from aejax.train.runtime import enable_compilation_cache, initialize_distributed
from aejax.train.shard import plan_batch_size


def dataset_for(config: Config, spec: str | None = None) -> Dataset:
    """Loads ``spec`` (default ``config.data``) with the config's seed, fractions and paths."""
    return load_dataset(
        spec or config.data,
        seed=config.seed,
        val_fraction=config.val_fraction,
        test_fraction=config.test_fraction,
        data_dir=config.data_dir,
        download=config.download,
        label_column=config.label_column,
        impute=config.impute,
        drop_columns=config.drop_columns,
        ratings_rows="users" if getattr(config, "autorec_variant", "item") == "user" else "items",
        ratings_columns=config.ratings_columns,
        ratings_centre=config.ratings_centre,
        image_size=config.image_size,
        image_mode=config.image_mode,
        stream=config.stream,
    )


@dataclasses.dataclass(frozen=True)
class Assembly:
    """A run's objects, built once from its config (new ones would retrace the step).

    Attributes:
      config: the config they were built from (recorded in the run directory).
      dataset: the loaded data.
      model: the registry model for the data's shape and kind.
      objective: the term weights over ``total_steps``.
      optimizers: ``{group: optax optimizer}``.
      schedule: the learning rate at a step (logged per epoch).
      corruption: the training inputs' corruption (``corruption_for``).
      augment: the training images' augmentation.
      settings: the loop's settings (``batch_size`` fitted to the data and devices).
      total_steps: ``steps_per_epoch * epochs``.
    """

    config: Config
    dataset: Dataset
    model: Any
    objective: Objective
    optimizers: Any
    schedule: Callable[[int], Any]
    corruption: Corruption
    augment: Augment
    settings: LoopSettings
    total_steps: int


def loop_settings(config: Config, batch_size: int, label: str) -> LoopSettings:
    """The config's loop fields as ``LoopSettings`` (``batch_size`` as planned)."""
    return LoopSettings(
        epochs=config.epochs,
        batch_size=batch_size,
        seed=config.seed,
        patience=config.patience,
        min_delta=config.min_delta,
        nonfinite=config.nonfinite,
        binarize=config.binarize,
        checkpoint_every=config.checkpoint_every,
        checkpoint_seconds=config.checkpoint_seconds,
        keep_checkpoints=config.keep_checkpoints,
        devices=config.devices,
        progress=config.progress,
        tensorboard=config.tensorboard,
        label=label,
        device_data=config.device_data,
        device_data_fraction=config.device_data_fraction,
    )


def assemble(config: Config, dataset: Dataset | None = None) -> Assembly:
    """Builds a run's objects from ``config`` (and its data, loaded unless given).

    Raises:
      ConfigError: ``binarize`` on data that are not images; a corruption or augmentation
        the data's shape or kind cannot take; a batch the devices cannot fill; the model
        does not read a key the config sets, or does not support the data's kind.
      DataError: the data cannot be loaded.
    """
    ds = dataset if dataset is not None else dataset_for(config)
    if config.binarize and ds.kind != "image":
        raise ConfigError(f"binarize=true needs image data in [0, 1]; {ds.name!r} is {ds.kind}")
    corruption = corruption_for(config)  # "" = the model's default (denoising_ae's)
    corruption.check(ds.input_shape, ds.kind)
    augment = parse_augment(config.augment)
    augment.check(ds.input_shape, ds.kind)
    check_data(ds)  # refused for its data before a new run directory is made
    batch_size = plan_batch_size(config.batch_size, ds.x_train.shape[0], config.devices)
    total_steps = ds.x_train.shape[0] // batch_size * config.epochs
    model = model_from_config(config, ds.input_shape, ds.kind, n_train=ds.x_train.shape[0])
    return Assembly(
        config=config,
        dataset=ds,
        model=model,
        objective=make_objective(config, total_steps),
        optimizers=make_optimizers(config, total_steps, model),
        schedule=make_schedule(config, total_steps),
        corruption=corruption,
        augment=augment,
        settings=loop_settings(config, batch_size, f"{config.model}/{ds.name}"),
        total_steps=total_steps,
    )


def train(
    config: Config,
    workdir: str | pathlib.Path | None = None,
    *,
    dataset: Dataset | None = None,
    fresh: bool = False,
    on_epoch_end: Callable[[dict], None] | None = None,
    init_params: Any = None,
) -> RunResult:
    """Trains ``config.model`` on ``config.data``; resumes from a checkpoint in ``workdir``.

    ``assemble(config)``, then (``stacked_ae``) layer-wise pretraining, then
    ``aejax.train.fit`` on the objects. Also ``aejax.train_run``.

    One run directory has one writer: the process holds an advisory lock on
    ``<workdir>/.lock`` (``aejax.train.runlock``) from before the data are loaded (or, for
    a new directory, once they are checked) until ``train`` returns or raises; the OS
    releases it if the process dies. Under ``jax.distributed`` only process 0 takes it.

    Ctrl-C and SIGTERM during the steps checkpoint the current step (the position in the
    epoch and its partial metrics included, so that running again resumes bit-identically)
    and are then passed on to the handlers installed before ``train`` (restored when it
    returns): Python's default raises ``KeyboardInterrupt``, a default SIGTERM raises
    ``aejax.errors.Terminated``. A second signal is passed on at once.

    Args:
      config: the run configuration.
      workdir: where ``config.json``, ``metrics.jsonl`` and ``checkpoints/`` go; None trains
        in memory only (no checkpoints, no resume).
      dataset: an already loaded dataset (else ``dataset_for(config)``).
      fresh: ignore (and overwrite) checkpoints already in ``workdir``.
      on_epoch_end: called with each epoch's metrics record after its checkpoint is saved.
      init_params: parameters to start from instead of a fresh initialization (the
        structure ``model.init`` gives: pretrained layers, a previous phase); a resumed
        run restores its checkpoint instead. Without them a ``stacked_ae`` run is first
        pretrained layer by layer (``aejax.train.pretrain.prepare_run``).

    Returns:
      A ``RunResult``; ``result.state`` is the whole final state; ``result.stats`` adds
      ``pretrain`` (the pretraining's summary entries, or None).

    Raises:
      CheckpointError: ``workdir`` holds a run with another config or model (pass
        ``fresh=True``), is in use by another training process (the message names it), is
        not writable, a checkpoint could not be written (disk full), or the lock file was
        removed or replaced while training. Raised during training, it carries the
        in-memory run as ``error.result`` (a ``RunResult`` with the current state, the best
        parameters and the history); the checkpoints committed before the failure are
        intact, so running again resumes.
      ConfigError: the model does not read a key the config sets, or does not support the
        data's kind; ``init_params`` do not fit the model.
      TrainingDivergedError: the loss, the gradients or the validation loss became NaN/Inf
        (``nonfinite="stop"``, or a validation loss under either policy); the last good
        checkpoint is kept and ``error.result`` holds the run so far.
      KeyboardInterrupt: (or ``Terminated``) a signal ended the run between two steps; it
        carries the in-memory run as ``error.result`` too.
    """
    # Before any JAX computation: joining a multi-process run must come first.
    if config.distributed:
        initialize_distributed()
    if config.compile_cache:
        enable_compilation_cache(config.compile_cache)
    workdir = pathlib.Path(workdir) if workdir is not None else None
    with contextlib.ExitStack() as held:
        lock = None
        if workdir is not None and workdir.is_dir():
            # In use: refused at once, before data are loaded, whatever the directory holds.
            lock = take_lock(held, workdir, config, fresh)
        elif workdir is not None:
            check_workdir(workdir, config, fresh=fresh)
        run = assemble(config, dataset)
        if workdir is not None and lock is None:
            # A new directory is created only now: a run refused for its data leaves none.
            lock = take_lock(held, workdir, config, fresh)
        pretrained = None
        if init_params is None and pretrain.pretrains(config):
            # Once per workdir: finished layers are kept in <workdir>/pretrain, and a run
            # whose fine-tuning has a checkpoint resumes from it instead.
            init_params, pretrained = pretrain.prepare_run(
                config, workdir, run.dataset, fresh=fresh
            )
        try:
            result = fit(
                run.model,
                run.objective,
                run.optimizers,
                run.dataset,
                run.settings,
                workdir,
                corruption=run.corruption,
                augment=run.augment,
                schedule=run.schedule,
                init_params=init_params,
                fresh=fresh,
                on_epoch_end=on_epoch_end,
                record=config,
                lock=lock,
            )
        except BaseException as e:
            if getattr(e, "result", None) is not None:
                e.result.stats["pretrain"] = pretrained
            raise
        result.stats["pretrain"] = pretrained
        return result
