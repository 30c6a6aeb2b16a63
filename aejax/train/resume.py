"""Reading a run's checkpoints back: where it stopped, and what a failure leaves on disk."""

from __future__ import annotations

import pathlib

import jax.numpy as jnp
import numpy as np

from aejax.errors import CheckpointError
from aejax.train import shard
from aejax.train.checkpoint import Checkpointer


def epoch_position(
    i: int, step: int, sums: dict, seconds: float, data_state: dict | None = None
) -> dict:
    """The checkpointed position of an epoch interrupted after its step ``i``: exact.

    Float32 sums are stored as hex floats, so a resumed epoch adds to the same bits; a
    streamed epoch's data iterator state (``aejax.train.streamed``) is kept with them.
    """
    position = {
        "steps": i,
        "step": step,
        "acc": {k: float(v).hex() for k, v in sums.items()},
        "seconds": seconds,
    }
    if data_state is not None:
        position["data_iterator"] = data_state
    return position


def resume_position(partial: dict, acc0, mesh, ckpt: Checkpointer):
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


def kept(ckpt: Checkpointer | None) -> str:
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
