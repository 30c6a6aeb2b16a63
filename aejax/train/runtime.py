"""Process-level setup: the persistent compilation cache and multi-host initialization."""

from __future__ import annotations

import os
import pathlib

import jax
import numpy as np

from aejax.errors import ConfigError

_initialized = {"distributed": False}


def enable_compilation_cache(directory: str | os.PathLike) -> pathlib.Path:
    """Stores compiled executables in ``directory`` so the next process skips compilation.

    Every compilation is cached (the default skips those under one second, which is all
    of ours on CPU).
    """
    path = pathlib.Path(directory).expanduser().absolute()
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return path


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
    """Joins a multi-process JAX run (``jax.distributed.initialize``), once per process.

    With no arguments JAX detects the cluster itself (Cloud TPU pod slices, Slurm, Open
    MPI); on other clusters pass the coordinator's ``host:port``, the process count and
    this process's index (or set ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``,
    ``JAX_PROCESS_ID``). Must run before any other JAX computation.
    """
    if _initialized["distributed"]:
        return
    try:
        jax.distributed.initialize(
            coordinator_address=coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS"),
            num_processes=num_processes or _env_int("JAX_NUM_PROCESSES"),
            process_id=process_id if process_id is not None else _env_int("JAX_PROCESS_ID"),
        )
    except (RuntimeError, ValueError) as e:
        raise ConfigError(
            f"jax.distributed.initialize failed: {e}. On a TPU pod slice, Slurm or Open MPI "
            "it needs no arguments; elsewhere set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES "
            "and JAX_PROCESS_ID for every process."
        ) from e
    _initialized["distributed"] = True


def is_main_process() -> bool:
    """True on the process that writes logs, summaries and figures (process 0)."""
    return jax.process_index() == 0


def agree(flag: bool) -> bool:
    """``flag`` as process 0 sees it, on every process (itself on a single process).

    For host-side decisions that every process must take alike, such as whether to join
    a collective checkpoint save that a wall clock triggers.
    """
    if jax.process_count() == 1:
        return bool(flag)
    from jax.experimental import multihost_utils

    return bool(multihost_utils.broadcast_one_to_all(np.asarray(flag, np.bool_)))


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value else None
