"""Generation from a model and its variables: samplers, and interpolations in code space.

``sample(model, variables, n, key, sampler=...)`` draws through a sampler of
``SAMPLERS`` (``aejax.sampling.registry``): the model's own prior, or a density fitted to
the codes of its training data and decoded (a Gaussian mixture, a second VAE, ...), or a
fixed distribution in code space (``normal``, ``hypersphere``). Without a sampler named,
a model with a prior (a VAE's ``N(0, I)``, an adversarial autoencoder's imposed prior, a
VQ-VAE's uniform codes) samples from it and a deterministic autoencoder from a Gaussian
mixture on its training codes, the usual "ex-post density estimation" of deterministic
autoencoders (Ghosh et al. 2020). ``interpolate`` decodes paths between the codes of two
inputs.

The names below load on first use (module ``__getattr__``): ``aejax.sampling.registry``
(the names and descriptions the command line lists) imports no jax.
"""

import importlib

_WHERE = {
    "SAMPLERS": "aejax.sampling.registry",
    "SamplerSpec": "aejax.sampling.registry",
    "describe": "aejax.sampling.registry",
    "sampler_names": "aejax.sampling.registry",
    "default_sampler": "aejax.sampling.core",
    "has_prior": "aejax.sampling.core",
    "interpolate": "aejax.sampling.core",
    "interpolate_codes": "aejax.sampling.core",
    "needs_codes": "aejax.sampling.core",
    "sample": "aejax.sampling.core",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'aejax.sampling' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value  # cached: the next read is a plain attribute
    return value
