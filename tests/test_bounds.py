"""The VAE's likelihood bounds (ELBO, IW-k), its schedules, dynamic binarization and the
learned-variance Gaussian decoder on tables, down to ``aejax evaluate --iw``."""

import json
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _configs import SMALL
from scipy import stats

import aejax
from aejax import bounds, cli
from aejax.assemble import train
from aejax.config import config_keys
from aejax.data import load_dataset
from aejax.data.dataset import build_dataset
from aejax.errors import ConfigError, DataError
from aejax.evaluate import collapse_warning
from aejax.models import create_model
from aejax.run import load_run
from aejax.train import TrainState, make_train_step

VAE = SMALL.replace(model="vae", latent_dim=4, hidden=(32,))


@pytest.fixture(scope="module")
def binarized_run(digits, tmp_path_factory):
    """A small VAE trained with dynamic binarization, in a run directory."""
    workdir = tmp_path_factory.mktemp("bounds") / "vae-bin"
    config = VAE.replace(binarize=True, epochs=4, checkpoint_every=4)
    result = train(config, workdir, dataset=digits)
    x = bounds.binarize_once(digits.x_test[:64])
    return workdir, result, x


def _posterior(model, variables, x):
    return model.apply(variables, x, method=lambda m, x: m.code.posterior(m.encoder(x)))


def test_k1_bound_is_a_monte_carlo_elbo(binarized_run):
    _, result, x = binarized_run
    model, v = result.model, result.variables
    # An independent float64 Monte Carlo ELBO: z ~ q(z|x) drawn here, decoded by the model.
    mean, logvar = (np.asarray(a, np.float64) for a in _posterior(model, v, x))
    s, n = 200, x.shape[0]
    eps = np.random.default_rng(0).standard_normal((s, *mean.shape))
    z = mean + np.exp(0.5 * logvar) * eps
    logits = np.asarray(
        model.apply(v, z.reshape(s * n, -1).astype(np.float32), method=lambda m, z: m.decoder(z)),
        np.float64,
    ).reshape(s, n, -1)
    bits = x.reshape(1, n, -1).astype(np.float64)
    log_px = (bits * logits - np.logaddexp(0.0, logits)).sum(-1)
    log_pz = stats.norm.logpdf(z).sum(-1)
    log_qz = stats.norm.logpdf(z, mean, np.exp(0.5 * logvar)).sum(-1)
    log_w = log_px + log_pz - log_qz  # [S, N]
    se = math.sqrt(log_w.var(0).mean() / n)  # of a mean over N examples of one draw each

    iw1 = bounds.importance_weighted_bound(model, v, x, 1, jax.random.key(1))
    assert abs(iw1.mean() - log_w.mean()) < 4 * se, (iw1.mean(), log_w.mean(), se)
    # The analytic-KL ELBO over 200 draws has a far smaller error than one draw.
    elbo = bounds.elbo(model, v, x, jax.random.key(2), samples=s)
    assert abs(elbo.mean() - log_w.mean()) < 4 * se / math.sqrt(s) + 0.05
    # A numpy IW-200 from the same log weights: the implementation's estimator is the same.
    iw_np = (np.logaddexp.reduce(log_w, axis=0) - math.log(s)).mean()
    iw = bounds.importance_weighted_bound(model, v, x, s, jax.random.key(3)).mean()
    assert abs(iw - iw_np) < 0.1, (iw, iw_np)


def test_with_q_equal_to_the_prior_iw1_is_exactly_the_one_sample_elbo(digits):
    model = create_model("vae", (8, 8, 1), "bernoulli", latent_dim=3, hidden=(16,))
    v = model.init(jax.random.key(0), digits.x_test[:2])
    last = v["params"]["encoder"]["dense_1"]
    last["kernel"], last["bias"] = jnp.zeros_like(last["kernel"]), jnp.zeros_like(last["bias"])
    x = bounds.binarize_once(digits.x_test[:20])
    b = bounds.bounds(model, v, x, 1, jax.random.key(5))
    np.testing.assert_allclose(b["kl"], 0.0, atol=1e-7)  # q = N(0, I) = p(z)
    # Then log p(z) = log q(z|x) and both bounds are log p(x|z) at the same draw.
    np.testing.assert_allclose(b["iw"], b["elbo"], rtol=1e-6)


