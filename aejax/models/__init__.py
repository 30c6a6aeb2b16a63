"""Models: one ``Autoencoder`` composed of parts, and the registry of named factories.

The names below load on first use (module ``__getattr__``): ``import aejax.models`` and
the registry import no jax.
"""

import importlib

_WHERE = {
    "LIKELIHOODS": "aejax.models.likelihoods",
    "Likelihood": "aejax.models.likelihoods",
    "likelihood_for": "aejax.models.likelihoods",
    "Autoencoder": "aejax.models.autoencoder",
    "GaussianCode": "aejax.models.codes",
    "IdentityCode": "aejax.models.codes",
    "LatentDiscriminator": "aejax.models.adversarial",
    "ConvDecoder": "aejax.models.parts",
    "ConvEncoder": "aejax.models.parts",
    "MLPDecoder": "aejax.models.parts",
    "MLPEncoder": "aejax.models.parts",
    "check_conv_shape": "aejax.models.parts",
    "VectorQuantizer": "aejax.models.vq",
    "MODELS": "aejax.models.registry",
    "create_model": "aejax.models.registry",
    "get_spec": "aejax.models.registry",
    "list_models": "aejax.models.registry",
    "model_from_config": "aejax.models.registry",
    "register": "aejax.models.registry",
    "ModelSpec": "aejax.models.spec",
    "DataInfo": "aejax.models.spec",
    "Group": "aejax.models.spec",
    "check_model_keys": "aejax.config",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'aejax.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *_WHERE])
