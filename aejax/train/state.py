"""The training state: a plain pytree, so jit, donation, sharding and Orbax treat it alike."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax

from aejax import xla

PyTree = Any


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training.

    The model and the optimizer are *not* in the state: they are closed over by the step
    function once, so a restored or re-created state never forces a retrace.

    Attributes:
      step: scalar int32, optimizer steps taken so far (also the data position).
      params: the model parameters.
      opt_state: the optax state.
      rng: typed PRNG key for per-step randomness (dropout, noise, sampling); the step
        number is folded in, so no key is ever reused.
    """

    step: jax.Array
    params: PyTree
    opt_state: PyTree
    rng: jax.Array


def init_state(
    model: nn.Module, tx: optax.GradientTransformation, input_shape: tuple[int, ...], seed: int
) -> TrainState:
    """Initializes parameters from ``seed`` and the optimizer state.

    Args:
      model: an unbound model of the registry.
      tx: the optimizer.
      input_shape: per-example shape; a batch of one is traced for initialization.
      seed: the run's seed.

    Returns:
      A fresh ``TrainState`` at step 0.
    """
    # One compiled program: run eagerly, the optimizer's init dispatches dozens of small ops
    # that each compile on first use (seconds on a loaded CPU). It runs once, so it is
    # compiled without LLVM optimizations (see ``aejax.xla``).
    return xla.jit(_initializer(model, tx, input_shape), run_once=True)(seed)


def state_shapes(
    model: nn.Module, tx: optax.GradientTransformation, input_shape: tuple[int, ...], seed: int
) -> TrainState:
    """The ``jax.ShapeDtypeStruct`` of every leaf ``init_state`` returns, without computing."""
    return jax.eval_shape(_initializer(model, tx, input_shape), seed)


def _initializer(model, tx, input_shape):
    """``init(seed) -> TrainState``, pure."""

    def init(seed):
        params_key, step_key = jax.random.split(jax.random.key(seed))
        dummy = jnp.zeros((1, *input_shape), jnp.float32)
        params = model.init({"params": params_key}, dummy)["params"]
        return TrainState(
            step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params), rng=step_key
        )

    return init
