"""The options groups several models share: dense and conv networks, the variational KL.

A model's options dataclass subclasses ``Options`` and the groups it reads, e.g.
``class VAEOptions(Variational, Dense)`` (``KLWeight``: ``Variational`` without the
capacity); the fields a class declares itself form the section ``GROUP`` of ``aejax
config`` and docs/configuration.md. No jax here: ``aejax config`` and the Config checks
read these without building a model.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from aejax.fields import check_fields, field, integer, integers, number, one_of


@dataclasses.dataclass(frozen=True)
class Options:
    """The base of every model's options: frozen, hashable, checked on construction.

    ``GROUP = (name, one line)`` titles the fields a subclass declares itself.
    """

    GROUP: ClassVar[tuple[str, str] | None] = None

    def __post_init__(self):
        check_fields(self)


@dataclasses.dataclass(frozen=True)
class Dense(Options):
    """An MLP encoder and the mirrored MLP decoder."""

    GROUP: ClassVar = ("dense", "the MLP encoder and its mirrored decoder (the dense models)")
    hidden: tuple[int, ...] = field(
        (512, 256), "dense encoder widths; the decoder mirrors them", integers(1)
    )


@dataclasses.dataclass(frozen=True)
class Conv(Options):
    """Stride-2 conv encoder and the transposed-conv decoder."""

    GROUP: ClassVar = ("conv", "the strided-conv encoder and its decoder (the conv models)")
    conv_features: tuple[int, ...] = field(
        (32, 64),
        "conv encoder channels, one stride-2 conv each; the decoder mirrors them",
        integers(1, nonempty=True),
    )
    deconv: str = field(
        "subpixel",
        "how conv decoders lower transposed convs (the same function either way)",
        one_of("subpixel", "lax"),
    )


# One section of ``aejax config`` for ``KLWeight`` and ``Variational``.
VARIATIONAL_GROUP = (
    "variational",
    "the KL term of the variational models: its weight, a warm-up or a capacity",
)


@dataclasses.dataclass(frozen=True)
class KLWeight(Options):
    """The KL term's weight or warm-up (``Variational`` without the capacity).

    For a model whose KL term is a Monte Carlo estimate (vamp): ``|KL - C|`` of a noisy
    estimate is biased, so it reads no capacity.
    """

    GROUP: ClassVar = VARIATIONAL_GROUP
    beta: float = field(
        1.0, "weight of the KL term (1 = the ELBO; beta-VAE otherwise)", number(0, finite=True)
    )
    kl_warmup_steps: int = field(
        0, "the KL weight rises linearly from 0 to beta over these steps", integer(0)
    )


@dataclasses.dataclass(frozen=True)
class Variational(KLWeight):
    """The KL term's weight, a warm-up or a capacity schedule (``objective.kl_weights``)."""

    GROUP: ClassVar = VARIATIONAL_GROUP
    capacity: float = field(
        0.0,
        "target KL C in nats, reached at capacity_steps (Burgess et al. 2018); 0 = off",
        number(0, finite=True),
    )
    capacity_steps: int = field(
        0, "steps over which C grows from 0 (0 = the whole run)", integer(0)
    )
    capacity_gamma: float = field(1000.0, "weight of |KL - C| when capacity > 0", number(0))
