"""The samplers (aejax.sampling): two_stage's fit, normal, hypersphere and vamp, every
sampler through ``aejax sample --sampler`` on one tiny trained run, and the same one-line
errors from the command line and from Python."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import jax
import numpy as np
import pytest
from _configs import SMALL

import aejax
from aejax import cli, sampling
from aejax.apps.generate import sample_run
from aejax.assemble import train
from aejax.config import Config
from aejax.errors import ConfigError, DataError
from aejax.run import Run, load_run
from aejax.sampling.fixed import sphere_codes
from aejax.sampling.registry import describe, sampler_names
from aejax.sampling.two_stage import fit_two_stage

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"
# Options for a fit of a fraction of a second (two_stage's: the moments test's, whose fit
# the command-line test then reuses compiled).
FAST = {
    "two_stage": {"hidden": 32, "epochs": 60},
    "gmm": {"components": 2},
    "maf": {"layers": 2, "hidden": 16, "epochs": 3},
}


def _init(name: str, input_shape=(8, 8, 1), abstract: bool = False):
    """A registry model with its test config and random variables of its shapes (no init
    compiled: what these tests check holds for any parameters), or only the shapes
    (``abstract``: enough for the checks that run before any draw)."""
    spec = aejax.MODELS[name]
    model = aejax.create_model(name, input_shape, **spec.test_config)
    x = np.zeros((2, *input_shape), np.float32)
    keys = {"params": jax.random.key(0), "sample": jax.random.key(1)}
    shapes = jax.eval_shape(lambda k: model.init(k, x), keys)
    if abstract:
        return model, shapes
    rng = np.random.default_rng(0)
    return model, jax.tree.map(lambda s: 0.3 * rng.normal(size=s.shape).astype(s.dtype), shapes)


@pytest.fixture(scope="module")
def svae_run(tmp_path_factory) -> pathlib.Path:
    """svae on digits (codes on S^3): every sampler but vamp serves it. The config of
    tests/test_registry.py's svae runs, so its steps are hits in the session's
    compilation cache (tests/conftest.py) when both run."""
    workdir = tmp_path_factory.mktemp("svae") / "run"
    base = SMALL.replace(hidden=Config().hidden, latent_dim=Config().latent_dim)
    train(base.replace(model="svae", **aejax.MODELS["svae"].test_config, epochs=4), workdir)
    return workdir


@pytest.fixture(scope="module")
def run(svae_run) -> Run:
    return load_run(svae_run)


# --- two_stage -------------------------------------------------------------------------------


def test_two_stage_reproduces_the_moments_of_a_2d_gaussian_mixture(digits):
    # Codes of the svae run's shape (digits' training split, K = 4), fitted with FAST's
    # options: the command-line test below then reuses this compiled fit. Dimensions 0-1
    # are a two-component Gaussian mixture, 2-3 independent N(0, 1).
    rng = np.random.default_rng(0)
    n, k = len(digits.x_train), aejax.MODELS["svae"].test_config["latent_dim"]
    first = rng.random(n) < 0.3
    mixture = np.where(
        first[:, None],
        rng.normal([-2.0, 1.0], [0.5, 0.3], (n, 2)),
        rng.normal([1.5, -0.5], [0.4, 0.8], (n, 2)),
    )
    z = np.concatenate([mixture, rng.normal(size=(n, k - 2))], axis=1).astype(np.float32)
    draw, history = fit_two_stage(z, 0, **FAST["two_stage"])
    assert history.shape == (FAST["two_stage"]["epochs"],)
    assert history[-1] < history[0] - 0.5
    d = draw(20000, jax.random.key(1))
    assert d.shape == (20000, k) and d.dtype == np.float32
    spread = z.std(axis=0)
    np.testing.assert_allclose(d.mean(axis=0), z.mean(axis=0), atol=0.1 * spread.max())
    np.testing.assert_allclose(d.std(axis=0), spread, rtol=0.1)
    np.testing.assert_allclose(np.corrcoef(d.T), np.corrcoef(z.T), atol=0.1)
    assert abs((d[:, 0] < 0).mean() - first.mean()) < 0.05  # the modes' weights, roughly
    # Deterministic: the same seed fits the same network, the same key draws the same codes.
    np.testing.assert_array_equal(draw(5, jax.random.key(2)), draw(5, jax.random.key(2)))
    again, _ = fit_two_stage(z, 0, **FAST["two_stage"])
    np.testing.assert_array_equal(again(5, jax.random.key(2)), draw(5, jax.random.key(2)))
    with pytest.raises(ConfigError, match="'epochs' must be >= 1"):
        fit_two_stage(z, 0, epochs=0)


# --- normal, hypersphere, vamp on initialized models -----------------------------------------


def test_vamp_is_the_vamp_model_s_prior_and_only_its():
    model, v = _init("vamp")
    assert not sampling.needs_codes(model, v, "vamp")
    key = jax.random.key(3)
    prior = aejax.sample(model, v, 5, key, sampler="prior")
    np.testing.assert_array_equal(aejax.sample(model, v, 5, key, sampler="vamp"), prior)
    model, v = _init("vae", abstract=True)
    with pytest.raises(DataError, match="it has no VampPrior"):
        aejax.sample(model, v, 2, key, sampler="vamp")


def test_normal_is_a_vae_s_prior_and_hypersphere_keeps_the_codes_radius(digits):
    model, v = _init("vae")
    key = jax.random.key(0)
    normal = aejax.sample(model, v, 1000, key, sampler="normal")
    prior = aejax.sample(model, v, 1000, jax.random.key(1), sampler="prior")
    # The same distribution, different draws: pixel moments agree to Monte Carlo error.
    np.testing.assert_allclose(normal.mean(axis=0), prior.mean(axis=0), atol=0.04)
    np.testing.assert_allclose(normal.std(axis=0), prior.std(axis=0), atol=0.04)

    # Not svae: the sphere of the training codes' mean norm, read from the codes.
    assert sampling.needs_codes(model, v, "hypersphere")
    with pytest.raises(DataError, match="fitted to training codes"):
        aejax.sample(model, v, 2, key, sampler="hypersphere")
    codes = aejax.encode(model, v, digits.x_train)
    radius = np.linalg.norm(codes, axis=1).mean()
    z = sphere_codes(1000, key, codes.shape[1], radius)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), radius, rtol=1e-5)
    assert np.abs(z.mean(axis=0)).max() < 0.1 * radius  # directions uniform: centred at 0
    x = aejax.sample(model, v, 4, key, codes=lambda: codes, sampler="hypersphere")
    want = aejax.decode(model, v, sphere_codes(4, key, codes.shape[1], radius))
    np.testing.assert_allclose(x, want, atol=1e-6)

    model, v = _init("vq_vae", abstract=True)  # a grid of codebook vectors is not a vector
    for sampler in ("normal", "hypersphere"):
        with pytest.raises(DataError, match=r"grid of shape \(2, 2, 8\), not a vector"):
            aejax.sample(model, v, 2, key, sampler=sampler)


# --- every sampler through the command line --------------------------------------------------


def test_every_sampler_writes_a_grid_or_says_why_not(svae_run, run, tmp_path, capsys):
    for name in sampler_names():
        out = tmp_path / f"{name}.png"
        args = ["sample", str(svae_run), "--n", "4", "--sampler", name, "--out", str(out)]
        for k, v in FAST.get(name, {}).items():
            args += ["--sampler-set", f"{k}={v}"]
        reason = sampling.SAMPLERS[name].applies(run.model, run.variables)
        status = cli.main(args)
        captured = capsys.readouterr()
        if reason is None:
            assert status == 0, captured.err
            assert out.read_bytes()[:8] == PNG_MAGIC and str(out) in captured.out
        else:
            assert status == 2 and not out.exists()
            assert captured.err.count("\n") == 1 and reason in captured.err
    assert "vamp" in [n for n in sampler_names() if not (tmp_path / f"{n}.png").exists()]


def test_training_codes_are_encoded_only_for_a_sampler_fitted_to_them(run, monkeypatch):
    calls = []
    real = Run.training_codes

    def counted(self):
        calls.append(1)
        return real(self)

    monkeypatch.setattr(Run, "training_codes", counted)
    drawn = {
        name: run.sample(3, seed=1, sampler=name) for name in ("prior", "normal", "hypersphere")
    }
    assert calls == [] and drawn["prior"].shape == (3, 8, 8, 1)
    np.testing.assert_array_equal(drawn["hypersphere"], drawn["prior"])  # svae: its prior
    x = run.sample(2, sampler="gmm", components=2)
    assert calls == [1] and x.shape == (2, 8, 8, 1)
    with pytest.raises(ConfigError, match="no option"):  # refused before the codes
        run.sample(2, sampler="gmm", component=2)
    assert calls == [1]


BAD = [  # (sampler, options, error, what the message says)
    ("gmn", {}, ConfigError, "unknown sampler 'gmn' (did you mean 'gmm'?)"),
    ("two_stage", {"epoch": "3"}, ConfigError, "no option 'epoch' (did you mean 'epochs'?)"),
    ("two_stage", {"epochs": "many"}, ConfigError, "option 'epochs': cannot read 'many' as int"),
    ("gmm", {"seed": "3"}, ConfigError, "sampler 'gmm' has no option 'seed'"),
    ("vamp", {}, DataError, "the 'vamp' sampler does not apply to this model"),
]


@pytest.mark.parametrize(("sampler", "options", "error", "says"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_gives_the_same_one_line_error_in_cli_and_python(
    svae_run, run, capsys, sampler, options, error, says
):
    args = ["sample", str(svae_run), "--sampler", sampler]
    for k, v in options.items():
        args += ["--sampler-set", f"{k}={v}"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err
    with pytest.raises(error) as python:
        sample_run(svae_run, 4, sampler=sampler, options=options)
    assert err == f"aejax sample: error: {python.value}\n"
    if "seed" not in options:  # Run.sample(seed=...) is its own argument
        with pytest.raises(error, match=re.escape(says)):
            run.sample(4, sampler=sampler, **options)


def test_sampler_set_needs_key_value_and_sample_needs_a_run(svae_run, capsys):
    assert cli.main(["sample", str(svae_run), "--sampler-set", "epochs"]) == 2
    assert "--sampler-set expects KEY=VALUE, got 'epochs'" in capsys.readouterr().err
    assert cli.main(["sample"]) == 2
    assert "RUN is required" in capsys.readouterr().err


# --- listings and docs -----------------------------------------------------------------------


def test_list_samplers_with_a_run_says_which_apply(svae_run, capsys):
    assert cli.main(["sample", str(svae_run), "--list-samplers"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in sampler_names())
    assert "options: latent=0, hidden=256" in out and "[the default for this run]" in out
    assert re.search(r"vamp .*\n(.*\n)*.*\[does not apply to this run: it has no VampPrior", out)


def test_sample_help_lists_every_sampler_and_imports_no_jax():
    code = (
        "import sys\nfrom aejax.cli import main\n"
        "try:\n    main(['sample', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('jax', 'numpy', 'sklearn') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "[]"
    assert all(f"  {name} " in proc.stdout for name in sampler_names())


def test_docs_samplers_table_is_the_registry_s():
    text = (DOCS / "cli.md").read_text()
    section = text[text.index("## sample, interpolate") :]
    section = section[: section.index("\n## ")]
    rows = re.findall(r"^\| `(\w+)` \| (.+) \|$", section, re.M)
    assert dict(rows) == describe()
