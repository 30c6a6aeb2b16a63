"""Building blocks shared by the model families."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from aejax.errors import ConfigError


def get_activation(name: str):
    """Returns ``jax.nn.<name>``, or a ConfigError naming the valid choices."""
    known = ("relu", "gelu", "silu", "elu", "tanh", "sigmoid", "leaky_relu", "softplus")
    if name not in known:
        raise ConfigError(f"unknown activation {name!r}; choose one of {known}")
    return getattr(jax.nn, name)


def compute_dtype(name: str) -> jnp.dtype:
    """The dtype layers compute in; parameters stay float32 whatever it is."""
    if name not in ("float32", "bfloat16", "float16"):
        raise ConfigError(f"unknown compute dtype {name!r}; use float32, bfloat16 or float16")
    return jnp.dtype(name)


def critic_layers(hidden: tuple[int, ...]) -> tuple[list[nn.Dense], nn.Dense]:
    """An MLP critic's hidden layers and its logit layer, named ``dense_0 .. dense_n``.

    Call it in a module's ``setup`` (the adversarial AE's and FactorVAE's discriminators).
    """
    layers = [nn.Dense(f, name=f"dense_{i}") for i, f in enumerate(hidden)]
    return layers, nn.Dense(1, name=f"dense_{len(hidden)}")


def critic_logits(layers, out, activation: str, z: jax.Array) -> jax.Array:
    """``z: [B, K]`` through ``critic_layers`` -> logits ``[B]`` (computed in float32)."""
    act = get_activation(activation)
    h = z.astype(jnp.float32)
    for layer in layers:
        h = act(layer(h))
    return out(h).reshape(z.shape[0])
