"""Samplers of a fixed distribution in code space, decoded: ``normal`` and ``hypersphere``.

``normal`` decodes ``z ~ N(0, I_K)``: pythae's ``NormalSampler``, the prior of a VAE (for
``vae``, ``conv_vae``, ``iwae``, ``beta_tcvae``, ``factor_vae``, ``info_vae`` and ``wae``
it has the distribution of ``prior``, though not the same draws for a key: ``prior`` draws
inside the model's ``"sample"`` rng stream). On a model whose codes are not near
``N(0, I)`` (a deterministic autoencoder's, svae's unit vectors) it shows what the decoder
makes of the standard normal, which is rarely data-like.

``hypersphere`` draws uniform directions ``g / ||g||``, ``g ~ N(0, I_K)``. For ``svae``
(Davidson et al. 2018), whose prior is uniform on the unit sphere S^(K-1), it *is* the
prior (the same draws as ``prior``, no training codes read). On another model it scales
the directions by ``r``, the mean norm ``||z||`` of the training codes: in high dimension a
Gaussian's mass lies near the sphere of radius ``sqrt(K)`` (a VAE's codes are near that
shell), so the sphere of the codes' own radius is where a decoder has seen codes. It is
centred at 0, and ignores the codes' mean and covariance: for codes far from isotropic
around 0 (a plain ``ae``'s) ``gmm`` or ``two_stage`` fit them better. We chose to offer
it there (rather than refuse) because it is the spherical counterpart of ``normal`` and
costs one pass over the codes.

Both need a code that is a vector ``[K]``: a VQ-VAE's grid of codebook vectors is refused.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from aejax.errors import DataError
from aejax.sampling.basic import _fit_prior, decoder
from aejax.sampling.core import code_shape
from aejax.sampling.registry import SamplerSpec


def _vector_code(model, variables: Any) -> str | None:
    shape = code_shape(model, variables)
    if len(shape) == 1:
        return None
    return (
        f"its code is a grid of shape {shape}, not a vector (try the samplers prior, gmm or "
        "two_stage)"
    )


def _is_svae(model) -> bool:
    from aejax.models.svae import VMFCode

    return isinstance(getattr(model, "code", None), VMFCode)


def sphere_codes(n: int, key: jax.Array, dim: int, radius: float = 1.0) -> np.ndarray:
    """``n`` points ``[n, dim]`` float32 uniform on the sphere of ``radius`` in R^dim."""
    g = jax.random.normal(key, (n, dim), jnp.float32)
    return np.asarray(radius * g / jnp.linalg.norm(g, axis=-1, keepdims=True))


def _fit_normal(model, variables: Any, codes, seed: int):
    del codes, seed
    (dim,) = code_shape(model, variables)

    def draw(n: int, key: jax.Array) -> np.ndarray:
        return decoder(model, variables, np.asarray(jax.random.normal(key, (n, dim))))

    return draw


def _fit_hypersphere(model, variables: Any, codes, seed: int):
    if _is_svae(model):
        return _fit_prior(model, variables, None, seed)
    (dim,) = code_shape(model, variables)
    flat = np.asarray(codes, np.float64).reshape(len(codes), -1)
    if flat.shape != (len(codes), dim) or len(codes) < 1 or not np.isfinite(flat).all():
        raise DataError(
            f"sample: codes must be finite [N >= 1, {dim}] training codes, got shape "
            f"{np.shape(codes)}"
        )
    radius = float(np.linalg.norm(flat, axis=1).mean())

    def draw(n: int, key: jax.Array) -> np.ndarray:
        return decoder(model, variables, sphere_codes(n, key, dim, radius))

    return draw


NORMAL = SamplerSpec(_fit_normal, _vector_code, needs_codes=False)
HYPERSPHERE = SamplerSpec(
    _fit_hypersphere, _vector_code, needs_codes=lambda model, variables: not _is_svae(model)
)
