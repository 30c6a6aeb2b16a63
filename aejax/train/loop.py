"""The training loop: input, model, shard, update step, checkpoint, evals, summary."""

from __future__ import annotations

import contextlib
import math
import pathlib
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from aejax import tensorboard, xla
from aejax.augment import parse_augment
from aejax.config import Config
from aejax.corruption import corruption_for
from aejax.data import Dataset, load_dataset
from aejax.errors import AejaxError, CheckpointError, ConfigError, TrainingDivergedError
from aejax.inference import check_input, pad_rows
from aejax.models import model_from_config
from aejax.objective import Objective, make_objective
from aejax.train import rundir, runlock, runtime, shard
from aejax.train.checkpoint import Checkpointer
from aejax.train.interrupt import InterruptGuard
from aejax.train.optim import make_optimizers, make_schedule
from aejax.train.state import TrainState, init_state
from aejax.train.step import accumulate, make_eval_step, make_train_step, metric_names

# Step metrics that are not per-example sums of a term.
_BOOKKEEPING = ("loss", "count", "nonfinite")


@dataclass
class RunResult:
    """What ``train`` returns: the trained model, its best variables and the bookkeeping."""

    config: Config
    dataset: Dataset
    model: Any
    params: Any  # the best parameters (lowest validation loss), on the host's default device
    state: TrainState  # the whole final state: every group, optimizer and model state
    history: list[dict]
    stats: dict  # steps, epochs_run, compile_seconds, train_samples_per_sec, stopped_early
    workdir: pathlib.Path | None
    model_state: Any = None  # the best variables' collections other than params ({} if none)

    @property
    def variables(self) -> dict:
        """The best ``{"params": ..., **model_state}`` for ``model.apply`` and inference."""
        return {"params": self.params, **(self.model_state or {})}


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
        # autorec's option; any other model reads ratings: data item-based.
        ratings_rows="users" if getattr(config, "autorec_variant", "item") == "user" else "items",
        ratings_columns=config.ratings_columns,
        ratings_centre=config.ratings_centre,
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
    init_params: Any = None,
) -> RunResult:
    """Trains ``config.model`` on ``config.data``; resumes from a checkpoint in ``workdir``.

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
      dataset: an already loaded dataset (else ``load_dataset(config.data, ...)``).
      fresh: ignore (and overwrite) checkpoints already in ``workdir``.
      on_epoch_end: called with each epoch's metrics record after its checkpoint is saved.
      init_params: parameters to start from instead of a fresh initialization (the
        structure ``model.init`` gives: pretrained layers, a previous phase); a resumed
        run restores its checkpoint instead. Without them a ``stacked_ae`` run is first
        pretrained layer by layer (``aejax.pretrain.prepare_run``).

    Returns:
      A ``RunResult``; ``result.state`` is the whole final state.

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
        runtime.initialize_distributed()
    if config.compile_cache:
        runtime.enable_compilation_cache(config.compile_cache)
    workdir = pathlib.Path(workdir) if workdir is not None else None
    # Everything opened for the run (its lock, its checkpointer) is closed on every path,
    # errors included: an Orbax manager left open can hang the process at exit.
    with contextlib.ExitStack() as held:
        lock = None
        if workdir is not None and workdir.is_dir():
            # In use: refused at once, before data are loaded, whatever the directory holds.
            lock = _take_lock(held, workdir, config, fresh)
        elif workdir is not None:
            rundir.check_workdir(workdir, config, fresh=fresh)
        return _train(config, workdir, held, lock, dataset, fresh, on_epoch_end, init_params)


def _take_lock(held: contextlib.ExitStack, workdir: pathlib.Path, config: Config, fresh: bool):
    """Takes the run directory's lock for the life of ``held``, then checks it again.

    Returns:
      The ``RunLock`` (None on the other processes of a distributed run).
    """
    lock = held.enter_context(runlock.lock_run(workdir, take=runtime.is_main_process()))
    # Under the lock nobody else writes here: what the directory holds now is what the
    # run resumes (or discards with fresh).
    rundir.check_workdir(workdir, config, fresh=fresh)
    return lock


def _train(config, workdir, held, lock, dataset, fresh, on_epoch_end, init_params) -> RunResult:
    """``train``'s body; ``held`` closes what it opens, ``lock`` may still be None."""
    # --- Input -----------------------------------------------------------------------
    ds = dataset if dataset is not None else dataset_for(config)
    image = ds.kind == "image"
    if config.binarize and not image:
        raise ConfigError(f"binarize=true needs image data in [0, 1]; {ds.name!r} is {ds.kind}")
    corruption = corruption_for(config)  # "" = the model's default (denoising_ae's)
    corruption.check(ds.input_shape, ds.kind)
    augment = parse_augment(config.augment)
    augment.check(ds.input_shape, ds.kind)
    x_train = check_input(ds.x_train, ds.input_shape, f"{ds.name} training data", image=image)
    x_val, mask_val, target_val = ds.split("val")
    mask_train = ds.mask_train  # per-element 0/1 (ratings: the observed entries), or None
    if x_val.shape[0]:
        x_val = check_input(x_val, ds.input_shape, f"{ds.name} validation data", image=image)
    n_train = x_train.shape[0]
    mesh = shard.make_mesh(config.devices)
    batch_size = _batch_size(config.batch_size, n_train, mesh)
    steps_per_epoch = n_train // batch_size
    total_steps = steps_per_epoch * config.epochs
    if workdir is not None and lock is None:
        # A new directory is created only now: a run refused for its data leaves none.
        lock = _take_lock(held, workdir, config, fresh)
    tb = None
    if config.tensorboard and workdir is not None and runtime.is_main_process():
        tb = tensorboard.TensorBoardLogger(workdir / "tensorboard")
        held.callback(tb.close)  # its writer thread flushes the last events on close
        on_epoch_end = tensorboard.chain(tb, on_epoch_end)

    # --- stacked_ae: greedy layer-wise pretraining gives the initial parameters ------
    from aejax import pretrain  # late: it builds on this package

    pretrained = None
    if init_params is None and pretrain.pretrains(config):
        # Once per workdir: finished layers are kept in <workdir>/pretrain, and a run
        # whose fine-tuning has a checkpoint resumes from it instead.
        init_params, pretrained = pretrain.prepare_run(config, workdir, ds, fresh=fresh)

    # --- Model, objective and optimizers (built once: new ones would retrace) --------
    model = model_from_config(config, ds.input_shape, ds.kind)
    objective = make_objective(config, total_steps)
    optimizers = make_optimizers(config, total_steps, model)
    state = shard.replicate(
        init_state(model, optimizers, ds.input_shape, config.seed, init_params), mesh
    )
    best = _best_of(state)

    # --- Checkpoint / resume ---------------------------------------------------------
    ckpt = None
    loop = {"epoch": 0, "best_val": math.inf, "best_epoch": -1, "bad_epochs": 0}
    loop["stopped_early"] = False
    partial = None  # where an interrupted epoch stopped: {"steps", "acc", "seconds"}
    if workdir is not None:
        rundir.make_workdir(workdir)
        if fresh:
            rundir.clear_run(workdir)
        ckpt = Checkpointer(workdir / "checkpoints", keep=config.keep_checkpoints)
        held.callback(ckpt.close_quietly)  # every path, errors included, closes it
        restored = ckpt.restore(state, best)
        if restored is not None:
            state, best, meta, _ = restored
            loop.update(meta["loop"])
            partial = meta.get("partial")
        # Orbax writes checkpoints collectively; plain files come from process 0 only.
        if runtime.is_main_process():
            rundir.start_run(workdir, config, ds.scaler, loop["epoch"])
    history = rundir.read_metrics(workdir / "metrics.jsonl") if workdir else []
    # A finished run (all epochs, or stopped early) is reported, not compiled again.
    complete = loop["epoch"] >= config.epochs or loop["stopped_early"]

    # --- Update step -----------------------------------------------------------------
    # Corruption is a training transform: evals (val, test) see the clean inputs.
    train_step = make_train_step(
        model,
        optimizers,
        objective,
        nonfinite=config.nonfinite,
        binarize=config.binarize,
        corruption=corruption,
        augment=augment,
    )
    platform = mesh.devices.flat[0].platform
    eval_step = xla.jit(make_eval_step(model, objective), platform=platform)

    def loop_step(state, acc, batch, key):
        state, m = train_step(state, batch, key)
        return state, accumulate(acc, m)

    batch_spec = {
        "x": jax.ShapeDtypeStruct(
            (batch_size, *ds.input_shape), jnp.float32, sharding=shard.batch_sharding(mesh)
        )
    }
    if mask_train is not None:
        batch_spec["mask"] = batch_spec["x"]
    names = metric_names(model, state.variables(), batch_spec)
    acc0 = shard.replicate({k: jnp.zeros((), jnp.float32) for k in names}, mesh)
    compile_seconds = 0.0
    if not complete:
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
            "devices": mesh.devices.size,
            "already_complete": complete,
            "pretrain": pretrained,
        }
        host_best = shard.fetch(best)
        return RunResult(
            config,
            ds,
            model,
            host_best["params"],
            state,
            history,
            stats,
            workdir,
            host_best["model_state"],
        )

    bar = tqdm.tqdm(
        range(start_epoch, config.epochs),
        desc=f"{config.model}/{ds.name}",
        disable=not config.progress,
        initial=start_epoch,
        total=config.epochs,
        unit="epoch",
        leave=False,
    )
    likelihood_proper = model.likelihood.proper
    last_save = time.monotonic()  # the checkpoint clock starts with training
    saved_step = None  # the step of the newest checkpoint this process wrote
    # Under jax.distributed every process must join a save: a signal is acted on at the end
    # of the epoch, where the processes agree anyway (no collective per step).
    per_step = jax.process_count() == 1
    guard = InterruptGuard()
    in_step = False  # True while the state is donated to a step: no result to attach then

    def save(step: int, epoch_position: dict | None = None) -> None:
        """Checkpoints the current state (and, mid-epoch, the epoch's position) at ``step``."""
        nonlocal last_save, saved_step
        if lock is not None:
            lock.check()  # never write into a directory another run took over
        meta = {
            "loop": dict(loop),
            "config": config.to_dict(),
            "record": history[-1] if history else None,
            "data": {"name": ds.name, "kind": ds.kind, "input_shape": list(ds.input_shape)},
        }
        if epoch_position is not None:
            meta["partial"] = epoch_position
        ckpt.save(step, state, best, meta)
        last_save, saved_step = time.monotonic(), step

    def stop_for_signal(epoch: int, i: int, acc, seconds: float) -> None:
        """Checkpoints the state after step ``i`` of ``epoch`` and passes the signal on."""
        step = epoch * steps_per_epoch + i
        if ckpt is not None and saved_step != step:
            position = None
            if i:  # mid-epoch: the permutation's position and the partial sums, exactly
                sums = shard.fetch(acc)
                position = {
                    "steps": i,
                    "step": step,
                    "acc": {k: float(v).hex() for k, v in sums.items()},
                    "seconds": seconds,
                }
            save(step, position)
        if ckpt is not None:
            ckpt.wait()  # committed before anyone is told it is kept
        guard.deliver()  # the handler from before: raises, or returns and training goes on

    try:
        guard.start()  # until stop(): the loop's own SIGINT/SIGTERM handlers
        for epoch in bar:
            if loop["stopped_early"]:
                break
            # --- Steps: the only host sync of the epoch is the summed metrics ---
            perm = epoch_permutation(config.seed, epoch, n_train)
            first, acc, t_before = 0, jax.tree.map(jnp.zeros_like, acc0), 0.0
            if partial is not None and epoch == start_epoch:
                # Resumed mid-epoch: the same permutation from the same step, the same
                # sums, so the epoch's metrics.jsonl line is the uninterrupted one.
                first, acc, t_before = _resume_position(partial, acc0, mesh, ckpt)
            t_epoch = time.perf_counter()
            for i in range(first, steps_per_epoch):
                if per_step and guard.pending is not None:
                    stop_for_signal(epoch, i, acc, t_before + time.perf_counter() - t_epoch)
                idx = perm[i * batch_size : (i + 1) * batch_size]
                batch = {"x": shard.put_batch(x_train[idx], mesh)}
                if mask_train is not None:
                    batch["mask"] = shard.put_batch(mask_train[idx], mesh)
                in_step = True
                state, acc = step_fn(state, acc, batch, key)
                in_step = False
                shard.pace(acc, i + 1, mesh)  # several CPU devices: see shard.pace
            acc = shard.fetch(acc)
            dt = t_before + time.perf_counter() - t_epoch
            if epoch > start_epoch or config.epochs - start_epoch == 1:
                train_time += dt - t_before
                train_samples += (steps_per_epoch - first) * batch_size
            epochs_run += 1
            if acc["nonfinite"] > 0 and config.nonfinite == "stop":
                raise TrainingDivergedError(
                    f"loss or gradients became NaN/Inf in epoch {epoch + 1} "
                    f"({int(acc['nonfinite'])} step(s)); training stopped. {_kept(ckpt)} Lower "
                    "--lr, check the data, or use --set nonfinite=skip to skip such steps."
                )
            record = epoch_record(
                acc,
                epoch,
                steps_per_epoch,
                batch_size,
                dt,
                make_schedule(config, total_steps),
                objective,
                likelihood_proper,
            )
            # --- Evals and early stopping ---
            monitor = record["train_loss"]
            if x_val.shape[0]:
                val = evaluate_arrays(
                    eval_step,
                    state.variables(),
                    x_val,
                    batch_size,
                    mesh,
                    mask=mask_val,
                    target=target_val,
                )
                record.update(
                    {f"val_{k}": v for k, v in _with_elbo(val, likelihood_proper).items()}
                )
                monitor = val["loss"]
                if not math.isfinite(monitor):
                    # Finite steps can still leave parameters that overflow on other data;
                    # skipping steps cannot repair them, so both policies stop here.
                    raise TrainingDivergedError(
                        f"the validation loss became {monitor} in epoch {epoch + 1}; training "
                        f"stopped. {_kept(ckpt)} Lower --lr or check the data."
                    )
            if monitor < loop["best_val"] - config.min_delta:
                loop.update(best_val=monitor, best_epoch=epoch + 1, bad_epochs=0)
                best = _best_of(state)
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
            # A signal during the epoch's evals is acted on once the epoch is logged.
            signalled = runtime.agree(guard.pending is not None)
            if ckpt is not None:
                # The log line first: a line without a committed checkpoint is dropped on
                # resume, while a checkpoint without its line would leave a gap in the log.
                if runtime.is_main_process():
                    rundir.append_metrics(workdir / "metrics.jsonl", record)
                if signalled or _checkpoint_due(config, loop, time.monotonic() - last_save):
                    save(record["step"])
            if on_epoch_end is not None:
                on_epoch_end(record)
            if signalled:
                stop_for_signal(epoch + 1, 0, None, 0.0)
        guard.stop()  # the handlers from before; a signal noted after the last step
        # (during the final evals) is passed on now, not swallowed
    except BaseException as e:
        guard.stop(deliver=False)
        bar.close()
        if ckpt is not None:
            try:
                if isinstance(e, KeyboardInterrupt):
                    e.add_note(_kept(ckpt))  # waits for a pending save: it is kept
                ckpt.close()  # lets a pending save commit: it is the newest good state
            except CheckpointError as close_error:
                e.add_note(str(close_error))
        # Raised between steps, the state is intact: the in-memory run is not lost with
        # the error (a second Ctrl-C inside a step leaves a donated, deleted state).
        if isinstance(e, (AejaxError, KeyboardInterrupt)) and not in_step:
            e.result = run_result()
        raise
    bar.close()
    if ckpt is not None:
        try:
            ckpt.close()  # waits for the last save to commit
        except CheckpointError as e:
            e.result = run_result()
            raise
    return run_result()


