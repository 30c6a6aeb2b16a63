"""The MS-SSIM VAE (Snell et al. 2017, "Learning to generate images with perceptual similarity
metrics"; pythae's MSSSIM_VAE): a VAE whose reconstruction term is ``1 - MS-SSIM``.

Per example, as a loss to minimise:

    msssim_scale * (1 - MS-SSIM(decode(z), x)) + beta * KL(q(z|x) || N(0, I))

with the VAE's Gaussian code, reparameterized draw and KL (weight, warm-up or capacity as
``vae``'s), ``decode(z)`` the likelihood's mean of the decoder output (``sigmoid`` of the
logits for the default Bernoulli decoder on images). The network is ``vae``'s dense one or
``conv_vae``'s (``msssim_network``).

MS-SSIM (Wang, Simoncelli & Bovik 2003). At scale ``j = 1..M`` (the image halved ``j - 1``
times by 2x2 average pooling, an odd last row or column dropped, as TensorFlow's
``ssim_multiscale`` does), ``cs_j`` is the image mean of the contrast-structure map
``(2 s_ab + C2) / (s_aa + s_bb + C2)`` and ``ssim_j`` the mean SSIM map; then

    MS-SSIM = ssim_M ** w_M * prod_{j < M} cs_j ** w_j.

Local statistics are Gaussian-weighted (``msssim_window`` pixels, ``sigma = msssim_sigma``)
over *valid* windows only (no padding), computed with dm-pix's ``gaussian_blur`` (the
filter of dm-pix's ``ssim`` for odd windows) at HIGHEST precision (the variances are
differences of nearly equal means, which a TF32 or bfloat16 pass would swamp), with
``C1 = (0.01)^2``, ``C2 = (0.03)^2`` (peak 1: images in [0, 1]) and dm-pix's clipping of
the (co)variances: one scale is exactly ``dm_pix.ssim`` (checked to 1e-5). Each factor is
clamped below at ``1e-6`` before its power: TensorFlow's ReLU of the factors (a negative
``cs`` has no real fractional power), kept off 0 so that the power's gradient stays finite.

Small images. Wang et al. use 11x11 windows and five scales (176 pixels at least). Here
the window defaults to 7 (sigma 1.5, +-2 sigma) and the scales are as many of five as keep
one whole window at the coarsest (``fitting_scales``); the weights are Wang et al.'s
``(0.0448, 0.2856, 0.3001, 0.2363, 0.1333)`` truncated to those scales and renormalized
to sum 1 (``msssim_weights`` sets others; their count is the number of scales):

- 28x28 (mnist), window 7: scales 28, 14, 7; weights 0.0711, 0.4530, 0.4760;
- 8x8 (digits), window 7: one scale, MS-SSIM = SSIM; window 3: scales 8, 4, weights
  0.1356, 0.8644 (the registry's test config).

Differences from pythae (its ``msssim_vae_utils``, after jorge-pessoa's pytorch-msssim):
pythae filters with zero padding (an 11 window fits any image) and picks the scales and
its own weights from the image width (28: four scales); it maps every factor to
``(x + 1) / 2`` and multiplies ``ssim_M ** w_M`` into each of the ``M - 1`` cs factors
(so it enters ``M - 1`` times); and it computes one MS-SSIM over the whole batch. Here
the definition is Wang et al.'s, per example (``1 - MS-SSIM`` is each example's term).

Scale. ``1 - MS-SSIM`` lies in [0, 1] while the KL is in nats: pythae's weight 1 (with its
``beta = 1``) lets the KL dominate, which collapses the posterior on digits. The default
``msssim_scale = 0`` weighs it by the number of pixels ``H * W * C`` (a per-pixel sum, the
magnitude of a likelihood's term), so ``beta = 1`` is a workable balance; ``--set
msssim_scale=1`` is pythae's scale. Measured on digits (the registry's tiny config, 10
epochs): scale 64 (the default there) reached a KL of 3.2 nats and a validation MS-SSIM
of 0.757; scale 1 a KL of 0.002 nats (collapsed) and 0.460.

A property of the metric, not of this code: the luminance term enters at the coarsest
scale only (on 28x28 with window 7, one 7x7 window), and on a flat target the
contrast-structure term barely penalizes faint noise (``C2 / (s_bb + C2)`` with
``C2 = 9e-4``), so reconstructions and samples carry a speckled background that a pixel
loss would not leave (Zhao et al. 2017, "Loss functions for image restoration with neural
networks", add an L1 term to MS-SSIM, which is insensitive to such uniform offsets).

Likelihood bounds. ``posterior=True``: the test ELBO, IW bound and active units are
computed as for a VAE, with the decoder read as the run's likelihood (Bernoulli logits on
images), which it was *not* trained to fit; they measure that density, not the MS-SSIM
objective, and are not comparable with a VAE's trained on the likelihood. The training
records carry no ``elbo`` (its ``reconstruction`` is not an NLL); ``ms_ssim`` is the
batch's mean MS-SSIM. ``gaussian_learned`` is refused: MS-SSIM never fits a variance.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import dm_pix as pix
import jax
import jax.numpy as jnp

from aejax.errors import ConfigError
from aejax.fields import Allowed, field, number, one_of
from aejax.models.autoencoder import Autoencoder
from aejax.models.codes import GaussianCode
from aejax.models.compose import conv_parts, dense_parts
from aejax.models.objective import kl_weights
from aejax.models.options import Conv, Dense, Variational
from aejax.models.spec import Common, DataInfo, ModelSpec

# Wang, Simoncelli & Bovik (2003), Table 1 / the standard MS-SSIM exponents, fine to coarse.
WANG_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
FACTOR_FLOOR = 1e-6
K1, K2 = 0.01, 0.03


# --- MS-SSIM -----------------------------------------------------------------------------
def fitting_scales(height: int, width: int, window: int, limit: int = 5) -> int:
    """How many dyadic scales (up to ``limit``) keep a whole ``window`` in the image."""
    m = 0
    while m < limit and min(height, width) >= window:
        m, height, width = m + 1, height // 2, width // 2
    return m


def scale_weights(
    height: int, width: int, window: int, weights: tuple[float, ...] = ()
) -> tuple[float, ...]:
    """The exponents ``w_1..w_M``: ``weights`` if given, else Wang et al.'s renormalized.

    Raises:
      ConfigError: no scale fits, or ``weights`` asks for more scales than fit.
    """
    fit = fitting_scales(height, width, window, limit=max(5, len(weights)))
    if fit == 0:
        raise ConfigError(
            f"msssim_window={window} does not fit {height}x{width} images; use an odd window "
            f"<= {min(height, width)}"
        )
    if weights:
        if len(weights) > fit:
            raise ConfigError(
                f"msssim_weights asks for {len(weights)} scales but only {fit} keep a "
                f"{window}-pixel window in {height}x{width} images"
            )
        return tuple(float(w) for w in weights)
    head = WANG_WEIGHTS[: min(fit, len(WANG_WEIGHTS))]
    return tuple(w / sum(head) for w in head)


def _blur(x: jax.Array, window: int, sigma: float) -> jax.Array:
    """dm-pix's separable Gaussian filter over valid windows: ``[B, H, W, C]`` ->
    ``[B, H - window + 1, W - window + 1, C]``."""
    with jax.default_matmul_precision("highest"):
        return pix.gaussian_blur(x, sigma, window, padding="VALID")


def ssim_and_cs(
    a: jax.Array, b: jax.Array, window: int = 7, sigma: float = 1.5
) -> tuple[jax.Array, jax.Array]:
    """The mean SSIM and mean contrast-structure maps of image pairs, peak 1.

    Args:
      a, b: ``[B, H, W, C]`` images in [0, 1].
      window: odd filter size, at most ``H`` and ``W``.
      sigma: the Gaussian's standard deviation in pixels.

    Returns:
      ``(ssim, cs)``, each ``[B]``: the means over the valid positions and channels.
    """
    c = a.shape[-1]
    # The five local statistics in one depthwise filtering pass.
    stats = _blur(jnp.concatenate([a, b, a * a, b * b, a * b], axis=-1), window, sigma)
    mu0, mu1, e00, e11, e01 = (stats[..., i * c : (i + 1) * c] for i in range(5))
    mu00, mu11, mu01 = mu0 * mu0, mu1 * mu1, mu0 * mu1
    eps = jnp.finfo(jnp.float32).eps ** 2  # dm-pix's clipping, so one scale is its ssim
    s00 = jnp.maximum(eps, e00 - mu00)
    s11 = jnp.maximum(eps, e11 - mu11)
    s01 = e01 - mu01
    s01 = jnp.sign(s01) * jnp.minimum(jnp.sqrt(s00 * s11), jnp.abs(s01))
    c1, c2 = K1**2, K2**2
    cs_map = (2.0 * s01 + c2) / (s00 + s11 + c2)
    lum_map = (2.0 * mu01 + c1) / (mu00 + mu11 + c1)
    axes = (1, 2, 3)
    return jnp.mean(lum_map * cs_map, axis=axes), jnp.mean(cs_map, axis=axes)


def halve(x: jax.Array) -> jax.Array:
    """2x2 average pooling, an odd last row or column dropped: ``[B, H, W, C]`` ->
    ``[B, H // 2, W // 2, C]``."""
    b, h, w, c = x.shape
    h2, w2 = h // 2, w // 2
    return x[:, : 2 * h2, : 2 * w2].reshape(b, h2, 2, w2, 2, c).mean(axis=(2, 4))


def ms_ssim(
    a: jax.Array,
    b: jax.Array,
    weights: tuple[float, ...] = WANG_WEIGHTS,
    window: int = 7,
    sigma: float = 1.5,
) -> jax.Array:
    """MS-SSIM of each image pair (module docstring), ``len(weights)`` scales.

    Args:
      a, b: ``[B, H, W, C]`` images in [0, 1]; ``H // 2**(M-1)`` and ``W // 2**(M-1)``
        must be at least ``window``.
      weights: the exponents ``w_1..w_M``, finest scale first.
      window, sigma: the Gaussian window.

    Returns:
      ``[B]``: 1 for identical images; one scale: ``dm_pix.ssim`` (factors clamped at
      ``FACTOR_FLOOR``).
    """
    a, b = a.astype(jnp.float32), b.astype(jnp.float32)
    value = jnp.ones(a.shape[:1], jnp.float32)
    for j, w in enumerate(weights):
        ssim, cs = ssim_and_cs(a, b, window, sigma)
        last = j == len(weights) - 1
        value = value * jnp.maximum(ssim if last else cs, FACTOR_FLOOR) ** w
        if not last:
            a, b = halve(a), halve(b)
    return value


# --- the model ---------------------------------------------------------------------------
class MSSSIMAutoencoder(Autoencoder):
    """A VAE whose ``reconstruction`` term is ``msssim_scale * (1 - MS-SSIM)`` (module
    docstring).

    Attributes (besides ``Autoencoder``'s): ``msssim_weights`` (the exponents, one per
    scale), ``msssim_window``, ``msssim_sigma``, ``msssim_scale``.
    """

    msssim_weights: tuple[float, ...] = (1.0,)
    msssim_window: int = 7
    msssim_sigma: float = 1.5
    msssim_scale: float = 1.0
    # The training records leave out ``elbo``: ``reconstruction`` is not a likelihood term.
    reconstruction_is_nll: ClassVar[bool] = False

    def __call__(self, x, *, train: bool = False, mask=None, target=None):
        """``(recon, aux)`` as ``Autoencoder``'s: ``x: [B, H, W, C]`` in [0, 1]; terms
        ``reconstruction`` and ``kl`` (``[B]``), stat ``ms_ssim`` (the batch's mean)."""
        if mask is not None:
            raise ValueError("msssim_vae scores whole images: it takes no mask")
        z, code = self.code(self.encoder(x), train=train)
        out = self.decoder(z)
        recon = self.likelihood.mean(out)
        target = x if target is None else target
        score = ms_ssim(recon, target, self.msssim_weights, self.msssim_window, self.msssim_sigma)
        terms = {"reconstruction": self.msssim_scale * (1.0 - score), **code["terms"]}
        stats = {**code["stats"], "ms_ssim": jnp.mean(score)}
        aux = {"z": z, "decoder_output": out, "terms": terms, "stats": stats, **code["outputs"]}
        return recon, aux


def _odd_window(v) -> bool:
    return not isinstance(v, bool) and int(v) == v and v >= 3 and v % 2 == 1


def _positive(v) -> bool:
    return all(math.isfinite(w) and w > 0 for w in v)


@dataclasses.dataclass(frozen=True)
class MSSSIMOptions(Variational, Conv, Dense):
    """``msssim_vae``: the network (dense or conv), the KL, and the MS-SSIM's window,
    scales and scale."""

    GROUP: ClassVar = ("msssim_vae", "msssim_vae's MS-SSIM reconstruction (Snell et al. 2017)")
    msssim_network: str = field(
        "dense",
        "the network: dense (hidden, as vae) or conv (conv_features, as conv_vae)",
        one_of("dense", "conv"),
    )
    msssim_window: int = field(
        7,
        "the Gaussian window of the local statistics, in pixels (odd; Wang et al.'s 11 fits "
        "no 28x28 image at three scales)",
        Allowed("an odd integer >= 3", _odd_window),
    )
    msssim_sigma: float = field(
        1.5, "the window's Gaussian standard deviation in pixels", number(0, above=True)
    )
    msssim_weights: tuple[float, ...] = field(
        (),
        "the exponents of the scales, finest first (their count = the scales); empty = Wang "
        "et al.'s five, truncated to the scales that keep a whole window, renormalized",
        Allowed("a list of finite numbers > 0", _positive),
    )
    msssim_scale: float = field(
        0.0,
        "the reconstruction term is msssim_scale * (1 - MS-SSIM); 0 = H*W*C pixels (a "
        "per-pixel sum); pythae's is 1",
        number(0, finite=True),
    )


def _build(options: MSSSIMOptions, common: Common, data: DataInfo) -> MSSSIMAutoencoder:
    shape = tuple(data.input_shape)
    if len(shape) != 3:
        raise ConfigError(f"msssim_vae needs images of shape (H, W, C); got {shape}")
    if common.likelihood.name == "gaussian_learned":
        raise ConfigError(
            "msssim_vae cannot use likelihood=gaussian_learned: MS-SSIM never fits its variance"
        )
    weights = scale_weights(shape[0], shape[1], options.msssim_window, options.msssim_weights)
    parts_of = conv_parts if options.msssim_network == "conv" else dense_parts
    parts = parts_of(options, common, data, GaussianCode(common.latent_dim))
    return MSSSIMAutoencoder(
        shape,
        likelihood=common.likelihood,
        msssim_weights=weights,
        msssim_window=int(options.msssim_window),
        msssim_sigma=float(options.msssim_sigma),
        msssim_scale=float(options.msssim_scale) or float(math.prod(shape)),
        **parts,
    )


MSSSIM_VAE = ModelSpec(
    _build,
    MSSSIMOptions,
    weights=kl_weights,
    test_config={
        "hidden": (32,),
        "latent_dim": 4,
        "msssim_window": 3,  # two scales on the 8x8 digits
    },
    posterior=True,
)
