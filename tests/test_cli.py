"""The command line end to end: train writes a complete run directory, evaluate reads it."""

import json
import subprocess
import sys

import pytest

import aejax
from aejax import cli
from aejax.config import Config

SUMMARY_KEYS = {
    "model",
    "data",
    "latent_dim",
    "epochs",
    "steps",
    "test_recon_mse",
    "test_sse_per_example",
    "pca_recon_mse",
    "pca_sse_per_example",
    "train_samples_per_sec",
    "compile_seconds",
}


# A tiny run; the workdir follows.
TRAIN_ARGS = (
    "train",
    "--epochs",
    "3",
    "--latent-dim",
    "4",
    "--devices",
    "1",
    "--no-progress",
    "--set",
    "hidden=32",
    "--workdir",
)


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "aejax.cli", *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    workdir = root / "ae-digits"
    proc = _run(
        *TRAIN_ARGS,
        str(workdir),
        "--set",
        f"compile_cache={root / 'cache'}",
    )
    assert any((root / "cache").iterdir()), "the persistent compilation cache stayed empty"
    assert proc.returncode == 0, proc.stderr
    return workdir, proc


def test_train_writes_the_run_directory(trained):
    workdir, proc = trained
    for name in ("config.json", "metrics.jsonl", "summary.json", "reconstructions.png"):
        assert (workdir / name).is_file(), name
    assert any(p.name.isdigit() for p in (workdir / "checkpoints").iterdir())
    summary = json.loads((workdir / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary)
    assert summary["epochs"] == 3 and summary["latent_dim"] == 4 and summary["data"] == "digits"
    assert summary["steps"] == 3 * (summary["n_train"] // 64)
    records = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert (workdir / "reconstructions.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The final table names both rows.
    assert "PCA-4" in proc.stdout and "test MSE" in proc.stdout


# The commands below read the run the real process wrote; they run in this process.


def test_rerun_resumes_and_does_not_retrain(trained, capsys):
    workdir, _ = trained
    before = (workdir / "metrics.jsonl").read_text()
    assert cli.main([*TRAIN_ARGS, str(workdir), "--json"]) == 0
    assert (workdir / "metrics.jsonl").read_text() == before
    assert json.loads(capsys.readouterr().out)["epochs_run"] == 0


def test_evaluate_reads_the_run(trained, capsys):
    workdir, _ = trained
    assert cli.main(["evaluate", str(workdir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    summary = json.loads((workdir / "summary.json").read_text())
    assert out["test_recon_mse"] == pytest.approx(summary["test_recon_mse"], rel=1e-5)
    assert out["pca_recon_mse"] == pytest.approx(summary["pca_recon_mse"], rel=1e-5)


def test_listings(capsys):
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    assert "ae" in out and "conv_ae" in out
    assert cli.main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "digits" in out and "mnist-lite" in out and "tfds:" in out


def test_unknown_model_is_a_clear_error(capsys, tmp_path):
    assert cli.main(["train", "--model", "nope", "--workdir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'nope'" in err and "Traceback" not in err


def test_config_flags_and_set(tmp_path):
    args = cli._parser().parse_args(
        [
            "train",
            "--latent-dim",
            "3",
            "--lr",
            "0.01",
            "--set",
            "hidden=16,8",
            "--set",
            "nonfinite=skip",
            "--no-progress",
        ]
    )
    config = cli.build_config(args)
    assert config.latent_dim == 3 and config.lr == 0.01
    assert config.hidden == (16, 8) and config.nonfinite == "skip" and not config.progress
    assert config == Config.from_dict(json.loads(config.dumps()))


def test_a_set_key_the_model_does_not_use_is_refused(capsys, tmp_path):
    argv = ["train", "--model", "ae", "--set", "beta=4", "--workdir", str(tmp_path / "x")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "model 'ae' does not use beta=4.0" in err and "'hidden'" in err
    assert "Traceback" not in err and not (tmp_path / "x").exists()
    # Named explicitly, even the default value is refused: it would do nothing.
    args = cli._parser().parse_args(["train", "--model", "conv_ae", "--set", "hidden=512,256"])
    with pytest.raises(aejax.ConfigError, match="'conv_ae' does not use hidden"):
        cli.build_config(args)
    ok = cli._parser().parse_args(["train", "--model", "vae", "--set", "beta=4"])
    assert cli.build_config(ok).beta == 4.0


def test_a_mistyped_command_gets_a_did_you_mean(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["trian"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'trian'" in err and err.rstrip().endswith("(did you mean 'train'?)")


def test_the_parser_copy_of_the_data_options_is_the_library_s():
    from aejax.run import DATA_OPTIONS

    assert cli.parser.DATA_OPTIONS == DATA_OPTIONS


def test_help_and_a_typo_import_no_jax():
    """``aejax --help`` and a typo build one parser and import none of the library."""
    code = (
        "import sys\nfrom aejax.cli import main\n"
        "for argv in (['--help'], ['trian']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "heavy = ('jax', 'sklearn', 'orbax', 'numpy', 'tqdm')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "[]"
