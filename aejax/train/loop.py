"""The training loop, ``fit``: trains the objects it is given (model, objective, optimizers,
data) in labelled sections: input, state, checkpoint/resume, update step, the epochs."""

from __future__ import annotations

import contextlib
import math
import pathlib
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import tqdm

from aejax import xla
from aejax.data import Dataset
from aejax.data.augment import Augment
from aejax.data.corruption import Corruption
from aejax.data.stream import streamed
from aejax.errors import AejaxError, CheckpointError, ConfigError, TrainingDivergedError
from aejax.inference import check_input
from aejax.models.objective import Objective
from aejax.train import resident, rundir, runlock, runtime, shard, tensorboard
from aejax.train.checkpoint import Checkpointer
from aejax.train.early_stopping import EarlyStopping
from aejax.train.epoch import (
    Carry,
    epoch_permutation,
    epoch_record,
    evaluate_arrays,
    with_elbo,
    zero_metrics,
)
from aejax.train.interrupt import InterruptGuard
from aejax.train.result import LoopSettings, RunResult
from aejax.train.resume import epoch_position, kept, resume_position
from aejax.train.state import TrainState, init_state
from aejax.train.step import make_eval_step, make_train_step, metric_names
from aejax.train.streamed import check_state


def fit(
    model: Any,
    objective: Objective,
    optimizers: Any,
    data: Dataset,
    settings: LoopSettings,
    workdir: str | pathlib.Path | None = None,
    *,
    corruption: Corruption | None = None,
    augment: Augment | None = None,
    schedule: Callable[[int], Any] | None = None,
    init_params: Any = None,
    fresh: bool = False,
    on_epoch_end: Callable[[dict], None] | None = None,
    record: Any = None,
    lock: runlock.RunLock | None = None,
) -> RunResult:
    """Trains ``model`` on ``data``; resumes from a checkpoint in ``workdir``.

    The engine's entry point on objects: it reads no ``Config``. ``aejax.train_run``
    (``aejax.assemble.train``) builds the objects from a config and calls it.

    Ctrl-C and SIGTERM during the steps checkpoint the current step (the position in the
    epoch and its partial metrics included, so that running again resumes bit-identically)
    and are then passed on to the handlers installed before ``fit`` (restored when it
    returns). A second signal is passed on at once.

    Args:
      model: a registry model (``model_from_config``, or built by hand).
      objective: the term weights (``aejax.models.objective.Objective``).
      optimizers: one optax optimizer, or ``{group: optimizer}`` (``model.phases``).
      data: the dataset: its training split trains, its validation split is evaluated
        every epoch (early stopping monitors it; the training loss when it is empty).
      settings: the loop's settings (``LoopSettings``).
      workdir: where ``config.json``, ``metrics.jsonl`` and ``checkpoints/`` go; None
        trains in memory only. A workdir needs ``record``.
      corruption: the training inputs' corruption (denoising); evals see clean inputs.
      augment: the training images' augmentation.
      schedule: the learning rate at a step, logged as each epoch's ``lr`` (optional).
      init_params: parameters to start from instead of a fresh initialization (ignored
        by a run that resumes from its checkpoint).
      fresh: ignore (and overwrite) checkpoints already in ``workdir``.
      on_epoch_end: called with each epoch's metrics record after its checkpoint is saved.
      record: the run's ``Config``, kept opaque: written to ``config.json`` and every
        checkpoint's metadata, and compared with a run already in ``workdir``.
      lock: the run directory's lock, already held by the caller; without it ``fit``
        takes it (and checks the directory) for its own duration.

    Returns:
      A ``RunResult``; ``result.state`` is the whole final state.

    Raises:
      CheckpointError, ConfigError, TrainingDivergedError, KeyboardInterrupt: as
      ``aejax.train_run`` documents; raised mid-run they carry ``error.result``.
    """
    if workdir is not None and record is None:
        raise ConfigError("fit: a workdir needs record= (the run's Config, for config.json)")
    workdir = pathlib.Path(workdir) if workdir is not None else None
    # Everything opened for the run (its lock, its checkpointer) is closed on every path,
    # errors included: an Orbax manager left open can hang the process at exit.
    with contextlib.ExitStack() as held:
        if workdir is not None and lock is None:
            # In use: refused at once, before anything is computed.
            lock = take_lock(held, workdir, record, fresh)
        return _fit(
            model,
            objective,
            optimizers,
            data,
            settings,
            workdir,
            held,
            lock,
            corruption=corruption,
            augment=augment,
            schedule=schedule,
            init_params=init_params,
            fresh=fresh,
            on_epoch_end=on_epoch_end,
            record=record,
        )


