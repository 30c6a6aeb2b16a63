"""Device-resident epochs: the training split kept on the device, steps run in one program.

When the training arrays fit in a share of the device's memory (``device_data``), ``fit``
places them on the mesh once (split on its ``"data"`` axis over several devices) and runs
the steps of an epoch as one compiled program: a ``lax.fori_loop`` over the epoch's batch
order, each step gathering its rows from the device array (``jnp.take``) and calling the
same ``train_step`` as the host-fed loop, its metrics summed on the device. The loop's
bounds are arguments, so one compiled program runs a whole epoch, a resumed epoch's rest,
or a chunk of it (the loop checks signals between chunks: ``ChunkPlanner``).

Each chunk is waited for by ``wait``, a watchdog on a CPU: a chunk whose result never
comes while the process has stopped computing (XLA's CPU runtime can lose a wakeup and
leave every thread idle; seen once under CPU contention, not reproduced) raises
``DeviceHangError`` naming ``--set device_data=off`` instead of hanging forever.

The same bits as the host-fed loop: the same permutation (``epoch_permutation``), the
same ``N // batch_size`` full batches (the remainder dropped), the same step (its key
folded with ``state.step`` inside) and the same order of the metric sums.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from aejax import xla
from aejax.data.stream import streamed
from aejax.errors import DeviceHangError
from aejax.train import shard
from aejax.train.epoch import loop_step_fn, run_epoch
from aejax.train.step import RNG_STREAMS, accumulate, apply_model
from aejax.train.streamed import run_epoch_streamed

CHUNK_SECONDS = 2.0  # the steps between two signal checks take about this long
FIRST_CHUNK = 32  # steps of a run's first chunk, before any step was timed
# A chunk not done after this many seconds in which the process used (almost) no CPU is
# hung: a running program keeps at least one core's share busy, a hung one none of it.
STALL_SECONDS = 60.0
IDLE_CPU = 0.01  # at most this share of one core counts as "no CPU"


def device_memory(mesh) -> int | None:
    """Bytes of memory of one device of ``mesh``: the allocator's limit on a GPU/TPU, the
    physical RAM on a CPU (its "device" is the host); None when unknown."""
    device = mesh.devices.flat[0]
    if device.platform != "cpu":
        try:
            stats = device.memory_stats() or {}
        except Exception:  # some backends do not implement memory_stats
            stats = {}
        limit = stats.get("bytes_limit")
        return int(limit) if limit else None
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def convolutional(model, variables, batch_spec: dict) -> bool:
    """Whether ``model``'s training forward pass has a convolution (an abstract trace)."""
    rngs = {name: jax.random.key(0) for name in RNG_STREAMS}

    def forward(v, b):
        return apply_model(model, v, b, train=True, rngs=rngs)

    return "conv_general_dilated" in str(jax.make_jaxpr(forward)(variables, batch_spec))


def use_device_data(
    mode: str, fraction: float, arrays: dict, mesh, convolutions: Callable[[], bool]
) -> bool:
    """Whether ``fit`` keeps ``arrays`` (the training split) on the devices.

    Args:
      mode: ``"on"``, ``"off"`` or ``"auto"``: on when the arrays' bytes per device fit in
        ``fraction`` of one device's memory (``device_memory``); CPU devices share the
        RAM, so there all the bytes count against it.
      fraction: the share of one device's memory the data may take (auto).
      arrays: ``{name: [N, ...]}`` the host arrays the steps gather from.
      mesh: the device mesh.
      convolutions: whether the model convolves (called for ``auto`` on a CPU only: XLA's
        CPU convolutions run slower inside a loop, so such a model stays host-fed there).
    """
    if any(streamed(a) for a in arrays.values()):  # read from disk batch by batch
        return False
    if mode == "off" or jax.process_count() > 1:  # several processes: host-fed
        return False
    if mode == "on":
        return True
    memory = device_memory(mesh)
    if memory is None:
        return False
    if mesh.devices.flat[0].platform == "cpu" and convolutions():
        return False
    nbytes = sum(a.nbytes for a in arrays.values())
    if mesh.devices.flat[0].platform != "cpu":  # each device holds its share of the rows
        nbytes /= mesh.devices.size
    return nbytes <= fraction * memory


def put_data(arrays: dict, mesh) -> dict:
    """``{name: [N', ...]}`` on the devices, rows split over the mesh's ``"data"`` axis
    (padded with zero rows to a multiple of the devices; the order never indexes them)."""
    n_dev = mesh.devices.size
    out = {}
    for name, a in arrays.items():
        pad = (-a.shape[0]) % n_dev
        if pad:
            a = np.concatenate([a, np.zeros((pad, *a.shape[1:]), a.dtype)])
        out[name] = jax.device_put(a, shard.batch_sharding(mesh))
    return out


