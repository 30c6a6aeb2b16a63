"""Sparse codes: an L1 penalty, a KL divergence to a target rate, or the k largest units.

Three mechanisms (``Config.sparsity``), each a code that sits on the encoder's linear
output ``h: [B, K]``:

- ``l1``: ``z = relu(h)`` and the term ``sparsity_i = sum_j |z_ij|``. ReLU gives exact
  zeros, so "active" means what it says.
- ``kl`` (Ng's sparse autoencoder): ``z = sigmoid(h)``; with the batch-mean activation
  ``rho_hat_j = mean_b z_bj``, ``sparsity = sum_j KL(rho || rho_hat_j)`` where
  ``KL(rho || q) = rho log(rho / q) + (1 - rho) log((1 - rho) / (1 - q))``. It is a
  *batch* term: every example of the batch reports the same value, so the objective's mean
  over the batch is the penalty itself and the gradient is Ng's. Evaluation's per-example
  ``weight`` drops the padding rows' copies of the term, but the model does not see the
  weights, so ``rho_hat`` of a padded last batch (zero rows) includes them; likewise
  ``aejax.score`` reports the rate of the chunk an example was scored in.
- ``topk`` (Makhzani & Frey 2013, k-sparse autoencoder): the code is linear, as in the
  paper, and keeps its ``k`` largest entries per example (exactly ``k``: ties go to the
  lower index, as ``jax.lax.top_k`` orders them), zeroing the rest. Gradients flow through
  the kept entries only; there is no penalty term. (The paper's ``alpha * k`` units at
  test time are not implemented: encoding keeps ``k``.)

Every mechanism reports the achieved sparsity as batch statistics: ``mean_activation``
(mean ``|z|`` over examples and units) and ``active_fraction`` (the share of active
entries). A unit is active where its pre-activation is positive: ``z > 0`` for the ReLU
code, ``z > 1/2`` for the sigmoid code (an absolute threshold would count every sigmoid
unit), and the kept entries of a top-k code (so exactly ``k / K``).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from aejax.errors import ConfigError
from aejax.fields import field, integer, number, one_of
from aejax.models.compose import compose, conv_parts, dense_parts
from aejax.models.options import Conv, Dense, Options
from aejax.models.spec import Common, ModelSpec

MECHANISMS = ("l1", "kl", "topk")
_EPS = 1e-6  # keeps rho_hat inside (0, 1), where the KL is finite


def l1_penalty(z: jax.Array) -> jax.Array:
    """``z: [B, K]`` -> ``[B]``: ``sum_j |z_j|`` per example."""
    return jnp.sum(jnp.abs(z), axis=-1)


def kl_sparsity(z: jax.Array, target: float) -> jax.Array:
    """Ng's sparsity penalty, a batch term: ``z: [B, K]`` in (0, 1) -> ``[B]``.

    Args:
      z: sigmoid activations of one batch.
      target: the desired mean activation ``rho`` of each unit, in (0, 1).

    Returns:
      ``sum_j KL(rho || rho_hat_j)`` with ``rho_hat = z.mean(0)`` (clipped to
      ``[1e-6, 1 - 1e-6]``), the same value for every example of the batch.
    """
    rho = jnp.float32(target)
    rho_hat = jnp.clip(jnp.mean(z, axis=0), _EPS, 1.0 - _EPS)
    kl = rho * jnp.log(rho / rho_hat) + (1 - rho) * jnp.log((1 - rho) / (1 - rho_hat))
    return jnp.broadcast_to(jnp.sum(kl), z.shape[:1])


def top_k_mask(h: jax.Array, k: int) -> jax.Array:
    """``h: [B, K]`` -> a float mask ``[B, K]`` with exactly ``k`` ones per row.

    The ones mark each row's ``k`` largest entries; among equal values the lower index wins.
    """
    _, idx = jax.lax.top_k(h, k)  # [B, k], distinct indices per row
    return jnp.sum(jax.nn.one_hot(idx, h.shape[-1], dtype=h.dtype), axis=-2)


def sparsity_stats(z: jax.Array, active: jax.Array) -> dict[str, jax.Array]:
    """Achieved sparsity of a batch: two float32 scalars.

    Args:
      z: ``[B, K]`` codes.
      active: ``[B, K]`` booleans, which entries count as active.

    Returns:
      ``{"mean_activation": mean |z|, "active_fraction": mean of active}``.
    """
    return {
        "mean_activation": jnp.mean(jnp.abs(z)),
        "active_fraction": jnp.mean(active.astype(jnp.float32)),
    }


class SparseCode(nn.Module):
    """A deterministic code made sparse by ``mechanism`` (see the module docstring).

    Attributes:
      latent_dim: K, the code width (the encoder's linear output width).
      mechanism: ``"l1"``, ``"kl"`` or ``"topk"``.
      target: ``kl``: the target rate ``rho``.
      k: ``topk``: units kept per example, ``1 <= k <= latent_dim``.
    """

    latent_dim: int
    mechanism: str = "kl"
    target: float = 0.05
    k: int = 4

    @property
    def features(self) -> int:
        return self.latent_dim

    def encode(self, h: jax.Array) -> jax.Array:
        """``h: [B, K]`` (linear) -> the sparse code ``z: [B, K]``."""
        return self._code(h)[0]

    def _code(self, h: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(z, active)``, both ``[B, K]``."""
        if self.mechanism == "l1":
            return jax.nn.relu(h), h > 0
        if self.mechanism == "kl":
            return jax.nn.sigmoid(h), h > 0
        mask = top_k_mask(h, self.k)
        return jnp.where(mask > 0, h, 0.0), mask > 0

    def __call__(self, h: jax.Array, *, train: bool = False) -> tuple[jax.Array, dict]:
        del train
        z, active = self._code(h)
        if self.mechanism == "l1":
            terms = {"sparsity": l1_penalty(z)}
        elif self.mechanism == "kl":
            terms = {"sparsity": kl_sparsity(z, self.target)}
        else:
            terms = {}
        return z, {"terms": terms, "outputs": {}, "stats": sparsity_stats(z, active)}

    def sample_prior(self, n: int) -> jax.Array:
        raise NotImplementedError(
            "a sparse autoencoder has no prior; aejax.sample fits a Gaussian mixture to its "
            "training codes instead"
        )


@dataclasses.dataclass(frozen=True)
class Sparsity(Options):
    """How the code is made sparse (``SparseCode``)."""

    GROUP: ClassVar = ("sparse_ae", "sparse_ae and conv_sparse_ae: how the code is made sparse")
    sparsity: str = field(
        "kl",
        "l1 (on a ReLU code), kl (sigmoid code, batch-mean rate to sparsity_target: Ng) or "
        "topk (the sparsity_k largest of a linear code: Makhzani & Frey 2013)",
        one_of(*MECHANISMS),
    )
    sparsity_weight: float = field(
        1.0, "weight of the sparsity term (l1 and kl; topk has none)", number(0, finite=True)
    )
    sparsity_target: float = field(
        0.05, "kl: the target mean activation rho of each code unit", number(0, 1, above=True)
    )
    sparsity_k: int = field(4, "topk: code units kept per example (at most latent_dim)", integer(1))


@dataclasses.dataclass(frozen=True)
class SparseOptions(Sparsity, Dense):
    """``sparse_ae``: the dense network and the sparsity."""


@dataclasses.dataclass(frozen=True)
class ConvSparseOptions(Sparsity, Conv):
    """``conv_sparse_ae``: the conv network and the sparsity."""


def sparse_code(options: Sparsity, common: Common) -> SparseCode:
    """The ``SparseCode`` of a sparse model's options, checked.

    Raises:
      ConfigError: ``sparsity_k`` above ``latent_dim`` for ``topk``.
    """
    mechanism, k, dim = options.sparsity, int(options.sparsity_k), int(common.latent_dim)
    if mechanism == "topk" and not 1 <= k <= dim:
        raise ConfigError(
            f"sparsity=topk keeps sparsity_k={k} units per example but latent_dim={dim}; "
            "set sparsity_k between 1 and latent_dim"
        )
    return SparseCode(dim, mechanism, float(options.sparsity_target), k)


def _weights(options: Sparsity, total_steps: int):
    return {"sparsity": options.sparsity_weight}, None, total_steps


SPARSE_AE = ModelSpec(
    compose(dense_parts, sparse_code),
    SparseOptions,
    weights=_weights,
    test_config={"hidden": (32,), "latent_dim": 4},
)
CONV_SPARSE_AE = ModelSpec(
    compose(conv_parts, sparse_code),
    ConvSparseOptions,
    weights=_weights,
    test_config={"conv_features": (8, 16), "latent_dim": 4},
)
