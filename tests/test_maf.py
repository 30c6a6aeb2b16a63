"""The ``maf`` sampler: a masked autoregressive flow fitted to 2-D correlated Gaussian data
recovers its mean and covariance, its density integrates to 1 on a grid, its log-det is
``slogdet`` of ``jacfwd``, sampling inverts the density's map, the fit is a function of the
seed, and the sampler serves a model through ``aejax.sample``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

import aejax
from aejax.errors import ConfigError
from aejax.models import create_model
from aejax.sampling import SAMPLERS
from aejax.sampling.maf import fit_maf, forward, inverse

MEAN = np.array([1.0, -2.0])
COV = np.array([[2.0, 1.2], [1.2, 1.0]])
FIT = {"layers": 2, "hidden": 16, "epochs": 40, "lr": 1e-2, "batch_size": 256}


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(0).multivariate_normal(MEAN, COV, 2000).astype(np.float32)


@pytest.fixture(scope="module")
def flow(data):
    return fit_maf(data, 0, **FIT)


def test_draws_recover_the_mean_and_covariance(data, flow):
    draws = flow.sample(20000, jax.random.key(1)).astype(np.float64)
    np.testing.assert_allclose(draws.mean(0), MEAN, atol=0.08)
    np.testing.assert_allclose(np.cov(draws.T), COV, atol=0.12)
    # Its likelihood of the data is the true density's, within 0.03 nats per point.
    true_nll = -multivariate_normal(MEAN, COV).logpdf(data).mean()
    assert abs(-flow.log_prob(data).mean() - true_nll) < 0.03
    assert flow.best_epoch >= 0 and flow.val_nll[flow.best_epoch] <= flow.val_nll.min()


def test_the_density_integrates_to_one_on_a_grid(flow):
    g = np.linspace(-9.0, 9.0, 241)
    gx, gy = np.meshgrid(g + MEAN[0], g + MEAN[1])
    p = np.exp(flow.log_prob(np.stack([gx.ravel(), gy.ravel()], 1)))
    assert p.sum() * (g[1] - g[0]) ** 2 == pytest.approx(1.0, abs=5e-3)


def test_log_det_is_slogdet_of_the_jacobian_and_sampling_inverts_it(flow):
    x = jax.random.normal(jax.random.key(2), (8, 2))

    @jax.jit
    def check(params, x):
        u, log_det = forward(flow.mades, params, x)
        jac = jax.vmap(jax.jacfwd(lambda v: forward(flow.mades, params, v[None])[0][0]))(x)
        return log_det, jnp.linalg.slogdet(jac), inverse(flow.mades, params, u)

    log_det, (sign, want), back = check(flow.params, x)
    np.testing.assert_array_equal(sign, 1.0)
    np.testing.assert_allclose(log_det, want, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(back, x, atol=1e-4)


def test_the_fit_is_a_function_of_the_seed(data, flow):
    again = fit_maf(data, 0, **FIT)  # the compiled fit is reused
    for a, b in zip(jax.tree.leaves(flow.params), jax.tree.leaves(again.params), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ConfigError, match="layers must be a positive integer"):
        fit_maf(data, 0, layers=0)


def test_the_sampler_decodes_draws_through_aejax_sample(data, flow):
    model = create_model("ae", (4, 4, 1), "bernoulli", latent_dim=2, hidden=(8,))
    variables = jax.jit(model.init)(jax.random.key(0), np.zeros((1, 4, 4, 1), np.float32))
    key = jax.random.key(3)
    out = aejax.sample(model, variables, 5, key, codes=data, sampler="maf", **FIT)
    assert out.shape == (5, 4, 4, 1) and np.all((out >= 0) & (out <= 1))
    want = aejax.decode(model, variables, flow.sample(5, key))  # the same fit, the same draws
    np.testing.assert_allclose(out, want, rtol=1e-6)
    assert set(SAMPLERS["maf"].options) == {"layers", "hidden", "epochs", "lr", "batch_size"}
    with pytest.raises(ConfigError, match="has no option 'width'"):
        aejax.sample(model, variables, 5, key, codes=data, sampler="maf", width=3)
