"""Outputs never overwrite: ``--out`` refuses existing files and a run's own bookkeeping
(``aejax.outputs``), writes atomically; and the other small promises of a trustworthy run:
the seed range, a closed stdout pipe, the warning after a run that failed to train."""

import importlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import aejax
from aejax import cli, outputs
from aejax.config import MAX_SEED, Config
from aejax.errors import ConfigError


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny image run on digits (1 epoch) and a small table for ``detect``."""
    root = tmp_path_factory.mktemp("outputs")
    workdir = root / "run"
    argv = ["train", "--epochs", "1", "--latent-dim", "4", "--set", "hidden=16", "--devices", "1"]
    assert cli.main([*argv, "--no-progress", "--workdir", str(workdir)]) == 0
    table = root / "table.npy"
    np.save(table, np.random.default_rng(0).normal(size=(120, 4)).astype(np.float32))
    return workdir, table


# command -> (its argv before --out, what --out names: "file" or "dir", the file that is in
# the way: a file name (--out itself) or a name the command writes into its folder).
COMMANDS = {
    "encode": (["encode", "{run}"], "file", "codes.npy"),
    "sample": (["sample", "{run}", "--n", "4"], "file", "grid.png"),
    "interpolate": (["interpolate", "{run}", "--pairs", "1", "--steps", "3"], "file", "i.png"),
    "embed": (["embed", "{run}"], "dir", "embedding.png"),
    "restore": (
        ["restore", "{run}", "--task", "denoise", "--n", "4"],
        "dir",
        "restore_denoise_gaussian-0.5.png",
    ),  # fmt: skip
    "detect": (
        ["detect", "--data", "{table}", "--no-progress", "--set", "epochs=1"],
        "dir",
        "detect.json",
    ),  # fmt: skip
}


def _snapshot(workdir):
    """Every file of a run directory and its bytes."""
    return {p: p.read_bytes() for p in sorted(workdir.rglob("*")) if p.is_file()}


def _refused(capsys, argv, *needles):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


# The 1-epoch run restores worse than its input and `aejax restore` says so: not this test's point.
@pytest.mark.filterwarnings("ignore::aejax.apps.restore.RestorationWarning")
@pytest.mark.parametrize("command", COMMANDS)
def test_out_refuses_existing_files_and_the_runs_bookkeeping(
    command, run, tmp_path, capsys, monkeypatch
):
    workdir, table = run
    head, kind, name = COMMANDS[command]
    argv = [a.format(run=workdir, table=table) for a in head]
    folder = tmp_path / "out"
    folder.mkdir()
    victim = folder / name
    victim.write_bytes(b"the user's own file\n")
    out = victim if kind == "file" else folder
    before = _snapshot(workdir)
    with monkeypatch.context() as m:  # every refusal comes before a run or table is read
        readers = (
            "aejax.run.load_run",
            "aejax.apps.generate.load_run",
            "aejax.apps.detect.read_table",
        )
        for module in readers:  # imported first: generate binds run.load_run at import
            importlib.import_module(module.rpartition(".")[0])
        for module in readers:
            m.setattr(module, lambda *a, **k: pytest.fail("read before the --out check"))
        _refused(capsys, [*argv, "--out", str(out)], f"{victim} exists", "--force")
        assert victim.read_bytes() == b"the user's own file\n"
        assert sorted(p.name for p in folder.iterdir()) == [name]  # nothing else written
        # A run's config.json (a folder command: its checkpoints/) is refused, even forced.
        into = workdir / ("config.json" if kind == "file" else "checkpoints")
        for force in ([], ["--force"]):
            _refused(capsys, [*argv, "--out", str(into), *force], "not even --force", str(into))
        if kind == "file":  # the run's records: only with --force
            _refused(capsys, [*argv, "--out", str(workdir / "summary.json")], "--force")
    assert _snapshot(workdir) == before
    # --force replaces the plain existing file, through a temporary file and a rename.
    assert cli.main([*argv, "--out", str(out), "--force"]) == 0, capsys.readouterr().err
    assert victim.read_bytes() != b"the user's own file\n"
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]
    if command == "encode":
        assert np.load(victim).shape == (360, 4)
    elif victim.suffix == ".png":
        assert victim.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert json.loads(victim.read_text())["rows"] == 120
    assert _snapshot(workdir) == before


def test_check_output_rules(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints" / "3").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "summary.json").write_text("{}")
    never = [run / "config.json", run / "checkpoints" / "3" / "x.npy", run / ".lock"]
    link = tmp_path / "innocent.json"
    link.symlink_to(run / "config.json")
    for path in [*never, link, run / "sub" / ".." / "config.json"]:
        with pytest.raises(ConfigError, match="not even --force"):
            outputs.check_output(path, force=True)
    with pytest.raises(ConfigError, match=r"own summary.json.*--force"):
        outputs.check_output(run / "summary.json")
    assert outputs.check_output(run / "summary.json", force=True) == run / "summary.json"
    assert outputs.check_output(run / "codes.npy") == run / "codes.npy"  # beside is fine
    # A command's own default output is replaced by a re-run; a folder is never a file.
    (run / "samples.png").write_bytes(b"old")
    assert outputs.check_output(run / "samples.png", default=True) == run / "samples.png"
    with pytest.raises(ConfigError, match="is a directory"):
        outputs.check_output(run, force=True)
    with pytest.raises(ConfigError, match="not a directory"):
        outputs.check_output_dir(run / "summary.json", ["a.csv"], force=True)
    assert not outputs.is_run_dir(tmp_path) and outputs.is_run_dir(run)
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(ConfigError, match="not a writable directory"):
            outputs.check_output(locked / "new" / "codes.npy")


def test_an_interrupted_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "codes.csv"
    path.write_text("old\n")
    with pytest.raises(KeyboardInterrupt), outputs.atomic_path(path) as tmp:
        tmp.write_text("half of the new")
        raise KeyboardInterrupt
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["codes.csv"]
    with outputs.atomic_path(path) as tmp:
        assert tmp.suffix == ".csv" and tmp.parent == tmp_path  # same suffix, same disk
        tmp.write_text("new\n")
    assert path.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["codes.csv"]


def test_a_commands_default_output_is_replaced_by_a_rerun(run, capsys):
    workdir, _ = run
    for _ in range(2):
        assert cli.main(["sample", str(workdir), "--n", "4"]) == 0
    assert capsys.readouterr().out.strip().endswith(str(workdir / "samples.png"))
    assert (workdir / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A figure's file type follows its suffix: none is refused (savefig would add .png).
    _refused(capsys, ["sample", str(workdir), "--out", str(workdir / "grid")], "suffixes")


def test_seed_range(tmp_path, capsys):
    assert Config(seed=MAX_SEED).seed == 2**32 - 1
    for seed in (-1, 2**32, 99999999999999999999):
        with pytest.raises(ConfigError, match=r"seed=.*\[0, 4294967295\]"):
            Config(seed=seed)
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"seed": 2**63}))
    for argv in (["--seed", "99999999999999999999"], ["--set", "seed=-1"],
                 ["--config", str(config)]):  # fmt: skip
        _refused(capsys, ["train", *argv, "--workdir", str(tmp_path / "r")], "[0, 4294967295]")
    assert not (tmp_path / "r").exists()
    with pytest.raises(SystemExit) as e:  # sample's and embed's own --seed: argparse
        cli.main(["sample", str(tmp_path), "--seed", str(2**32)])
    assert e.value.code == 2 and "[0, 4294967295]" in capsys.readouterr().err


def test_a_closed_stdout_pipe_ends_quietly(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(aejax.__file__))}
    cmd = [sys.executable, "-m", "aejax.cli", "config"]
    # The reader is gone before the first write: every write fails, deterministically.
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as proc:
        proc.stdout.close()
        err = proc.stderr.read().decode()
        status = proc.wait(timeout=120)
    assert status == 141 and err == "", err
    # The everyday form: `| head -1` (the write may or may not come after head exits).
    shell = subprocess.run(
        ["bash", "-c", f'{" ".join(cmd)} | head -1; echo "status ${{PIPESTATUS[0]}}"'],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    first, status = shell.stdout.splitlines()
    assert first.split()[:3] == ["FIELD", "TYPE", "DEFAULT"]
    assert status in ("status 0", "status 141") and shell.stderr == "", shell.stderr


def test_a_run_that_failed_to_train_is_flagged(tmp_path, capsys):
    from aejax.evaluate import train_and_evaluate

    small = dict(hidden=(64,), latent_dim=8, epochs=3, warmup_steps=5, progress=False, devices=1)
    good, _ = train_and_evaluate(Config(lr=1e-2, **small), plot=False)
    assert good["test_recon_mse"] < 2 * good["pca_recon_mse"]  # measured: 1.44x
    assert good["warnings"] == [] and "warning:" not in cli.format_table(good)
    # lr=10: the network ends up predicting the training mean (measured: 3.3x PCA-8).
    workdir = tmp_path / "bad"
    assert cli.main(["train", "--lr", "10", "--epochs", "3", "--latent-dim", "8", "--devices",
                     "1", "--no-progress", "--set", "hidden=64", "--set", "warmup_steps=5",
                     "--workdir", str(workdir)]) == 0  # fmt: skip
    (warning,) = json.loads((workdir / "summary.json").read_text())["warnings"]
    assert "x PCA-8's" in warning and "learned next to nothing" in warning
    ratio = float(warning.split("test MSE is ")[1].split("x")[0])
    assert ratio > 2
    assert f"warning: {warning}" in capsys.readouterr().out.splitlines()  # the table footer
    assert cli.main(["train", "--lr", "10", "--epochs", "3", "--latent-dim", "8", "--json",
                     "--set", "hidden=64", "--set", "warmup_steps=5",
                     "--workdir", str(workdir)]) == 0  # fmt: skip
    out = capsys.readouterr()
    assert json.loads(out.out)["warnings"] == [warning]
    assert out.err.strip().splitlines()[-1] == f"aejax train: warning: {warning}"
