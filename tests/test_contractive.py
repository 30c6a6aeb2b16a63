"""contractive_ae: the penalty against finite differences, the closed form, and training."""

import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _configs import SMALL

from aejax import Config
from aejax.assemble import train
from aejax.errors import ConfigError
from aejax.models import create_model
from aejax.models.contractive import resolve_jacobian, sigmoid_layer_penalty

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # benchmarks/ is not an installed package
from benchmarks import penalty_cost, records  # noqa: E402


def _model(shape, method, hidden=(16,), lik="gaussian", activation="tanh"):
    return create_model(
        "contractive_ae",
        shape,
        lik,
        hidden=hidden,
        latent_dim=5,
        activation=activation,
        contractive_jacobian=method,
    )


def _numpy_code(params, x):
    """The encoder map h(x) = sigmoid(tanh(x W0 + b0) W1 + b1) in float64, ``x: [D]``."""
    enc = {k: {n: np.asarray(v, np.float64) for n, v in p.items()} for k, p in params.items()}
    a = np.tanh(x @ enc["dense_0"]["kernel"] + enc["dense_0"]["bias"])
    return 1 / (1 + np.exp(-(a @ enc["dense_1"]["kernel"] + enc["dense_1"]["bias"])))


@pytest.mark.parametrize("method", ["forward", "reverse"])
def test_penalty_equals_a_finite_difference_jacobian(method):
    model = _model((30,), method)
    x = jax.random.normal(jax.random.key(0), (4, 30))
    variables = model.init(jax.random.key(1), x)
    _, aux = model.apply(variables, x)
    enc = variables["params"]["encoder"]
    xs = np.asarray(x, np.float64)
    np.testing.assert_allclose(_numpy_code(enc, xs), aux["z"], rtol=1e-5, atol=1e-6)
    eps = 1e-6
    expected = []
    for xi in xs:
        cols = [
            (_numpy_code(enc, xi + eps * e) - _numpy_code(enc, xi - eps * e)) / (2 * eps)
            for e in np.eye(30)
        ]
        expected.append(np.sum(np.square(cols)))  # ||J||_F^2, J: [K, D]
    np.testing.assert_allclose(aux["terms"]["contractive"], expected, rtol=1e-4)


def test_closed_form_equals_the_general_jacobian():
    x = jax.random.uniform(jax.random.key(2), (6, 8, 8, 1))
    methods = ("auto", "closed_form", "forward", "reverse")
    models = {m: _model((8, 8, 1), m, hidden=(), lik="bernoulli") for m in methods}
    assert models["auto"].penalty.method == "closed_form"
    variables = models["auto"].init(jax.random.key(3), x)
    got = {m: model.apply(variables, x)[1]["terms"]["contractive"] for m, model in models.items()}
    for m in ("forward", "reverse", "closed_form"):
        np.testing.assert_allclose(got[m], got["auto"], rtol=1e-5, err_msg=m)
    # And the closed form itself, from the layer's outputs and kernel.
    layer = variables["params"]["encoder"]["dense_0"]
    kernel = layer["kernel"]
    h = jax.nn.sigmoid(x.reshape(6, -1) @ kernel + layer["bias"][None])
    np.testing.assert_allclose(sigmoid_layer_penalty(h, kernel), got["auto"], rtol=1e-5)


def test_forward_and_reverse_agree_on_images_and_skip_the_decoder():
    x = jax.random.uniform(jax.random.key(4), (3, 8, 8, 1))
    fwd = _model((8, 8, 1), "forward", lik="bernoulli", activation="gelu")
    rev = _model((8, 8, 1), "reverse", lik="bernoulli", activation="gelu")
    variables = fwd.init(jax.random.key(5), x)
    a = fwd.apply(variables, x)[1]["terms"]["contractive"]
    b = rev.apply(variables, x)[1]["terms"]["contractive"]
    np.testing.assert_allclose(a, b, rtol=1e-5)

    def penalty(params):
        return rev.apply({"params": params}, x)[1]["terms"]["contractive"].sum()

    grads = jax.grad(penalty)(variables["params"])
    assert all(float(jnp.abs(g).max()) == 0 for g in jax.tree.leaves(grads["decoder"]))
    assert any(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(grads["encoder"]))


def test_auto_picks_the_cheaper_direction_and_refuses_what_cannot_work():
    assert resolve_jacobian("auto", (784,), (), 30) == "closed_form"
    assert resolve_jacobian("auto", (28, 28, 1), (256,), 30) == "reverse"
    assert resolve_jacobian("auto", (10,), (64,), 32) == "forward"
    with pytest.raises(ConfigError, match="closed_form needs one sigmoid layer"):
        _model((30,), "closed_form", hidden=(16,))
    with pytest.raises(ConfigError, match="contractive_jacobian"):
        Config(model="contractive_ae", contractive_jacobian="finite")


@pytest.mark.parametrize(
    "changes",
    [{"hidden": ()}, {"hidden": (32,), "contractive_jacobian": "forward"}],
    ids=["closed_form", "forward"],
)
def test_contractive_ae_trains_on_digits(changes, digits):
    config = SMALL.replace(model="contractive_ae", epochs=4, contractive_weight=1.0, **changes)
    history = train(config, dataset=digits).history
    first, last = history[0], history[-1]
    assert last["train_loss"] < 0.9 * first["train_loss"], history
    assert last["val_loss"] < first["val_loss"]
    assert "train_contractive" in last and "val_contractive" in last
    assert np.isfinite(last["val_contractive"]) and last["val_contractive"] > 0


def test_penalty_cost_benchmark_writes_valid_records():
    recs = penalty_cost.measure_case((8, 8, 1), (), repeats=1)
    assert [r["config"]["bench"]["penalty"] for r in recs] == [
        "none", "closed_form", "forward", "reverse"
    ]  # fmt: skip
    assert all(records.validate(r) == [] for r in recs)
    assert recs[0]["values"]["cost_vs_no_penalty"] == 1.0
    assert all(r["compile_seconds"] > 0 and r["values"]["step_ms_median"] > 0 for r in recs)
    assert penalty_cost.markdown(recs).count("\n| 8x8x1 | () |") == 4
