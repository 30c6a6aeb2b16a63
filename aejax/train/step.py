"""The jit-compiled update and evaluation steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from aejax import losses, metrics
from aejax.train.state import TrainState

Metrics = dict[str, jax.Array]
RNG_STREAMS = ("dropout", "noise", "sample")


def make_loss_fn(model: nn.Module, likelihood: str) -> Callable:
    """``loss_fn(params, batch, key) -> (mean loss, per-example losses [B])`` in train mode.

    ``key`` feeds every named rng stream (dropout, noise, sample) a key of its own.
    """

    def loss_fn(params, batch, key):
        rngs = dict(zip(RNG_STREAMS, jax.random.split(key, len(RNG_STREAMS)), strict=True))
        _, aux = model.apply({"params": params}, batch, train=True, rngs=rngs)
        per_example = losses.objective(aux, batch, likelihood)
        return per_example.mean(), per_example

    return loss_fn


def make_train_step(
    model: nn.Module, tx: optax.GradientTransformation, likelihood: str, nonfinite: str = "stop"
) -> Callable[[TrainState, jax.Array, jax.Array], tuple[TrainState, Metrics]]:
    """Builds the (un-jitted) ``train_step(state, batch, key) -> (state, metrics)``.

    Args:
      model: the registry model.
      tx: the optimizer.
      likelihood: ``"bernoulli"`` or ``"gaussian"`` (see ``aejax.losses``).
      nonfinite: ``"stop"`` applies every update and lets the loop stop on a NaN/Inf loss;
        ``"skip"`` leaves params and optimizer state unchanged on such a step.

    Returns:
      A pure function. ``batch: [B, *input_shape]``; ``key`` a typed PRNG key into which the
      step number is folded. ``metrics`` are sums over the batch: ``loss``, ``count``,
      ``nonfinite`` (1 if this step's loss or gradients were NaN/Inf).
    """

    loss_fn = make_loss_fn(model, likelihood)

    def train_step(state: TrainState, batch: jax.Array, key: jax.Array):
        key = jax.random.fold_in(key, state.step)
        (_, per_example), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, batch, key
        )
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        finite = losses.step_is_finite(per_example, grads)
        if nonfinite == "skip":
            params, opt_state = jax.tree.map(
                lambda new, old: jnp.where(finite, new, old),
                (params, opt_state),
                (state.params, state.opt_state),
            )
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
        step_metrics = {
            "loss": jnp.where(finite, per_example.sum(), 0.0),
            "count": jnp.asarray(batch.shape[0], jnp.float32),
            "nonfinite": 1.0 - finite.astype(jnp.float32),
        }
        return new_state, step_metrics

    return train_step


def make_eval_step(
    model: nn.Module, likelihood: str
) -> Callable[[Any, jax.Array, jax.Array], Metrics]:
    """Builds ``eval_step(params, batch, mask) -> metrics`` (sums over unmasked examples).

    Args:
      model: the registry model.
      likelihood: see ``make_train_step``.

    Returns:
      A pure function; ``batch: [B, *input_shape]``, ``mask: [B]`` (1 for real rows, 0 for
      padding, so the last batch keeps the static shape). Metrics: ``loss`` (the training
      objective), ``sse`` (summed squared error in data space), ``count``.
    """

    def eval_step(params, batch, mask):
        recon, aux = model.apply({"params": params}, batch, train=False)
        per_example = losses.objective(aux, batch, likelihood)
        sse = metrics.squared_error_per_example(recon, batch)
        return {
            "loss": jnp.sum(per_example * mask),
            "sse": jnp.sum(sse * mask),
            "count": jnp.sum(mask),
        }

    return eval_step


def accumulate(total: Metrics | None, new: Metrics) -> Metrics:
    """Adds step metrics into running sums (inside jit: no host sync)."""
    return new if total is None else jax.tree.map(jnp.add, total, new)
