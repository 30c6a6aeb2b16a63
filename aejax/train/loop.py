"""The training loop: input, model, shard, update step, checkpoint, evals, summary."""

from __future__ import annotations

import json
import math
import os
import pathlib
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from aejax import losses, tensorboard, xla
from aejax.config import Config
from aejax.data import Dataset, load_dataset
from aejax.errors import AejaxError, CheckpointError, ConfigError, TrainingDivergedError
from aejax.inference import check_input
from aejax.models import create_model
from aejax.train import runtime, shard
from aejax.train.checkpoint import Checkpointer, check_writable
from aejax.train.optim import make_optimizer, make_schedule
from aejax.train.state import TrainState, init_state
from aejax.train.step import accumulate, make_eval_step, make_train_step


@dataclass
class RunResult:
    """What ``train`` returns: the trained model, its best parameters and the bookkeeping."""

    config: Config
    dataset: Dataset
    model: Any
    params: Any  # the best parameters (lowest validation loss), on the host's default device
    state: TrainState
    history: list[dict]
    stats: dict  # steps, epochs_run, compile_seconds, train_samples_per_sec, stopped_early
    workdir: pathlib.Path | None


def dataset_for(config: Config, spec: str | None = None) -> Dataset:
    """Loads ``spec`` (default ``config.data``) with the config's seed, fractions and paths."""
    return load_dataset(
        spec or config.data,
        seed=config.seed,
        val_fraction=config.val_fraction,
        test_fraction=config.test_fraction,
        data_dir=config.data_dir,
        download=config.download,
    )


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order of the training examples in ``epoch``: a pure function of (seed, epoch).

    Deriving it from the epoch (not from a running generator) is what lets a resumed run
    see exactly the batches an uninterrupted run would.
    """
    return np.random.default_rng([seed, epoch]).permutation(n)


def train(
    config: Config,
    workdir: str | pathlib.Path | None = None,
    *,
    dataset: Dataset | None = None,
    fresh: bool = False,
    on_epoch_end: Callable[[dict], None] | None = None,
) -> RunResult:
    """Trains ``config.model`` on ``config.data``; resumes from a checkpoint in ``workdir``.

    Args:
      config: the run configuration.
      workdir: where ``config.json``, ``metrics.jsonl`` and ``checkpoints/`` go; None trains
        in memory only (no checkpoints, no resume).
      dataset: an already loaded dataset (else ``load_dataset(config.data, ...)``).
      fresh: ignore (and overwrite) checkpoints already in ``workdir``.
      on_epoch_end: called with each epoch's metrics record after its checkpoint is saved.

    Returns:
      A ``RunResult``.

    Raises:
      CheckpointError: ``workdir`` holds a run with another config or model (pass
        ``fresh=True``), is not writable, or a checkpoint could not be written (disk full).
        Raised during training, it carries the in-memory run as ``error.result`` (a
        ``RunResult`` with the current state, the best parameters and the history); the
        checkpoints committed before the failure are intact, so running again resumes.
      TrainingDivergedError: the loss, the gradients or the validation loss became NaN/Inf
        (``nonfinite="stop"``, or a validation loss under either policy); the last good
        checkpoint is kept and ``error.result`` holds the run so far.
    """
    # Before any JAX computation: joining a multi-process run must come first.
    if config.distributed:
        runtime.initialize_distributed()
    if config.compile_cache:
        runtime.enable_compilation_cache(config.compile_cache)
    workdir = pathlib.Path(workdir) if workdir is not None else None
    if workdir is not None:
        check_workdir(workdir, config, fresh=fresh)
    tb = None
    if config.tensorboard and workdir is not None and runtime.is_main_process():
        tb = tensorboard.TensorBoardLogger(workdir / "tensorboard")
        on_epoch_end = tensorboard.chain(tb, on_epoch_end)

    # --- Input -----------------------------------------------------------------------
    ds = dataset if dataset is not None else dataset_for(config)
    image = ds.kind == "image"
    x_train = check_input(ds.x_train, ds.input_shape, f"{ds.name} training data", image=image)
    x_val = ds.x_val
    if x_val.shape[0]:
        x_val = check_input(x_val, ds.input_shape, f"{ds.name} validation data", image=image)
    n_train = x_train.shape[0]
    mesh = shard.make_mesh(config.devices)
    n_dev = mesh.devices.size
    batch_size = config.batch_size
    if batch_size > n_train:
        # A batch larger than the data would give zero steps per epoch.
        batch_size = max(n_dev, (n_train // n_dev) * n_dev)
        warnings.warn(
            f"batch_size {config.batch_size} > {n_train} training examples; using {batch_size}",
            stacklevel=2,
        )
        if batch_size > n_train:
            raise ConfigError(
                f"{n_train} training examples cannot fill one batch on {n_dev} "
                "devices; use --devices 1"
            )
    shard.check_batch_size(batch_size, mesh)
    steps_per_epoch = n_train // batch_size
    total_steps = steps_per_epoch * config.epochs

    # --- Model and optimizer (built once: a new one would retrace the step) -----------
    likelihood = losses.likelihood_for(ds.kind)
    model = create_model(config.model, ds.input_shape, likelihood, **config.to_dict())
    tx = make_optimizer(config, total_steps)
    state = shard.replicate(init_state(model, tx, ds.input_shape, config.seed), mesh)
    best = jax.tree.map(jnp.copy, state.params)

    # --- Checkpoint / resume ---------------------------------------------------------
    ckpt = None
    loop = {
        "epoch": 0,
        "best_val": math.inf,
        "best_epoch": -1,
        "bad_epochs": 0,
        "stopped_early": False,
    }
    if workdir is not None:
        _make_workdir(workdir)
        if fresh:
            _clear_run(workdir)
        ckpt = Checkpointer(workdir / "checkpoints", keep=config.keep_checkpoints)
        try:
            restored = ckpt.restore(state, best)
            if restored is not None:
                state, best, meta, _ = restored
                loop.update(meta["loop"])
            # Atomic writes: a kill while writing must not leave a file that blocks resuming.
            # Orbax writes checkpoints collectively; plain files come from process 0 only.
            if runtime.is_main_process():
                _write_atomic(workdir / "config.json", config.dumps())
                if ds.scaler is not None:
                    _write_atomic(workdir / "scaler.json", json.dumps(ds.scaler.to_dict()))
                _truncate_metrics(workdir / "metrics.jsonl", loop["epoch"])
        except BaseException:
            ckpt.close()
            raise
    history = _read_metrics(workdir / "metrics.jsonl") if workdir else []

    # --- Update step -----------------------------------------------------------------
    train_step = make_train_step(model, tx, likelihood, config.nonfinite)
    platform = mesh.devices.flat[0].platform
    eval_step = xla.jit(make_eval_step(model, likelihood), platform=platform)

    def loop_step(state, acc, batch, key):
        state, m = train_step(state, batch, key)
        return state, accumulate(acc, m)

    acc0 = {k: jnp.zeros((), jnp.float32) for k in ("loss", "count", "nonfinite")}
    acc0 = shard.replicate(acc0, mesh)
    batch_spec = jax.ShapeDtypeStruct(
        (batch_size, *ds.input_shape), jnp.float32, sharding=shard.batch_sharding(mesh)
    )
    t0 = time.perf_counter()
    step_fn = (
        xla.jit(loop_step, platform=platform, donate_argnums=(0, 1))
        .lower(state, acc0, batch_spec, state.rng)
        .compile()
    )
    compile_seconds = time.perf_counter() - t0

    # --- Loop ------------------------------------------------------------------------
    # A buffer of its own: the state (and its rng leaf) is donated at every step.
    key = jax.tree.map(jnp.copy, state.rng)
    start_epoch = loop["epoch"]
    train_time, train_samples, epochs_run = 0.0, 0, 0

    def run_result() -> RunResult:
        """The run as it stands: returned at the end, attached to errors raised mid-run."""
        stats = {
            "steps": int(state.step),
            "steps_per_epoch": steps_per_epoch,
            "batch_size": batch_size,
            "epochs_run": epochs_run,
            "best_epoch": loop["best_epoch"],
            "stopped_early": loop["stopped_early"],
            "compile_seconds": compile_seconds,
            "train_samples_per_sec": train_samples / train_time if train_time > 0 else None,
            "devices": n_dev,
        }
        return RunResult(config, ds, model, shard.fetch(best), state, history, stats, workdir)

    bar = tqdm.tqdm(
        range(start_epoch, config.epochs),
        desc=f"{config.model}/{ds.name}",
        disable=not config.progress,
        initial=start_epoch,
        total=config.epochs,
        unit="epoch",
        leave=False,
    )
    try:
        for epoch in bar:
            if loop["stopped_early"]:
                break
            perm = epoch_permutation(config.seed, epoch, n_train)
            acc = jax.tree.map(jnp.zeros_like, acc0)
            t_epoch = time.perf_counter()
            for i in range(steps_per_epoch):
                idx = perm[i * batch_size : (i + 1) * batch_size]
                state, acc = step_fn(state, acc, shard.put_batch(x_train[idx], mesh), key)
            # One host sync per epoch: the summed metrics.
            acc = shard.fetch(acc)
            dt = time.perf_counter() - t_epoch
            if epoch > start_epoch or config.epochs - start_epoch == 1:
                train_time += dt
                train_samples += steps_per_epoch * batch_size
            epochs_run += 1
            if acc["nonfinite"] > 0 and config.nonfinite == "stop":
                raise TrainingDivergedError(
                    f"loss or gradients became NaN/Inf in epoch {epoch + 1} "
                    f"({int(acc['nonfinite'])} step(s)); training stopped. The last good "
                    f"checkpoint is kept{_where(ckpt)}. Lower --lr, check the data, or use "
                    "--set nonfinite=skip to skip such steps."
                )
            record = _epoch_record(
                acc, epoch, steps_per_epoch, batch_size, dt, make_schedule(config, total_steps)
            )
            # --- Evals and early stopping ---
            monitor = record["train_loss"]
            if x_val.shape[0]:
                val = evaluate_arrays(eval_step, state.params, x_val, batch_size, mesh)
                record.update(val_loss=val["loss"], val_recon_mse=val["recon_mse"])
                monitor = val["loss"]
                if not math.isfinite(monitor):
                    # Finite steps can still leave parameters that overflow on other data;
                    # skipping steps cannot repair them, so both policies stop here.
                    raise TrainingDivergedError(
                        f"the validation loss became {monitor} in epoch {epoch + 1}; training "
                        f"stopped. The last good checkpoint is kept{_where(ckpt)}. Lower "
                        "--lr or check the data."
                    )
            if monitor < loop["best_val"] - config.min_delta:
                loop.update(best_val=monitor, best_epoch=epoch + 1, bad_epochs=0)
                best = jax.tree.map(jnp.copy, state.params)
            else:
                loop["bad_epochs"] += 1
                if config.patience and loop["bad_epochs"] >= config.patience:
                    loop["stopped_early"] = True
            loop["epoch"] = epoch + 1
            history.append(record)
            bar.set_postfix(
                train=f"{record['train_loss']:.4g}",
                val=f"{record.get('val_loss', float('nan')):.4g}",
            )
            # --- Checkpoint ---
            if ckpt is not None:
                # The log line first: a line without a committed checkpoint is dropped on
                # resume, while a checkpoint without its line would leave a gap in the log.
                if runtime.is_main_process():
                    _append_metrics(workdir / "metrics.jsonl", record)
                last = loop["epoch"] == config.epochs or loop["stopped_early"]
                if last or loop["epoch"] % config.checkpoint_every == 0:
                    meta = {
                        "loop": dict(loop),
                        "config": config.to_dict(),
                        "record": record,
                        "data": {
                            "name": ds.name,
                            "kind": ds.kind,
                            "input_shape": list(ds.input_shape),
                        },
                    }
                    ckpt.save(record["step"], state, best, meta)
            if on_epoch_end is not None:
                on_epoch_end(record)
    except BaseException as e:
        bar.close()
        if tb is not None:
            tb.close()
        if ckpt is not None:
            try:
                ckpt.close()  # lets a pending save commit: it is the newest good state
            except CheckpointError as close_error:
                if hasattr(e, "add_note"):
                    e.add_note(str(close_error))
        if isinstance(e, AejaxError):  # raised between steps, so the state is intact
            e.result = run_result()  # the in-memory run is not lost with the error
        raise
    bar.close()
    if tb is not None:
        tb.close()  # its writer thread flushes the last events on close
    if ckpt is not None:
        try:
            ckpt.close()  # waits for the last save to commit
        except CheckpointError as e:
            e.result = run_result()
            raise
    return run_result()


def _epoch_record(acc, epoch, steps_per_epoch, batch_size, seconds, schedule) -> dict:
    """The metrics.jsonl line of one epoch, from the summed step metrics."""
    step = (epoch + 1) * steps_per_epoch
    valid = acc["count"] - acc["nonfinite"] * batch_size
    record = {
        "epoch": epoch + 1,
        "step": int(step),
        "train_loss": float(acc["loss"] / max(valid, 1)),
        "lr": float(schedule(step)),
        "epoch_seconds": round(seconds, 4),
    }
    if acc["nonfinite"] > 0:
        record["skipped_nonfinite_steps"] = int(acc["nonfinite"])
        warnings.warn(
            f"epoch {epoch + 1}: skipped {int(acc['nonfinite'])} step(s) with "
            "NaN/Inf loss or gradients",
            stacklevel=3,
        )
    return record


def evaluate_arrays(eval_step, params, x: np.ndarray, batch_size: int, mesh) -> dict[str, float]:
    """Mean objective and per-element MSE of ``params`` on ``x: [N, ...]``, static batch shapes."""
    totals = None
    n = x.shape[0]
    for i in range(0, n, batch_size):
        chunk = x[i : i + batch_size]
        mask = np.ones(batch_size, np.float32)
        if chunk.shape[0] < batch_size:
            mask[chunk.shape[0] :] = 0.0
            chunk = np.concatenate(
                [chunk, np.zeros((batch_size - chunk.shape[0], *x.shape[1:]), x.dtype)]
            )
        m = eval_step(params, shard.put_batch(chunk, mesh), shard.put_batch(mask, mesh))
        totals = accumulate(totals, m)
    totals = shard.fetch(totals)
    per_example_elems = math.prod(x.shape[1:])
    return {
        "loss": float(totals["loss"] / totals["count"]),
        "recon_mse": float(totals["sse"] / (totals["count"] * per_example_elems)),
    }


def _check_same_run(workdir: pathlib.Path, config: Config) -> None:
    saved = workdir / "config.json"
    if saved.exists():
        try:
            old = Config.from_dict(json.loads(saved.read_text()))
        except (OSError, ValueError) as e:  # JSONDecodeError and ConfigError are ValueErrors
            raise CheckpointError(
                f"{saved} is unreadable ({e}); use a new workdir or --fresh"
            ) from e
    else:  # killed before config.json was written: the checkpoints record the config too
        ckpts = workdir / "checkpoints"
        if not ckpts.is_dir() or not any(p.name.isdigit() for p in ckpts.iterdir()):
            return
        with Checkpointer(ckpts, read_only=True) as c:
            meta = c.read_meta()
        if meta is None:
            return
        try:
            old = Config.from_dict(meta["config"])
        except (KeyError, ValueError) as e:
            raise CheckpointError(
                f"{ckpts}: the checkpoint's config is unreadable ({e}); use "
                "a new workdir or --fresh"
            ) from e
    a, b = old.semantic_dict(), config.semantic_dict()
    diff = {k: (a[k], b[k]) for k in a if a[k] != b[k]}
    if diff:
        listing = ", ".join(f"{k}: {o!r} -> {n!r}" for k, (o, n) in sorted(diff.items()))
        raise CheckpointError(
            f"workdir {workdir} holds a run with another config ({listing}). Use another "
            "--workdir, or --fresh (fresh=True) to discard it and start again."
        )


def _where(ckpt: Checkpointer | None) -> str:
    return f" in {ckpt.directory}" if ckpt is not None else ""


def check_workdir(workdir: pathlib.Path, config: Config, *, fresh: bool = False) -> None:
    """Checks, before data are loaded and steps compiled, that the run can be saved there.

    Creates nothing, so a run refused for another reason leaves no empty directory behind.

    Args:
      workdir: the run directory.
      config: the run's config, compared with the one of a run already in ``workdir``.
      fresh: the run in ``workdir`` will be discarded: skip the checks of its contents.

    Raises:
      CheckpointError: ``workdir`` or its ``checkpoints`` is a file or is not writable, or
        ``workdir`` holds a run with another config (a computing field differs).
    """
    if workdir.exists() and not workdir.is_dir():
        raise CheckpointError(f"workdir {workdir} exists as a file, not a directory")
    ckpts = workdir / "checkpoints"
    if ckpts.is_dir() and not fresh:
        check_writable(ckpts)
        _check_same_run(workdir, config)
        return
    if ckpts.exists() and not fresh:
        check_writable(ckpts)  # names the file that is in the way
    parent = workdir
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise CheckpointError(
            f"cannot create workdir {workdir}: {parent} is not a writable directory"
        )
    if workdir.is_dir() and not fresh:
        _check_same_run(workdir, config)


def _make_workdir(workdir: pathlib.Path) -> None:
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CheckpointError(f"cannot create workdir {workdir}: {e}") from e


def _write_atomic(path: pathlib.Path, text: str) -> None:
    """Writes ``text`` to a temporary file and renames it over ``path``: all or nothing."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise CheckpointError(f"cannot write {path}: {e}") from e


