"""Test helpers: a model that records what the train step fed it."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from aejax.train import TrainState


class Probe(nn.Module):
    """Stores the input and the target it is trained on; a constant loss."""

    input_shape: tuple = (8, 8, 1)
    phases = (("autoencoder", "__call__"),)

    @nn.compact
    def __call__(self, x, *, train=False, mask=None, target=None):
        seen = self.variable("probe", "x", jnp.zeros, x.shape)
        clean = self.variable("probe", "target", jnp.zeros, x.shape)
        seen.value, clean.value = x, (x if target is None else target)
        w = self.param("w", nn.initializers.zeros, ())
        return x, {"terms": {"reconstruction": w * x.reshape(x.shape[0], -1).sum(1)}}


def probe_state(shape: tuple[int, ...]) -> tuple[TrainState, optax.GradientTransformation]:
    """A ``Probe``'s state for batches of ``shape`` and the optimizer that leaves it be."""
    tx = optax.sgd(0.0)
    zeros = jnp.zeros(shape)
    state = TrainState(
        step=jnp.zeros((), jnp.int32),
        params={"w": jnp.zeros(())},
        opt_state={"autoencoder": tx.init({"w": jnp.zeros(())})},
        model_state={"probe": {"x": zeros, "target": zeros}},
        rng=jax.random.key(0),
    )
    return state, tx
