"""msssim_vae: MS-SSIM (dm-pix filtering, own scales) against dm-pix and hand values; the model."""

import functools
import math

import dm_pix as pix
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax.errors import ConfigError
from aejax.models import create_model
from aejax.models.msssim_vae import halve, ms_ssim, scale_weights, ssim_and_cs


def _pair(shape, seed=0, noise=0.2):
    """Random images and a noisy copy (positive SSIM, so no factor is clamped)."""
    a = jax.random.uniform(jax.random.key(seed), shape)
    b = jnp.clip(a + noise * jax.random.normal(jax.random.key(seed + 1), shape), 0.0, 1.0)
    return a, b


# Jitted: eager, every small op compiles on its own (seconds on a busy CPU).
@functools.partial(jax.jit, static_argnames=("weights", "window"))
def _ms_ssim(a, b, weights, window):
    return ms_ssim(a, b, weights, window)


@functools.partial(jax.jit, static_argnames="window")
def _pix_ssim(a, b, window):
    return pix.ssim(a, b, filter_size=window, filter_sigma=1.5)


@pytest.mark.parametrize("shape,window", [((3, 28, 28, 1), 7), ((3, 8, 8, 2), 3)])
def test_one_scale_is_dm_pix_ssim(shape, window):
    a, b = _pair(shape)
    ours = _ms_ssim(a, b, (1.0,), window)
    ref = _pix_ssim(a, b, window)
    assert float(ref.min()) > 0.3  # a real comparison, not two clamped values
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_identical_images_give_one_and_two_scales_compose_from_dm_pix():
    a, b = _pair((2, 28, 28, 1), seed=3)
    w3 = scale_weights(28, 28, 7)
    np.testing.assert_allclose(_ms_ssim(a, a, w3, 7), 1.0, atol=1e-6)
    # Two scales: the fine scale's contrast-structure, the coarse scale's SSIM (dm-pix's).
    cs, coarse = jax.jit(
        lambda a, b: (ssim_and_cs(a, b, 7)[1], pix.ssim(halve(a), halve(b), filter_size=7))
    )(a, b)
    np.testing.assert_allclose(_ms_ssim(a, b, (0.25, 0.75), 7), cs**0.25 * coarse**0.75, rtol=1e-5)


def test_hand_checked_constant_images():
    """Constant images: no contrast anywhere (cs = 1 at every scale), so MS-SSIM is the
    coarsest scale's luminance term (2ab + C1) / (a^2 + b^2 + C1) to its weight."""
    a = jnp.full((2, 28, 28, 1), 0.2)  # the shape of the test above: one compile
    b = jnp.full((2, 28, 28, 1), 0.6)
    w = scale_weights(28, 28, 7)
    lum = (2 * 0.2 * 0.6 + 1e-4) / (0.2**2 + 0.6**2 + 1e-4)  # 0.6001
    np.testing.assert_allclose(_ms_ssim(a, b, w, 7), lum ** w[-1], rtol=1e-5)
    np.testing.assert_allclose(lum ** w[-1], 0.78423, atol=1e-5)


def test_halving_and_the_scales_of_small_images():
    x = jnp.arange(25.0).reshape(1, 5, 5, 1)
    np.testing.assert_array_equal(halve(x)[0, ..., 0], [[3.0, 5.0], [13.0, 15.0]])
    np.testing.assert_allclose(scale_weights(28, 28, 7), (0.0711, 0.4530, 0.4760), atol=1e-4)
    np.testing.assert_allclose(scale_weights(8, 8, 3), (0.1356, 0.8644), atol=1e-4)
    assert scale_weights(8, 8, 7) == (1.0,)
    # The local variances are differences of close means: the filtering runs at HIGHEST
    # precision (a TF32 or bfloat16 pass would swamp them), unlike gaussian_blur's default.
    hlo = jax.jit(ssim_and_cs).lower(jnp.zeros((1, 8, 8, 1)), jnp.zeros((1, 8, 8, 1))).as_text()
    assert "precision HIGHEST" in hlo and "precision DEFAULT" not in hlo
    assert math.isclose(sum(scale_weights(28, 28, 3)), 1.0)
    with pytest.raises(ConfigError, match="does not fit"):
        scale_weights(8, 8, 9)
    with pytest.raises(ConfigError, match="3 scales"):
        scale_weights(8, 8, 3, (0.2, 0.3, 0.5))


def test_the_model_reports_the_scaled_ms_ssim_and_refuses_what_it_cannot_fit():
    model = create_model("msssim_vae", (8, 8, 1), hidden=(16,), latent_dim=2, msssim_window=3)
    x, _ = _pair((4, 8, 8, 1))

    @jax.jit
    def forward(x):
        variables = model.init(jax.random.key(0), x)
        return model.apply(variables, x)

    recon, aux = forward(x)
    score = _ms_ssim(recon, x, scale_weights(8, 8, 3), 3)
    np.testing.assert_allclose(aux["terms"]["reconstruction"], 64 * (1 - score), rtol=1e-5)
    np.testing.assert_allclose(aux["stats"]["ms_ssim"], score.mean(), rtol=1e-5)
    assert set(aux["terms"]) == {"reconstruction", "kl"} and not model.reconstruction_is_nll
    with pytest.raises(ConfigError, match="gaussian_learned"):
        create_model("msssim_vae", (8, 8, 1), "gaussian_learned")
    with pytest.raises(ConfigError, match="msssim_window"):
        create_model("msssim_vae", (8, 8, 1), msssim_window=4)
