"""The contractive autoencoder (Rifai et al. 2011): a sigmoid code and ``||J_h(x)||_F^2``.

The code is ``h(x) = sigmoid(encoder(x))``, the map the penalty differentiates: the
encoder and the code, never the decoder. Per example, ``contractive = ||dh/dx||_F^2``,
the sum of the squared entries of the ``K x D`` Jacobian, computed one of three ways
(``Config.contractive_jacobian``):

- ``closed_form``, for one sigmoid layer ``h = sigmoid(W^T x + b)`` (``hidden=()``):
  ``||J||_F^2 = sum_j (h_j (1 - h_j))^2 sum_i W_ij^2``, from ``h`` and the kernel alone;
- ``forward``: ``jax.jacfwd`` (one JVP per input element), vmapped over the examples;
- ``reverse``: ``jax.jacrev`` (one VJP per code unit), vmapped over the examples.

``auto`` takes the closed form where it applies, else ``reverse`` when the code is
narrower than the input (the usual undercomplete case) and ``forward`` otherwise. The
training gradient differentiates the penalty once more (second order), which is why it
costs what ``benchmarks/penalty_cost.py`` measures. Dense encoders only: a conv encoder's
Jacobian is an order of magnitude dearer on CPU and is not offered.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from aejax.errors import ConfigError
from aejax.fields import field, number, one_of
from aejax.models.autoencoder import Autoencoder
from aejax.models.compose import dense_parts
from aejax.models.options import Dense
from aejax.models.spec import Common, DataInfo, ModelSpec

JACOBIANS = ("auto", "closed_form", "forward", "reverse")


def jacobian_penalty(fn: Callable[[jax.Array], jax.Array], x: jax.Array, mode: str) -> jax.Array:
    """``||d fn / dx||_F^2`` per example, by automatic differentiation.

    Args:
      fn: one example ``[*S] -> [K]`` (pure in ``x``; parameters closed over).
      x: ``[B, *S]``.
      mode: ``"forward"`` (``jax.jacfwd``) or ``"reverse"`` (``jax.jacrev``).

    Returns:
      ``[B]``: the sum of the squared Jacobian entries of each example.
    """
    jac = jax.vmap(jax.jacfwd(fn) if mode == "forward" else jax.jacrev(fn))(x)  # [B, K, *S]
    return jnp.sum(jnp.square(jac), axis=tuple(range(1, jac.ndim)))


def sigmoid_layer_penalty(h: jax.Array, kernel: jax.Array) -> jax.Array:
    """The closed form for ``h = sigmoid(x @ kernel + b)``.

    Args:
      h: ``[B, K]``, the layer's outputs.
      kernel: ``[D, K]``, its weights.

    Returns:
      ``[B]``: ``sum_j (h_j (1 - h_j))^2 * sum_i kernel_ij^2``.
    """
    return jnp.square(h * (1.0 - h)) @ jnp.sum(jnp.square(kernel), axis=0)


def resolve_jacobian(requested: str, input_shape, hidden, latent_dim: int) -> str:
    """The concrete method for ``requested`` (see the module docstring).

    Raises:
      ConfigError: an unknown method, or ``closed_form`` for an encoder with hidden layers.
    """
    if requested not in JACOBIANS:
        raise ConfigError(f"unknown contractive_jacobian {requested!r}; choose one of {JACOBIANS}")
    one_layer = len(tuple(hidden)) == 0
    if requested == "closed_form" and not one_layer:
        raise ConfigError(
            f"contractive_jacobian=closed_form needs one sigmoid layer (hidden=()), got "
            f"hidden={tuple(hidden)}; use auto, forward or reverse"
        )
    if requested != "auto":
        return requested
    if one_layer:
        return "closed_form"
    return "reverse" if latent_dim < math.prod(input_shape) else "forward"


@dataclasses.dataclass(frozen=True)
class ContractivePenalty:
    """``Autoencoder.penalty`` of ``contractive_ae``: ``{"contractive": [B]}``.

    Attributes:
      method: ``"closed_form"``, ``"forward"`` or ``"reverse"`` (already resolved).
    """

    method: str = "reverse"

    def __call__(self, model: nn.Module, x: jax.Array, z: jax.Array) -> dict[str, jax.Array]:
        """The term for a bound ``model`` (its encoder already called), ``x: [B, *S]``,
        and its code ``z = model.encode(x): [B, K]``.
        """
        if self.method == "closed_form":
            kernel = model.encoder.variables["params"]["dense_0"]["kernel"]
            return {"contractive": sigmoid_layer_penalty(z, kernel)}

        def h(xi):  # one example -> its code; the decoder is not involved
            return model.encode(xi[None])[0]

        return {"contractive": jacobian_penalty(h, x, self.method)}


class SigmoidCode(nn.Module):
    """``z = sigmoid(h)``: the contractive autoencoder's code, ``[B, K] -> [B, K]``."""

    latent_dim: int

    @property
    def features(self) -> int:
        return self.latent_dim

    def encode(self, h: jax.Array) -> jax.Array:
        return jax.nn.sigmoid(h)

    def __call__(self, h: jax.Array, *, train: bool = False) -> tuple[jax.Array, dict]:
        del train
        return self.encode(h), {"terms": {}, "outputs": {}, "stats": {}}

    def sample_prior(self, n: int) -> jax.Array:
        raise NotImplementedError(
            "a contractive autoencoder has no prior; aejax.sample fits a Gaussian mixture to "
            "its training codes instead"
        )


@dataclasses.dataclass(frozen=True)
class ContractiveOptions(Dense):
    """``contractive_ae``: the dense network and the Jacobian penalty."""

    GROUP: ClassVar = ("contractive_ae", "contractive_ae's Jacobian penalty (Rifai et al. 2011)")
    contractive_weight: float = field(
        0.1,
        "weight lambda of the penalty ||J_h(x)||_F^2 on the sigmoid code h",
        number(0, finite=True),
    )
    contractive_jacobian: str = field(
        "auto",
        "how J is computed: auto (closed_form for one sigmoid layer, hidden=(); else the "
        "cheaper of forward and reverse), closed_form, forward (jacfwd), reverse (jacrev)",
        one_of(*JACOBIANS),
    )


def _build(options: ContractiveOptions, common: Common, data: DataInfo) -> Autoencoder:
    method = resolve_jacobian(
        options.contractive_jacobian, data.input_shape, options.hidden, common.latent_dim
    )
    parts = dense_parts(options, common, data, SigmoidCode(common.latent_dim))
    return Autoencoder(
        tuple(data.input_shape),
        likelihood=common.likelihood,
        penalty=ContractivePenalty(method),
        **parts,
    )


def _weights(options: ContractiveOptions, total_steps: int):
    return {"contractive": options.contractive_weight}, None, total_steps


CONTRACTIVE_AE = ModelSpec(
    _build, ContractiveOptions, weights=_weights, test_config={"hidden": (32,), "latent_dim": 4}
)
