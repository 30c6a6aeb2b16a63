"""The training state: a plain pytree, so jit, donation, sharding and Orbax treat it alike."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax

from aejax import xla
from aejax.errors import ConfigError
from aejax.models.autoencoder import select_group
from aejax.train.checkpoint import structure_diff

PyTree = Any
Optimizers = Mapping[str, optax.GradientTransformation]


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training.

    The model, the objective and the optimizers are *not* in the state: the step function
    closes over them once, so a restored or re-created state never forces a retrace.

    Attributes:
      step: scalar int32, optimizer steps taken so far (also the data position and the
        argument of every schedule).
      params: the model's whole Linen ``params`` tree. Its top-level entries fall into
        named groups (``aejax.models.autoencoder.group_of``): ``autoencoder``, and
        ``discriminator`` for an adversarial autoencoder's latent critic.
      opt_state: one optax state per group, ``{group: state}``.
      model_state: the model's other Linen collections (e.g. a VQ-VAE's EMA codebook in
        ``"vq_ema"``), updated by the forward pass rather than by gradients; ``{}`` for
        most models.
      rng: typed PRNG key for per-step randomness (dropout, noise, sampling); the step
        number is folded in, so no key is ever reused.
    """

    step: jax.Array
    params: PyTree
    opt_state: dict[str, PyTree]
    model_state: dict[str, PyTree]
    rng: jax.Array

    def variables(self) -> dict[str, PyTree]:
        """The Linen variables ``{"params": ..., **model_state}`` for ``model.apply``."""
        return {"params": self.params, **self.model_state}


def as_optimizers(tx: optax.GradientTransformation | Optimizers) -> dict:
    """One transformation means ``{"autoencoder": tx}``."""
    if isinstance(tx, optax.GradientTransformation):
        return {"autoencoder": tx}
    return dict(tx)


def init_state(
    model: nn.Module,
    tx: optax.GradientTransformation | Optimizers,
    input_shape: tuple[int, ...],
    seed: int,
    init_params: PyTree | None = None,
) -> TrainState:
    """Initializes parameters from ``seed`` (or takes ``init_params``) and each optimizer state.

    Args:
      model: an unbound registry model.
      tx: one optimizer, or ``{group: optimizer}`` for every group of ``model.phases``.
      input_shape: per-example shape; a batch of one is traced for initialization.
      seed: the run's seed (also of the step rng and of collections other than params).
      init_params: parameters to start from (pretraining, fine-tuning) with exactly the
        structure and shapes ``model.init`` gives, or None.

    Returns:
      A fresh ``TrainState`` at step 0.

    Raises:
      ConfigError: ``init_params`` does not fit the model, or an optimizer is missing.
    """
    optimizers = _check_optimizers(model, tx)
    if init_params is not None:
        check_params_fit(init_params, state_shapes(model, optimizers, input_shape, seed).params)
    # One compiled program: run eagerly, the optimizer's init dispatches dozens of small ops
    # that each compile on first use (seconds on a loaded CPU). It runs once, so it is
    # compiled without LLVM optimizations (see ``aejax.xla``).
    return xla.jit(_initializer(model, optimizers, input_shape), run_once=True)(seed, init_params)


def state_shapes(
    model: nn.Module,
    tx: optax.GradientTransformation | Optimizers,
    input_shape: tuple[int, ...],
    seed: int,
) -> TrainState:
    """The ``jax.ShapeDtypeStruct`` of every leaf ``init_state`` returns, without computing."""
    optimizers = _check_optimizers(model, tx)
    return jax.eval_shape(_initializer(model, optimizers, input_shape), seed, None)


def check_params_fit(params: PyTree, expected: PyTree) -> None:
    """Raises ConfigError naming the first leaves where ``params`` differs from ``expected``."""
    given = jax.tree.map(lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)), params)
    diff = structure_diff(given, expected)
    if diff:
        raise ConfigError(f"init_params do not fit the model: {diff}")


def _check_optimizers(model, tx) -> dict:
    optimizers = as_optimizers(tx)
    groups = tuple(dict.fromkeys(g for g, _ in model.phases))
    missing = [g for g in groups if g not in optimizers]
    if missing:
        raise ConfigError(
            f"no optimizer for parameter group(s) {missing}; the model trains {list(groups)}"
        )
    return {g: optimizers[g] for g in groups}


def _initializer(model, optimizers, input_shape):
    """``init(seed, init_params) -> TrainState``, pure."""

    def init(seed, init_params):
        params_key, step_key = jax.random.split(jax.random.key(seed))
        # Collections other than params (an EMA codebook) get a key of their own.
        state_key = jax.random.fold_in(params_key, 0x5A17E)
        dummy = jnp.zeros((1, *input_shape), jnp.float32)
        variables = model.init({"params": params_key, "sample": state_key}, dummy)
        params = variables["params"] if init_params is None else init_params
        model_state = {k: v for k, v in variables.items() if k != "params"}
        opt_state = {g: tx.init(select_group(params, g, model)) for g, tx in optimizers.items()}
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=opt_state,
            model_state=model_state,
            rng=step_key,
        )

    return init
