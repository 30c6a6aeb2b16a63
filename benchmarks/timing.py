"""Timers: interleaved repeats, so that machine noise hits every implementation alike."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping


def interleaved(runners: Mapping[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Calls every runner once per round, ``repeats`` rounds: a, b, a, b, ...

    Args:
      runners: name -> a function that does one timed unit of work and returns its seconds
        (it must wait for asynchronous work itself, e.g. ``jax.block_until_ready``).
      repeats: rounds.

    Returns:
      name -> the list of seconds, one per round.
    """
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            seconds[name].append(run())
    return seconds


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    """Runs ``fn()`` and returns ``(result, seconds)``."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0
