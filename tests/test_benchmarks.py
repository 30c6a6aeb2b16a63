"""The benchmark suite and the experiments: a tiny quick-suite run, its records, report, page.

The run is a subprocess of the real command line (``python -m benchmarks run``), so it sees
one CPU device as a user would, not the tests' fake devices. PyTorch is optional: with it,
the peers run at tiny size too; without it, the suite must still produce everything else.
"""

import functools
import importlib.util
import json
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import aejax
from aejax.evaluate import evaluate_pca
from aejax.models.objective import make_objective
from aejax.run import abstract_state

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # benchmarks/ and experiments/ are not installed packages

from benchmarks import flops, readme, records  # noqa: E402
from benchmarks.context import Context  # noqa: E402
from benchmarks.peers import torch_status  # noqa: E402
from benchmarks.suites import (  # noqa: E402
    ENGINE_MODELS,
    NO_LATENT_SWEEP,
    default_data,
    get_suite,
    reconstruction_models,
    suite_models,
)

HAS_TORCH = importlib.util.find_spec("torch") is not None
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Output directory of ``python -m benchmarks run --suite quick --tiny``."""
    out = tmp_path_factory.mktemp("bench") / "quick"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "run",
            "--suite",
            "quick",
            "--tiny",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def test_tiny_run_records_match_the_schema(tiny_run):
    recs = records.read(tiny_run / "records.jsonl")
    assert recs
    for r in recs:
        assert records.validate(r) == [], r
        assert r["device"]["count"] >= 1 and r["device"]["kind"]
        assert r["versions"]["jax"] and r["versions"]["python"]
        assert isinstance(r["config"], dict) and r["config"]
    seen = {(r["benchmark"], r["implementation"]) for r in recs}
    for bench in ("train_throughput", "encode_throughput", "quality", "sweep"):
        assert (bench, "aejax") in seen, bench
    assert ("pca_fit", "aejax-pca") in seen and ("pca_fit", "sklearn-pca") in seen
    # The suite's models are benchmarked without code of their own: the quick suite's are the
    # engine's six networks; the full suite's, every registry model of images or tables (a
    # ratings model has the recommendation benchmark), each of which builds the benchmark's
    # step (test_every_registry_model_builds_the_benchmark_step).
    measured = set(suite_models(get_suite("quick", tiny=True)))
    assert measured == set(ENGINE_MODELS) and measured >= {"ae", "conv_ae", "vae", "vq_vae"}
    every = set(suite_models(get_suite("full", tiny=True)))
    assert "autorec" not in every and every == set(reconstruction_models())
    assert every == {n for n, s in aejax.MODELS.items() if {"image", "tabular"} & set(s.kinds)}
    for bench in ("train_throughput", "quality"):
        assert {r["model"] for r in recs if r["benchmark"] == bench} == measured
    swept = {r["model"] for r in recs if r["benchmark"] == "sweep"}
    assert swept == measured - set(NO_LATENT_SWEEP)  # a VQ-VAE's code is a grid
    train = [r for r in recs if r["benchmark"] == "train_throughput"]
    assert all(r["compile_seconds"] > 0 for r in train if r["implementation"] == "aejax")
    # The FLOP rate is a share of this run's own matmul peak.
    peak = {r["implementation"]: r for r in recs if r["benchmark"] == "matmul_peak"}
    assert set(peak) == {"jax", "numpy"}
    peak_gflops = max(r["max"] for r in peak.values())  # the best repeat of either
    for r in (r for r in train if r["implementation"] == "aejax"):
        v = r["values"]
        assert v["init_seconds"] > 0 and v["matmul_peak_gflops"] == peak_gflops
        assert v["matmul_gflops"] == pytest.approx(r["median"] * v["matmul_flops_per_sample"] / 1e9)
        assert v["fraction_of_matmul_peak"] == pytest.approx(v["matmul_gflops"] / peak_gflops)
    assert all(r["median"] > 0 and r["unit"] == "samples/s" for r in train)
    # The engine's epochs fed every way: from host arrays, on the device, streamed by grain.
    feeds = {r["config"]["bench"]["feed"] for r in train if r["model"] == "ae"}
    assert feeds == {"step", "host", "device", "stream"}
    # Quality is the library's own metric: the PCA error equals evaluate_pca's.
    pca = next(r for r in recs if r["implementation"] == "aejax-pca")
    ds = aejax.load_dataset("digits", seed=0)
    expected, _ = evaluate_pca(ds, pca["config"]["n_components"])
    assert pca["values"]["test_sse_per_example"] == pytest.approx(expected["sse_per_example"])
    if HAS_TORCH:
        assert ("train_throughput", "torch") in seen and ("quality", "torch") in seen
        from benchmarks.peers.torch_twins import TWINS

        twinned = [r for r in train if r["implementation"] == "aejax" and r["model"] in TWINS]
        ratios = [r["values"]["ratio_vs_torch"] for r in twinned]
        assert all(np.isfinite(ratios)) and len(ratios) == len(twinned) > 0
        # A model without a twin is measured alone, with no ratio.
        alone = [r for r in train if r["implementation"] == "aejax" and r["model"] not in TWINS]
        assert all("ratio_vs_torch" not in r["values"] for r in alone)


def test_tiny_run_writes_report_and_plots(tiny_run):
    meta = json.loads((tiny_run / "meta.json").read_text())
    assert meta["command"].startswith("python -m benchmarks run")
    text = (tiny_run / "report.md").read_text()
    for heading in (
        "## Headline",
        "## Training throughput",
        "## Reconstruction quality vs PCA",
        "## Latent-size sweep",
    ):
        assert heading in text
    assert set(meta["figures"]) == {"throughput", "quality", "latent_sweep"}
    for name in meta["figures"].values():
        assert (tiny_run / name).read_bytes()[:8] == PNG_MAGIC
        assert f"]({name})" in text


def test_results_page_is_regenerated_between_markers(tiny_run, tmp_path):
    written = readme.publish(tiny_run, tmp_path / "benchmarks" / "results")
    md = next(p for p in written if p.suffix == ".md")
    assert f"]({md.stem}/throughput.png)" in md.read_text()
    path = tmp_path / "docs" / "results.md"
    path.parent.mkdir()
    path.write_text(f"# x\n\n{readme.START}\nold\n{readme.END}\n\n## Family\n")
    readme.update_page(tiny_run, path, experiments=None, root=tmp_path)
    text = path.read_text()
    body = text.split(readme.START)[1].split(readme.END)[0]
    assert "old" not in body and "python -m benchmarks run --suite quick" in body
    assert "| model | data | batch |" in body
    # The link to the published report resolves from the page's folder.
    assert f"](../benchmarks/results/{md.name})" in body
    assert text.endswith(f"{readme.END}\n\n## Family\n")


def test_readme_command_writes_the_results_page_by_default(tiny_run, tmp_path, monkeypatch):
    from benchmarks.__main__ import main

    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "results.md"
    page.write_text(f"{readme.START}\n{readme.END}\n")
    monkeypatch.chdir(tmp_path)
    assert main(["readme", "--from", str(tiny_run), "--experiments", str(tmp_path / "none")]) == 0
    assert "| model | data | batch |" in page.read_text()
    other = tmp_path / "OTHER.md"
    other.write_text(f"{readme.START}\n{readme.END}\n")
    assert main(["readme", "--from", str(tiny_run), "--readme", str(other)]) == 0  # the alias
    assert "| model | data | batch |" in other.read_text()


@pytest.mark.parametrize("name", reconstruction_models())
def test_every_registry_model_builds_the_benchmark_step(name, digits):
    """What the full suite times for every model of images or tables, traced but not
    compiled (the tiny run compiles and times the quick suite's six): the throughput
    benchmark's config, train step and encoder at the smoke test's sizes."""
    suite = get_suite("full", tiny=True)
    assert default_data(name, suite) == "digits"
    ctx = Context(suite=suite, env={}, torch_ok=False, overrides=dict(suite.overrides))
    config = ctx.config(model=name, data="digits", batch_size=suite.batch_sizes[0])
    n_train = digits.x_train.shape[0]
    model = aejax.model_from_config(config, digits.input_shape, digits.kind, n_train=n_train)
    optimizers = aejax.make_optimizers(config, 10**6, model)
    state = abstract_state(model, optimizers, digits.input_shape, 0)
    step = aejax.make_train_step(model, optimizers, make_objective(config, 10**6))
    batch = {"x": jnp.asarray(digits.x_train[: config.batch_size])}
    # Forward and backward: at least the encoder's and decoder's products, counted.
    assert flops.matmul_flops(step, state, batch, jax.random.key(0)) > 0
    codes = jax.eval_shape(
        functools.partial(model.apply, method="encode"), state.variables(), batch["x"]
    )
    assert codes.shape[0] == config.batch_size


def test_matmul_flops_are_counted_from_the_jaxpr():
    x, w = jnp.ones((4, 3)), jnp.ones((3, 5))
    assert flops.matmul_flops(jnp.matmul, x, w) == 2 * 4 * 3 * 5
    # Nested jit and autodiff: forward product plus the two of the backward pass.
    loss = jax.jit(lambda x, w: jnp.sum(jnp.tanh(x @ w)))
    assert flops.matmul_flops(jax.grad(loss, argnums=(0, 1)), x, w) == 3 * 2 * 4 * 3 * 5
    # A 3x3 SAME conv, 2 -> 4 channels on 8x8: 2 * outputs * taps * in-channels.
    img, k = jnp.ones((1, 8, 8, 2)), jnp.ones((3, 3, 2, 4))
    conv = functools.partial(
        jax.lax.conv_general_dilated,
        window_strides=(1, 1),
        padding="SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    assert flops.matmul_flops(conv, img, k) == 2 * (8 * 8 * 4) * 9 * 2


def test_schema_names_what_is_wrong():
    good = records.make_record(
        benchmark="quality",
        implementation="aejax",
        model="ae",
        data="digits",
        config={},
        seed=0,
        env={
            "versions": dict.fromkeys(records.VERSION_KEYS, "1"),
            "device": {"kind": "cpu", "platform": "cpu", "count": 1},
        },
        metric="m",
        unit="u",
        samples=[1.0, 3.0, 2.0],
        timestamp="t",
    )
    assert (good["median"], good["min"], good["max"], good["repeats"]) == (2.0, 1.0, 3.0, 3)
    bad = {k: v for k, v in good.items() if k != "device"} | {"median": "fast"}
    problems = records.validate(bad)
    assert any("device" in p for p in problems) and any("median" in p for p in problems)


def test_missing_torch_is_a_reason_not_a_traceback(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    ok, reason = torch_status()
    assert not ok and "pip install" in reason


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch not installed (the bench extra)")
@pytest.mark.parametrize(
    "name,shape",
    [("ae", (8, 8, 1)), ("conv_ae", (16, 8, 3)), ("vae", (8, 8, 1)), ("conv_vae", (16, 8, 3))],
)
def test_torch_twin_computes_the_flax_function(name, shape):
    import torch

    from benchmarks.peers.torch_twins import create_twin, load_flax_params

    arch = {"conv_features": (4, 6)} if name.startswith("conv") else {"hidden": (16, 8)}
    config = aejax.Config(model=name, latent_dim=5, **arch)
    model = aejax.model_from_config(config, shape, "image")
    x = np.random.default_rng(0).random((3, *shape), dtype=np.float32)
    # Random values for every parameter, biases included (init would leave those at zero).
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)["params"]
    rng = np.random.default_rng(1)
    params = jax.tree.map(lambda a: rng.normal(0, 0.3, a.shape).astype(np.float32), shapes)
    _, aux = jax.jit(model.apply)({"params": params}, x)
    twin = create_twin(name, shape, config)
    load_flax_params(twin, params)
    with torch.no_grad():
        z = twin.encode(twin.to_input(x))
        out = twin.decode_params(z).numpy()
    if name.startswith("conv"):
        out = np.moveaxis(out, 1, -1)
    np.testing.assert_allclose(z.numpy(), np.asarray(aux["z"]), atol=1e-5)
    np.testing.assert_allclose(out, np.asarray(aux["decoder_output"]), atol=1e-5)
    if name.endswith("vae"):  # the penalty, in eval mode (z = mean) as aejax's validation
        twin.eval()
        with torch.no_grad():
            _, kl = twin.loss_terms(twin.to_input(x))
        np.testing.assert_allclose(kl.numpy(), np.asarray(aux["terms"]["kl"]), rtol=1e-5)


def test_experiment_writes_its_table(tmp_path):
    from experiments import hinton2006

    rc = hinton2006.main(
        [
            "--data",
            "digits",
            "--epochs",
            "1",
            "--set",
            "hidden=16",
            "--set",
            "devices=1",
            "--out",
            str(tmp_path),
            "--no-progress",
        ]
    )
    assert rc == 0
    result = json.loads((tmp_path / "hinton2006-digits.json").read_text())
    assert result["summary"]["latent_dim"] == 30 and result["headline"]["ours"]
    assert "| PCA-30 (aejax.fit_pca) |" in (tmp_path / "hinton2006-digits.md").read_text()


def test_experiment_on_unprepared_tfds_fails_with_the_data_error(tmp_path, capsys):
    from experiments import hinton2006

    rc = hinton2006.main(
        [
            "--data",
            "tfds:mnist",
            "--set",
            f"data_dir={tmp_path}",
            "--out",
            str(tmp_path),
            "--no-progress",
        ]
    )
    assert rc == 2
    assert "not prepared" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.json"))