def test_the_iw_bound_is_above_the_elbo_and_grows_with_k(binarized_run):
    _, result, x = binarized_run
    key = jax.random.key(0)
    iw = {k: bounds.bounds(result.model, result.variables, x, k, key) for k in (1, 10, 100)}
    means = {k: b["iw"].mean() for k, b in iw.items()}
    elbo = iw[100]["elbo"].mean()  # the analytic-KL ELBO over 100 draws
    assert means[1] < means[10] < means[100], means
    assert means[100] - elbo > 0.5, (means, elbo)  # a real gap for a 4-epoch model
    assert abs(means[1] - elbo) < 0.5  # IW-1 is an ELBO estimate
    assert np.mean(iw[100]["iw"] >= iw[100]["elbo"]) > 0.9  # per example, almost always


def test_chunks_batches_and_keys(binarized_run):
    _, result, x = binarized_run
    model, v, key = result.model, result.variables, jax.random.key(7)
    a = bounds.importance_weighted_bound(model, v, x, 100, key, chunk=7, batch_size=16)
    b = bounds.importance_weighted_bound(model, v, x, 100, key, chunk=100, batch_size=100)
    np.testing.assert_allclose(a, b, rtol=2e-6)
    np.testing.assert_array_equal(
        a, bounds.importance_weighted_bound(model, v, x, 100, key, chunk=7, batch_size=16)
    )
    other = bounds.importance_weighted_bound(model, v, x, 100, jax.random.key(8), chunk=7)
    assert not np.allclose(a, other)
    # One compilation per (batch, chunk) shape serves every k.
    fn = bounds._jitted()
    before = fn._cache_size()
    bounds.importance_weighted_bound(model, v, x, 30, key, chunk=7, batch_size=16)
    assert fn._cache_size() == before


def _linear_gaussian_vae(w, b, noise_var, likelihood="gaussian_learned"):
    """A vae with linear maps: p(z) = N(0, I), p(x|z) = N(w z + b, noise_var I).

    Returns the model, its variables with the exact posterior q(z|x) = p(z|x) (diagonal,
    as ``w`` has orthogonal columns) and that posterior's ``(a, c, var)``: mean = x a + c.
    ``likelihood="gaussian"`` (a fixed unit variance) needs ``noise_var = 1``.
    """
    d, latent = w.shape
    model = create_model("vae", (d,), likelihood, latent_dim=latent, hidden=())
    var = 1.0 / (1.0 + np.diag(w.T @ w) / noise_var)  # diag of (I + W^T W / s^2)^-1
    a = w * var / noise_var
    c = -b @ a
    enc = {"kernel": np.concatenate([a, np.zeros_like(a)], 1), "bias": np.r_[c, np.log(var)]}
    dec = {"kernel": w.T, "bias": b}
    if likelihood == "gaussian_learned":  # the log-variance half of the decoder's output
        dec = {
            "kernel": np.concatenate([w.T, np.zeros_like(w.T)], 1),
            "bias": np.r_[b, np.full(d, np.log(noise_var))],
        }
    params = {
        "encoder": {"dense_0": jax.tree.map(jnp.float32, enc)},
        "decoder": {"dense_0": jax.tree.map(jnp.float32, dec)},
    }
    return model, {"params": params}, (a, c, var)


def test_the_fixed_variance_gaussian_is_bounded_as_the_density_n_decoder_z_i():
    rng = np.random.default_rng(1)
    w = np.linalg.qr(rng.standard_normal((4, 2)))[0] * np.array([2.0, 0.5])
    b = np.array([0.1, 0.0, -0.3, 0.2])
    model, v, _ = _linear_gaussian_vae(w, b, 1.0, likelihood="gaussian")
    x = rng.standard_normal((30, 4)).astype(np.float32)
    log_px = stats.multivariate_normal(b, w @ w.T + np.eye(4)).logpdf(x)
    iw = bounds.importance_weighted_bound(model, v, x, 4, jax.random.key(0))
    np.testing.assert_allclose(iw, log_px, atol=2e-4)


