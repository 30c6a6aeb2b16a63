"""Building blocks shared by the model families."""

from __future__ import annotations

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