def take_lock(held: contextlib.ExitStack, workdir: pathlib.Path, record: Any, fresh: bool):
    """Takes the run directory's lock for the life of ``held``, then checks the directory.

    Returns:
      The ``RunLock`` (None on the other processes of a distributed run).
    """
    lock = held.enter_context(runlock.lock_run(workdir, take=runtime.is_main_process()))
    # Under the lock nobody else writes here: what the directory holds now is what the
    # run resumes (or discards with fresh).
    rundir.check_workdir(workdir, record, fresh=fresh)
    return lock


def check_data(ds: Dataset) -> tuple:
    """``(x_train, (x_val, mask_val, target_val))``, checked: float32, or uint8 pixels
    (the compiled steps read them as floats in [0, 1]).

    Raises:
      DataError: examples of another shape, non-numeric, NaN/Inf, or (images) pixels
        outside 0..255 or [0, 1].
    """
    image = ds.kind == "image"
    x_train, (x_val, mask_val, target_val) = ds.x_train, ds.split("val")
    if not streamed(x_train):  # a streamed split is checked batch by batch as it is read
        x_train = check_input(x_train, ds.input_shape, f"{ds.name} training data", image=image)
    if x_val.shape[0] and not streamed(x_val):
        x_val = check_input(x_val, ds.input_shape, f"{ds.name} validation data", image=image)
    return x_train, (x_val, mask_val, target_val)


def best_of(state: TrainState) -> dict:
    """A copy of what inference needs: the parameters and the model state."""
    return jax.tree.map(jnp.copy, {"params": state.params, "model_state": state.model_state})


def checkpoint_due(settings: LoopSettings, stopper: EarlyStopping, since_last: float) -> bool:
    """Whether the epoch just finished is checkpointed.

    Always the last epoch (or an early stop); else every ``checkpoint_every`` epochs when
    that is set, and whenever ``checkpoint_seconds`` have passed since the last save. The
    best parameters travel inside every checkpoint, so a new best needs no save of its
    own: a resumed run recomputes the epochs after its checkpoint, and their bests, bit for
    bit. Under ``jax.distributed`` every process must save together, so process 0's clock
    decides for all.
    """
    if stopper.epoch >= settings.epochs or stopper.stopped:
        return True
    if settings.checkpoint_every and stopper.epoch % settings.checkpoint_every == 0:
        return True
    return runtime.agree(since_last >= settings.checkpoint_seconds)


