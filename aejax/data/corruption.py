"""Input corruption for denoising training: composable operators parsed from a spec string.

A spec is ``OP:VALUE`` or several joined by ``+`` (applied left to right), e.g.
``"masking:0.2+gaussian:0.1"``; ``""`` and ``"none"`` are the identity. The operators:

- ``gaussian:SIGMA`` adds N(0, SIGMA^2) to every element; images (``[B, H, W, C]`` in
  [0, 1]) are clipped back to [0, 1], tables (``[B, D]``, standardized) are not.
- ``masking:P`` sets each element to 0 with probability P (images: each pixel, all its
  channels together). On a standardized table 0 is the training mean.
- ``salt_pepper:P`` (images) sets each pixel with probability P to 0 or to 1, equal odds.
- ``block:SIZE`` (images) zeroes one SIZE x SIZE square at a uniformly random position
  inside each image: inpainting.
- ``downsample:F`` (images, H and W divisible by F) replaces each F x F tile by its mean:
  a mean-pool then a nearest-neighbour upsample to H x W, i.e. super-resolution.

How the engine uses it (``aejax.train.step.make_update``): each training step draws the
corruption from the step key on a stream of its own, the model sees the corrupted batch
and its reconstruction term targets the clean one. Validation and test metrics are
computed on clean inputs, so ``val_loss`` is the clean reconstruction (and ``train_loss``,
a denoising loss, is usually the higher). ``Config.corruption = ""`` means the model's
default (``ModelSpec.default_corruption``: ``masking:0.25`` for ``denoising_ae``, none for
the others); ``"none"`` turns corruption off for any model (``corruption_for``).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from aejax.errors import ConfigError, did_you_mean

# name -> (the value's meaning, its type, images only)
OPERATORS = {
    "gaussian": ("SIGMA", float, False),
    "masking": ("P", float, False),
    "salt_pepper": ("P", float, True),
    "block": ("SIZE", int, True),
    "downsample": ("F", int, True),
}
GRAMMAR = (
    "OP:VALUE, several joined by + (applied left to right), with OP one of gaussian:SIGMA "
    "(>= 0), masking:P, salt_pepper:P (P in [0, 1]), block:SIZE, downsample:F (integers "
    ">= 1); none = no corruption"
)
_SALT = 1  # fold_in of an operator's key: salt or pepper, apart from where it falls
_COL = 1  # fold_in of an operator's key: the block's column, apart from its row


@dataclasses.dataclass(frozen=True)
class OpChain:
    """Operators applied left to right; frozen and hashable, so it can be jit-static.

    ``bool(c)`` is False for the identity. The base of ``Corruption`` and of
    ``aejax.data.augment.Augment``.

    Attributes:
      ops: ``((name, value), ...)`` in the order they are applied.
    """

    ops: tuple[tuple[str, float | int], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.ops)

    def __str__(self) -> str:
        """The canonical spec, e.g. ``masking:0.2+gaussian:0.1`` (``none`` for the identity)."""
        return "+".join(f"{name}:{value:g}" for name, value in self.ops) or "none"


@dataclasses.dataclass(frozen=True)
class Corruption(OpChain):
    """A composition of corruption operators (``OpChain``); build one with
    ``parse_corruption``."""

    @property
    def images_only(self) -> bool:
        """Whether an operator needs image data (salt_pepper, block, downsample)."""
        return any(OPERATORS[name][2] for name, _ in self.ops)

    def check(self, input_shape: tuple[int, ...], kind: str = "image") -> None:
        """Refuses, before any tracing, a corruption the data cannot take.

        Args:
          input_shape: per-example shape, ``(H, W, C)`` or ``(D,)``.
          kind: the data kind, ``"image"`` or ``"tabular"``.

        Raises:
          ConfigError: an images-only operator on a table, a block larger than the image,
            a downsample factor that does not divide H and W.
        """
        image = kind == "image" and len(input_shape) == 3
        for name, value in self.ops:
            if OPERATORS[name][2] and not image:
                raise ConfigError(
                    f"corruption {name}:{value:g} needs images [H, W, C]; the data is {kind} "
                    f"{tuple(input_shape)} (gaussian and masking work on tables)"
                )
            if not image:
                continue
            h, w = input_shape[:2]
            if name == "block" and (value > h or value > w):
                raise ConfigError(
                    f"corruption block:{value} is larger than the {h} x {w} images; "
                    f"use a SIZE <= {min(h, w)}"
                )
            if name == "downsample" and (h % value or w % value):
                raise ConfigError(
                    f"corruption downsample:{value} needs H and W divisible by {value}; "
                    f"the images are {h} x {w}"
                )

    def __call__(self, key: jax.Array, x: jax.Array) -> jax.Array:
        """The corrupted batch.

        Args:
          key: a PRNG key; operator ``i`` draws from ``fold_in(key, i)``.
          x: ``[B, H, W, C]`` images in [0, 1] or ``[B, D]`` standardized rows.

        Returns:
          An array of ``x``'s shape and dtype.
        """
        return self.with_mask(key, x)[0]

    def with_mask(self, key: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The corrupted batch and where its values were replaced.

        Args:
          key: a PRNG key; operator ``i`` draws from ``fold_in(key, i)``.
          x: ``[B, H, W, C]`` images in [0, 1] or ``[B, D]`` standardized rows.

        Returns:
          ``(corrupted, missing)``: ``corrupted`` has ``x``'s shape and dtype; ``missing``
          is a bool array of ``x``'s shape, True where masking, salt_pepper or block
          replaced the value (the union over the operators; gaussian and downsample
          replace nothing, so alone they give all False).
        """
        x = jnp.asarray(x)
        self.check(x.shape[1:], "image" if x.ndim == 4 else "tabular")
        missing = jnp.zeros(x.shape, bool)
        for i, (name, value) in enumerate(self.ops):
            x, replaced = _APPLY[name](jax.random.fold_in(key, i), x, value)
            if replaced is not None:
                missing = missing | jnp.broadcast_to(replaced, x.shape)
        return x, missing


