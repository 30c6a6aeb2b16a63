"""The gated PixelCNN network (van den Oord et al. 2016) over a grid of integer codes.

``GatedPixelCNN(codebook_size, channels, layers)`` maps codes ``[B, h, w]`` int to logits
``[B, h, w, K]`` whose entry at position ``p`` (raster order) depends only on the codes at
positions ``< p``. Two stacks, as in the paper: a vertical one that sees the rows above
(a ``k x k`` kernel masked to the rows above the centre in the first layer, 'A', and to
the rows up to the centre after, 'B') and a horizontal one that sees the row so far (a
``1 x k`` kernel masked to the columns left of the centre, 'A', then up to it, 'B'); the
vertical stack feeds the horizontal one through a 1x1 conv at each layer. The two stacks
remove the blind spot of a single masked-conv stack: with a first kernel of 5 and 3
after, the logits at ``(i, j)`` see every earlier position of a grid at most ``layers + 1``
columns wide on each side and rows deep (7x7 grids, MNIST's with two stride-2 convs, need
``layers >= 6``).

Each layer is the paper's gated unit ``tanh(W_f * x) * sigmoid(W_g * x)`` on both stacks,
with a 1x1 conv and a residual on the horizontal stack (not in the first layer, whose
horizontal input would leak the current position). The head is ReLU, 1x1 conv, ReLU, 1x1
conv to ``K`` logits. Differences from the paper: no class or other conditioning, no skip
connections summed into the head, a one-hot input through a Dense layer (an embedding
that stays differentiable in its input, for the causality tests).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

FIRST_KERNEL = 5
KERNEL = 3


def vertical_taps(k: int, first: bool) -> tuple[tuple[int, int], ...]:
    """The ``(row, column)`` offsets a ``k x k`` vertical kernel keeps: the rows above the
    centre (mask 'A', ``first``) or up to it (mask 'B'), all ``k`` columns."""
    rows = range(-(k // 2), 0 if first else 1)
    return tuple((di, dj) for di in rows for dj in range(-(k // 2), k // 2 + 1))


def horizontal_taps(k: int, first: bool) -> tuple[tuple[int, int], ...]:
    """The offsets a ``1 x k`` horizontal kernel keeps: the columns left of the centre
    (mask 'A') or up to it (mask 'B')."""
    return tuple((0, dj) for dj in range(-(k // 2), 0 if first else 1))


def shift(x: jax.Array, di: int, dj: int) -> jax.Array:
    """``x: [B, h, w, C]`` -> ``out[:, i, j] = x[:, i + di, j + dj]``, zero off the grid."""
    h, w = x.shape[1:3]
    pads = ((0, 0), (max(-di, 0), max(di, 0)), (max(-dj, 0), max(dj, 0)), (0, 0))
    return jnp.pad(x, pads)[:, max(di, 0) : max(di, 0) + h, max(dj, 0) : max(dj, 0) + w]


class MaskedConv(nn.Module):
    """A masked convolution as the sum over its unmasked taps: ``[B, h, w, C] -> [B, h, w,
    features]``, the shifted inputs concatenated on channels and one matmul (the same map
    as a zero-padded ``nn.Conv`` whose kernel is zero off ``taps``, without the masked
    taps' work; XLA's CPU convolutions, their gradients above all, are many times
    slower than this matmul)."""

    features: int
    taps: tuple[tuple[int, int], ...]

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        stacked = jnp.concatenate([shift(x, di, dj) for di, dj in self.taps], axis=-1)
        return nn.Dense(self.features)(stacked)


def _gate(x: jax.Array) -> jax.Array:
    """``[..., 2C] -> [..., C]``: ``tanh(first half) * sigmoid(second half)``."""
    f, g = jnp.split(x, 2, axis=-1)
    return jnp.tanh(f) * jax.nn.sigmoid(g)


class GatedLayer(nn.Module):
    """One gated layer: ``(v, h) [B, h, w, C] each -> (v', h')`` (see the module docstring)."""

    channels: int
    first: bool = False

    @nn.compact
    def __call__(self, v: jax.Array, h: jax.Array) -> tuple[jax.Array, jax.Array]:
        c, k = self.channels, FIRST_KERNEL if self.first else KERNEL
        v_pre = MaskedConv(2 * c, vertical_taps(k, self.first), name="vertical")(v)
        h_pre = MaskedConv(2 * c, horizontal_taps(k, self.first), name="horizontal")(h)
        h_pre = h_pre + nn.Dense(2 * c, name="link")(v_pre)
        h_out = nn.Dense(c, name="out")(_gate(h_pre))
        if not self.first:
            h_out = h_out + h
        return _gate(v_pre), h_out


class GatedPixelCNN(nn.Module):
    """Autoregressive logits over a code grid.

    Attributes:
      codebook_size: ``K``, the number of classes per position.
      channels: ``C``, the width of both stacks.
      layers: gated layers, >= 1 (the first masked 'A').
    """

    codebook_size: int
    channels: int = 32
    layers: int = 6

    def __call__(self, codes: jax.Array) -> jax.Array:
        """``codes: [B, h, w]`` int -> logits ``[B, h, w, K]`` float32."""
        return self.logits(jax.nn.one_hot(codes, self.codebook_size, dtype=jnp.float32))

    @nn.compact
    def logits(self, onehot: jax.Array) -> jax.Array:
        """``onehot: [B, h, w, K]`` -> logits ``[B, h, w, K]`` (causal in raster order)."""
        x = nn.Dense(self.channels, use_bias=False, name="embed")(onehot)
        v, h = x, x
        for i in range(self.layers):
            v, h = GatedLayer(self.channels, first=i == 0, name=f"layer_{i}")(v, h)
        y = nn.Dense(self.channels, name="head")(jax.nn.relu(h))
        return nn.Dense(self.codebook_size, name="logits")(jax.nn.relu(y))
