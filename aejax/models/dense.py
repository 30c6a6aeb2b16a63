"""Dense (fully connected) undercomplete autoencoder."""

from __future__ import annotations

import math

import flax.linen as nn
import jax

from aejax.models._common import MLP, Head


class DenseAE(nn.Module):
    """MLP encoder to a linear code, mirrored MLP decoder.

    ``hidden=(1000, 500, 250), latent_dim=30`` is the 784-1000-500-250-30 network of
    Hinton & Salakhutdinov (2006).

    Attributes:
      input_shape: per-example shape, e.g. ``(28, 28, 1)`` or ``(30,)``.
      latent_dim: size of the code ``z``.
      hidden: encoder widths; the decoder uses them in reverse.
      activation: name of a ``jax.nn`` activation.
      likelihood: ``"bernoulli"`` (logits + BCE, data in [0, 1]) or ``"gaussian"``
        (linear output + squared error, standardized data).
      dtype: compute dtype (``"bfloat16"`` for mixed precision on GPU/TPU); parameters,
        decoder outputs and losses stay float32.
    """

    input_shape: tuple[int, ...]
    latent_dim: int = 8
    hidden: tuple[int, ...] = (512, 256)
    activation: str = "gelu"
    likelihood: str = "bernoulli"
    dtype: str = "float32"

    def setup(self):
        self.encoder = MLP(
            self.hidden + (self.code_outputs,), self.activation, self.dtype, name="encoder"
        )
        out = math.prod(self.input_shape)
        self.decoder = MLP(self.hidden[::-1] + (out,), self.activation, self.dtype, name="decoder")
        self.head = Head(self.likelihood)

    @property
    def code_outputs(self) -> int:
        """Width of the encoder's last layer: ``latent_dim`` (a VAE's is twice that)."""
        return self.latent_dim

    def code_stats(self, x: jax.Array) -> jax.Array:
        """The encoder's last layer ``[B, code_outputs]`` (float32) for ``x: [B, *input_shape]``."""
        return self.encoder(x.reshape(x.shape[0], -1)).astype("float32")

    def encode(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        """Maps ``x: [B, *input_shape]`` to codes ``z: [B, latent_dim]``."""
        del train
        return self.code_stats(x)

    def decode_params(self, z: jax.Array) -> jax.Array:
        """Maps ``z: [B, latent_dim]`` to ``[B, *input_shape]`` logits or means."""
        return self.decoder(z).reshape(z.shape[0], *self.input_shape).astype("float32")

    def decode(self, z: jax.Array) -> jax.Array:
        """Maps ``z: [B, latent_dim]`` to reconstructions ``[B, *input_shape]`` in data space."""
        return self.head(self.decode_params(z))

    def __call__(self, x: jax.Array, *, train: bool = False) -> tuple[jax.Array, dict]:
        """Returns ``(recon [B, *input_shape], aux)``; ``aux`` has ``z`` and ``out``."""
        z = self.encode(x, train=train)
        out = self.decode_params(z)
        return self.head(out), {"z": z, "out": out}