def _append_metrics(path: pathlib.Path, record: dict) -> None:
    try:
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")
    except OSError as e:
        raise CheckpointError(f"cannot write {path}: {e}") from e


def _clear_run(workdir: pathlib.Path) -> None:
    _remove_discarded(workdir)  # left by a --fresh run killed while deleting
    ckpts = workdir / "checkpoints"
    if ckpts.exists() or ckpts.is_symlink():
        # Renamed first, so a kill while deleting cannot leave half a checkpoint behind
        # under a step's name.
        try:
            os.replace(ckpts, workdir / f".checkpoints.discarded-{os.getpid()}")
        except OSError as e:
            raise CheckpointError(f"cannot discard {ckpts}: {e}") from e
        _remove_discarded(workdir)
    for name in ("metrics.jsonl", "summary.json", "config.json", "scaler.json"):
        (workdir / name).unlink(missing_ok=True)


def _remove_discarded(workdir: pathlib.Path) -> None:
    for doomed in workdir.glob(".checkpoints.discarded-*"):
        if doomed.is_dir() and not doomed.is_symlink():
            shutil.rmtree(doomed, ignore_errors=True)
        else:
            doomed.unlink(missing_ok=True)


def _truncate_metrics(path: pathlib.Path, epochs_done: int) -> None:
    """Drops log lines of epochs whose checkpoint never committed (the run died after them)."""
    if not path.exists():
        return
    kept = [r for r in _read_metrics(path) if r.get("epoch", 0) <= epochs_done]
    _write_atomic(path, "".join(json.dumps(r) + "\n" for r in kept))


def _read_metrics(path: pathlib.Path) -> list[dict]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut short by a kill; everything after it is stale too
    return records
