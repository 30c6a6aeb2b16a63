"""Generation from a model and its variables: samplers, and interpolations in code space.

``sample(model, variables, n, key, sampler=...)`` draws through a sampler of
``SAMPLERS`` (``aejax.sampling.registry``): the model's own prior, or a density fitted to
the codes of its training data and decoded (a Gaussian mixture, ...). Without a sampler
named, a model with a prior (a VAE's ``N(0, I)``, an adversarial autoencoder's imposed
prior, a VQ-VAE's uniform codes) samples from it and a deterministic autoencoder from a
Gaussian mixture on its training codes, the usual "ex-post density estimation" of
deterministic autoencoders (Ghosh et al. 2020). ``interpolate`` decodes paths between the
codes of two inputs.
"""

from aejax.sampling.core import has_prior, interpolate, interpolate_codes, sample
from aejax.sampling.registry import SAMPLERS, SamplerSpec, describe, sampler_names

__all__ = [
    "SAMPLERS",
    "SamplerSpec",
    "describe",
    "has_prior",
    "interpolate",
    "interpolate_codes",
    "sample",
    "sampler_names",
]
