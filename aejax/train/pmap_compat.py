"""The ``jax.pmap`` compatibility path: ``make_update`` itself, mapped over devices.

The main path is ``jax.jit`` over a ``Mesh`` (see ``aejax.train.shard``). This one exists
for code bases still built around ``pmap``: the state carries a leading device axis and
each device takes ``batch_size / n`` examples. It is the same update function as the jit
step, with ``axis_name`` set: no second copy of the step.

Why the gradients are summed across devices here but never inside ``shard_map``: under
``pmap`` every device holds its own copy of the parameters (a device axis), each device's
loss is its share of the global mean, and the sum of those local gradients is the
gradient of the global mean. Inside ``shard_map`` the parameters are one replicated
value, whose gradient already comes out summed over devices (see ECOSYSTEM.md).

Collections other than ``params`` (a VQ-VAE's EMA codebook) are averaged over devices
after each step; the jit path computes them from the global batch instead. Each device
draws the noise of its own rows (the step key with the device index folded in), so a
stochastic model (a VAE's sample, an adversarial autoencoder's prior draws) matches the jit
path in distribution but not bit for bit; deterministic models, and any model on one
device, match it to float rounding (tested).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from aejax.models.objective import Objective
from aejax.train.step import make_update

AXIS = "data"


def make_pmap_train_step(
    model: nn.Module,
    optimizers: optax.GradientTransformation | Mapping[str, optax.GradientTransformation],
    objective: Objective | None = None,
    *,
    nonfinite: str = "stop",
    binarize: bool = False,
    corruption: Any = None,
    augment: Any = None,
) -> Callable:
    """Builds a pmapped ``train_step(state, batch, key) -> (state, metrics)``.

    Args:
      model: the registry model.
      optimizers: one optimizer, or one per parameter group.
      objective: the term weights (default: ``aejax.train.step.default_objective()``).
      nonfinite: ``"stop"`` or ``"skip"``.
      binarize: dynamic binarization of ``batch["x"]``, as in ``make_train_step``.
      corruption: an ``aejax.data.corruption.Corruption`` of the input, as in
        ``make_train_step``; each device draws the noise of its own rows.
      augment: an ``aejax.data.augment.Augment`` of the images, as in ``make_train_step``.

    Returns:
      A function over device-stacked arguments: ``state`` from ``replicate``, ``batch``
      (an array or a dict of arrays) ``[n_devices, B / n_devices, ...]`` from
      ``split_batch``, ``key`` a replicated typed key. Metrics are global sums,
      identical on every device.
    """
    update = make_update(
        model,
        optimizers,
        objective,
        nonfinite=nonfinite,
        axis_name=AXIS,
        binarize=binarize,
        corruption=corruption,
        augment=augment,
    )
    return jax.pmap(update, axis_name=AXIS, donate_argnums=0)


def replicate(tree, n_devices: int | None = None):
    """Stacks ``tree`` along a new leading device axis for ``pmap``."""
    n = jax.local_device_count() if n_devices is None else n_devices
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (n, *x.shape)), tree)


def unreplicate(tree):
    """The copy on the first device."""
    return jax.tree.map(lambda x: x[0], tree)


def split_batch(batch, n_devices: int):
    """``[B, ...] -> [n_devices, B / n_devices, ...]`` for an array or a pytree of arrays."""

    def split(a: np.ndarray) -> np.ndarray:
        if a.shape[0] % n_devices:
            raise ValueError(f"batch of {a.shape[0]} does not split over {n_devices} devices")
        return a.reshape(n_devices, a.shape[0] // n_devices, *a.shape[1:])

    return jax.tree.map(split, batch)