def test_linear_gaussian_bounds_reach_the_closed_form_log_likelihood():
    rng = np.random.default_rng(0)
    w = np.linalg.qr(rng.standard_normal((3, 2)))[0] * np.array([1.5, 0.8])  # orthogonal cols
    b, noise_var = np.array([0.3, -0.2, 0.1]), 0.25
    model, v, (a, c, var) = _linear_gaussian_vae(w, b, noise_var)
    x = (rng.standard_normal((40, 2)) @ w.T + b + 0.5 * rng.standard_normal((40, 3))).astype(
        np.float32
    )
    log_px = stats.multivariate_normal(b, w @ w.T + noise_var * np.eye(3)).logpdf(x)
    key = jax.random.key(0)
    # With the exact posterior every importance weight is p(x): IW-k is exact for any k,
    # and the ELBO (its closed-form KL beside sampled reconstructions) is, in expectation.
    np.testing.assert_allclose(
        bounds.importance_weighted_bound(model, v, x, 3, key), log_px, atol=2e-4
    )
    exact = bounds.bounds(model, v, x, 2000, key)
    np.testing.assert_allclose(exact["iw"], log_px, atol=2e-4)
    np.testing.assert_allclose(exact["elbo"].mean(), log_px.mean(), atol=0.01)

    # A worse q: shifted means, wider variances. ELBO = log p(x) - KL(q || p(z|x)).
    shift, widen = 0.4, 0.7
    v["params"]["encoder"]["dense_0"]["bias"] += jnp.asarray(np.r_[[shift] * 2, [widen] * 2])
    q_var = var * np.exp(widen)
    kl_gap = 0.5 * (q_var / var + shift**2 / var - 1.0 - widen).sum()
    elbo = bounds.elbo(model, v, x, key, samples=2000)
    np.testing.assert_allclose(elbo.mean(), (log_px - kl_gap).mean(), atol=0.02)
    iw = {k: bounds.importance_weighted_bound(model, v, x, k, key).mean() for k in (1, 10, 2000)}
    assert iw[1] < iw[10] < iw[2000] <= log_px.mean() + 5e-3, (iw, log_px.mean())
    assert log_px.mean() - iw[2000] < 0.01 < log_px.mean() - iw[10]


def test_refusals(binarized_run, digits):
    _, result, x = binarized_run
    ae = create_model("ae", (8, 8, 1), "bernoulli", latent_dim=3, hidden=(16,))
    v = ae.init(jax.random.key(0), x[:1])
    with pytest.raises(ConfigError, match="Gaussian code"):
        bounds.importance_weighted_bound(ae, v, x, 10, jax.random.key(0))
    with pytest.raises(ConfigError, match=r"k \(importance samples.*positive integer"):
        bounds.bounds(result.model, result.variables, x, 0, jax.random.key(0))
    with pytest.raises(DataError, match="shape"):
        bounds.bounds(result.model, result.variables, x[:, :4], 3, jax.random.key(0))
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        bounds.binarize_once(x + 1.0)


def test_test_set_binarization_is_fixed_and_unbiased(digits):
    x = digits.x_test
    once = bounds.binarize_once(x)
    np.testing.assert_array_equal(once, bounds.binarize_once(x))
    assert set(np.unique(once)) == {0.0, 1.0}
    assert abs(once.mean() - x.mean()) < 4 * math.sqrt(0.25 / x.size)
    assert not np.array_equal(once, bounds.binarize_once(x, seed=1))


class _Probe(nn.Module):
    """Stores the batch it is trained on in a ``probe`` collection; a constant loss."""

    input_shape: tuple = (8, 8, 1)
    phases = (("autoencoder", "__call__"),)

    @nn.compact
    def __call__(self, x, *, train=False, mask=None):
        seen = self.variable("probe", "seen", jnp.zeros, x.shape)
        seen.value = x
        w = self.param("w", nn.initializers.zeros, ())
        return x, {"terms": {"reconstruction": w * x.reshape(x.shape[0], -1).sum(1)}}


def test_dynamic_binarization_shows_the_model_fresh_bernoulli_bits(digits):
    image = digits.x_test[3]  # one grey digit, [8, 8, 1]
    batch = np.broadcast_to(image, (2000, *image.shape)).copy()
    tx = optax.sgd(0.0)
    state = TrainState(
        step=jnp.zeros((), jnp.int32),
        params={"w": jnp.zeros(())},
        opt_state={"autoencoder": tx.init({"w": jnp.zeros(())})},
        model_state={"probe": {"seen": jnp.zeros(batch.shape)}},
        rng=jax.random.key(0),
    )
    step = jax.jit(make_train_step(_Probe(), tx, binarize=True))
    s1, _ = step(state, {"x": batch}, state.rng)
    s2, _ = step(s1, {"x": batch}, state.rng)
    seen1 = np.asarray(s1.model_state["probe"]["seen"])
    seen2 = np.asarray(s2.model_state["probe"]["seen"])
    assert set(np.unique(seen1)) <= {0.0, 1.0}
    # Per pixel, the bits' mean over 2000 copies is the intensity (4 sigma).
    tol = 4 * np.sqrt(image * (1 - image) / batch.shape[0]) + 1e-6
    assert np.all(np.abs(seen1.mean(0) - image) <= tol)
    assert not np.array_equal(seen1, seen2)  # the step is folded into the key: new bits
    plain = jax.jit(make_train_step(_Probe(), tx))(state, {"x": batch}, state.rng)[0]
    np.testing.assert_array_equal(plain.model_state["probe"]["seen"], batch)


