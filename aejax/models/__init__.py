"""Models: one ``Autoencoder`` composed of parts, and the registry of named factories."""

from aejax.models.adversarial import LatentDiscriminator
from aejax.models.autoencoder import Autoencoder
from aejax.models.codes import GaussianCode, IdentityCode
from aejax.models.likelihoods import LIKELIHOODS, Likelihood, likelihood_for
from aejax.models.parts import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder, check_conv_shape
from aejax.models.registry import (
    MODELS,
    ModelSpec,
    check_model_keys,
    create_model,
    get_spec,
    list_models,
    model_from_config,
    register,
)
from aejax.models.vq import VectorQuantizer

__all__ = [
    "LIKELIHOODS",
    "MODELS",
    "Autoencoder",
    "ConvDecoder",
    "ConvEncoder",
    "GaussianCode",
    "IdentityCode",
    "LatentDiscriminator",
    "Likelihood",
    "MLPDecoder",
    "MLPEncoder",
    "ModelSpec",
    "check_conv_shape",
    "check_model_keys",
    "create_model",
    "get_spec",
    "likelihood_for",
    "list_models",
    "model_from_config",
    "VectorQuantizer",
    "register",
]
