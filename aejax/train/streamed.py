"""Streamed epochs: each batch read from disk by grain's threads while the device steps.

When the training split is a ``StreamedArray`` (``aejax.data.stream``), an epoch is a
``grain`` pipeline over its steps: ``MapDataset.range(steps)`` mapped to step ``i``'s rows
of the epoch's permutation (``epoch_permutation``: the order the in-memory loop uses, so
the same seed trains to the same bits), read in ``READ_THREADS`` background threads with
``PREFETCH`` batches ahead, then put on the mesh. Under ``jax.distributed`` each process
reads only its share of every batch (``grain.sharding.ShardByJaxProcess``), assembled
into the global batch without a cross-host copy (``shard.put_local_batch``).

The iterator's state (``DatasetIterator.get_state()``) travels in the checkpoint's
mid-epoch position, and a resumed epoch restarts its iterator from it
(``set_state``): a killed run resumes from its last checkpoint exactly. A streamed epoch
can be long, so ``fit`` also checkpoints mid-epoch every ``checkpoint_seconds``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from aejax.errors import CheckpointError
from aejax.train import shard

READ_THREADS = 4  # grain reader threads: reading and decoding overlap the steps
PREFETCH = 8  # batches read ahead of the step


def process_rows(batch_size: int) -> slice:
    """The rows of every global batch this process reads (``ShardByJaxProcess``)."""
    from grain.sharding import ShardByJaxProcess

    shards = ShardByJaxProcess(drop_remainder=True)
    per = batch_size // shards.shard_count
    return slice(shards.shard_index * per, (shards.shard_index + 1) * per)


def epoch_iterator(arrays: dict, perm: np.ndarray, batch_size: int, state: dict | None = None):
    """A grain iterator over the epoch's batches ``{name: [B_local, ...]}`` (numpy).

    Args:
      arrays: ``{"x": StreamedArray, "mask"?: ...}`` the training split.
      perm: ``[N]`` the epoch's order; the epoch has ``N // batch_size`` steps.
      batch_size: the global batch.
      state: an iterator state saved mid-epoch (``get_state()``), or None to start.
    """
    import grain

    steps = perm.shape[0] // batch_size
    mine = process_rows(batch_size)

    def read(i):
        rows = perm[i * batch_size : (i + 1) * batch_size][mine]
        return {k: a[rows] for k, a in arrays.items()}

    options = grain.ReadOptions(num_threads=READ_THREADS, prefetch_buffer_size=PREFETCH)
    it = iter(grain.MapDataset.range(steps).map(read).to_iter_dataset(options))
    if state is not None:
        it.set_state(state)
    return it


def check_state(state: dict | None, first: int, where: str) -> dict:
    """The saved iterator state of an epoch resumed at step ``first``, checked."""
    if state is None:
        return {"next_index": first}
    if not isinstance(state, dict) or state.get("next_index") != first:
        raise CheckpointError(
            f"{where}: the data iterator's saved state {state!r} is not step {first} of the "
            "epoch; use --fresh (fresh=True) to start again"
        )
    return state


def run_epoch_streamed(
    step_fn: Callable,
    carry,
    key,
    arrays: dict,
    perm: np.ndarray,
    batch_size: int,
    mesh,
    *,
    first: int = 0,
    before_step: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Runs the steps ``first..`` of one streamed epoch; fetches its summed metrics.

    ``carry.data_state`` holds the iterator's state after the steps done (what a
    mid-epoch checkpoint saves); ``carry.data_state`` on entry (a resumed epoch's saved
    state) restarts the iterator there.

    Returns:
      The epoch's summed step metrics ``{name: float32}`` on the host.
    """
    state = carry.data_state if first else None
    it = epoch_iterator(arrays, perm, batch_size, state)
    carry.data_state = it.get_state()
    for i in range(first, perm.shape[0] // batch_size):
        if before_step is not None:
            before_step(i)
        local = next(it)
        batch = {k: shard.put_local_batch(v, batch_size, mesh) for k, v in local.items()}
        carry.in_step = True
        carry.state, carry.acc = step_fn(carry.state, carry.acc, batch, key)
        carry.in_step = False
        carry.data_state = it.get_state()
        shard.pace(carry.acc, i + 1, mesh)
    return shard.fetch(carry.acc)
