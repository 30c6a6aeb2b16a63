"""Model registry: one contract (encode, decode, __call__ -> (recon, aux)) for every variant."""

from __future__ import annotations

import dataclasses

import flax.linen as nn

from aejax.errors import ConfigError
from aejax.models.conv import ConvAE, check_conv_shape
from aejax.models.dense import DenseAE
from aejax.models.vae import VAE, ConvVAE

MODELS: dict[str, type[nn.Module]] = {
    "ae": DenseAE,
    "conv_ae": ConvAE,
    "vae": VAE,
    "conv_vae": ConvVAE,
}

DESCRIPTIONS: dict[str, str] = {
    "ae": "dense undercomplete autoencoder (hidden=... sets a deep topology)",
    "conv_ae": "strided-conv encoder, transposed-conv decoder (images)",
    "vae": "variational autoencoder, dense; Gaussian posterior, beta-weighted KL (beta=...)",
    "conv_vae": "variational autoencoder with conv_ae's encoder and decoder (images)",
}


def list_models() -> list[tuple[str, str]]:
    """Returns ``(name, description)`` for every registered model."""
    return [(name, DESCRIPTIONS.get(name, "")) for name in MODELS]


def create_model(name: str, input_shape: tuple[int, ...], likelihood: str, **hparams) -> nn.Module:
    """Builds registry model ``name``; ``hparams`` not used by that model are ignored.

    Args:
      name: a key of ``MODELS``.
      input_shape: per-example data shape, e.g. ``(28, 28, 1)``.
      likelihood: ``"bernoulli"`` for [0, 1] images, ``"gaussian"`` for standardized data.
      **hparams: candidate fields (e.g. a whole ``Config.to_dict()``).

    Returns:
      An unbound Linen module.
    """
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; known models: {sorted(MODELS)}")
    cls = MODELS[name]
    fields = {f.name for f in dataclasses.fields(cls)} - {"parent", "name", "input_shape"}
    kwargs = {
        k: (tuple(v) if isinstance(v, list) else v) for k, v in hparams.items() if k in fields
    }
    model = cls(input_shape=tuple(input_shape), likelihood=likelihood, **kwargs)
    if issubclass(cls, ConvAE):
        check_conv_shape(model.input_shape, len(model.conv_features))
    return model


__all__ = ["MODELS", "VAE", "ConvAE", "ConvVAE", "DenseAE", "create_model", "list_models"]
