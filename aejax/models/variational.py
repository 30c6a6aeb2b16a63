"""The variational autoencoders ``vae`` and ``conv_vae``: a Gaussian code, a weighted KL."""

from __future__ import annotations

import dataclasses

from aejax.models.codes import GaussianCode
from aejax.models.compose import compose, conv_parts, dense_parts
from aejax.models.objective import kl_weights
from aejax.models.options import Conv, Dense, Variational
from aejax.models.plain import TINY_CONV, TINY_DENSE
from aejax.models.spec import ModelSpec


@dataclasses.dataclass(frozen=True)
class VAEOptions(Variational, Dense):
    """``vae``: the dense network and the KL's weight or schedule."""


@dataclasses.dataclass(frozen=True)
class ConvVAEOptions(Variational, Conv):
    """``conv_vae``: the conv network and the KL's weight or schedule."""


def gaussian_code(options, common) -> GaussianCode:
    """A diagonal Gaussian posterior of ``latent_dim`` units."""
    del options
    return GaussianCode(common.latent_dim)


VAE = ModelSpec(
    compose(dense_parts, gaussian_code),
    VAEOptions,
    weights=kl_weights,
    test_config=TINY_DENSE,
    posterior=True,
)
CONV_VAE = ModelSpec(
    compose(conv_parts, gaussian_code),
    ConvVAEOptions,
    weights=kl_weights,
    test_config=TINY_CONV,
    posterior=True,
)
