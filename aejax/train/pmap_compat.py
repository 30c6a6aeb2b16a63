"""The ``jax.pmap`` compatibility path: the same update as ``make_train_step``, per device.

The main path is ``jax.jit`` over a ``Mesh`` (see ``aejax.train.shard``). This one exists
for code bases still built around ``pmap``: the state carries a leading device axis and
each device takes ``batch_size / n`` examples.

Why ``pmean`` of the gradients is right here but wrong inside ``shard_map``: under
``pmap`` every device holds its own copy of the parameters (a device axis), so each local
gradient is that device's alone and averaging them gives the gradient of the global mean
loss. Inside ``shard_map`` the parameters are one replicated value, whose gradient already
comes out summed over devices, and another ``pmean`` would be wrong (see ECOSYSTEM.md).
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from aejax.train.state import TrainState
from aejax.train.step import make_loss_fn

AXIS = "data"


def make_pmap_train_step(
    model: nn.Module, tx: optax.GradientTransformation, likelihood: str
) -> Callable:
    """Builds a pmapped ``train_step(state, batch, key) -> (state, metrics)``.

    Args:
      model: the registry model.
      tx: the optimizer.
      likelihood: ``"bernoulli"`` or ``"gaussian"``.

    Returns:
      A function over device-stacked arguments: ``state`` from ``replicate``, ``batch:
      [n_devices, B / n_devices, *input_shape]`` from ``split_batch``, ``key`` a replicated
      typed key. Metrics are global sums (``loss``, ``count``), identical on every device.
    """

    loss_fn = make_loss_fn(model, likelihood)

    def train_step(state: TrainState, batch: jax.Array, key: jax.Array):
        # Same key on every device, as in the single-device step; per-device streams would
        # need fold_in(axis_index) and then differ from the jit path.
        key = jax.random.fold_in(key, state.step)
        (_, per_example), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, batch, key
        )
        grads = jax.lax.pmean(grads, AXIS)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {
            "loss": jax.lax.psum(per_example.sum(), AXIS),
            "count": jax.lax.psum(jnp.asarray(batch.shape[0], jnp.float32), AXIS),
        }
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

    return jax.pmap(train_step, axis_name=AXIS, donate_argnums=0)


def replicate(tree, n_devices: int | None = None):
    """Stacks ``tree`` along a new leading device axis for ``pmap``."""
    n = jax.local_device_count() if n_devices is None else n_devices
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (n, *x.shape)), tree)


def unreplicate(tree):
    """The copy on the first device."""
    return jax.tree.map(lambda x: x[0], tree)


def split_batch(batch: np.ndarray, n_devices: int) -> np.ndarray:
    """``[B, ...] -> [n_devices, B / n_devices, ...]``."""
    if batch.shape[0] % n_devices:
        raise ValueError(f"batch of {batch.shape[0]} does not split over {n_devices} devices")
    return batch.reshape(n_devices, batch.shape[0] // n_devices, *batch.shape[1:])