def _batch_size(requested: int, n_train: int, mesh) -> int:
    """``requested``, shrunk (with a warning) when the data cannot fill one batch."""
    n_dev = mesh.devices.size
    batch_size = requested
    if batch_size > n_train:
        # A batch larger than the data would give zero steps per epoch.
        batch_size = max(n_dev, (n_train // n_dev) * n_dev)
        warnings.warn(
            f"batch_size {requested} > {n_train} training examples; using {batch_size}",
            stacklevel=3,
        )
        if batch_size > n_train:
            raise ConfigError(
                f"{n_train} training examples cannot fill one batch on {n_dev} "
                "devices; use --devices 1"
            )
    shard.check_batch_size(batch_size, mesh)
    return batch_size


def _best_of(state: TrainState) -> dict:
    """A copy of what inference needs: the parameters and the model state."""
    return jax.tree.map(jnp.copy, {"params": state.params, "model_state": state.model_state})


def _with_elbo(means: dict[str, float], proper: bool) -> dict[str, float]:
    """Adds ``elbo = -(reconstruction + kl)`` when both terms exist and the NLL is exact."""
    if proper and "kl" in means and "reconstruction" in means:
        return {**means, "elbo": -(means["reconstruction"] + means["kl"])}
    return means


def epoch_record(
    acc,
    epoch: int,
    steps_per_epoch: int,
    batch_size: int,
    seconds: float,
    schedule,
    objective: Objective,
    proper: bool = False,
) -> dict:
    """The metrics.jsonl line of one epoch, from the summed step metrics.

    ``train_<term>`` is the mean per example of every unweighted term and batch statistic;
    ``weight_<term>`` the weight of each scheduled term at the epoch's last step.
    """
    step = (epoch + 1) * steps_per_epoch
    valid = max(float(acc["count"] - acc["nonfinite"] * batch_size), 1.0)
    means = {k: float(v / valid) for k, v in acc.items() if k not in _BOOKKEEPING}
    record = {
        "epoch": epoch + 1,
        "step": int(step),
        "train_loss": float(acc["loss"] / valid),
        **{f"train_{k}": v for k, v in _with_elbo(means, proper).items()},
        "lr": float(schedule(step)),
    }
    for name, w in objective.weights.items():
        if callable(w) and name in means:
            record[f"weight_{name}"] = float(objective.weight(name, step))
    if objective.capacity is not None and "kl" in means:
        record["capacity"] = float(objective.capacity(step))
    record["epoch_seconds"] = round(seconds, 4)
    if acc["nonfinite"] > 0:
        record["skipped_nonfinite_steps"] = int(acc["nonfinite"])
        warnings.warn(
            f"epoch {epoch + 1}: skipped {int(acc['nonfinite'])} step(s) with "
            "NaN/Inf loss or gradients",
            stacklevel=3,
        )
    return record


def evaluate_arrays(
    eval_step,
    variables,
    x: np.ndarray,
    batch_size: int,
    mesh,
    *,
    mask: np.ndarray | None = None,
    target: np.ndarray | None = None,
) -> dict[str, float]:
    """Mean objective, terms and per-element MSE on ``x: [N, ...]``, in static batch shapes.

    Args:
      eval_step: ``make_eval_step``'s function (jitted).
      variables: the model's variables.
      x: ``[N, ...]`` the model's inputs.
      batch_size: rows per call (the last batch is padded with weight-0 rows).
      mesh: the device mesh.
      mask: optional ``[N, ...]`` 0/1 entries scored (ratings: the held-out ones).
      target: optional ``[N, ...]`` what is scored instead of ``x`` (held-out ratings).

    Returns:
      ``{"loss", "recon_mse", <term>...}``: means per example; ``recon_mse`` per element,
      or per scored (mask 1) element when ``mask`` is given.
    """
    totals = None
    n = x.shape[0]
    for i in range(0, n, batch_size):
        parts = {"x": x, "mask": mask, "target": target}
        batch = {
            k: pad_rows(a[i : i + batch_size], batch_size)
            for k, a in parts.items()
            if a is not None
        }
        weight = np.ones(batch_size, np.float32)
        weight[min(n - i, batch_size) :] = 0.0
        batch = {k: shard.put_batch(a, mesh) for k, a in {**batch, "weight": weight}.items()}
        totals = accumulate(totals, eval_step(variables, batch))
        shard.pace(totals, i // batch_size + 1, mesh, programs=1 + len(totals))
    totals = shard.fetch(totals)
    count = totals["count"]
    out = {"loss": float(totals["loss"] / count)}
    elements = totals["observed"] if mask is not None else count * math.prod(x.shape[1:])
    out["recon_mse"] = float(totals["sse"] / max(float(elements), 1.0))
    for k, v in totals.items():
        if k not in ("loss", "sse", "count", "observed"):
            out[k] = float(v / count)
    return out


def _checkpoint_due(config: Config, loop: dict, since_last: float) -> bool:
    """Whether the epoch just finished is checkpointed.

    Always the last epoch (or an early stop); else every ``checkpoint_every`` epochs when
    that is set, and whenever ``checkpoint_seconds`` have passed since the last save. The
    best parameters travel inside every checkpoint, so a new best needs no save of its
    own: a resumed run recomputes the epochs after its checkpoint, and their bests, bit for
    bit. Under ``jax.distributed`` every process must save together, so process 0's clock
    decides for all.
    """
    if loop["epoch"] >= config.epochs or loop["stopped_early"]:
        return True
    if config.checkpoint_every and loop["epoch"] % config.checkpoint_every == 0:
        return True
    return runtime.agree(since_last >= config.checkpoint_seconds)


def _resume_position(partial: dict, acc0, mesh, ckpt: Checkpointer):
    """``(first step, summed metrics, seconds)`` of an epoch a signal interrupted.

    Raises:
      CheckpointError: the checkpoint's partial sums are not this step's metrics.
    """
    try:
        sums = {k: np.float32(float.fromhex(v)) for k, v in partial["acc"].items()}
        first, seconds = int(partial["steps"]), float(partial["seconds"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{ckpt.directory}: unreadable mid-epoch position ({e})") from e
    if set(sums) != set(acc0):
        raise CheckpointError(
            f"{ckpt.directory}: the mid-epoch metrics {sorted(sums)} are not this model's "
            f"{sorted(acc0)}; use --fresh (fresh=True) to start again"
        )
    # Float32 stored as exact hex floats: the resumed sums are the interrupted ones' bits.
    acc = shard.replicate({k: jnp.asarray(sums[k]) for k in acc0}, mesh)
    return first, acc, seconds


def _kept(ckpt: Checkpointer | None) -> str:
    """What a failed run leaves on disk, in words that are true."""
    if ckpt is None:
        return "Nothing was saved (no workdir)."
    committed = checkpoint_epoch(ckpt)
    if committed is None:
        return f"No checkpoint had been written yet in {ckpt.directory}: a new run starts over."
    which = describe(ckpt.read_meta())
    return f"The last good checkpoint, of {which}, is kept in {ckpt.directory}."


def describe(meta: dict) -> str:
    """``epoch 3`` for an epoch's end; ``epoch 3, step 412 (mid-epoch)`` for an interrupt's."""
    partial = meta.get("partial")
    if partial:
        return f"epoch {int(meta['loop']['epoch']) + 1}, step {partial['step']} (mid-epoch)"
    return f"epoch {int(meta['loop']['epoch'])}"


def committed_checkpoint(workdir: str | pathlib.Path) -> dict | None:
    """The metadata of the newest committed checkpoint in a run directory, or None."""
    directory = pathlib.Path(workdir) / "checkpoints"
    if not directory.is_dir():
        return None
    try:
        with Checkpointer(directory, read_only=True) as ckpt:
            return ckpt.read_meta() if checkpoint_epoch(ckpt) is not None else None
    except CheckpointError:
        return None


def committed_epoch(workdir: str | pathlib.Path) -> int | None:
    """The finished epochs of the newest committed checkpoint in a run directory, or None."""
    meta = committed_checkpoint(workdir)
    return None if meta is None else int(meta["loop"]["epoch"])


def checkpoint_epoch(ckpt: Checkpointer) -> int | None:
    """The epoch of the newest committed checkpoint (pending saves waited for), or None."""
    try:
        ckpt.wait()
    except CheckpointError:
        pass  # a failed save: the committed ones below it still stand
    try:
        meta = ckpt.read_meta()
    except CheckpointError:
        return None
    return None if meta is None else int(meta["loop"]["epoch"])
