"""svae (S-VAE): the vMF log-normalizer against scipy, the closed-form KL against Monte Carlo,
Wood's sampler's moments, the uniform prior and finite gradients. Training, determinism,
sharding and resume are the registry tests' (tests/test_registry.py)."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from aejax.errors import ConfigError
from aejax.models import create_model
from aejax.models.svae import (
    log_sphere_area,
    sample_vmf,
    vmf_kl_uniform,
    vmf_log_normalizer,
    vmf_mean_cosine,
)


def _log_c(m, kappa):
    """log C_m(kappa) in float64 from scipy's exponentially scaled I_v."""
    v = m / 2 - 1
    return v * np.log(kappa) - m / 2 * np.log(2 * np.pi) - np.log(special.ive(v, kappa)) - kappa


def _mean_cosine(m, kappa):
    return special.ive(m / 2, kappa) / special.ive(m / 2 - 1, kappa)


def _unit(m, seed=0):
    mu = np.random.default_rng(seed).normal(size=m)
    return mu / np.linalg.norm(mu)


@pytest.mark.parametrize("m", [3, 5, 10])
@pytest.mark.parametrize("kappa", [0.5, 5.0, 50.0])
def test_log_normalizer_matches_scipy(m, kappa):
    got = float(vmf_log_normalizer(m, jnp.float32(kappa)))
    np.testing.assert_allclose(got, _log_c(m, kappa), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        float(vmf_mean_cosine(m, jnp.float32(kappa))), _mean_cosine(m, kappa), rtol=1e-5
    )


@pytest.mark.parametrize("m", [2, 3, 16, 128])
def test_kl_is_the_formula_and_finite_with_finite_gradients(m):
    kappa = np.array([1.0, 3.0, 9.99, 10.01, 40.0, 1e3, 1e5], np.float32)
    got = np.asarray(vmf_kl_uniform(m, jnp.asarray(kappa)))
    k = kappa.astype(np.float64)
    want = k * _mean_cosine(m, k) + _log_c(m, k) + log_sphere_area(m)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)
    assert np.all(got >= -1e-6)
    grads = jax.vmap(jax.grad(lambda x: vmf_kl_uniform(m, x)))(jnp.asarray(kappa))
    assert np.all(np.isfinite(np.asarray(grads))) and np.all(np.asarray(grads) > 0)
    assert math.isclose(log_sphere_area(3), math.log(4 * math.pi), rel_tol=1e-12)


def test_kl_matches_a_monte_carlo_estimate():
    """KL = E_q[log q(z) - log p(z)] = E[log C + kappa mu.z] + log |S|, from the sampler."""
    m, kappa, n = 5, 7.0, 20000
    mu = jnp.asarray(np.tile(_unit(m), (n, 1)), jnp.float32)
    z = sample_vmf(jax.random.key(0), mu, jnp.full((n,), kappa, jnp.float32))
    log_q = _log_c(m, kappa) + kappa * np.asarray(jnp.sum(z * mu, axis=-1), np.float64)
    mc = float(np.mean(log_q + log_sphere_area(m)))
    np.testing.assert_allclose(mc, float(vmf_kl_uniform(m, jnp.float32(kappa))), atol=0.03)


@pytest.mark.parametrize(("m", "kappa"), [(3, 1.0), (3, 50.0), (10, 5.0), (64, 100.0)])
def test_samples_are_unit_with_direction_mu_and_mean_cosine_a_m(m, kappa):
    n = 8000
    mu = _unit(m, seed=m)
    z = np.asarray(
        sample_vmf(
            jax.random.key(1),
            jnp.asarray(np.tile(mu, (n, 1)), jnp.float32),
            jnp.full((n,), kappa, jnp.float32),
        ),
        np.float64,
    )
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    mean = z.mean(0)
    assert np.dot(mean / np.linalg.norm(mean), mu) > 0.99
    cos = z @ mu
    se = cos.std() / np.sqrt(n)
    assert abs(cos.mean() - _mean_cosine(m, kappa)) < 5 * se + 1e-4


def test_model_codes_prior_samples_and_gradients():
    shape, latent = (6,), 4
    model = create_model("svae", shape, "gaussian", latent_dim=latent, hidden=(16,))
    x = jax.random.normal(jax.random.key(2), (8, *shape))
    params = jax.jit(model.init)({"params": jax.random.key(3), "sample": jax.random.key(4)}, x)
    apply = jax.jit(functools.partial(model.apply, train=True))
    _, aux = apply(params, x, rngs={"sample": jax.random.key(5)})
    np.testing.assert_allclose(np.linalg.norm(aux["z"], axis=1), 1.0, atol=1e-5)
    assert np.all(np.asarray(aux["kappa"]) >= 1.0) and np.all(np.asarray(aux["terms"]["kl"]) >= 0)
    assert model.has_posterior and not model.analytic_kl

    def loss(p):
        _, a = apply(p, x, rngs={"sample": jax.random.key(5)})
        return sum(jnp.mean(t) for t in a["terms"].values())

    grads = jax.tree.leaves(jax.jit(jax.grad(loss))(params))
    assert all(np.all(np.isfinite(np.asarray(g))) for g in grads)
    assert any(np.any(np.asarray(g) != 0) for g in grads)

    z = model.apply(
        params,
        4000,
        method=lambda mdl, n: mdl.code.sample_prior(n),
        rngs={"sample": jax.random.key(6)},
    )
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(z).mean(0), 0.0, atol=0.05)
    drawn = model.apply(params, 3, method="sample", rngs={"sample": jax.random.key(7)})
    assert drawn.shape == (3, *shape) and np.all(np.isfinite(np.asarray(drawn)))


def test_latent_dim_below_2_is_refused():
    with pytest.raises(ConfigError, match="latent_dim >= 2"):
        create_model("svae", (6,), "gaussian", latent_dim=1, hidden=(16,))
