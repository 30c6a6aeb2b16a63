"""Data parallelism: a 1-D ``"data"`` mesh, replicated state, batch sharded on its first axis."""

from __future__ import annotations

import warnings
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from aejax.errors import ConfigError

# XLA's CPU client (jaxlib 0.10.2) runs a program on several devices by scheduling one
# launch per device on a thread pool of max(cores, devices) threads. A launch first takes
# one of its device's 32 in-flight permits, waiting on a pool thread when none is left,
# and the program then holds a pool thread per device until it ends, all-reduces
# included. With 2 x devices > threads (8 fake devices on a 2-core machine) and the host
# more than 32 programs ahead, launches blocked on permits leave too few threads for all
# devices of the running program to reach its all-reduce: XLA aborts the process after
# 40 s ("Expected 8 threads to join the rendezvous"). Keeping at most this many programs
# queued per device means no launch ever waits for a permit (docs/scaling.md;
# benchmarks/xla_cpu_rendezvous.py reproduces it without aejax).
DISPATCH_AHEAD = 16


def make_mesh(n_devices: int | None = None) -> Mesh:
    """A mesh over the first ``n_devices`` devices (default: all), with one axis ``"data"``."""
    available = jax.devices()
    n = len(available) if n_devices is None else n_devices
    if n > len(available):
        raise ConfigError(
            f"devices={n} requested but only {len(available)} are visible: "
            f"{[str(d) for d in available]}"
        )
    return jax.make_mesh((n,), ("data",), axis_types=(AxisType.Auto,), devices=available[:n])


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec("data"))


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Places every leaf of ``tree`` on all devices of ``mesh``.

    Every process must pass the same values (they come from the same seed); in a
    multi-process run each one fills only the devices it can address.
    """
    sharding = replicated(mesh)
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def put(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            impl = jax.random.key_impl(x)
            return jax.random.wrap_key_data(put(jax.random.key_data(x)), impl=impl)
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])

    return jax.tree.map(put, tree)


def fetch(tree: Any) -> Any:
    """Brings (replicated) device values to the host as numpy, in any process.

    In a multi-process run a replicated array is not fully addressable from one process;
    its first local shard holds the whole value.
    """

    def get(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(x.addressable_data(0))
        return np.asarray(jax.device_get(x))

    return jax.tree.map(get, tree)


def put_batch(batch: np.ndarray, mesh: Mesh) -> jax.Array:
    """Sends a host batch ``[B, ...]`` to the devices, split along B (B divisible by devices).

    In a multi-process run every process holds the same global batch (the same seeded
    permutation of the same data); each keeps only its contiguous share, and JAX assembles
    the global array from the per-process pieces without any cross-host copy.
    """
    sharding = batch_sharding(mesh)
    n_proc = jax.process_count()
    if n_proc > 1:
        share = batch.shape[0] // n_proc
        i = jax.process_index()
        local = batch[i * share : (i + 1) * share]
        return jax.make_array_from_process_local_data(sharding, local, batch.shape)
    return jax.device_put(batch, sharding)


def put_local_batch(local: np.ndarray, batch_size: int, mesh: Mesh) -> jax.Array:
    """Sends this process's rows ``[B / processes, ...]`` of a global batch of
    ``batch_size`` rows (``put_batch``'s contiguous share) to the devices."""
    if jax.process_count() == 1:
        return jax.device_put(local, batch_sharding(mesh))
    shape = (batch_size, *local.shape[1:])
    return jax.make_array_from_process_local_data(batch_sharding(mesh), local, shape)


def pace(tree: Any, calls: int, mesh: Mesh, *, programs: int = 1) -> None:
    """Waits for ``tree`` every few calls on a CPU mesh of several devices, so the host
    never queues more than ``DISPATCH_AHEAD`` programs per device (see above).

    Args:
      tree: arrays that depend on every program dispatched so far (the new state, the
        running metric sums).
      calls: how many calls the loop has made, this one included (1, 2, ...).
      mesh: the mesh the programs run on; a single device or an accelerator never waits.
      programs: how many multi-device programs each call dispatches.
    """
    if mesh.devices.size == 1 or mesh.devices.flat[0].platform != "cpu":
        return
    if calls % max(1, DISPATCH_AHEAD // programs) == 0:
        jax.block_until_ready(tree)


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    n = mesh.devices.size
    if batch_size % n:
        raise ConfigError(
            f"batch_size={batch_size} is not divisible by the {n} devices of the data mesh; "
            f"use a multiple of {n} or --devices to pick fewer devices"
        )


def plan_batch_size(requested: int, n_train: int, devices: int | None) -> int:
    """``requested``, shrunk (with a warning) when the data cannot fill one batch.

    Raises:
      ConfigError: not even one row per device, or a size the devices do not divide.
    """
    mesh = make_mesh(devices)
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
    check_batch_size(batch_size, mesh)
    return batch_size