def test_kl_warmup_and_capacity_schedules_are_recorded(digits):
    base = VAE.replace(epochs=3, beta=2.0)
    steps = 3 * (digits.x_train.shape[0] // base.batch_size)
    warm = train(base.replace(kl_warmup_steps=steps), dataset=digits).history
    weights = [r["weight_kl"] for r in warm]
    assert 0 < weights[0] < weights[1] < weights[2] == pytest.approx(2.0)
    assert weights[0] == pytest.approx(2.0 / 3, rel=1e-5)
    plain = train(base, dataset=digits).history
    assert "weight_kl" not in plain[0]
    # A weak KL weight early lets the posterior move further from the prior.
    assert warm[0]["train_kl"] > plain[0]["train_kl"]
    cap = train(base.replace(capacity=6.0, capacity_steps=steps), dataset=digits).history
    caps = [r["capacity"] for r in cap]
    assert caps == pytest.approx([2.0, 4.0, 6.0], rel=1e-5)


def test_binarize_is_refused_for_tables():
    table = build_dataset("t", np.random.default_rng(0).standard_normal((40, 3)))
    with pytest.raises(ConfigError, match="binarize=true needs image data"):
        train(VAE.replace(binarize=True, data="t"), dataset=table)


def test_evaluate_iw_on_the_command_line(binarized_run, digits, capsys):
    workdir, result, x = binarized_run
    args = ["evaluate", str(workdir), "--iw", "20", "--iw-examples", "64"]
    assert cli.main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["iw_k"] == 20 and out["iw_examples"] == 64 and out["iw_seconds"] > 0
    assert "binarized once" in out["iw_test_set"] and "seed 0" in out["iw_test_set"]
    # The iw_ figures cover the 64 bounded examples: the same numbers as the library on
    # the same fixed binarization and key.
    direct = bounds.bound_report(result.model, result.variables, x, 20, jax.random.key(0))
    assert out["iw_elbo"] == pytest.approx(direct["test_elbo"], rel=1e-9)
    assert out["iw_nll"] == pytest.approx(direct["iw_nll"], rel=1e-9)
    assert 0 < out["iw_nll"] < -out["iw_elbo"]  # the IW bound is the tighter one
    # The test_ figures cover the whole split, as without --iw.
    assert out["test_examples"] == digits.x_test.shape[0] == 360
    assert cli.main(["evaluate", str(workdir), "--json"]) == 0
    whole = json.loads(capsys.readouterr().out)
    for key in ("test_elbo", "test_kl", "test_reconstruction_nll", "test_recon_mse"):
        assert out[key] == whole[key], key
    assert abs(out["test_elbo"] - out["iw_elbo"]) > 0.1
    assert cli.main(args) == 0
    text = capsys.readouterr().out
    lines = {line.split()[0]: line.split()[1] for line in text.splitlines() if line.strip()}
    assert float(lines["iw_elbo"]) == pytest.approx(out["iw_elbo"], rel=1e-5)
    assert float(lines["test_elbo"]) == pytest.approx(out["test_elbo"], rel=1e-5)
    assert float(lines["iw_nll"]) == pytest.approx(out["iw_nll"], rel=1e-5)
    assert "binarized" in text
    assert "cover all 360 test examples; iw_* the first 64" in text


def _noisy_table(path):
    """800 rows, 8 features: a 2-d signal of unit variance per feature plus noise whose
    standard deviation is one of four levels (two features each)."""
    rng = np.random.default_rng(0)
    noise = np.array([0.03, 0.2, 0.5, 1.5] * 2)
    a = rng.standard_normal((2, 8))
    a /= np.linalg.norm(a, axis=0)
    x = rng.standard_normal((800, 2)) @ a + noise * rng.standard_normal((800, 8))
    np.savetxt(path, x, delimiter=",", fmt="%.6f")
    return noise**2 / (1 + noise**2)  # the residual variance after standardization


def _learned_variances(model, variables, x):
    _, aux = model.apply(variables, x)
    _, logvar = model.likelihood.split(aux["decoder_output"])
    return np.exp(np.asarray(logvar, np.float64)).mean(0)


def _check_variances(learned, true, carried=0):
    """Per noise level, every learned variance is below every one of the next level, and
    the two noisiest levels' are learned within 50%.

    ``carried``: how many features may be exempt because the code carries them verbatim
    (a deterministic code of width L can reproduce up to L features exactly; their learned
    variance then falls towards the floor, which is the maximum-likelihood answer).
    """
    collapsed = learned < 0.5 * true
    assert collapsed.sum() <= carried, (learned, true)
    learned, true = learned[~collapsed], true[~collapsed]
    levels = np.unique(true)
    for lo, hi in zip(levels[:-1], levels[1:], strict=True):
        assert learned[true == lo].max() < learned[true == hi].min(), (learned, true)
    for level in levels[-2:]:
        np.testing.assert_allclose(learned[true == level], level, rtol=0.5)


def test_learned_variance_gaussian_on_a_table_end_to_end(tmp_path, capsys):
    csv = tmp_path / "noisy.csv"
    true = _noisy_table(csv)
    # One checkpoint at the end: a save per epoch would cost more than the training.
    hp = ["hidden=32", "batch_size=32", "lr=0.01", "warmup_steps=5", "checkpoint_every=60"]
    sets = [a for kv in [*hp, "likelihood=gaussian_learned"] for a in ("--set", kv)]
    flags = ["--model", "vae", "--data", str(csv), "--epochs", "60", "--latent-dim", "2"]
    workdir = tmp_path / "vae"
    argv = ["train", *flags, *sets, "--devices", "1", "--no-progress", "--workdir", str(workdir)]
    assert cli.main([*argv, "--json"]) == 0
    capsys.readouterr()
    _, model, variables, scaler = load_run(workdir)
    ds = load_dataset(str(csv))
    assert model.likelihood.name == "gaussian_learned"
    _check_variances(_learned_variances(model, variables, ds.x_test), true)
    history = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert history[-1]["train_reconstruction"] < history[0]["train_reconstruction"] - 10

    # The bounds of a tabular run: densities of the standardized features, and in raw units.
    assert cli.main(["evaluate", str(workdir), "--iw", "50", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["iw_examples"] == ds.x_test.shape[0] and "standardized" in out["iw_test_set"]
    assert out["iw_nll"] <= -out["iw_elbo"]
    log_jacobian = np.log(scaler.scale.astype(np.float64)).sum()
    assert out["iw_nll_raw_units"] == pytest.approx(out["iw_nll"] + log_jacobian)

    # The plain autoencoder learns them too, except for (at most latent_dim) features that
    # its deterministic code carries verbatim: measured, one of the 8 collapses to 1% of
    # its noise variance.
    ae = train(
        VAE.replace(
            model="ae", data=str(csv), likelihood="gaussian_learned", latent_dim=2, epochs=60
        ).with_overrides(hp),
        tmp_path / "ae",
        dataset=ds,
    )
    _check_variances(_learned_variances(ae.model, ae.variables, ds.x_test), true, carried=2)
    recon = [r["train_reconstruction"] for r in ae.history]
    assert recon[-1] < recon[0] - 5
    # And refuses bounds: its code defines no posterior density.
    assert cli.main(["evaluate", str(tmp_path / "ae"), "--iw", "5"]) == 2
    assert "Gaussian code" in capsys.readouterr().err


# The posterior models whose KL is weighted by their own terms, not by a beta.
_OWN_KL_WEIGHTS = [
    name
    for name, spec in aejax.MODELS.items()
    if spec.posterior and "beta" not in config_keys(name)
]


@pytest.mark.parametrize("name", _OWN_KL_WEIGHTS)
def test_the_posterior_capability_gives_bounds_and_a_collapse_warning_without_beta(name):
    # A Gaussian q(z|x) and the N(0, I) prior: the likelihood bounds, active units and the
    # collapse warning apply; the warning advises the model's own weights, not a beta.
    assert {"beta_tcvae", "factor_vae"} <= set(_OWN_KL_WEIGHTS)
    shape = (8, 8, 1)
    model = create_model(name, shape, "bernoulli", n_train=100, **aejax.MODELS[name].test_config)
    assert model.has_posterior and aejax.MODELS[name].posterior
    x = jax.random.uniform(jax.random.key(0), (6, *shape))
    variables = model.init({"params": jax.random.key(1), "sample": jax.random.key(2)}, x)
    b = bounds.bounds(model, variables, np.asarray(x), 4, jax.random.key(3))
    _, aux = model.apply(variables, x)
    np.testing.assert_allclose(b["kl"], aux["terms"]["kl"], rtol=1e-5)
    assert np.all(np.isfinite(b["iw"])) and np.all(np.isfinite(b["elbo"]))
    summary = {"active_units": 0, "latent_units": 4, "test_kl": 0.01}
    warning = collapse_warning(summary, aejax.Config(model=name))
    assert "posterior collapse" in warning and f"--model {name}" in warning
    assert "beta" not in warning.replace("beta_tcvae", "")
