"""The model's own prior, the VampPrior's by name, and a Gaussian mixture on the codes.

``prior`` draws through ``Autoencoder.sample`` (a VAE's ``N(0, I)``, the VampPrior's
mixture, svae's uniform sphere, an adversarial autoencoder's imposed prior, a VQ-VAE's
uniform codes). ``vamp`` is the same draw under the name of the VampPrior (Tomczak &
Welling 2018, pythae's ``VAMPSampler``): it serves the ``vamp`` model only, and says so
elsewhere rather than falling back to another prior. ``gmm`` fits a scikit-learn
``GaussianMixture`` (full covariances) to the training codes and decodes draws from it:
the "ex-post density estimation" of deterministic autoencoders (Ghosh et al. 2020),
usable on any model with a code.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from aejax import inference
from aejax.errors import DataError
from aejax.sampling.core import _prior_samples, has_prior
from aejax.sampling.registry import SamplerSpec


def mixture_codes(
    codes: np.ndarray, n: int, key: jax.Array, components: int, seed: int
) -> np.ndarray:
    """``n`` draws from a Gaussian mixture fitted to ``codes: [N, ...]``, shaped like a code."""
    from sklearn.mixture import GaussianMixture

    codes = np.asarray(codes, np.float64)
    if codes.ndim < 2 or codes.shape[0] < 2 or not np.isfinite(codes).all():
        raise DataError(
            f"sample: codes must be finite [N >= 2, K] training codes, got shape {codes.shape}"
        )
    flat = codes.reshape(codes.shape[0], -1)
    gm = GaussianMixture(
        n_components=min(components, flat.shape[0]), covariance_type="full", random_state=seed
    ).fit(flat)
    # Drawn with ``key`` rather than sklearn's own sampler, which returns the draws grouped
    # by component and is seeded once per estimator.
    pick_key, eps_key = jax.random.split(key)
    comp = np.asarray(jax.random.choice(pick_key, len(gm.weights_), (n,), p=gm.weights_))
    eps = np.asarray(jax.random.normal(eps_key, (n, flat.shape[1])), np.float64)
    chol = np.linalg.cholesky(gm.covariances_)  # [C, K, K]
    z = gm.means_[comp] + np.einsum("nij,nj->ni", chol[comp], eps)
    return z.reshape(n, *codes.shape[1:]).astype(np.float32)


def decoder(model, variables: Any, codes: np.ndarray) -> np.ndarray:
    """Decoder means ``[n, *input_shape]`` of ``codes: [n, *code_shape]`` (model space)."""
    return inference.decode(model, variables, codes)


def _fit_prior(model, variables: Any, codes, seed: int):
    del codes, seed

    def draw(n: int, key: jax.Array) -> np.ndarray:
        return np.asarray(jax.device_get(_prior_samples()(model, variables, n, key)))

    return draw


def _fit_gmm(model, variables: Any, codes: np.ndarray, seed: int, *, components: int):
    def draw(n: int, key: jax.Array) -> np.ndarray:
        return decoder(model, variables, mixture_codes(codes, n, key, components, seed))

    return draw


def _has_prior(model, variables: Any) -> str | None:
    if has_prior(model, variables):
        return None
    return "its code is deterministic and has no prior (try --sampler gmm)"


def _is_vamp(model, variables: Any) -> str | None:
    from aejax.models.vamp import VampAutoencoder

    del variables
    if isinstance(model, VampAutoencoder):
        return None
    return (
        "it has no VampPrior, the learned prior of the vamp model only (try the samplers "
        "prior, gmm or two_stage)"
    )


def _any(model, variables: Any) -> str | None:
    del model, variables
    return None


PRIOR = SamplerSpec(_fit_prior, _has_prior, needs_codes=False)
VAMP = SamplerSpec(_fit_prior, _is_vamp, needs_codes=False)
GMM = SamplerSpec(_fit_gmm, _any, options={"components": 10})
