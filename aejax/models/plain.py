"""The deterministic autoencoders: ``ae``, ``conv_ae`` and ``denoising_ae``."""

from __future__ import annotations

from aejax.models.codes import IdentityCode
from aejax.models.compose import compose, conv_parts, dense_parts
from aejax.models.options import Conv, Dense
from aejax.models.spec import ModelSpec

TINY_DENSE = {"hidden": (32,), "latent_dim": 4}
TINY_CONV = {"conv_features": (8, 16), "latent_dim": 4}


def identity_code(options, common) -> IdentityCode:
    """``z = h``, ``latent_dim`` wide."""
    del options
    return IdentityCode(common.latent_dim)


AE = ModelSpec(compose(dense_parts, identity_code), Dense, test_config=TINY_DENSE)
CONV_AE = ModelSpec(compose(conv_parts, identity_code), Conv, test_config=TINY_CONV)
DENOISING_AE = ModelSpec(
    compose(dense_parts, identity_code),
    Dense,
    test_config=TINY_DENSE,
    # Vincent et al.'s masking noise: it means the same on [0, 1] images and on
    # standardized tables (0 = the training mean), which a Gaussian's sigma does not.
    default_corruption="masking:0.25",
)
