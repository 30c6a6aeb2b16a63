"""Image quality for restoration: per-image PSNR, SSIM and a masked PSNR, through dm-pix.

dm-pix (``dm_pix``) is DeepMind's maintained JAX image library; its SSIM follows Wang et
al. 2004 (an 11x11 Gaussian window, sigma 1.5, "valid" borders) and equals
``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False)`` (tested). Every function takes images ``[N, H, W, C]`` with a
peak value of 1 and returns one value per image: a data set's figure is their mean, the
convention of ``aejax.metrics`` (``psnr_per_example``). That module keeps its own PSNR
because it also scores tables and other peaks; on images in [0, 1] the two agree (tested).
"""

from __future__ import annotations

import functools

import dm_pix as pix
import jax
import jax.numpy as jnp
import numpy as np

from aejax.errors import DataError

# The largest PSNR reported: a perfect restoration gives 100 dB (MSE 1e-10, the floor of
# ``aejax.metrics.PSNR_MSE_FLOOR``) rather than inf, so means over images stay finite.
PSNR_CAP_DB = 100.0

# SSIM's window for images smaller than 11 pixels a side (the 8x8 digits): the largest odd
# size that fits, with the same sigma.
SSIM_FILTER_SIZE = 11
SSIM_FILTER_SIGMA = 1.5


def _pair(a: jax.typing.ArrayLike, b: jax.typing.ArrayLike) -> tuple[jax.Array, jax.Array]:
    a, b = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
    if a.shape != b.shape:
        raise DataError(f"image shapes differ: {a.shape} vs {b.shape}")
    if a.ndim != 4:
        raise DataError(f"expected images [N, H, W, C], got shape {a.shape}")
    return a, b


def ssim_filter_size(height: int, width: int) -> int:
    """The SSIM window for ``height x width`` images: 11, or the largest odd size that fits."""
    side = min(SSIM_FILTER_SIZE, height, width)
    return side if side % 2 else side - 1


@jax.jit
def _psnr(a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.minimum(pix.psnr(a, b), PSNR_CAP_DB)


@functools.partial(jax.jit, static_argnames="filter_size")
def _ssim(a: jax.Array, b: jax.Array, filter_size: int) -> jax.Array:
    return pix.ssim(a, b, max_val=1.0, filter_size=filter_size, filter_sigma=SSIM_FILTER_SIGMA)


@jax.jit
def _masked_psnr(a: jax.Array, b: jax.Array, missing: jax.Array) -> jax.Array:
    # dm-pix's nan-aware MSE averages over the entries that are not NaN: hiding the known
    # pixels as NaN leaves the mean squared error over the missing ones.
    hidden = jnp.where(missing, a, jnp.nan)
    return jnp.minimum(pix.psnr(hidden, b, ignore_nans=True), PSNR_CAP_DB)


def psnr(restored: jax.typing.ArrayLike, original: jax.typing.ArrayLike) -> np.ndarray:
    """PSNR of each image in dB, peak 1 (``dm_pix.psnr``), capped at ``PSNR_CAP_DB``.

    Args:
      restored: images ``[N, H, W, C]`` in [0, 1].
      original: the reference images, same shape.

    Returns:
      ``[N]`` float32: ``10 log10(1 / MSE)`` of each image.
    """
    return np.asarray(_psnr(*_pair(restored, original)))


def ssim(restored: jax.typing.ArrayLike, original: jax.typing.ArrayLike) -> np.ndarray:
    """SSIM of each image (``dm_pix.ssim``: Gaussian window, sigma 1.5, peak 1).

    Args:
      restored: images ``[N, H, W, C]`` in [0, 1]; a colour image's SSIM is the mean over
        its channels.
      original: the reference images, same shape.

    Returns:
      ``[N]`` float32 in [-1, 1]; 1 for identical images. The window is 11 pixels, or
      ``ssim_filter_size(H, W)`` for smaller images.
    """
    a, b = _pair(restored, original)
    return np.asarray(_ssim(a, b, ssim_filter_size(a.shape[1], a.shape[2])))


def masked_psnr(
    restored: jax.typing.ArrayLike, original: jax.typing.ArrayLike, missing: jax.typing.ArrayLike
) -> np.ndarray:
    """PSNR of each image over its missing pixels only (the inpainting figure), in dB.

    Args:
      restored: images ``[N, H, W, C]`` in [0, 1].
      original: the reference images, same shape.
      missing: bool, broadcastable to the images' shape: True where a pixel was missing.

    Returns:
      ``[N]`` float32: ``10 log10(1 / MSE)`` with the MSE taken over the missing pixels of
      each image; NaN for an image with no missing pixel.
    """
    a, b = _pair(restored, original)
    missing = jnp.broadcast_to(jnp.asarray(missing, bool), a.shape)
    return np.asarray(_masked_psnr(a, b, missing))


def quality_report(
    restored: jax.typing.ArrayLike,
    original: jax.typing.ArrayLike,
    missing: jax.typing.ArrayLike | None = None,
    *,
    chunk_size: int = 2048,
) -> dict[str, float]:
    """Mean PSNR and SSIM over a set of images, chunk by chunk.

    Args:
      restored: images ``[N, H, W, C]`` in [0, 1].
      original: the reference images, same shape.
      missing: optional bool mask of the images' shape (True = missing): adds
        ``missing_psnr``, the mean over images of ``masked_psnr``.
      chunk_size: images scored at a time, bounding memory.

    Returns:
      ``{"psnr": dB, "ssim": ..., "n": N}`` (plus ``"missing_psnr"``), means over images.
    """
    restored, original = np.asarray(restored), np.asarray(original)
    if restored.shape != original.shape:
        raise DataError(f"image shapes differ: {restored.shape} vs {original.shape}")
    if missing is not None:
        missing = np.broadcast_to(np.asarray(missing, bool), original.shape)
    parts: dict[str, list[np.ndarray]] = {"psnr": [], "ssim": [], "missing_psnr": []}
    for i in range(0, len(original), chunk_size):
        a, b = restored[i : i + chunk_size], original[i : i + chunk_size]
        parts["psnr"].append(psnr(a, b))
        parts["ssim"].append(ssim(a, b))
        if missing is not None:
            parts["missing_psnr"].append(masked_psnr(a, b, missing[i : i + chunk_size]))
    report = {k: float(np.mean(np.concatenate(v), dtype=np.float64)) for k, v in parts.items() if v}
    return {**report, "n": int(len(original))}
