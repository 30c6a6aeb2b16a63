"""Tests for the JAX PCA baseline against scikit-learn."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA as SklearnPCA

from aejax.baselines import PCA, fit_pca
from aejax.baselines import pca as pca_module
from aejax.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def digits64() -> np.ndarray:
    """sklearn digits scaled to [0, 1], [1797, 64] float32."""
    return (load_digits().data / 16).astype(np.float32)


@pytest.fixture(scope="module")
def decaying() -> np.ndarray:
    """[500, 784] float32 with singular values 30 * exp(-i / 10) around a random mean."""
    rng = np.random.default_rng(0)
    n, d = 500, 784
    u, _ = np.linalg.qr(rng.standard_normal((n, n)))
    v, _ = np.linalg.qr(rng.standard_normal((d, n)))
    s = 30 * np.exp(-np.arange(n) / 10)
    return ((u * s) @ v.T + rng.uniform(0, 1, d)).astype(np.float32)


@pytest.mark.parametrize("solver", ["eigh", "svd"])
@pytest.mark.parametrize("k", [2, 8, 30])
@pytest.mark.parametrize("data", ["digits64", "decaying"])
def test_agrees_with_sklearn(request, data, k, solver):
    x = request.getfixturevalue(data)
    # The exact float64 "full" solver is the reference; "auto" may pick randomized SVD.
    ref = SklearnPCA(n_components=k, svd_solver="full").fit(x.astype(np.float64))
    ref_recon = ref.inverse_transform(ref.transform(x.astype(np.float64)))

    pca = fit_pca(x, k, solver=solver)
    assert pca.components.shape == (k, x.shape[1])
    np.testing.assert_allclose(pca.reconstruct(x), ref_recon, atol=1e-4)
    np.testing.assert_allclose(pca.explained_variance, ref.explained_variance_, rtol=1e-3)
    np.testing.assert_allclose(pca.mean, ref.mean_, atol=1e-5)
    # Same sign convention as sklearn's svd_flip, so even the components agree.
    np.testing.assert_allclose(pca.components, ref.components_, atol=1e-4)


@pytest.mark.parametrize("solver", ["eigh", "svd"])
def test_components_are_orthonormal_and_sorted(digits64, solver):
    pca = fit_pca(digits64, 20, solver=solver)
    np.testing.assert_allclose(pca.components @ pca.components.T, np.eye(20), atol=1e-5)
    assert np.all(np.diff(np.asarray(pca.explained_variance)) <= 0)


@pytest.mark.parametrize("solver", ["eigh", "svd"])
def test_full_rank_reconstructs_exactly(digits64, solver):
    pca = fit_pca(digits64, 64, solver=solver)
    np.testing.assert_allclose(pca.reconstruct(digits64), digits64, atol=1e-4)


def test_fit_is_deterministic(digits64):
    a, b = fit_pca(digits64, 5, solver="svd"), fit_pca(digits64[::-1].copy(), 5, solver="svd")
    np.testing.assert_allclose(a.components, b.components, atol=1e-5)


def test_image_input_shapes(digits64):
    images = digits64.reshape(-1, 8, 8, 1)
    pca = fit_pca(images, 10)
    assert pca.input_shape == (8, 8, 1)
    assert pca.mean.shape == (64,)
    z = pca.transform(images[:7])
    assert z.shape == (7, 10)
    assert pca.inverse_transform(z).shape == (7, 8, 8, 1)
    assert pca.reconstruct(images[:7]).shape == (7, 8, 8, 1)
    flat = fit_pca(digits64, 10)
    np.testing.assert_allclose(z, flat.transform(digits64[:7]), atol=1e-5)


def test_auto_solver_choice(digits64):
    tall = fit_pca(digits64, 4)  # N >= D: eigh
    np.testing.assert_allclose(tall.components, fit_pca(digits64, 4, solver="eigh").components)
    wide = digits64[:40]  # N < D: svd
    np.testing.assert_allclose(
        fit_pca(wide, 4).components, fit_pca(wide, 4, solver="svd").components
    )


def test_pca_is_a_pytree_usable_in_jit(digits64):
    pca = fit_pca(digits64.reshape(-1, 8, 8, 1), 3)
    leaves, treedef = jax.tree.flatten(pca)
    assert len(leaves) == 3
    rebuilt = jax.tree.unflatten(treedef, leaves)
    assert isinstance(rebuilt, PCA) and rebuilt.input_shape == (8, 8, 1)
    images = digits64[:5].reshape(5, 8, 8, 1)
    err = jax.jit(lambda p, x: jnp.mean((p.reconstruct(x) - x) ** 2))(pca, images)
    expected = np.mean((np.asarray(pca.reconstruct(images)) - images) ** 2)
    np.testing.assert_allclose(err, expected, rtol=1e-6)  # float32 sums in another order


def test_integer_data_is_cast_to_float(digits64):
    pca = fit_pca(load_digits().data.astype(np.int64), 3)
    assert pca.components.dtype == jnp.float32
    np.testing.assert_allclose(
        pca.explained_variance, fit_pca(digits64 * 16, 3).explained_variance, rtol=1e-5
    )


def test_bfloat16_data_is_fitted_in_float32(digits64):
    pca = fit_pca(jnp.asarray(digits64, jnp.bfloat16), 3)
    assert pca.components.dtype == jnp.float32
    assert pca.transform(jnp.asarray(digits64[:2], jnp.bfloat16)).dtype == jnp.float32


def test_refit_with_same_shapes_does_not_retrace(digits64):
    fit_pca(digits64, 6, solver="eigh")
    before = pca_module._fit._cache_size()
    fit_pca(digits64 + 1, 6, solver="eigh")
    fit_pca(digits64 * 2, 6, solver="eigh")
    assert pca_module._fit._cache_size() == before
    fit_pca(digits64, 7, solver="eigh")  # k is static: a new k is one new compile
    assert pca_module._fit._cache_size() == before + 1


@pytest.mark.parametrize("k", [0, -1, 65])
def test_bad_n_components(digits64, k):
    with pytest.raises(
        ConfigError, match=rf"n_components must be in \[1, min\(N, D\)\] = \[1, 64\].*got {k}"
    ):
        fit_pca(digits64, k)


def test_n_components_above_n_examples(digits64):
    with pytest.raises(ConfigError, match=r"= \[1, 10\] for data with N=10"):
        fit_pca(digits64[:10], 11)


def test_non_integer_n_components(digits64):
    with pytest.raises(ConfigError, match="must be an integer, got float"):
        fit_pca(digits64, 2.5)


def test_unknown_solver(digits64):
    with pytest.raises(ConfigError, match="unknown PCA solver 'qr'"):
        fit_pca(digits64, 2, solver="qr")


def test_too_few_examples(digits64):
    with pytest.raises(DataError, match="at least 2 examples.*N=1"):
        fit_pca(digits64[:1], 1)


def test_one_dimensional_input():
    with pytest.raises(DataError, match=r"examples \[N, \*input_shape\], got shape \(5,\)"):
        fit_pca(np.zeros(5, np.float32), 1)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_data(digits64, bad):
    x = digits64.copy()
    x[3, 5] = bad
    with pytest.raises(DataError, match="NaN or Inf"):
        fit_pca(x, 2)


def test_wrong_feature_shape(digits64):
    pca = fit_pca(digits64.reshape(-1, 8, 8, 1), 4)
    msg = r"expected examples of shape \[N, \*\(8, 8, 1\)\], got \(3, 64\)"
    with pytest.raises(DataError, match=msg):
        pca.transform(digits64[:3])
    with pytest.raises(DataError, match=msg):
        pca.reconstruct(digits64[:3])
    with pytest.raises(DataError, match=r"expected codes of shape \[N, 4\], got \(3, 5\)"):
        pca.inverse_transform(np.zeros((3, 5), np.float32))
