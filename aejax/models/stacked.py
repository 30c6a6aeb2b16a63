"""``stacked_ae``: ae's network, greedily pretrained layer by layer, then fine-tuned (SDAE).

The network is ae's; what differs is how it is trained: ``train_and_evaluate`` and
``aejax train`` first pretrain it layer by layer (``aejax.train.pretrain``), then fine-tune from
those parameters. ``aejax.train_run`` alone starts from the init_params it is given.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from aejax.fields import Allowed, field, integer, number
from aejax.models.compose import compose, dense_parts
from aejax.models.options import Dense
from aejax.models.plain import TINY_DENSE, identity_code
from aejax.models.spec import ModelSpec


def _codes_corruption_spec(value: str) -> bool:
    """A corruption spec whose operators work on real-valued vectors (not images only)."""
    if value in ("", "none"):  # the default: no need to import jax for it
        return True
    from aejax.data.corruption import parse_corruption  # late: it imports jax

    return not parse_corruption(value).images_only


@dataclasses.dataclass(frozen=True)
class StackedOptions(Dense):
    """``stacked_ae``: the dense network and its layer-wise pretraining."""

    GROUP: ClassVar = (
        "stacked_ae",
        "greedy layer-wise pretraining of stacked_ae, then fine-tuning (Vincent et al. 2010)",
    )
    pretrain_epochs: int = field(
        10,
        "epochs of each layer's shallow autoencoder before end-to-end fine-tuning; 0 = none",
        integer(0),
    )
    pretrain_lr: float = field(0.0, "the pretraining's peak learning rate; 0 = lr", number(0))
    pretrain_corruption: str = field(
        "none",
        "corruption of every pretrained layer's input (denoising layers: SDAE), e.g. "
        "masking:0.25 or gaussian:0.3; none = plain autoencoders",
        Allowed(
            "gaussian:SIGMA and masking:P joined by + (`aejax.data.corruption`; beyond the first "
            "layer the inputs are real-valued codes); none = off",
            _codes_corruption_spec,
        ),
    )


STACKED_AE = ModelSpec(
    compose(dense_parts, identity_code),
    StackedOptions,
    test_config={**TINY_DENSE, "pretrain_epochs": 2},
)
