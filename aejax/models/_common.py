"""Building blocks shared by the model families."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from aejax.errors import ConfigError

LIKELIHOODS = ("bernoulli", "gaussian")


def get_activation(name: str):
    """Returns ``jax.nn.<name>``, or a ConfigError naming the valid choices."""
    known = ("relu", "gelu", "silu", "elu", "tanh", "sigmoid", "leaky_relu", "softplus")
    if name not in known:
        raise ConfigError(f"unknown activation {name!r}; choose one of {known}")
    return getattr(jax.nn, name)


class MLP(nn.Module):
    """Dense layers with an activation between them and none after the last."""

    features: Sequence[int]
    activation: str = "gelu"
    dtype: str = "float32"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = get_activation(self.activation)
        for i, f in enumerate(self.features):
            x = nn.Dense(f, dtype=compute_dtype(self.dtype), name=f"dense_{i}")(x)
            if i < len(self.features) - 1:
                x = act(x)
        return x


def compute_dtype(name: str) -> jnp.dtype:
    """The dtype layers compute in; parameters stay float32 whatever it is."""
    if name not in ("float32", "bfloat16", "float16"):
        raise ConfigError(f"unknown compute dtype {name!r}; use float32, bfloat16 or float16")
    return jnp.dtype(name)


class Head(nn.Module):
    """Maps the decoder's output parameters to data space: sigmoid for Bernoulli, identity else."""

    likelihood: str = "bernoulli"

    def __call__(self, out: jax.Array) -> jax.Array:
        if self.likelihood not in LIKELIHOODS:
            raise ConfigError(
                f"unknown likelihood {self.likelihood!r}; choose one of {LIKELIHOODS}"
            )
        # Losses and metrics are computed in float32 even when layers run in bfloat16.
        out = out.astype(jnp.float32)
        return jax.nn.sigmoid(out) if self.likelihood == "bernoulli" else out
