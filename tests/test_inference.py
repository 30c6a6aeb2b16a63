"""Inference (chunking, validation, scalers), generation (prior, mixture, interpolation), CLI."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import aejax
import aejax.sampling.basic
from aejax import cli, inference, sampling
from aejax.assemble import train
from aejax.config import Config
from aejax.errors import DataError
from aejax.run import load_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = dict(hidden=(16,), latent_dim=2, epochs=1, batch_size=64, progress=False, devices=1)


def _init(name: str, input_shape=(8, 8, 1), **overrides):
    """A registry model with its test config and freshly initialized variables."""
    spec = aejax.MODELS[name]
    model = aejax.create_model(name, input_shape, **{**spec.test_config, **overrides})
    x = np.zeros((2, *input_shape), np.float32)
    keys = {"params": jax.random.key(0), "sample": jax.random.key(1)}
    return model, model.init(keys, x)


@pytest.fixture(scope="module")
def ae_run(tmp_path_factory):
    """A 1-epoch dense AE on digits, saved as a run directory."""
    workdir = tmp_path_factory.mktemp("ae") / "run"
    train(Config(data="digits", model="ae", **TINY), workdir)
    return workdir


@pytest.fixture(scope="module")
def tab_run(tmp_path_factory):
    """A 1-epoch dense AE on a 3-column table in raw units around 50 (std 10)."""
    d = tmp_path_factory.mktemp("tab")
    rng = np.random.default_rng(0)
    np.savetxt(d / "t.csv", rng.normal(50.0, 10.0, (120, 3)), delimiter=",")
    train(Config(data=str(d / "t.csv"), model="ae", **TINY), d / "run")
    return d / "run"


# --- batched inference -----------------------------------------------------------------------


def test_chunks_follow_the_widest_activation_and_pad_little():
    assert inference.plan_chunks(4096, 25088) == (512, 8)  # conv AE on MNIST: 25 KiB per row
    assert inference.plan_chunks(4096, 3136) == (4096, 1)  # dense AE: the whole array
    assert inference.plan_chunks(5, 3136) == (8, 1)
    assert inference.plan_chunks(100, 3136, batch_size=32) == (32, 4)
    shapes = set()
    for n in range(1, 3000):
        rows, calls = inference.plan_chunks(n, 16 << 10)  # at most 1024 rows per call
        assert rows <= 1024 and rows * calls >= n
        assert rows * calls - n <= max(7, 0.125 * n), (n, rows, calls)
        shapes.add(rows)
    assert len(shapes) <= 60  # 8 sizes per octave, not one per n


def test_widest_activation_counts_input_values_only():
    def widest(name):
        model, v = _init(name)
        leaves, treedef = jax.tree.flatten(v)
        row = jax.ShapeDtypeStruct((8, 8, 1), np.float32)
        shapes = tuple((a.shape, a.dtype) for a in leaves)
        return inference._widest_activation(model, "call", row, (treedef, shapes))

    assert widest("ae") == 8 * 8 * 4  # the input and the output; the 16-wide layer is less
    # conv_0's [4, 4, 8] and the sub-pixel conv's [2, 2, 4 * 8]; not its [2, 2, 16, 32] kernel.
    assert widest("conv_ae") == 4 * 4 * 8 * 4


def test_chunked_results_equal_one_call_and_score_matches_host_math(digits):
    model, v = _init("vae")
    x = digits.x_test[:50]
    whole = inference.batched_apply(model, v, x, "call")
    chunked = inference.batched_apply(model, v, x, "call", batch_size=16)  # 4 calls, padded
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), whole, chunked
    )
    recon, aux = whole
    scores = aejax.score(model, v, x, batch_size=16)
    assert set(scores) == {"reconstruction", "kl", "sse"}
    sse = np.square(recon - x).reshape(50, -1).sum(axis=1)
    np.testing.assert_allclose(scores["sse"], sse, rtol=1e-5)
    np.testing.assert_allclose(scores["kl"], aux["terms"]["kl"], rtol=1e-5)


def test_encode_decode_round_trip_shapes(digits):
    model, v = _init("ae")
    x = digits.x_test[:10]
    z = aejax.encode(model, v, x)
    assert z.shape == (10, 4) and z.dtype == np.float32
    out = aejax.decode(model, v, z)
    assert out.shape == (10, 8, 8, 1) and 0.0 <= out.min() and out.max() <= 1.0
    recon, aux = aejax.reconstruct(model, v, x)
    np.testing.assert_allclose(recon, out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(aux["z"], z, rtol=1e-6)
    with pytest.raises(DataError, match="NaN/Inf"):
        aejax.decode(model, v, np.full((2, 4), np.nan, np.float32))


def test_check_input_keeps_float32_and_finds_bad_rows():
    x = np.random.default_rng(0).random((20, 3), dtype=np.float32)
    assert inference.check_input(x, (3,)) is x  # no copy of data that is already float32
    assert inference.check_input(x.astype(np.float64), (3,)).dtype == np.float32
    for bad in (np.nan, np.inf, -np.inf):
        y = x.copy()
        y[[4, 9], 1] = bad
        with pytest.raises(DataError, match=r"2 NaN/Inf values in 2 example\(s\), first at row 4"):
            inference.check_input(y, (3,))
    with pytest.raises(DataError, match=r"float pixels in \[0.00547695, 1.99442\]"):
        inference.check_input(x * 2, (3,), image=True)


def test_scaler_is_applied_both_ways(tab_run):
    _, model, v, scaler = load_run(tab_run)
    x = np.random.default_rng(1).normal(50.0, 10.0, (7, 3))  # data units
    recon, _ = aejax.reconstruct(model, v, x, scaler=scaler)
    manual = scaler.inverse_transform(model.apply(v, scaler.transform(x))[0])
    np.testing.assert_allclose(recon, manual, rtol=1e-5, atol=1e-4)
    assert abs(recon.mean() - 50.0) < 15.0  # data units, not standardized ones
    z = aejax.encode(model, v, x, scaler=scaler)
    np.testing.assert_allclose(z, aejax.encode(model, v, scaler.transform(x)), atol=1e-5)
    np.testing.assert_allclose(aejax.decode(model, v, z, scaler=scaler), recon, rtol=1e-5)
    sse = aejax.score(model, v, x, scaler=scaler)["sse"]  # in the model's standardized space
    own = scaler.transform(recon) - scaler.transform(x)
    np.testing.assert_allclose(sse, np.square(own).sum(axis=1), rtol=1e-3, atol=1e-5)


# --- generation ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["vae", "conv_vae", "adversarial_ae", "vq_vae"])
def test_prior_samples_are_deterministic_per_key_and_in_range(name):
    model, v = _init(name)
    assert sampling.has_prior(model, v)
    a = aejax.sample(model, v, 6, jax.random.key(3))
    b = aejax.sample(model, v, 6, jax.random.key(3))
    c = aejax.sample(model, v, 6, jax.random.key(4))
    assert a.shape == (6, 8, 8, 1) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3
    assert 0.0 <= a.min() and a.max() <= 1.0
    assert np.abs(a[0] - a[1]).max() > 1e-4  # six different samples, not one repeated


def test_deterministic_ae_samples_from_a_mixture_of_its_codes(digits):
    model, v = _init("ae")
    assert not sampling.has_prior(model, v)
    with pytest.raises(DataError, match="fitted to training codes.*has no prior of its own"):
        aejax.sample(model, v, 4, jax.random.key(0))
    codes = aejax.encode(model, v, digits.x_train)
    a = aejax.sample(model, v, 8, jax.random.key(0), codes=codes, components=3)
    b = aejax.sample(model, v, 8, jax.random.key(0), codes=codes, components=3)
    c = aejax.sample(model, v, 8, jax.random.key(1), codes=codes, components=3)
    assert a.shape == (8, 8, 8, 1) and 0.0 <= a.min() and a.max() <= 1.0
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3
    # The draws follow the fitted mixture: their moments are those of the training codes.
    z = sampling.basic.mixture_codes(codes, 20000, jax.random.key(2), components=3, seed=0)
    spread = codes.std(axis=0)
    np.testing.assert_allclose(z.mean(axis=0), codes.mean(axis=0), atol=0.05 * spread.max())
    np.testing.assert_allclose(z.std(axis=0), spread, rtol=0.05)


def test_slerp_keeps_the_norm_and_hits_the_endpoints():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    b *= np.linalg.norm(a, axis=1, keepdims=True) / np.linalg.norm(b, axis=1, keepdims=True)
    path = sampling.interpolate_codes(a, b, steps=7, method="slerp")
    assert path.shape == (3, 7, 5)
    norms = np.linalg.norm(path, axis=-1)
    np.testing.assert_allclose(norms, np.repeat(norms[:, :1], 7, axis=1), rtol=1e-5)
    np.testing.assert_allclose(path[:, 0], a, rtol=1e-6)
    np.testing.assert_allclose(path[:, -1], b, rtol=1e-6)
    linear = sampling.interpolate_codes(a, b, steps=7)
    assert (np.linalg.norm(linear[:, 3], axis=-1) < norms[:, 3] - 1e-3).all()  # lerp cuts in
    same = sampling.interpolate_codes(a, a, steps=4, method="slerp")  # angle 0: lerp fallback
    np.testing.assert_allclose(same, np.repeat(a[:, None], 4, axis=1).astype(np.float32))


def test_interpolation_endpoints_and_midpoints_decode_the_codes(digits):
    model, v = _init("ae")
    x_a, x_b = digits.x_test[0], digits.x_test[1]
    z = aejax.encode(model, v, np.stack([x_a, x_b]))
    ends = aejax.decode(model, v, z)
    path = aejax.interpolate(model, v, x_a, x_b, steps=5, method="slerp")
    assert path.shape == (5, 8, 8, 1)
    np.testing.assert_allclose(path[0], ends[0], atol=1e-5)
    np.testing.assert_allclose(path[-1], ends[1], atol=1e-5)
    mid = aejax.interpolate(model, v, x_a, x_b, steps=3)[1]
    np.testing.assert_allclose(
        mid, aejax.decode(model, v, z.mean(axis=0, keepdims=True))[0], atol=1e-5
    )
    lin = sampling.interpolate_codes(z[:1], z[1:], steps=3)
    np.testing.assert_allclose(lin[0, 1], z.mean(axis=0), rtol=1e-6)
    pairs = aejax.interpolate(model, v, digits.x_test[:4:2], digits.x_test[1:4:2], steps=4)
    assert pairs.shape == (2, 4, 8, 8, 1)
    np.testing.assert_allclose(pairs[0], aejax.interpolate(model, v, x_a, x_b, 4), atol=1e-5)


# --- command line ----------------------------------------------------------------------------


def test_cli_sample_and_interpolate_write_pngs(ae_run, tmp_path, capsys):
    out = tmp_path / "s.png"
    assert cli.main(["sample", str(ae_run), "--n", "9", "--seed", "1", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == PNG_MAGIC and str(out) in capsys.readouterr().out
    args = ["interpolate", str(ae_run), "--steps", "5", "--method", "slerp", "--pairs", "2"]
    assert cli.main(args) == 0
    assert (ae_run / "interpolations.png").read_bytes()[:8] == PNG_MAGIC
    assert cli.main(["interpolate", str(ae_run), "--pairs", "100000"]) == 2
    assert "test examples" in capsys.readouterr().err


def test_cli_writes_csv_for_tabular_runs_in_data_units(tab_run):
    assert cli.main(["sample", str(tab_run), "--n", "5"]) == 0
    rows = np.loadtxt(tab_run / "samples.csv", delimiter=",", skiprows=1)
    assert rows.shape == (5, 3) and 20.0 < rows.mean() < 80.0  # raw units around 50
    assert cli.main(["interpolate", str(tab_run), "--steps", "3", "--pairs", "2"]) == 0
    table = np.loadtxt(tab_run / "interpolations.csv", delimiter=",", skiprows=1)
    assert table.shape == (6, 6)  # pair, step, t and 3 features
    np.testing.assert_array_equal(table[:, 2], [0.0, 0.5, 1.0] * 2)


def test_interpolation_grids_show_their_input_endpoints(tmp_path, saved_figures):
    from aejax import plots

    rng = np.random.default_rng(0)
    paths = rng.uniform(size=(2, 5, 8, 8, 1)).astype(np.float32)
    x_a, x_b = rng.uniform(size=(2, 8, 8, 1)), rng.uniform(size=(2, 8, 8, 1))
    plots.interpolation_grid(tmp_path / "i.png", paths, "t", endpoints=(x_a, x_b))
    (fig,) = saved_figures
    axes = np.array(fig.axes).reshape(2, 5 + 4)  # A | gap | 5 decoded | gap | B
    for r in range(2):
        np.testing.assert_allclose(axes[r, 0].images[0].get_array(), x_a[r, ..., 0])
        np.testing.assert_allclose(axes[r, -1].images[0].get_array(), x_b[r, ..., 0])
        np.testing.assert_allclose(axes[r, 2].images[0].get_array(), paths[r, 0, ..., 0])
        assert not axes[r, 1].images and not axes[r, -2].images
    assert axes[0, 0].get_title() == "input A" and axes[0, -1].get_title() == "input B"
