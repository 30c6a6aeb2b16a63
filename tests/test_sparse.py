"""sparse_ae: each mechanism's penalty against its formula, top-k's exact k, and training."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _configs import SMALL

from aejax import Config
from aejax.assemble import train
from aejax.errors import ConfigError
from aejax.models import create_model, model_from_config
from aejax.models.objective import make_objective
from aejax.models.sparse import kl_sparsity, l1_penalty, sparsity_stats, top_k_mask
from aejax.train.step import make_eval_step


def _kl_formula(z: np.ndarray, rho: float) -> float:
    """Ng's sum_j KL(rho || rho_hat_j), in float64."""
    q = z.astype(np.float64).mean(axis=0)
    return float(np.sum(rho * np.log(rho / q) + (1 - rho) * np.log((1 - rho) / (1 - q))))


def test_kl_sparsity_is_ngs_formula_for_every_example():
    z = np.asarray(jax.nn.sigmoid(jax.random.normal(jax.random.key(0), (16, 6)) * 2 - 1))
    got = np.asarray(kl_sparsity(jnp.asarray(z), 0.05))
    assert got.shape == (16,)
    np.testing.assert_allclose(got, _kl_formula(z, 0.05), rtol=1e-5)
    # rho_hat == rho everywhere: no penalty.
    np.testing.assert_allclose(kl_sparsity(jnp.full((4, 3), 0.2), 0.2), 0.0, atol=1e-6)


def test_kl_gradient_is_the_batch_terms_gradient():
    # The objective's mean over the batch is the penalty itself: its gradient is Ng's
    # d/dz_bj = (-rho / rho_hat_j + (1 - rho) / (1 - rho_hat_j)) / B.
    z = jax.nn.sigmoid(jax.random.normal(jax.random.key(1), (8, 5)))
    rho = 0.1
    grad = jax.grad(lambda v: kl_sparsity(v, rho).mean())(z)
    q = z.mean(0)
    expected = jnp.broadcast_to((-rho / q + (1 - rho) / (1 - q)) / z.shape[0], z.shape)
    np.testing.assert_allclose(grad, expected, rtol=1e-4)


def test_l1_penalty_and_stats():
    z = jnp.array([[0.0, 2.0, 0.0, 1.0], [3.0, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(l1_penalty(z), [3.0, 3.0])
    stats = sparsity_stats(z, z > 0)
    np.testing.assert_allclose(stats["mean_activation"], 6.0 / 8)
    np.testing.assert_allclose(stats["active_fraction"], 3.0 / 8)


@pytest.mark.parametrize("k", [1, 3, 6])
def test_top_k_keeps_exactly_k_the_largest_and_breaks_ties_by_index(k):
    h = jax.random.normal(jax.random.key(2), (32, 6))
    h = h.at[0].set(0.5).at[1].set(jnp.array([1.0, 2.0, 2.0, 2.0, 0.0, 2.0]))  # ties
    mask = np.asarray(top_k_mask(h, k))
    assert set(np.unique(mask)) <= {0.0, 1.0}
    np.testing.assert_array_equal(mask.sum(axis=1), k)
    hn = np.asarray(h)
    for row, m in zip(hn, mask, strict=True):
        # Every kept entry is at least every dropped one.
        if k < 6:
            assert row[m > 0].min() >= row[m == 0].max()
    np.testing.assert_array_equal(np.flatnonzero(mask[0]), np.arange(k))  # all equal
    if k == 3:
        np.testing.assert_array_equal(np.flatnonzero(mask[1]), [1, 2, 3])  # lower index wins


def test_topk_model_codes_have_k_nonzeros_and_no_term():
    model = create_model(
        "sparse_ae", (8, 8, 1), hidden=(16,), latent_dim=6, sparsity="topk", sparsity_k=2
    )
    x = jax.random.uniform(jax.random.key(3), (5, 8, 8, 1))
    variables = model.init(jax.random.key(4), x)
    _, aux = model.apply(variables, x)
    np.testing.assert_array_equal((np.asarray(aux["z"]) != 0).sum(axis=1), 2)
    assert set(aux["terms"]) == {"reconstruction"}
    np.testing.assert_allclose(aux["stats"]["active_fraction"], 2 / 6)
    z = model.apply(variables, x, method=model.encode)
    np.testing.assert_array_equal(z, aux["z"])


def test_kl_model_term_is_the_formula_and_eval_weights_padding_out():
    model = create_model("sparse_ae", (30,), "gaussian", hidden=(16,), latent_dim=5)
    x = jax.random.normal(jax.random.key(5), (8, 30))
    variables = model.init(jax.random.key(6), x)
    _, aux = model.apply(variables, x)
    np.testing.assert_allclose(aux["terms"]["sparsity"], _kl_formula(np.asarray(aux["z"]), 0.05))
    # Eval sums term * weight over real rows: a batch of 8 real rows reports its penalty.
    objective = make_objective(Config(model="sparse_ae"), 1)
    sums = make_eval_step(model, objective)(variables, {"x": x, "weight": jnp.ones(8)})
    np.testing.assert_allclose(sums["sparsity"] / sums["count"], aux["terms"]["sparsity"][0])


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="sparsity_k=9"):
        create_model("sparse_ae", (30,), "gaussian", latent_dim=8, sparsity="topk", sparsity_k=9)
    with pytest.raises(ConfigError, match="sparsity"):
        Config(model="sparse_ae", sparsity="l2")
    with pytest.raises(ConfigError, match="does not use"):
        model_from_config(Config(model="ae", sparsity="topk"), (30,), "tabular")


@pytest.mark.parametrize(
    ("model", "changes"),
    [
        ("sparse_ae", {"sparsity": "l1"}),
        ("sparse_ae", {"sparsity": "kl"}),
        ("sparse_ae", {"sparsity": "topk", "sparsity_k": 2}),
        ("conv_sparse_ae", {"sparsity": "topk", "sparsity_k": 2, "conv_features": (8, 16)}),
    ],
)
def test_every_mechanism_trains_on_digits_and_logs_its_sparsity(model, changes, digits):
    hidden = {"hidden": (32,)} if model == "sparse_ae" else {}
    config = SMALL.replace(model=model, epochs=4, latent_dim=8, **hidden, **changes)
    history = train(config, dataset=digits).history
    first, last = history[0], history[-1]
    assert last["train_loss"] < 0.9 * first["train_loss"], history
    assert last["val_loss"] < first["val_loss"]
    for stat in ("mean_activation", "active_fraction"):
        assert f"train_{stat}" in last and f"val_{stat}" in last
        assert 0 <= last[f"val_{stat}"] and np.isfinite(last[f"val_{stat}"])
    if changes["sparsity"] == "topk":
        np.testing.assert_allclose(last["val_active_fraction"], 2 / 8)
    if changes["sparsity"] == "kl":
        # The rate falls from sigmoid(~0) = 0.5 toward the target 0.05.
        assert last["train_mean_activation"] < first["train_mean_activation"]
