"""The vector-quantized autoencoder (vq_vae): assignment, straight-through, EMA, restarts."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _configs import SMALL
from _trees import host_leaves

from aejax.assemble import train
from aejax.errors import ConfigError, DataError
from aejax.models import MODELS
from aejax.models.vq import VectorQuantizer, usage_stats

CONFIG = SMALL.replace(model="vq_vae", epochs=4, **MODELS["vq_vae"].test_config)


@pytest.fixture(scope="module")
def run(digits):
    """One uninterrupted run of the tiny vq_vae on digits (compiling dominates its time)."""
    return train(CONFIG, dataset=digits)


def _quantizer(**kw):
    fields = {"grid": (2, 2), "codebook_size": 4, "code_dim": 2, "decay": 0.5, "restart": False}
    return VectorQuantizer(**{**fields, **kw})


def _step(vq, variables, h, key=0):
    """One training forward pass: ``(z_q, aux, updated vq_ema)``."""

    @jax.jit
    def step(variables, h, key):
        return vq.apply(variables, h, train=True, mutable=["vq_ema"], rngs={"sample": key})

    (z, aux), state = step(variables, h, jax.random.key(key))
    return z, aux, state["vq_ema"]


def test_assignment_is_the_nearest_code_and_z_is_the_codebook_vector():
    vq = VectorQuantizer(grid=(3, 4), codebook_size=10, code_dim=5)
    h = jax.random.normal(jax.random.key(0), (2, 3, 4, 5))
    # Jitted: eager, every small op compiles on its own (seconds on a busy CPU).
    variables = jax.jit(vq.init)(jax.random.key(1), h)
    codebook = np.asarray(variables["vq_ema"]["codebook"], np.float64)

    @jax.jit
    def apply(v, h):
        return vq.apply(v, h), vq.apply(v, h, method=vq.codes), vq.apply(v, h, method=vq.encode)

    (z, out), codes, encoded = apply(variables, h)
    flat = np.asarray(h, np.float64).reshape(-1, 5)
    brute = ((flat[:, None, :] - codebook[None]) ** 2).sum(-1).argmin(1)
    assert len(set(brute.tolist())) > 3  # a real test of the choice, not one code for all
    np.testing.assert_array_equal(out["outputs"]["codes"], brute.reshape(2, 3, 4))
    np.testing.assert_array_equal(codes, brute.reshape(2, 3, 4))
    # The forward value is exactly the chosen code vector; encode is the same, deterministic.
    e = np.asarray(variables["vq_ema"]["codebook"])[brute].reshape(2, 3, 4, 5)
    np.testing.assert_array_equal(z, e)
    np.testing.assert_array_equal(encoded, e)
    commitment = ((np.asarray(h, np.float64) - e) ** 2).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(out["terms"]["commitment"], commitment, rtol=1e-5)
    assert set(out["terms"]) == {"commitment"}  # EMA mode: no codebook term
    # The uniform prior gives codebook rows on the grid, from the "sample" stream.
    prior = vq.apply(variables, 50, method=vq.sample_prior, rngs={"sample": jax.random.key(2)})
    assert prior.shape == (50, 3, 4, 5)
    rows = np.asarray(prior).reshape(-1, 1, 5) == np.asarray(variables["vq_ema"]["codebook"])
    assert rows.all(-1).any(-1).all()


def test_straight_through_gradient_reaches_the_encoder(run, digits):
    vq = _quantizer()
    h = jax.random.normal(jax.random.key(0), (3, 2, 2, 2))
    variables = jax.jit(vq.init)(jax.random.key(1), h)
    c = jax.random.normal(jax.random.key(2), h.shape)
    grad = jax.jit(jax.grad(lambda h: jnp.sum(vq.apply(variables, h)[0] * c)))(h)
    np.testing.assert_array_equal(grad, c)  # d z_q / d z_e = identity
    # In the trained model: the reconstruction term alone trains every encoder layer.
    model, variables = run.model, run.variables
    x = jnp.asarray(digits.x_val[:4])

    def recon(params):
        _, aux = model.apply({**variables, "params": params}, x)
        return aux["terms"]["reconstruction"].mean(), aux

    grads, aux = jax.jit(jax.grad(recon, has_aux=True))(variables["params"])
    codebook = np.asarray(variables["vq_ema"]["code"]["codebook"])
    np.testing.assert_array_equal(aux["z"], codebook[np.asarray(aux["codes"])])
    assert aux["z"].shape == (4, 2, 2, 8) and aux["codes"].shape == (4, 2, 2)
    grads = grads["encoder"]
    for layer in ("conv_0", "conv_1", "to_code"):
        assert float(jnp.abs(grads[layer]["kernel"]).sum()) > 1e-4, layer
    assert "code" not in variables["params"]  # EMA mode: the codebook is no parameter


def test_ema_update_matches_the_formula_on_a_hand_checked_example():
    vq = _quantizer(codebook_size=3)
    codebook = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], np.float32)
    counts = np.array([2.0, 1.0, 1.0], np.float32)
    sums = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], np.float32)
    state = {"codebook": codebook, "counts": counts, "sums": sums}
    # Four cells: two nearest code 0, two nearest code 1, none code 2.
    cells = np.array([[0.1, 0.1], [0.9, 0.2], [1.1, -0.1], [0.2, 0.1]], np.float32)
    h = jnp.asarray(cells.reshape(1, 2, 2, 2))
    _, aux, new = _step(vq, {"vq_ema": state}, h)
    np.testing.assert_array_equal(aux["outputs"]["codes"].reshape(-1), [0, 1, 1, 0])
    # By hand, d = 0.5: N = 0.5 [2, 1, 1] + 0.5 [2, 2, 0] = [2, 1.5, 0.5] (N = 4);
    # m = 0.5 m + 0.5 [[0.3, 0.2], [2.0, 0.1], [0, 0]]; e = m / N' with N' ~ N.
    np.testing.assert_allclose(new["counts"], [2.0, 1.5, 0.5], rtol=1e-6)
    np.testing.assert_allclose(new["sums"], [[0.15, 0.1], [1.5, 0.05], [0.0, 0.5]], rtol=1e-6)
    np.testing.assert_allclose(new["codebook"], [[0.075, 0.05], [1.0, 1 / 30], [0, 1]], atol=1e-4)
    # The same in numpy from the assignments, with the Laplace smoothing exactly.
    onehot = np.eye(3)[[0, 1, 1, 0]]
    n_k, eps = onehot.sum(0), 1e-5
    want_n = 0.5 * counts + 0.5 * n_k
    want_m = 0.5 * sums + 0.5 * onehot.T @ cells
    smoothed = (want_n + eps) / (want_n.sum() + 3 * eps) * want_n.sum()
    np.testing.assert_allclose(new["codebook"], want_m / smoothed[:, None], rtol=1e-6)
    # From N = m = 0 the EMA bias cancels in m / N: one step gives each used code the mean
    # of its cells; the unused code 2 keeps its vector (rather than 0 / eps = 0).
    zero = {"codebook": codebook, "counts": 0 * counts, "sums": 0 * sums}
    _, _, first = _step(vq, {"vq_ema": zero}, h)
    np.testing.assert_allclose(first["counts"], [1.0, 1.0, 0.0])
    np.testing.assert_allclose(first["codebook"], [[0.15, 0.1], [1.0, 0.05], [0, 1]], rtol=1e-4)
    # Evaluation, or a training pass that may not write the collection, changes nothing.
    _, again = vq.apply({"vq_ema": state}, h, train=True, rngs={"sample": jax.random.key(0)})
    np.testing.assert_array_equal(again["outputs"]["codes"].reshape(-1), [0, 1, 1, 0])
    _, mutated = vq.apply({"vq_ema": state}, h, mutable=["vq_ema"])
    for k in state:
        np.testing.assert_array_equal(mutated["vq_ema"][k], state[k])


def test_dead_code_restart_moves_an_unused_code_onto_a_batch_output():
    vq = _quantizer(restart=True)
    codebook = np.array([[0, 0], [1, 0], [0, 1], [50, 50]], np.float32)
    counts = np.array([4.0, 4.0, 4.0, 0.01], np.float32)
    state = {"codebook": codebook, "counts": counts, "sums": counts[:, None] * codebook}
    cells = np.array([[0.1, 0.0], [1.0, 0.1], [0.0, 0.9], [0.2, 0.2]], np.float32)
    h = jnp.asarray(cells.reshape(1, 2, 2, 2))
    _, aux, new = _step(vq, {"vq_ema": state}, h, key=3)
    np.testing.assert_array_equal(aux["outputs"]["codes"].reshape(-1), [0, 1, 2, 0])
    # Counts [3, 2.5, 2.5, 0.005], total 8.005: code 3 is below 3% of 8.005 / 4, so dead.
    moved = np.asarray(new["codebook"][3])
    assert (moved == cells).all(1).sum() == 1, moved  # exactly one of the batch's outputs
    total = 3.0 + 2.5 + 2.5 + 0.005
    np.testing.assert_allclose(new["counts"], [3.0, 2.5, 2.5, total / 4], rtol=1e-6)
    np.testing.assert_allclose(new["sums"][3], total / 4 * moved, rtol=1e-6)
    # The live codes follow the EMA formula untouched by the restart.
    want_m = 0.5 * state["sums"][:3] + 0.5 * np.array([[0.3, 0.2], [1.0, 0.1], [0.0, 0.9]])
    np.testing.assert_allclose(new["sums"][:3], want_m, rtol=1e-6)
    np.testing.assert_allclose(new["codebook"][:3], want_m / [[3.0], [2.5], [2.5]], rtol=1e-4)
    # The next batch uses the restarted code for the output it sits on.
    _, aux = vq.apply({"vq_ema": new}, jnp.asarray(moved.reshape(1, 1, 1, 2)))
    assert int(aux["outputs"]["codes"].reshape(-1)[0]) == 3

    # "loss" mode: the parameter stays, the state's offset puts the code on the output.
    vq = _quantizer(restart=True, update="loss")
    variables = {
        "params": {"codebook": codebook},
        "vq_ema": {"counts": counts, "offset": 0 * codebook},
    }
    _, aux, new = _step(vq, variables, h, key=3)
    assert set(aux["terms"]) == {"commitment", "codebook"}
    np.testing.assert_allclose(new["counts"], [3.0, 2.5, 2.5, total / 4], rtol=1e-6)
    np.testing.assert_array_equal(new["offset"][:3], 0.0)
    in_use = vq.apply({**variables, "vq_ema": new}, method=vq.codebook)
    np.testing.assert_array_equal(in_use[:3], codebook[:3])
    assert np.isclose(np.asarray(in_use[3]), cells, atol=1e-5).all(1).sum() == 1


def test_perplexity_and_usage_on_known_assignments():
    stats = usage_stats(jnp.array([2.0, 2.0, 0.0, 0.0]))
    np.testing.assert_allclose(stats["perplexity"], 2.0, rtol=1e-6)
    np.testing.assert_allclose(stats["codebook_usage"], 0.5)
    stats = usage_stats(jnp.array([5.0, 5.0, 5.0, 5.0]))
    np.testing.assert_allclose(stats["perplexity"], 4.0, rtol=1e-6)
    np.testing.assert_allclose(stats["codebook_usage"], 1.0)
    # Through the module: cells on codes [0, 0, 1, 2] of K = 4, p = [1/2, 1/4, 1/4, 0]:
    # entropy 1.5 ln 2, perplexity 2 ** 1.5; usage 3 / 4.
    vq = _quantizer()
    codebook = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.float32)
    state = {"codebook": codebook, "counts": np.ones(4, np.float32), "sums": codebook}
    h = jnp.asarray(codebook[[0, 0, 1, 2]].reshape(1, 2, 2, 2))
    _, out = vq.apply({"vq_ema": state}, h)
    np.testing.assert_allclose(out["stats"]["perplexity"], 2**1.5, rtol=1e-6)
    np.testing.assert_allclose(out["stats"]["codebook_usage"], 0.75)


def test_loss_mode_codebook_term_trains_the_codebook_parameter():
    vq = _quantizer(update="loss", codebook_size=6, code_dim=3)
    h = jax.random.normal(jax.random.key(0), (2, 2, 2, 3))
    variables = jax.jit(vq.init)(jax.random.key(1), h)
    assert set(variables) == {"params"} and variables["params"]["codebook"].shape == (6, 3)
    w = variables["params"]["codebook"]

    def term(name, w, h):
        return vq.apply({"params": {"codebook": w}}, h)[1]["terms"][name].sum()

    @jax.jit
    def everything(w, h):
        (_, out), codes = vq.apply(variables, h), vq.apply(variables, h, method=vq.codes)
        grads = {n: jax.grad(term, argnums=(1, 2))(n, w, h) for n in ("codebook", "commitment")}
        return out["terms"]["codebook"], codes, grads

    per_example, codes, grads = everything(w, h)
    codes = np.asarray(codes).reshape(-1)
    flat = np.asarray(h, np.float64).reshape(-1, 3)
    e = np.asarray(w, np.float64)[codes]
    np.testing.assert_allclose(per_example, ((flat - e) ** 2).reshape(2, -1).sum(1), rtol=1e-5)
    # d/de_k sum ||sg(z) - e_k||^2 = sum over the cells of k of 2 (e_k - z).
    want = np.zeros((6, 3))
    np.add.at(want, codes, 2 * (e - flat))
    assert np.abs(want).sum() > 0 and (np.abs(want).sum(1) == 0).any()  # some codes unused
    np.testing.assert_allclose(grads["codebook"][0], want, rtol=1e-5, atol=1e-6)
    # The stop-gradients: the codebook term leaves the encoder alone, commitment the codes.
    np.testing.assert_array_equal(grads["codebook"][1], 0.0)
    np.testing.assert_array_equal(grads["commitment"][0], 0.0)
    want_h = 2 * (flat - e).reshape(h.shape)
    np.testing.assert_allclose(grads["commitment"][1], want_h, rtol=1e-5)


def test_vq_vae_trains_on_digits_and_8_devices_equal_1(run, digits):
    config, a = CONFIG, run
    first, last = a.history[0], a.history[-1]
    assert last["train_reconstruction"] < 0.8 * first["train_reconstruction"], a.history
    assert last["val_reconstruction"] < first["val_reconstruction"]
    assert 1.0 < last["train_perplexity"] <= config.codebook_size
    assert 0.0 < last["train_codebook_usage"] <= 1.0
    assert "train_commitment" in last and "train_codebook" not in last
    # The EMA state moved: the counts started at 0 and approach the 256 cells of a batch
    # (64 examples x 2 x 2): 256 (1 - 0.99^72) ~ 132 after 72 steps, plus restarts.
    counts = np.asarray(a.state.model_state["vq_ema"]["code"]["counts"])
    assert 120 < counts.sum() < 256
    eight = train(config.replace(devices=8), dataset=digits)
    for x, y in zip(host_leaves(a.state), host_leaves(eight.state), strict=True):
        np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-5)


def test_same_seed_same_bits_and_a_resumed_run_is_bit_identical(run, digits, tmp_path):
    # The fixture's run (no workdir) is the uninterrupted one: a run of the same seed in
    # another call, cut after epoch 1 and resumed, must end on the same bits.
    config, full = CONFIG, run

    def crash_after_one(record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "cut", dataset=digits, on_epoch_end=crash_after_one)
    resumed = train(config, tmp_path / "cut", dataset=digits)
    assert resumed.stats["epochs_run"] == 3
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in lines]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    for key in ("train_loss", "train_perplexity", "val_reconstruction"):
        assert [r[key] for r in records] == [r[key] for r in full.history], key
    assert jax.tree.leaves(resumed.state.model_state)
    for x, y in zip(host_leaves(full.state), host_leaves(resumed.state), strict=True):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(host_leaves(full.model_state), host_leaves(resumed.model_state), strict=True):
        np.testing.assert_array_equal(x, y)


def test_pixelcnn_sampler_fits_the_code_grid_and_draws_images(run, digits):
    from aejax import encode, sample
    from aejax.models import create_model
    from aejax.sampling import SAMPLERS

    model, variables = run.model, run.variables
    codes = encode(model, variables, digits.x_train[:512])  # [512, 2, 2, 8] codebook rows
    opts = {"layers": 2, "channels": 16, "epochs": 2, "sampler": "pixelcnn", "codes": codes}
    x = sample(model, variables, 12, jax.random.key(0), **opts)
    assert x.shape == (12, 8, 8, 1) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_array_equal(sample(model, variables, 12, jax.random.key(0), **opts), x)
    with pytest.raises(DataError, match="not this model's codebook vectors"):
        sample(model, variables, 2, jax.random.key(0), **{**opts, "codes": codes + 0.5})
    with pytest.raises(ConfigError, match="temperature must be a number > 0"):
        sample(model, variables, 2, jax.random.key(0), **opts, temperature=0.0)
    plain = create_model("ae", (8, 8, 1), hidden=(8,), latent_dim=2)
    assert "not a grid of codebook indices" in SAMPLERS["pixelcnn"].applies(plain, None)
