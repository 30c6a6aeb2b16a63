"""One epoch: its batch order, its steps (no per-step host sync), its record and its evals."""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from aejax import xla
from aejax.data.chunks import padded_chunks
from aejax.models.objective import Objective
from aejax.train import shard
from aejax.train.state import TrainState
from aejax.train.step import accumulate

Metrics = dict[str, Any]

# Step metrics that are not per-example sums of a term.
_BOOKKEEPING = ("loss", "count", "nonfinite")


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order of the training examples in ``epoch``: a pure function of (seed, epoch).

    Deriving it from the epoch (not from a running generator) is what lets a resumed run
    see exactly the batches an uninterrupted run would.
    """
    return np.random.default_rng([seed, epoch]).permutation(n)


@dataclasses.dataclass
class Carry:
    """What the steps update in place: the state and the epoch's summed metrics.

    ``in_step`` is True while the state is donated to a step: an error raised then leaves
    no state to report. ``data_state`` is a streamed epoch's data iterator state after the
    steps done (``aejax.train.streamed``), None otherwise.
    """

    state: TrainState
    acc: Metrics
    in_step: bool = False
    data_state: dict | None = None


def loop_step_fn(train_step: Callable, platform: str) -> Callable:
    """``loop_step(state, acc, batch, key) -> (state, acc)``: one step, its metrics added
    to the running sums on device; jitted with the state and the sums donated."""

    def loop_step(state, acc, batch, key):
        state, m = train_step(state, batch, key)
        return state, accumulate(acc, m)

    return xla.jit(loop_step, platform=platform, donate_argnums=(0, 1))


def zero_metrics(names: tuple[str, ...], mesh) -> Metrics:
    """``{name: 0.0}`` float32 scalars replicated on ``mesh``: an epoch's starting sums."""
    return shard.replicate({k: jnp.zeros((), jnp.float32) for k in names}, mesh)


def run_epoch(
    step_fn: Callable,
    carry: Carry,
    key: jax.Array,
    x: np.ndarray,
    perm: np.ndarray,
    batch_size: int,
    mesh,
    *,
    mask: np.ndarray | None = None,
    first: int = 0,
    before_step: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Runs the steps ``first..`` of one epoch and fetches its summed metrics.

    The only host sync of the epoch is the fetch at its end (``shard.pace`` bounds the
    queue on several CPU devices).

    Args:
      step_fn: ``loop_step_fn``'s function (or its compiled form).
      carry: the state and the running sums, updated in place step by step.
      key: the run's key (the step number is folded into it inside the step).
      x: ``[N, ...]`` the training inputs; an epoch has ``N // batch_size`` steps.
      perm: ``[N]`` the epoch's order (``epoch_permutation``).
      batch_size: rows per step (divisible by the mesh's devices).
      mesh: the device mesh.
      mask: optional ``[N, ...]`` per-element 0/1 (ratings: the observed entries).
      first: the step to start from (a resumed, interrupted epoch).
      before_step: called with the step's index before each step (signal checks); it may
        raise, leaving ``carry`` at the steps done.

    Returns:
      The epoch's summed step metrics ``{name: float32}`` on the host.
    """
    for i in range(first, x.shape[0] // batch_size):
        if before_step is not None:
            before_step(i)
        idx = perm[i * batch_size : (i + 1) * batch_size]
        batch = {"x": shard.put_batch(x[idx], mesh)}
        if mask is not None:
            batch["mask"] = shard.put_batch(mask[idx], mesh)
        carry.in_step = True
        carry.state, carry.acc = step_fn(carry.state, carry.acc, batch, key)
        carry.in_step = False
        shard.pace(carry.acc, i + 1, mesh)  # several CPU devices: see shard.pace
    return shard.fetch(carry.acc)


def with_elbo(means: dict[str, float], proper: bool) -> dict[str, float]:
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
    ``weight_<term>`` the weight of each scheduled term at the epoch's last step; ``lr``
    the learning rate there (left out when ``schedule`` is None).
    """
    step = (epoch + 1) * steps_per_epoch
    valid = max(float(acc["count"] - acc["nonfinite"] * batch_size), 1.0)
    means = {k: float(v / valid) for k, v in acc.items() if k not in _BOOKKEEPING}
    record = {
        "epoch": epoch + 1,
        "step": int(step),
        "train_loss": float(acc["loss"] / valid),
        **{f"train_{k}": v for k, v in with_elbo(means, proper).items()},
    }
    if schedule is not None:
        record["lr"] = float(schedule(step))
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
    parts = {"x": x, "mask": mask, "target": target}
    for calls, (chunk, weight) in enumerate(padded_chunks(parts, batch_size), 1):
        batch = {k: shard.put_batch(a, mesh) for k, a in {**chunk, "weight": weight}.items()}
        totals = accumulate(totals, eval_step(variables, batch))
        shard.pace(totals, calls, mesh, programs=1 + len(totals))
    totals = shard.fetch(totals)
    count = totals["count"]
    out = {"loss": float(totals["loss"] / count)}
    elements = totals["observed"] if mask is not None else count * math.prod(x.shape[1:])
    out["recon_mse"] = float(totals["sse"] / max(float(elements), 1.0))
    for k, v in totals.items():
        if k not in ("loss", "sse", "count", "observed"):
            out[k] = float(v / count)
    return out
