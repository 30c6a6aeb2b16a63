"""Tests for aejax.metrics against values worked out by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from aejax import metrics
from aejax.errors import DataError


def test_squared_error_of_zeros_vs_ones_is_pixel_count():
    x = jnp.ones((2, 3, 3, 1))
    np.testing.assert_allclose(metrics.squared_error_per_example(jnp.zeros_like(x), x), [9.0, 9.0])


def test_squared_error_and_mse_on_vectors():
    recon = jnp.array([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]])
    x = jnp.array([[1.0, 0.0, 3.0, 1.0], [0.5, 0.5, 0.5, 0.5]])
    np.testing.assert_allclose(metrics.squared_error_per_example(recon, x), [13.0, 1.0])
    np.testing.assert_allclose(metrics.mse_per_example(recon, x), [3.25, 0.25])


def test_mse_is_mean_over_all_non_batch_axes():
    x = jnp.zeros((3, 4, 5, 2))
    recon = x + jnp.arange(3.0)[:, None, None, None]
    np.testing.assert_allclose(metrics.mse_per_example(recon, x), [0.0, 1.0, 4.0])


def test_psnr_of_known_mse():
    x = jnp.zeros((2, 10))
    recon = jnp.stack([jnp.full((10,), 0.1), jnp.full((10,), 0.01)])  # mse 0.01 and 1e-4
    np.testing.assert_allclose(metrics.psnr_per_example(recon, x), [20.0, 40.0], rtol=1e-5)
    # max_value 255: mse 0.01 * 255^2 gives the same 20 dB.
    np.testing.assert_allclose(
        metrics.psnr_per_example(recon[:1] * 255, x[:1], max_value=255.0), [20.0], rtol=1e-5
    )


def test_psnr_of_perfect_reconstruction_is_large_and_finite():
    x = jnp.full((3, 4, 4, 1), 0.5)
    psnr = metrics.psnr_per_example(x, x)
    assert np.all(np.isfinite(psnr))
    np.testing.assert_allclose(psnr, 100.0, rtol=1e-5)


def test_bce_matches_naive_formula_on_moderate_logits():
    logits = jax.random.normal(jax.random.key(0), (4, 5, 3)) * 3
    x = jax.random.uniform(jax.random.key(1), (4, 5, 3))
    p = np.asarray(jax.nn.sigmoid(logits), np.float64)
    xn = np.asarray(x, np.float64)
    naive = -(xn * np.log(p) + (1 - xn) * np.log1p(-p)).reshape(4, -1).sum(axis=1)
    np.testing.assert_allclose(metrics.bce_per_example(logits, x), naive, rtol=1e-5)


def test_bce_equals_optax_in_value_and_gradient():
    logits = jnp.concatenate(
        [jnp.linspace(-120.0, 120.0, 97), jax.random.normal(jax.random.key(2), (31,)) * 4]
    ).reshape(4, 32)
    x = jax.random.uniform(jax.random.key(3), (4, 32)).at[0, :8].set(0.0).at[1, :8].set(1.0)

    def ours(lg):
        return metrics.bce_per_example(lg, x).sum()

    def reference(lg):
        return optax.sigmoid_binary_cross_entropy(lg, x).sum()

    np.testing.assert_allclose(
        metrics.bce_per_example(logits, x),
        optax.sigmoid_binary_cross_entropy(logits, x).sum(axis=1),
        rtol=1e-6,
    )
    np.testing.assert_allclose(jax.grad(ours)(logits), jax.grad(reference)(logits), atol=1e-6)


def test_bce_is_finite_and_correct_for_extreme_logits():
    logits = jnp.array([[100.0, -100.0], [-100.0, 100.0]])
    x = jnp.array([[1.0, 0.0], [1.0, 0.0]])
    bce = metrics.bce_per_example(logits, x)
    assert np.all(np.isfinite(bce))
    # Confident and right costs ~0; confident and wrong costs ~|logit| per element.
    np.testing.assert_allclose(bce, [0.0, 200.0], atol=1e-5)


def test_metrics_work_under_jit_and_cast_integers():
    x = jnp.ones((2, 3), jnp.uint8)
    sse = jax.jit(metrics.squared_error_per_example)(jnp.zeros((2, 3), jnp.uint8), x)
    assert sse.dtype == jnp.float32
    np.testing.assert_allclose(sse, [3.0, 3.0])


def test_shape_mismatch_is_a_data_error():
    with pytest.raises(DataError, match=r"shapes differ: \(2, 3\) vs \(2, 4\)"):
        metrics.mse_per_example(jnp.zeros((2, 3)), jnp.zeros((2, 4)))


def test_report_on_known_case_across_chunks():
    # 10 examples of 2x2x1 pixels; example i is off by 0.1 * (i + 1) everywhere.
    n = 10
    x = np.zeros((n, 2, 2, 1), np.float32)
    offsets = 0.1 * np.arange(1, n + 1, dtype=np.float32)
    recon = x + offsets[:, None, None, None]
    logits = np.zeros_like(x)  # sigmoid 0.5 against target 0: log(2) per element
    report = metrics.reconstruction_report(recon, x, logits=logits, image=True, chunk_size=3)
    assert set(report) == {"recon_mse", "sse_per_example", "psnr", "bce_per_example"}
    assert all(type(v) is float for v in report.values())
    np.testing.assert_allclose(report["recon_mse"], np.mean(offsets**2), rtol=1e-5)
    np.testing.assert_allclose(report["sse_per_example"], 4 * np.mean(offsets**2), rtol=1e-5)
    np.testing.assert_allclose(report["psnr"], np.mean(-10 * np.log10(offsets**2)), rtol=1e-5)
    np.testing.assert_allclose(report["bce_per_example"], 4 * np.log(2), rtol=1e-5)


def test_report_chunking_does_not_change_the_answer():
    x = jax.random.uniform(jax.random.key(0), (37, 6))
    recon = jax.random.uniform(jax.random.key(1), (37, 6))
    whole = metrics.reconstruction_report(recon, x, image=False)
    assert set(whole) == {"recon_mse", "sse_per_example"}
    for chunk_size in (1, 5, 36):
        chunked = metrics.reconstruction_report(recon, x, image=False, chunk_size=chunk_size)
        for key, value in whole.items():
            np.testing.assert_allclose(chunked[key], value, rtol=1e-6)
    np.testing.assert_allclose(
        whole["recon_mse"], float(np.mean((np.asarray(recon) - np.asarray(x)) ** 2)), rtol=1e-6
    )


def test_report_rejects_mismatched_shapes():
    with pytest.raises(DataError, match="logits and target shapes differ"):
        metrics.reconstruction_report(
            np.zeros((4, 3)), np.zeros((4, 3)), logits=np.zeros((4, 2)), image=False
        )
    with pytest.raises(DataError, match="reconstruction and target shapes differ"):
        metrics.reconstruction_report(np.zeros((4, 3)), np.zeros((5, 3)), image=False)
