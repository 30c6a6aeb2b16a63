"""MADE, the masked autoencoder for distribution estimation (Germain et al. 2015).

An MLP from ``x: [..., D]`` to ``outputs`` arrays ``[..., D]`` whose output ``i`` depends
only on the inputs before ``i`` in an ordering: each weight matrix is multiplied by a
binary mask built from *degrees*. Input ``d`` has degree ``d + 1`` (``1..D``; reversed,
``D..1``), hidden units the degrees ``1..D-1`` in turn (the paper's deterministic
"sequential" assignment, as pythae's default), and a connection exists where the
receiving unit's degree is ``>=`` the sending one's; an output of degree ``k`` sees the
hidden units of degree ``< k``. So the Jacobian ``d out / d x`` is strictly triangular in
the ordering: the autoregressive block of the inverse autoregressive flow
(``aejax.models.flow_vae``) and of the masked autoregressive flow
(``aejax.sampling.maf``). ``reverse`` flips the ordering, so stacked flows alternate it.
An optional context (the IAF's encoder context ``h`` of Kingma et al. 2016) enters the
first hidden layer unmasked: every output may read it.

Differences from the paper: no random orderings or connectivity resampling, no direct
input-to-output connections; the output layer may start at zero (``zero_output``) so a
flow built on it starts at a fixed, data-independent map.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def input_degrees(d: int, reverse: bool = False) -> np.ndarray:
    """Degrees ``[D]`` of the inputs (and outputs): ``1..D``, or ``D..1`` if ``reverse``."""
    deg = np.arange(1, d + 1)
    return deg[::-1].copy() if reverse else deg


def hidden_degrees(d: int, width: int) -> np.ndarray:
    """Degrees ``[width]`` of a hidden layer: ``1..D-1`` in turn (``1`` when ``D = 1``)."""
    return np.arange(width) % max(d - 1, 1) + 1


def mask(in_deg: np.ndarray, out_deg: np.ndarray, *, strict: bool) -> np.ndarray:
    """``[len(in_deg), len(out_deg)]`` float32: 1 where ``out > in`` (strict) or ``out >= in``."""
    later = out_deg[None, :] > in_deg[:, None] if strict else out_deg[None, :] >= in_deg[:, None]
    return later.astype(np.float32)


class _MaskedDense(nn.Module):
    """``x @ (kernel * mask) + bias`` for the mask of the given degrees (tuples: hashable)."""

    in_degrees: tuple[int, ...]
    out_degrees: tuple[int, ...]
    strict: bool
    zero_init: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        m = mask(np.array(self.in_degrees), np.array(self.out_degrees), strict=self.strict)
        init = nn.initializers.zeros if self.zero_init else nn.initializers.lecun_normal()
        kernel = self.param("kernel", init, m.shape, jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (m.shape[1],), jnp.float32)
        y = x @ (kernel * jnp.asarray(m))
        return y + bias.reshape((1,) * (y.ndim - 1) + (-1,))


class MADE(nn.Module):
    """``x: [..., D]`` -> a tuple of ``outputs`` arrays ``[..., D]``, output ``i`` a function
    of the inputs before ``i`` in the ordering (module docstring).

    Attributes:
      hidden: widths of the hidden layers (ReLU), at least one.
      outputs: arrays returned, e.g. 2 for a shift and a log-scale per dimension.
      reverse: use the ordering ``D..1`` instead of ``1..D``.
      zero_output: start the output layer's weights and biases at zero.
    """

    hidden: tuple[int, ...]
    outputs: int = 2
    reverse: bool = False
    zero_output: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, context: jax.Array | None = None) -> tuple[jax.Array, ...]:
        """``x: [..., D]`` (and an optional ``context: [..., C]``, seen by every output) ->
        ``outputs`` arrays ``[..., D]``."""
        d = x.shape[-1]
        if not self.hidden:
            raise ValueError("MADE needs at least one hidden layer")
        prev = input_degrees(d, self.reverse)
        outs = prev
        h = x.astype(jnp.float32)
        for i, width in enumerate(self.hidden):
            deg = hidden_degrees(d, width)
            h = _MaskedDense(tuple(prev.tolist()), tuple(deg.tolist()), False)(h)
            if i == 0 and context is not None:  # unmasked: the context is no input
                h = h + nn.Dense(width, use_bias=False)(context.astype(jnp.float32))
            h = nn.relu(h)
            prev = deg
        tiled = np.tile(outs, self.outputs)  # output j * D + i has input i's degree
        dense = _MaskedDense(tuple(prev.tolist()), tuple(tiled.tolist()), True, self.zero_output)
        y = dense(h).reshape(*x.shape[:-1], self.outputs, d)
        return tuple(y[..., j, :] for j in range(self.outputs))
