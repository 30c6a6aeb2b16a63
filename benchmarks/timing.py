"""Timers: interleaved repeats, so that machine noise hits every implementation alike."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any


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


def step_loop(
    compiled: Callable, state: Any, batches: Sequence[Any], key: Any
) -> tuple[Callable[[int], float], Callable[[], Any]]:
    """A runner of ``n`` steps of a compiled, state-donating ``step(state, batch, key)``.

    Returns:
      ``(run_steps, current_state)``: ``run_steps(n)`` runs ``n`` steps over ``batches``
      in turn, waits for them and returns their seconds; ``current_state()`` is the state
      after the last of them (the one passed in was donated).
    """
    import jax

    holder = {"state": state}

    def run_steps(n: int) -> float:
        s = holder["state"]
        t0 = time.perf_counter()
        for i in range(n):
            s, _ = compiled(s, batches[i % len(batches)], key)
        jax.block_until_ready(s)
        holder["state"] = s
        return time.perf_counter() - t0

    return run_steps, lambda: holder["state"]
