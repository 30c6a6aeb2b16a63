"""beta-TCVAE: the minibatch estimators against brute force, the KL decomposition, the
evaluation-time total correlation, and a short training run on digits."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _digits_fit import fit_digits, per_example

from aejax import Config
from aejax.errors import ConfigError
from aejax.models import create_model
from aejax.models.objective import make_objective
from aejax.models.tcvae import (
    aggregate_total_correlation,
    gaussian_total_correlation,
    log_weights,
    tc_decomposition,
)
from aejax.train import shard

SHAPE = (8, 8, 1)
DENSE = {"latent_dim": 4, "hidden": (32,), "activation": "gelu", "dtype": "float32"}


def _log_normal(z, m, lv):  # float64, elementwise
    return -0.5 * ((z - m) ** 2 / np.exp(lv) + lv + np.log(2 * np.pi))


def _brute_force(z, mean, logvar, weights):
    """log q(z_i), sum_d log q(z_i,d), log q(z_i|x_i), log p(z_i) by loops in float64,
    with ``q_hat(z_i) = sum_j weights[i, j] q(z_i | x_j)``."""
    m, k = z.shape
    log_qz, log_dims = np.zeros(m), np.zeros(m)
    for i in range(m):
        joint = sum(
            weights[i, j] * math.exp(_log_normal(z[i], mean[j], logvar[j]).sum()) for j in range(m)
        )
        log_qz[i] = math.log(joint)
        for d in range(k):
            marg = sum(
                weights[i, j] * math.exp(_log_normal(z[i, d], mean[j, d], logvar[j, d]))
                for j in range(m)
            )
            log_dims[i] += math.log(marg)
    log_qzx = _log_normal(z, mean, logvar).sum(1)
    log_pz = _log_normal(z, 0.0, 0.0).sum(1)
    return log_qz, log_dims, log_qzx, log_pz


def _tiny_batch(m=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    mean = rng.normal(0, 1.0, (m, k))
    logvar = rng.normal(-0.5, 0.4, (m, k))
    z = mean + np.exp(0.5 * logvar) * rng.standard_normal((m, k))
    return z, mean, logvar


@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_minibatch_estimates_match_brute_force(estimator):
    z, mean, logvar = _tiny_batch()
    n = 50
    m = z.shape[0]
    if estimator == "mws":
        w = np.full((m, m), 1.0 / (n * m))
    else:  # the paper's stratified weights, written out
        w = np.full((m, m), 1.0 / (m - 1))
        for i in range(m):
            w[i, (i + 1) % m] = (n - m + 1) / (n * (m - 1))
            w[i, i] = 1.0 / n
        np.testing.assert_allclose(w.sum(1), 1.0)  # MSS is normalized, MWS sums to 1/N
    np.testing.assert_allclose(
        np.exp(np.asarray(log_weights(m, n, estimator), np.float64)), w, 1e-6
    )
    log_qz, log_dims, log_qzx, log_pz = _brute_force(z, mean, logvar, w)
    terms = tc_decomposition(
        *(jnp.asarray(a, jnp.float32) for a in (z, mean, logvar)), n, estimator
    )
    np.testing.assert_allclose(terms["mi"], log_qzx - log_qz, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(terms["tc"], log_qz - log_dims, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(terms["dim_kl"], log_dims - log_pz, rtol=1e-5, atol=1e-4)


def test_identical_posteriors_give_the_known_decomposition():
    # Every example has the same posterior: q(z) = q(z|x), a factorized Gaussian, so the
    # true MI and TC are 0 and the dimension-wise KL is the whole MC KL. MSS (weights
    # summing to 1) finds exactly that; MWS (weights summing to 1/N) reads log q(z) low by
    # log N and each marginal too: mi = log N, tc = (K - 1) log N.
    n, m, k = 1000, 6, 3
    rng = np.random.default_rng(1)
    mean = np.tile(rng.normal(size=(1, k)), (m, 1))
    logvar = np.tile(rng.normal(-1, 0.3, size=(1, k)), (m, 1))
    z = mean + np.exp(0.5 * logvar) * rng.standard_normal((m, k))
    mc_kl = (_log_normal(z, mean, logvar) - _log_normal(z, 0.0, 0.0)).sum(1)
    args = [jnp.asarray(a, jnp.float32) for a in (z, mean, logvar)]
    mss = tc_decomposition(*args, n, "mss")
    np.testing.assert_allclose(mss["mi"], 0.0, atol=2e-5)
    np.testing.assert_allclose(mss["tc"], 0.0, atol=2e-5)
    np.testing.assert_allclose(mss["dim_kl"], mc_kl, rtol=1e-5, atol=2e-5)
    mws = tc_decomposition(*args, n, "mws")
    np.testing.assert_allclose(mws["mi"], math.log(n), rtol=1e-6)
    np.testing.assert_allclose(mws["tc"], (k - 1) * math.log(n), rtol=1e-6)
    np.testing.assert_allclose(mws["dim_kl"], mc_kl - k * math.log(n), rtol=1e-5)


def test_the_three_terms_sum_to_the_monte_carlo_kl_whose_mean_is_the_analytic_kl():
    _, mean, logvar = _tiny_batch(m=4, k=3, seed=2)
    mean, logvar = jnp.asarray(mean, jnp.float32), jnp.asarray(logvar, jnp.float32)
    draws = 20_000
    eps = jax.random.normal(jax.random.key(0), (draws, *mean.shape))
    zs = mean[None] + jnp.exp(0.5 * logvar)[None] * eps

    @jax.jit
    @jax.vmap
    def split(z):
        return tc_decomposition(z, mean, logvar, n_train=100)

    terms = {k: np.asarray(v, np.float64) for k, v in split(zs).items()}
    total = terms["mi"] + terms["tc"] + terms["dim_kl"]  # [draws, M]
    z64, m64, lv64 = (np.asarray(a, np.float64) for a in (zs, mean, logvar))
    mc_kl = (_log_normal(z64, m64, lv64) - _log_normal(z64, 0.0, 0.0)).sum(-1)
    np.testing.assert_allclose(total, mc_kl, rtol=1e-4, atol=2e-4)  # exactly, per draw
    analytic = 0.5 * (np.exp(lv64) + m64**2 - 1.0 - lv64).sum(1)
    stderr = mc_kl.std(0) / np.sqrt(draws)
    np.testing.assert_allclose(total.mean(0), analytic, atol=float(5 * stderr.max()))


def _model(n_train=1293, estimator="mws", **options):
    return create_model(
        "beta_tcvae",
        SHAPE,
        "bernoulli",
        n_train=n_train,
        **{**DENSE, "tc_estimator": estimator, **options},
    )


def _weights(config, step=0):
    objective = make_objective(config, 100)
    return {k: float(objective.weight(k, step)) for k in objective.weights}


def test_model_reports_the_decomposition_and_the_analytic_kl():
    model = _model()
    x = jax.random.uniform(jax.random.key(0), (16, *SHAPE))
    params = model.init(jax.random.key(1), x)["params"]
    assert set(params) == {"encoder", "decoder"}  # the code adds no parameters: vae's tree
    _, aux = model.apply({"params": params}, x, train=True, rngs={"sample": jax.random.key(2)})
    assert set(aux["terms"]) == {"reconstruction", "kl", "mi", "tc", "dim_kl"}
    z, m, lv = (np.asarray(aux[k], np.float64) for k in ("z", "mean", "logvar"))
    mc_kl = (_log_normal(z, m, lv) - _log_normal(z, 0.0, 0.0)).sum(1)
    total = sum(np.asarray(aux["terms"][k], np.float64) for k in ("mi", "tc", "dim_kl"))
    np.testing.assert_allclose(total, mc_kl, rtol=1e-4, atol=1e-4)
    analytic = 0.5 * (np.exp(lv) + m**2 - 1.0 - lv).sum(1)
    np.testing.assert_allclose(aux["terms"]["kl"], analytic, rtol=1e-5)
    # The objective: alpha, beta, gamma on the split, 0 on the analytic KL.
    config = Config(model="beta_tcvae")
    weights = _weights(config)
    assert weights == {"reconstruction": 1.0, "mi": 1.0, "tc": 6.0, "dim_kl": 1.0, "kl": 0.0}
    assert _weights(config.replace(mi_weight=0.5, tc_weight=2, dim_kl_weight=3)) == {
        "reconstruction": 1.0,
        "mi": 0.5,
        "tc": 2.0,
        "dim_kl": 3.0,
        "kl": 0.0,
    }
    loss, _ = make_objective(config, 100)(aux["terms"], 0)
    t = {k: np.asarray(v, np.float64) for k, v in aux["terms"].items()}
    np.testing.assert_allclose(
        loss, t["reconstruction"] + t["mi"] + 6 * t["tc"] + t["dim_kl"], 1e-5
    )
    # Deterministic codes and N(0, I) samples, as vae's.
    codes = model.apply({"params": params}, x, method=model.encode)
    np.testing.assert_array_equal(codes, aux["mean"])
    images = model.apply(
        {"params": params}, 3, method=model.sample, rngs={"sample": jax.random.key(0)}
    )
    assert images.shape == (3, *SHAPE)


def test_terms_on_eight_devices_equal_one():
    z, mean, logvar = (jnp.asarray(a, jnp.float32) for a in _tiny_batch(m=16, k=3, seed=3))
    fn = jax.jit(lambda *a: tc_decomposition(*a, 500, "mss"))
    mesh = shard.make_mesh(8)
    sharded = [shard.put_batch(np.asarray(a), mesh) for a in (z, mean, logvar)]
    one, eight = fn(z, mean, logvar), fn(*sharded)
    for k in one:
        np.testing.assert_allclose(eight[k], one[k], rtol=1e-5, atol=1e-5)


def test_without_n_train_it_evaluates_on_the_batch_and_refuses_to_train():
    model = _model(n_train=None)
    x = jax.random.uniform(jax.random.key(0), (8, *SHAPE))
    params = model.init(jax.random.key(1), x)
    _, aux = model.apply(params, x)  # evaluation: the batch is the population, N = M
    z, m, lv = aux["z"], aux["mean"], aux["logvar"]
    expected = tc_decomposition(z, m, lv, 8, "mws")
    for k in ("mi", "tc", "dim_kl"):
        np.testing.assert_allclose(aux["terms"][k], expected[k], rtol=1e-6)
    with pytest.raises(ConfigError, match="n_train"):
        model.apply(params, x, train=True, rngs={"sample": jax.random.key(2)})


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="n_train"):
        _model(n_train=0)
    with pytest.raises(ConfigError, match="tc_estimator"):
        _model(estimator="exact")
    for bad in ("mi_weight=-1", "tc_weight=inf", "dim_kl_weight=nan"):
        with pytest.raises(ConfigError, match=bad.split("=")[0]):
            Config(model="beta_tcvae").with_overrides([bad])
    with pytest.raises(ConfigError, match="tc_estimator"):
        Config(model="beta_tcvae").with_overrides(["tc_estimator=exact"])
    # MSS on a batch larger than the training set takes N = M; on one code, MWS's 1/N.
    np.testing.assert_allclose(log_weights(6, 4, "mss"), log_weights(6, 6, "mss"))
    np.testing.assert_allclose(log_weights(1, 10, "mss"), [[-math.log(10)]], rtol=1e-6)


# --- evaluation-time total correlation ---------------------------------------------------------


def test_gaussian_tc_is_the_log_det_of_the_correlation():
    rng = np.random.default_rng(0)
    cov = np.array([[4.0, 1.2, 0.0], [1.2, 1.0, -0.3], [0.0, -0.3, 0.25]])
    # Codes whose sample covariance is exactly cov: whiten a sample, then colour it.
    x = rng.standard_normal((500, 3))
    x -= x.mean(0)
    x = x @ np.linalg.inv(np.linalg.cholesky(np.cov(x, rowvar=False))).T
    codes = x @ np.linalg.cholesky(cov).T + np.array([5.0, -1.0, 0.0])
    sd = np.sqrt(np.diag(cov))
    expected = -0.5 * np.log(np.linalg.det(cov / np.outer(sd, sd)))  # 0.427 nats
    assert gaussian_total_correlation(codes) == pytest.approx(expected, rel=1e-9)
    # Two dimensions with correlation rho: the textbook -1/2 log(1 - rho^2).
    rho = 1.2 / 2.0
    assert gaussian_total_correlation(codes[:, :2]) == pytest.approx(-0.5 * np.log(1 - rho**2))
    # Scale-free; constant units and single units add nothing.
    scaled = codes * np.array([10.0, 0.1, 3.0])
    assert gaussian_total_correlation(scaled) == pytest.approx(expected, rel=1e-9)
    with_constant = np.concatenate([codes, np.ones((500, 1))], axis=1)
    assert gaussian_total_correlation(with_constant) == pytest.approx(expected, rel=1e-9)
    assert gaussian_total_correlation(codes[:, :1]) == 0.0


def test_aggregate_tc_of_a_shared_bit_is_its_entropy_per_extra_copy():
    # Half the examples sit at (+3, +3, +3), half at (-3, -3, -3), with tiny posteriors: the
    # three dimensions all carry one fair bit, so TC = (3 - 1) log 2.
    n, k = 400, 3
    sign = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)[:, None]
    mean = 3.0 * sign * np.ones((n, k))
    logvar = np.full((n, k), np.log(0.05**2))
    assert aggregate_total_correlation(mean, logvar, chunk=64) == pytest.approx(
        2 * np.log(2), abs=1e-6
    )
    # One shared posterior: the aggregate is a factorized Gaussian, TC = 0.
    same = np.zeros((n, k)) + np.array([0.5, -1.0, 2.0])
    assert aggregate_total_correlation(same, np.zeros((n, k))) == pytest.approx(0.0, abs=1e-9)


# --- training ----------------------------------------------------------------------------------


def test_beta_tcvae_trains_on_digits(digits):
    x_train = np.asarray(digits.x_train)
    model = _model(n_train=len(x_train), hidden=(64,))
    objective = make_objective(Config(model="beta_tcvae"), 120)
    tx = optax.adam(3e-3)
    history = fit_digits(model, tx, objective, x_train)
    mean = per_example

    assert not any(float(m["nonfinite"]) for m in history)
    first, last = history[:20], history[-20:]
    # MWS's offsets (tc ~ (K - 1) log N) are constants: the loss falls by what the fit gains.
    # Measured: loss 147.8 -> 135.1, reconstruction 38.9 -> 25.5 nats.
    assert mean("reconstruction", last) < 0.75 * mean("reconstruction", first)
    assert mean("loss", last) < mean("loss", first) - 8.0
    assert {"mi", "tc", "dim_kl", "kl", "reconstruction"} <= set(history[-1])


def test_a_loaded_run_is_rebuilt_with_its_training_set_size(digits, tmp_path):
    """The checkpoint records n_train, so a run loaded for inference estimates as in training."""
    from aejax.assemble import train
    from aejax.run import load_run

    config = Config(model="beta_tcvae", hidden=(32,), latent_dim=4, epochs=1)
    train(config.replace(progress=False, devices=1), tmp_path / "run", dataset=digits)
    run = load_run(tmp_path / "run")
    assert run.model.code.n_train == digits.x_train.shape[0] == 1293