def _fit(
    model,
    objective,
    optimizers,
    ds,
    settings,
    workdir,
    held,
    lock,
    *,
    corruption,
    augment,
    schedule,
    init_params,
    fresh,
    on_epoch_end,
    record,
) -> RunResult:
    """``fit``'s body; ``held`` closes what it opens, ``lock`` is held for ``workdir``."""
    # --- Input -----------------------------------------------------------------------
    x_train, (x_val, mask_val, target_val) = check_data(ds)
    mask_train = ds.mask_train  # per-element 0/1 (ratings: the observed entries), or None
    n_train = x_train.shape[0]
    mesh = shard.make_mesh(settings.devices)
    batch_size = settings.batch_size
    shard.check_batch_size(batch_size, mesh)
    steps_per_epoch = n_train // batch_size
    if steps_per_epoch < 1:
        raise ConfigError(f"{n_train} training examples cannot fill a batch of {batch_size}")
    if settings.tensorboard and workdir is not None and runtime.is_main_process():
        tb = tensorboard.TensorBoardLogger(workdir / "tensorboard")
        held.callback(tb.close)  # its writer thread flushes the last events on close
        on_epoch_end = tensorboard.chain(tb, on_epoch_end)

    # --- State (built once: a new one would retrace) ----------------------------------
    state = shard.replicate(
        init_state(model, optimizers, ds.input_shape, settings.seed, init_params), mesh
    )
    best = best_of(state)

    # --- Checkpoint / resume ---------------------------------------------------------
    ckpt = None
    stopper = EarlyStopping(settings.patience, settings.min_delta)
    partial = None  # where an interrupted epoch stopped: {"steps", "acc", "seconds"}
    if workdir is not None:
        rundir.make_workdir(workdir)
        if fresh:
            rundir.clear_run(workdir)
        ckpt = Checkpointer(workdir / "checkpoints", keep=settings.keep_checkpoints)
        held.callback(ckpt.close_quietly)  # every path, errors included, closes it
        restored = ckpt.restore(state, best)
        if restored is not None:
            state, best, meta, _ = restored
            stopper.load_state_dict(meta["loop"])
            partial = meta.get("partial")
        # Orbax writes checkpoints collectively; plain files come from process 0 only.
        if runtime.is_main_process():
            rundir.start_run(workdir, record, ds.scaler, stopper.epoch)
    history = rundir.read_metrics(workdir / "metrics.jsonl") if workdir else []
    # A finished run (all epochs, or stopped early) is reported, not compiled again.
    complete = stopper.epoch >= settings.epochs or stopper.stopped

    # --- Update step -----------------------------------------------------------------
    # Corruption is a training transform: evals (val, test) see the clean inputs.
    train_step = make_train_step(
        model,
        optimizers,
        objective,
        nonfinite=settings.nonfinite,
        binarize=settings.binarize,
        corruption=corruption,
        augment=augment,
    )
    platform = mesh.devices.flat[0].platform
    eval_step = xla.jit(make_eval_step(model, objective), platform=platform)
    batch_spec = {
        "x": jax.ShapeDtypeStruct(
            (batch_size, *ds.input_shape), x_train.dtype, sharding=shard.batch_sharding(mesh)
        )
    }
    if mask_train is not None:
        batch_spec["mask"] = batch_spec["x"]
    acc0 = zero_metrics(metric_names(model, state.variables(), batch_spec), mesh)
    arrays = {"x": x_train} if mask_train is None else {"x": x_train, "mask": mask_train}
    on_device = resident.use_device_data(
        settings.device_data, settings.device_data_fraction, arrays, mesh,
        lambda: resident.convolutional(model, state.variables(), batch_spec),
    )  # fmt: skip
    compile_seconds = 0.0
    step_fn = None
    if not complete:
        t0 = time.perf_counter()
        step_fn, arrays = resident.compile_steps(
            train_step, platform, mesh, (state, acc0, batch_spec), arrays, on_device
        )
        compile_seconds = time.perf_counter() - t0
    planner = resident.ChunkPlanner() if on_device else None

    # --- Loop ------------------------------------------------------------------------
    # A buffer of its own: the state (and its rng leaf) is donated at every step.
    key = jax.tree.map(jnp.copy, state.rng)
    carry = Carry(state, acc0)
    start_epoch = stopper.epoch
    train_time, train_samples, epochs_run = 0.0, 0, 0

    def run_result() -> RunResult:
        """The run as it stands: returned at the end, attached to errors raised mid-run."""
        stats = {
            "steps": int(carry.state.step),
            "steps_per_epoch": steps_per_epoch,
            "batch_size": batch_size,
            "epochs_run": epochs_run,
            "best_epoch": stopper.best_epoch,
            "stopped_early": stopper.stopped,
            "compile_seconds": compile_seconds,
            "train_samples_per_sec": train_samples / train_time if train_time > 0 else None,
            "devices": mesh.devices.size,
            "device_data": on_device,
            "already_complete": complete,
        }
        host_best = shard.fetch(best)
        return RunResult(
            record,
            ds,
            model,
            host_best["params"],
            carry.state,
            history,
            stats,
            workdir,
            host_best["model_state"],
        )

    bar = tqdm.tqdm(
        range(start_epoch, settings.epochs),
        desc=settings.label,
        disable=not settings.progress,
        initial=start_epoch,
        total=settings.epochs,
        unit="epoch",
        leave=False,
    )
    # A model whose reconstruction term is no NLL (msssim_vae) logs no ELBO.
    likelihood_proper = model.likelihood.proper and getattr(model, "reconstruction_is_nll", True)
    last_save = time.monotonic()  # the checkpoint clock starts with training
    saved_step = None  # the step of the newest checkpoint this process wrote
    # Under jax.distributed every process must join a save: a signal is acted on at the end
    # of the epoch, where the processes agree anyway (no collective per step).
    per_step = jax.process_count() == 1
    stream_saves = per_step and ckpt is not None and streamed(x_train)
    save_every = settings.checkpoint_seconds
    guard = InterruptGuard()

    def save(step: int, position: dict | None = None) -> None:
        """Checkpoints the current state (and, mid-epoch, the epoch's position) at ``step``."""
        nonlocal last_save, saved_step
        if lock is not None:
            lock.check()  # never write into a directory another run took over
        meta = {
            "loop": stopper.state_dict(),
            "config": record.to_dict(),
            "record": history[-1] if history else None,
            "data": {
                "name": ds.name,
                "kind": ds.kind,
                "input_shape": list(ds.input_shape),
                "n_train": int(ds.x_train.shape[0]),  # what a model's build may read
            },
        }
        if position is not None:
            meta["partial"] = position
        ckpt.save(step, carry.state, best, meta)
        last_save, saved_step = time.monotonic(), step

    def stop_for_signal(epoch: int, i: int, seconds: float) -> None:
        """Checkpoints the state after step ``i`` of ``epoch`` and passes the signal on."""
        step = epoch * steps_per_epoch + i
        if ckpt is not None and saved_step != step:
            # Mid-epoch: the permutation's position and the partial sums, exactly.
            position = epoch_position(i, step, shard.fetch(carry.acc), seconds, carry.data_state)
            save(step, position if i else None)
        if ckpt is not None:
            ckpt.wait()  # committed before anyone is told it is kept
        guard.deliver()  # the handler from before: raises, or returns and training goes on

    try:
        guard.start()  # until stop(): the loop's own SIGINT/SIGTERM handlers
        for epoch in bar:
            if stopper.stopped:
                break
            # --- Steps: the only host sync of the epoch is the summed metrics ---
            perm = epoch_permutation(settings.seed, epoch, n_train)
            first, carry.acc, t_before = 0, jax.tree.map(jnp.zeros_like, acc0), 0.0
            if partial is not None and epoch == start_epoch:
                # Resumed mid-epoch: the same permutation from the same step, the same
                # sums, so the epoch's metrics.jsonl line is the uninterrupted one.
                first, carry.acc, t_before = resume_position(partial, acc0, mesh, ckpt)
                if streamed(x_train):
                    where = str(ckpt.directory)
                    carry.data_state = check_state(partial.get("data_iterator"), first, where)
            t_epoch = time.perf_counter()

            def before_step(i, epoch=epoch, t_epoch=t_epoch, t_before=t_before, first=first):
                seconds = t_before + time.perf_counter() - t_epoch
                if per_step and guard.pending is not None:
                    stop_for_signal(epoch, i, seconds)
                # A streamed epoch can be long: checkpointed within (after a step of it: its
                # start is saved already), the reader's state too.
                elif stream_saves and i > first and time.monotonic() - last_save >= save_every:
                    step, sums = epoch * steps_per_epoch + i, shard.fetch(carry.acc)
                    save(step, epoch_position(i, step, sums, seconds, carry.data_state))

            acc = resident.run_steps(
                step_fn, carry, key, arrays, perm, batch_size, mesh, planner,
                first=first, before_step=before_step,
            )  # fmt: skip
            state = carry.state
            dt = t_before + time.perf_counter() - t_epoch
            if epoch > start_epoch or settings.epochs - start_epoch == 1:
                train_time += dt - t_before
                train_samples += (steps_per_epoch - first) * batch_size
            epochs_run += 1
            if acc["nonfinite"] > 0 and settings.nonfinite == "stop":
                raise TrainingDivergedError(
                    f"loss or gradients became NaN/Inf in epoch {epoch + 1} "
                    f"({int(acc['nonfinite'])} step(s)); training stopped. {kept(ckpt)} Lower "
                    "--lr, check the data, or use --set nonfinite=skip to skip such steps."
                )
            line = epoch_record(
                acc,
                epoch,
                steps_per_epoch,
                batch_size,
                dt,
                schedule,
                objective,
                likelihood_proper,
            )
            # --- Evals and early stopping ---
            monitor = line["train_loss"]
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
                line.update({f"val_{k}": v for k, v in with_elbo(val, likelihood_proper).items()})
                monitor = val["loss"]
                if not math.isfinite(monitor):
                    # Finite steps can still leave parameters that overflow on other data;
                    # skipping steps cannot repair them, so both policies stop here.
                    raise TrainingDivergedError(
                        f"the validation loss became {monitor} in epoch {epoch + 1}; training "
                        f"stopped. {kept(ckpt)} Lower --lr or check the data."
                    )
            stopper.update(monitor)
            if stopper.improved:
                best = best_of(state)
            history.append(line)
            bar.set_postfix(
                train=f"{line['train_loss']:.4g}",
                val=f"{line.get('val_loss', float('nan')):.4g}",
            )
            # --- Checkpoint ---
            # A signal during the epoch's evals is acted on once the epoch is logged.
            signalled = runtime.agree(guard.pending is not None)
            if ckpt is not None:
                # The log line first: a line without a committed checkpoint is dropped on
                # resume, while a checkpoint without its line would leave a gap in the log.
                if runtime.is_main_process():
                    rundir.append_metrics(workdir / "metrics.jsonl", line)
                if signalled or checkpoint_due(settings, stopper, time.monotonic() - last_save):
                    save(line["step"])
            if on_epoch_end is not None:
                on_epoch_end(line)
            if signalled:
                stop_for_signal(epoch + 1, 0, 0.0)
        guard.stop()  # the handlers from before; a signal noted after the last step
        # (during the final evals) is passed on now, not swallowed
    except BaseException as e:
        guard.stop(deliver=False)
        bar.close()
        if ckpt is not None:
            try:
                if isinstance(e, KeyboardInterrupt):
                    e.add_note(kept(ckpt))  # waits for a pending save: it is kept
                ckpt.close()  # lets a pending save commit: it is the newest good state
            except CheckpointError as close_error:
                e.add_note(str(close_error))
        # Raised between steps, the state is intact: the in-memory run is not lost with
        # the error (a second Ctrl-C inside a step leaves a donated, deleted state).
        if isinstance(e, (AejaxError, KeyboardInterrupt)) and not carry.in_step:
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
