"""Encoders and decoders: the architecture half of a composed autoencoder.

An encoder maps ``x: [B, *input_shape]`` to the features a code needs (``[B, F]``, or a
grid ``[B, h, w, F]`` for a spatial code); a decoder maps a code back to the decoder
output parameters ``[B, *input_shape[:-1], C * k]`` that a likelihood reads.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax

from aejax.errors import ConfigError
from aejax.models._common import compute_dtype, get_activation
from aejax.models._lowering import ConvTranspose2x


class MLPEncoder(nn.Module):
    """Dense layers ``hidden`` then a linear layer of ``features``; ``[B, ...] -> [B, F]``."""

    hidden: tuple[int, ...]
    features: int
    activation: str = "gelu"
    dtype: str = "float32"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act, dt = get_activation(self.activation), compute_dtype(self.dtype)
        x = x.reshape(x.shape[0], -1)
        widths = (*self.hidden, self.features)
        for i, f in enumerate(widths):
            x = nn.Dense(f, dtype=dt, name=f"dense_{i}")(x)
            if i < len(widths) - 1:
                x = act(x)
        return x.astype("float32")


class MLPDecoder(nn.Module):
    """Dense layers ``hidden`` then a linear layer to ``output_shape``; ``[B, K] -> [B, *out]``."""

    hidden: tuple[int, ...]
    output_shape: tuple[int, ...]
    activation: str = "gelu"
    dtype: str = "float32"

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        act, dt = get_activation(self.activation), compute_dtype(self.dtype)
        widths = (*self.hidden, math.prod(self.output_shape))
        x = z
        for i, f in enumerate(widths):
            x = nn.Dense(f, dtype=dt, name=f"dense_{i}")(x)
            if i < len(widths) - 1:
                x = act(x)
        return x.reshape(z.shape[0], *self.output_shape).astype("float32")


def check_conv_shape(input_shape: tuple[int, ...], n_layers: int) -> None:
    """Raises ConfigError unless ``input_shape`` is ``(H, W, C)`` with H, W divisible by 2**n."""
    if len(input_shape) != 3:
        raise ConfigError(
            "conv models need image data of shape (H, W, C); got per-example shape "
            f"{input_shape}. Use a dense model ('ae', 'vae', ...) for tabular data."
        )
    s = 2**n_layers
    h, w, _ = input_shape
    if h % s or w % s:
        raise ConfigError(
            f"conv models with {n_layers} stride-2 layers need H and W divisible by {s}; "
            f"got {h}x{w}. Use fewer layers (e.g. --set conv_features=32) or pad the images."
        )


def bottom_shape(input_shape: tuple[int, ...], conv_features: tuple[int, ...]) -> tuple:
    """``(h, w, C)`` at the end of the stride-2 conv stack."""
    s = 2 ** len(conv_features)
    return input_shape[0] // s, input_shape[1] // s, conv_features[-1]


class ConvEncoder(nn.Module):
    """Stride-2 3x3 convs, then ``to_code``: a dense layer (``grid=False``: ``[B, F]``) or a
    1x1 conv (``grid=True``: ``[B, h, w, F]``, one code vector per cell).

    ``conv_features=(32, 64)`` takes ``[B, 28, 28, 1]`` through 14x14 to 7x7.
    """

    conv_features: tuple[int, ...]
    features: int
    grid: bool = False
    activation: str = "gelu"
    dtype: str = "float32"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act, dt = get_activation(self.activation), compute_dtype(self.dtype)
        for i, f in enumerate(self.conv_features):
            x = act(
                nn.Conv(f, (3, 3), strides=(2, 2), padding="SAME", dtype=dt, name=f"conv_{i}")(x)
            )
        if self.grid:
            return nn.Conv(self.features, (1, 1), dtype=dt, name="to_code")(x).astype("float32")
        return nn.Dense(self.features, dtype=dt, name="to_code")(x.reshape(x.shape[0], -1)).astype(
            "float32"
        )


class ConvDecoder(nn.Module):
    """Mirror of ``ConvEncoder``: ``from_code`` (dense, or 1x1 conv for a grid), then stride-2
    transposed convs up to ``[B, H, W, out_channels]``.

    Attributes:
      deconv: ``"subpixel"`` (stride-1 conv + depth-to-space: the same function and
        parameters, ~1.9x faster training on CPU) or ``"lax"`` (``lax.conv_transpose``);
        see ``aejax/models/_lowering.py``.
    """

    input_shape: tuple[int, ...]
    conv_features: tuple[int, ...]
    out_channels: int
    grid: bool = False
    activation: str = "gelu"
    dtype: str = "float32"
    deconv: str = "subpixel"

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        act, dt = get_activation(self.activation), compute_dtype(self.dtype)
        h, w, c = bottom_shape(self.input_shape, self.conv_features)
        if self.grid:
            x = act(nn.Conv(c, (1, 1), dtype=dt, name="from_code")(z))
        else:
            x = act(nn.Dense(h * w * c, dtype=dt, name="from_code")(z)).reshape(z.shape[0], h, w, c)
        up = (*self.conv_features[-2::-1], self.out_channels)
        for i, f in enumerate(up):
            x = ConvTranspose2x(f, impl=self.deconv, dtype=dt, name=f"deconv_{i}")(x)
            if i < len(up) - 1:
                x = act(x)
        return x.astype("float32")
