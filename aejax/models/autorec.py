"""AutoRec (Sedhain et al. 2015): one hidden layer over a partially observed rating vector.

``h(r) = f(V^T r + b)``, ``r_hat = g(W^T h + c)``, trained on the observed entries only:
per example (a row of the ratings matrix: an item over the users for I-AutoRec, a user over
the items for U-AutoRec),

    reconstruction = sum_j mask_j (r_hat_j - r_j)^2        # the batch's ``mask``
    l2             = (1 / 2) (||V||^2 + ||W||^2)           # weighted by ``autorec_l2``

so the mean loss over the ``N`` training rows is the paper's objective divided by ``N``,
with the paper's ``lambda = N * autorec_l2``. The L2 term lives in the loss (the model's
``penalty`` hook), not in the optimizer: with Adam, a decoupled decay (adamw) is not the
same regularizer, and in the loss it is the paper's. Unobserved inputs are 0, which in the
centred ratings of ``aejax.data.ratings`` means the training mean.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from aejax.models._common import compute_dtype, get_activation


def _activation(name: str):
    return (lambda x: x) if name == "identity" else get_activation(name)


class ActivationCode(nn.Module):
    """``z = f(h)``: the hidden layer's activation as the code, ``[B, K] -> [B, K]``."""

    latent_dim: int
    activation: str = "sigmoid"

    @property
    def features(self) -> int:
        return self.latent_dim

    def encode(self, h: jax.Array) -> jax.Array:
        return _activation(self.activation)(h)

    def __call__(self, h: jax.Array, *, train: bool = False) -> tuple[jax.Array, dict]:
        del train
        return self.encode(h), {"terms": {}, "outputs": {}, "stats": {}}

    def sample_prior(self, n: int) -> jax.Array:
        raise NotImplementedError("AutoRec has no prior: it predicts ratings, it does not sample")


class OutputLayer(nn.Module):
    """``g(W^T z + c)``: one dense layer to ``output_shape`` and its activation."""

    output_shape: tuple[int, ...]
    activation: str = "identity"
    dtype: str = "float32"

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        size = 1
        for d in self.output_shape:
            size *= d
        x = nn.Dense(size, dtype=compute_dtype(self.dtype), name="dense_0")(z)
        x = _activation(self.activation)(x)
        return x.reshape(z.shape[0], *self.output_shape).astype("float32")


@dataclasses.dataclass(frozen=True)
class L2Penalty:
    """``Autoencoder.penalty`` of ``autorec``: ``{"l2": [B]}``, ``||V||^2 / 2 + ||W||^2 / 2``.

    The same value for every example of the batch: its weighted mean over the batch is
    the term itself, so the objective adds ``autorec_l2 * l2`` to the mean loss.
    """

    def __call__(self, model: nn.Module, x: jax.Array, z: jax.Array) -> dict[str, jax.Array]:
        del z
        kernels = (
            model.encoder.variables["params"]["dense_0"]["kernel"],
            model.decoder.variables["params"]["dense_0"]["kernel"],
        )
        total = 0.5 * sum(jnp.sum(jnp.square(k)) for k in kernels)
        return {"l2": jnp.broadcast_to(total, (x.shape[0],))}
