"""Training-time augmentation of images: label-free transforms of the clean batch.

A spec is ``OP:VALUE`` or several joined by ``+`` (applied left to right); ``""`` and
``"none"`` are the identity. The operators (images ``[B, H, W, C]`` only):

- ``shift:N`` translates each image by a uniform integer offset in ``[-N, N]`` along each
  axis, the uncovered border filled by replicating the edge (0 on MNIST-like digits).
- ``flip:P`` mirrors each image left-right with probability P (natural images; not digits).

How the engine uses it (``aejax.train.step.make_update``): each training step draws the
transform from the step key on a stream of its own and applies it to ``batch["x"]`` before
any binarization or corruption, so a denoiser's clean target is the augmented image and
its input the corrupted augmented one. Validation and test data are never augmented. On a
small training set (mnist-lite's 4,500 images) it is what keeps a wide denoiser from
memorising the training digits (``docs/results.md``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from aejax.data.corruption import OpChain
from aejax.errors import ConfigError, did_you_mean

# name -> (the value's meaning, its type)
OPERATORS = {"shift": ("N", int), "flip": ("P", float)}
GRAMMAR = (
    "OP:VALUE, several joined by + (applied left to right), with OP one of shift:N (pixels, an "
    "integer >= 0), flip:P (P in [0, 1]); none = no augmentation"
)
_COL = 1  # fold_in of shift's key: the column offsets, apart from the rows'


@dataclasses.dataclass(frozen=True)
class Augment(OpChain):
    """A composition of augmentation operators (``aejax.data.corruption.OpChain``: frozen,
    hashable, False for the identity); build one with ``parse_augment``."""

    def check(self, input_shape: tuple[int, ...], kind: str = "image") -> None:
        """Raises ConfigError when the operators do not apply to this data."""
        if not self:
            return
        if kind != "image" or len(input_shape) != 3:
            raise ConfigError(
                f"augment {self} works on images [H, W, C]; this data is {kind} with "
                f"per-example shape {tuple(input_shape)}"
            )
        h, w = input_shape[:2]
        for name, value in self.ops:
            if name == "shift" and value >= min(h, w):
                raise ConfigError(
                    f"augment shift:{value} moves {h} x {w} images out of the frame; "
                    f"use N < {min(h, w)}"
                )

    def __call__(self, key: jax.Array, x: jax.Array) -> jax.Array:
        """The augmented batch.

        Args:
          key: a PRNG key; operator ``i`` draws from ``fold_in(key, i)``.
          x: ``[B, H, W, C]`` images.

        Returns:
          An array of ``x``'s shape and dtype.
        """
        x = jnp.asarray(x)
        self.check(x.shape[1:])
        for i, (name, value) in enumerate(self.ops):
            x = _APPLY[name](jax.random.fold_in(key, i), x, value)
        return x


def _shift(key, x, n):
    if n == 0:
        return x
    b, h, w, c = x.shape
    dy = jax.random.randint(key, (b,), 0, 2 * n + 1)
    dx = jax.random.randint(jax.random.fold_in(key, _COL), (b,), 0, 2 * n + 1)
    padded = jnp.pad(x, ((0, 0), (n, n), (n, n), (0, 0)), mode="edge")
    # Offset (dy, dx) into the padded image is a shift of (n - dy, n - dx) pixels.
    crop = lambda im, i, j: jax.lax.dynamic_slice(im, (i, j, 0), (h, w, c))  # noqa: E731
    return jax.vmap(crop)(padded, dy, dx)


def _flip(key, x, p):
    hit = jax.random.bernoulli(key, p, (x.shape[0], 1, 1, 1))
    return jnp.where(hit, x[:, :, ::-1, :], x)


_APPLY = {"shift": _shift, "flip": _flip}


def parse_augment(spec: str) -> Augment:
    """Parses an augmentation spec (pure Python: no array is touched).

    Args:
      spec: e.g. ``"shift:2"``, ``"shift:2+flip:0.5"``; ``""`` or ``"none"`` for none.
        Names ignore case and surrounding spaces.

    Returns:
      An ``Augment``.

    Raises:
      ConfigError: an unknown operator (with a did-you-mean), a missing or bad value.
    """
    text = str(spec).strip().lower()
    if text in ("", "none"):
        return Augment()
    ops = []
    for part in text.split("+"):
        name, sep, raw = part.strip().partition(":")
        name = name.strip()
        if name not in OPERATORS:
            raise ConfigError(
                f"augment {spec!r}: unknown operator {name!r}{did_you_mean(name, OPERATORS)}; "
                f"expected {GRAMMAR}"
            )
        meaning, kind = OPERATORS[name]
        try:
            value = kind(raw.strip()) if sep else None
        except ValueError:
            value = None
        ok = value is not None and (value >= 0 if kind is int else 0 <= value <= 1)
        if not ok:
            bad = f"a bad value {raw.strip()!r}" if sep else "no value"
            raise ConfigError(f"augment {spec!r}: {name}:{meaning} has {bad}; expected {GRAMMAR}")
        ops.append((name, value))
    return Augment(tuple(ops))


__all__ = ["GRAMMAR", "OPERATORS", "Augment", "parse_augment"]