def epoch_order(perm: np.ndarray, steps: int, batch_size: int, mesh) -> jax.Array:
    """``[steps, batch_size]`` int32 rows of each step (``perm``'s full batches), replicated."""
    order = perm[: steps * batch_size].reshape(steps, batch_size).astype(np.int32)
    return shard.replicate(jnp.asarray(order), mesh)


def epoch_fn(train_step: Callable, platform: str, mesh) -> Callable:
    """``run(state, acc, data, order, key, start, stop) -> (state, acc)``: steps
    ``start..stop-1`` of ``order`` in one program, jitted with the state and sums donated.

    Args (of ``run``):
      state, acc: the training state and the epoch's running metric sums.
      data: ``{"x": [N', ...], "mask"?: ...}`` the device-resident arrays (``put_data``).
      order: ``[steps, B]`` int32, the epoch's batches (``epoch_order``).
      key: the run's key (the step number is folded in inside ``train_step``).
      start, stop: int32 scalars, the steps to run.
    """
    batch_sharding = shard.batch_sharding(mesh)

    def run(state, acc, data, order, key, start, stop):
        def body(i, carry):
            state, acc = carry
            rows = lax.dynamic_index_in_dim(order, i, keepdims=False)
            batch = {
                k: lax.with_sharding_constraint(
                    jnp.take(v, rows, axis=0, mode="clip"), batch_sharding
                )
                for k, v in data.items()
            }
            state, m = train_step(state, batch, key)
            return state, accumulate(acc, m)

        return lax.fori_loop(start, stop, body, (state, acc))

    return xla.jit(run, platform=platform, donate_argnums=(0, 1))


def compile_steps(train_step, platform, mesh, args, arrays: dict, on_device: bool):
    """``(compiled, data)``: the loop's step program and the data it reads.

    Host-fed: ``loop_step_fn``'s one step, ``data`` the host ``arrays``; on the device:
    ``epoch_fn``'s program, ``data`` the arrays placed on the mesh (``put_data``).

    Args:
      args: ``(state, acc0, batch_spec)``; ``batch_spec["x"]`` is a step's ``[B, ...]``.
    """
    state, acc0, batch_spec = args
    if not on_device:
        lowered = loop_step_fn(train_step, platform).lower(state, acc0, batch_spec, state.rng)
        return lowered.compile(), arrays
    data = put_data(arrays, mesh)
    steps, batch_size = arrays["x"].shape[0] // batch_spec["x"].shape[0], batch_spec["x"].shape[0]
    order = jax.ShapeDtypeStruct((steps, batch_size), jnp.int32, sharding=shard.replicated(mesh))
    bounds = (jnp.int32(0), jnp.int32(0))
    lowered = epoch_fn(train_step, platform, mesh).lower(
        state, acc0, data, order, state.rng, *bounds
    )
    return lowered.compile(), data


class ChunkPlanner:
    """How many steps the next program runs: the rest of the epoch, or fewer so that a
    signal waits at most about ``CHUNK_SECONDS`` (the rate comes from the chunks timed)."""

    def __init__(self, seconds: float | None = None, first: int | None = None):
        self.seconds = CHUNK_SECONDS if seconds is None else seconds
        self.first = FIRST_CHUNK if first is None else first
        self.step_seconds: float | None = None

    def next(self, remaining: int) -> int:
        if self.step_seconds is None:
            return min(remaining, self.first)
        return max(1, min(remaining, math.floor(self.seconds / max(self.step_seconds, 1e-9))))

    def timed(self, steps: int, seconds: float) -> None:
        """Notes that ``steps`` steps (compiled already) took ``seconds``."""
        if steps > 0:
            self.step_seconds = seconds / steps