def _site_shape(x: jax.Array) -> tuple[int, ...]:
    """Where a per-pixel draw lives: ``[B, H, W, 1]`` for images, ``x``'s shape otherwise."""
    return (*x.shape[:-1], 1) if x.ndim == 4 else x.shape


def _gaussian(key, x, sigma):
    noisy = x + sigma * jax.random.normal(key, x.shape, x.dtype)
    return (jnp.clip(noisy, 0, 1) if x.ndim == 4 else noisy), None


def _masking(key, x, p):
    hit = jax.random.bernoulli(key, p, _site_shape(x))
    return jnp.where(hit, jnp.zeros((), x.dtype), x), hit


def _salt_pepper(key, x, p):
    shape = _site_shape(x)
    hit = jax.random.bernoulli(key, p, shape)
    salt = jax.random.bernoulli(jax.random.fold_in(key, _SALT), 0.5, shape)
    return jnp.where(hit, salt.astype(x.dtype), x), hit


def _block(key, x, size):
    b, h, w = x.shape[:3]
    # The top-left corner, uniform over the positions that keep the square inside.
    top = jax.random.randint(key, (b, 1, 1, 1), 0, h - size + 1)
    left = jax.random.randint(jax.random.fold_in(key, _COL), (b, 1, 1, 1), 0, w - size + 1)
    rows = jnp.arange(h).reshape(1, h, 1, 1)
    cols = jnp.arange(w).reshape(1, 1, w, 1)
    hole = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    return jnp.where(hole, jnp.zeros((), x.dtype), x), hole


def _downsample(key, x, f):
    del key  # deterministic
    b, h, w, c = x.shape
    pooled = x.reshape(b, h // f, f, w // f, f, c).mean(axis=(2, 4))
    return jnp.repeat(jnp.repeat(pooled, f, axis=1), f, axis=2).astype(x.dtype), None


_APPLY = {
    "gaussian": _gaussian,
    "masking": _masking,
    "salt_pepper": _salt_pepper,
    "block": _block,
    "downsample": _downsample,
}


def parse_corruption(spec: str) -> Corruption:
    """Parses a corruption spec (pure Python: no array is touched).

    Args:
      spec: e.g. ``"gaussian:0.5"``, ``"block:14"``, ``"masking:0.2+gaussian:0.1"``;
        ``""`` or ``"none"`` for no corruption. Names ignore case and surrounding spaces.

    Returns:
      A ``Corruption``.

    Raises:
      ConfigError: naming the bad part and the grammar.
    """
    if not isinstance(spec, str):
        raise ConfigError(f"a corruption spec is a string ({GRAMMAR}), got {spec!r}")
    text = spec.strip()
    if text.lower() in ("", "none"):
        return Corruption()
    ops = []
    parts = text.split("+")
    for part in parts:
        name, sep, raw = (s.strip() for s in part.partition(":"))
        name = name.lower()

        def bad(problem: str, part=part) -> ConfigError:
            where = f" (in {part.strip()!r})" if len(parts) > 1 else ""
            return ConfigError(f"corruption {spec!r}: {problem}{where}; grammar: {GRAMMAR}")

        if name not in OPERATORS:
            raise bad(f"unknown operator {name!r}{did_you_mean(name, OPERATORS)}")
        meaning, kind, _ = OPERATORS[name]
        if not sep or not raw:
            raise bad(f"{name} needs a value, {name}:{meaning}")
        try:
            number = float(raw)
        except ValueError:
            raise bad(f"{name}'s {meaning} {raw!r} is not a number") from None
        if kind is int:
            if not number.is_integer() or number < 1:
                raise bad(f"{name}'s {meaning} must be an integer >= 1, got {raw}")
            value = int(number)
        elif name == "gaussian":
            if not (math.isfinite(number) and number >= 0):
                raise bad(f"gaussian's SIGMA must be a finite number >= 0, got {raw}")
            value = number
        else:
            if not 0 <= number <= 1:
                raise bad(f"{name}'s P must be in [0, 1], got {raw}")
            value = number
        ops.append((name, value))
    return Corruption(tuple(ops))


def corruption_for(config) -> Corruption:
    """The corruption a run of ``config`` trains with.

    ``config.corruption`` when set; ``""`` means the model's default
    (``ModelSpec.default_corruption``); ``"none"`` means no corruption.
    """
    from aejax.models.registry import get_spec  # late: the registry imports the config

    return parse_corruption(config.corruption or get_spec(config.model).default_corruption)