def wait(tree: Any, platform: str, *, stall_seconds: float | None = None) -> None:
    """Waits until the arrays of ``tree`` are ready; raises ``DeviceHangError`` on a CPU
    when they are not and the process used at most ``IDLE_CPU`` of a core for
    ``stall_seconds`` (default ``STALL_SECONDS``): a lost wakeup, not a slow program.

    A thread blocks on the arrays (so the wait ends as soon as they are ready); this one
    checks the process's CPU time once a second. Errors of the program are raised here.
    On other platforms the device's own progress is invisible to the host's CPU clock,
    so it blocks as ``jax.block_until_ready`` does.
    """
    if platform != "cpu":
        jax.block_until_ready(tree)
        return
    stall = STALL_SECONDS if stall_seconds is None else stall_seconds
    done = threading.Event()

    def block() -> None:
        try:
            jax.block_until_ready(tree)
        except Exception:  # raised again below, in the caller's thread
            pass
        done.set()

    threading.Thread(target=block, name="aejax-wait", daemon=True).start()
    t_mark, cpu_mark = time.monotonic(), time.process_time()
    while not done.wait(min(1.0, stall / 4)):
        t, cpu = time.monotonic(), time.process_time()
        if cpu - cpu_mark > IDLE_CPU * (t - t_mark):  # something computes: not hung
            t_mark, cpu_mark = t, cpu
        elif t - t_mark >= stall:
            raise DeviceHangError(
                f"the on-device epoch's program made no progress for {t - t_mark:.0f} s "
                "(its result never came and the process used no CPU: XLA's CPU runtime "
                "hung); rerun with --set device_data=off (host-fed batches) to avoid it, "
                "or resume from the last checkpoint"
            )
    jax.block_until_ready(tree)  # ready: returns at once, or raises the program's error


def run_epoch_resident(
    run: Any,
    carry: Any,
    key: jax.Array,
    data: dict,
    order: jax.Array,
    steps: int,
    planner: ChunkPlanner,
    *,
    first: int = 0,
    before_chunk: Callable[[int], None] | None = None,
    platform: str = "cpu",
) -> dict[str, np.ndarray]:
    """Runs the steps ``first..steps-1`` of one epoch in chunks; fetches its summed metrics.

    Args:
      run: ``epoch_fn``'s function (or its compiled form).
      carry: ``aejax.train.epoch.Carry``: the state and the sums, updated chunk by chunk.
      key, data, order: as ``epoch_fn`` takes them.
      steps: the epoch's steps.
      planner: sizes the chunks; each chunk is waited for (``wait``) and timed.
      first: the step to start from (a resumed, interrupted epoch).
      before_chunk: called with the next step's index before each chunk (signal checks);
        it may raise, leaving ``carry`` at the steps done.
      platform: the devices' platform (``wait`` watches the CPU clock on ``"cpu"``).

    Returns:
      The epoch's summed step metrics ``{name: float32}`` on the host.

    Raises:
      DeviceHangError: a chunk stopped making progress (``wait``); ``carry.in_step``
        stays True: its state will never be ready.
    """
    i = first
    while i < steps:
        if before_chunk is not None:
            before_chunk(i)
        n = planner.next(steps - i)
        t0 = time.perf_counter()
        carry.in_step = True
        carry.state, carry.acc = run(
            carry.state, carry.acc, data, order, key, np.int32(i), np.int32(i + n)
        )
        carry.in_step = False
        # Every chunk is waited for: the next one's signal check comes in time, and a
        # hung one (the last one's too) raises instead of blocking the fetch forever.
        try:
            wait(carry.acc, platform)
        except DeviceHangError:
            carry.in_step = True
            raise
        if n < steps - i:
            planner.timed(n, time.perf_counter() - t0)
        i += n
    return shard.fetch(carry.acc)


def run_steps(
    step_fn,
    carry,
    key: jax.Array,
    data: dict,
    perm: np.ndarray,
    batch_size: int,
    mesh,
    planner: ChunkPlanner | None,
    *,
    first: int = 0,
    before_step: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """One epoch's steps ``first..``, on the path ``compile_steps`` compiled: host-fed
    (``run_epoch``; ``planner`` None) or on the device (``run_epoch_resident``).

    Args:
      data: ``compile_steps``' data (``{"x": [N, ...], "mask"?: ...}``).
      perm: ``[N]`` the epoch's order (``epoch_permutation``).
      before_step: called before each step (host-fed) or chunk (on the device).

    Returns:
      The epoch's summed step metrics ``{name: float32}`` on the host.
    """
    n = perm.shape[0]
    if streamed(data["x"]):
        return run_epoch_streamed(
            step_fn, carry, key, data, perm, batch_size, mesh, first=first, before_step=before_step
        )
    if planner is None:
        return run_epoch(
            step_fn, carry, key, data["x"], perm, batch_size, mesh,
            mask=data.get("mask"), first=first, before_step=before_step,
        )  # fmt: skip
    steps = n // batch_size
    order = epoch_order(perm, steps, batch_size, mesh)
    return run_epoch_resident(
        step_fn, carry, key, data, order, steps, planner, first=first,
        before_chunk=before_step, platform=mesh.devices.flat[0].platform,
    )  # fmt: skip
