"""``aejax sweep``: a grid times seeds gives one run directory each; a SIGKILLed sweep leaves
no worker training and resumes without redoing finished runs, one run at a time to the bits
of ``--jobs 2``; bad input is one line before anything is made.

Every run is a real ``aejax train`` process (1 epoch of the bundled digits, hidden 16), as
the sweep launches them; they share one XLA cache.
"""

from __future__ import annotations

import fcntl
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import pytest

from aejax import cli
from aejax.apps.sweep import plan
from aejax.cli.commands.experiments import parse_grid
from aejax.config import Config

PNG = b"\x89PNG\r\n\x1a\n"
SIGNAL_AT_STEP = pathlib.Path(__file__).with_name("_signal_at_step.py")
NAMES = ["latent_dim=4,seed=0", "latent_dim=4,seed=1", "latent_dim=8,seed=0", "latent_dim=8,seed=1"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    cache = tmp_path_factory.mktemp("xla-cache")
    return [
        "--epochs",
        "1",
        "--set",
        "hidden=16",
        "--set",
        f"compile_cache={cache}",
        "--no-progress",
    ]


@pytest.fixture(scope="module")
def swept(tmp_path_factory, base):
    """A 2x1 grid times 2 seeds, 2 runs at a time."""
    directory = tmp_path_factory.mktemp("sweep") / "s"
    assert (
        cli.main(
            ["sweep", str(directory), *base, "--latent-dim", "4,8", "--seeds", "2", "--jobs", "2"]
        )
        == 0
    )
    return directory


def _summary(run):
    return json.loads((run / "summary.json").read_text())


def _results(run):
    """What a run computed: its test metrics and baselines, and every logged number."""
    summary = _summary(run)
    numbers = {k: v for k, v in summary.items() if k.startswith(("test_", "pca_", "final_val"))}
    log = [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in _records(run)]
    return numbers, log


def _records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_grid_times_seeds_is_one_run_directory_each(swept, capsys):
    manifest = json.loads((swept / "sweep.json").read_text())
    assert [r["name"] for r in manifest["runs"]] == NAMES
    assert manifest["grid"] == {"latent_dim": [4, 8]} and manifest["seeds"] == [0, 1]
    for r in manifest["runs"]:
        run = swept / r["name"]
        summary = _summary(run)
        assert (summary["latent_dim"], summary["seed"]) == (r["settings"]["latent_dim"], r["seed"])
        assert json.loads((run / "config.json").read_text())["workdir"] == str(run)
        assert (run / "curves.png").read_bytes()[:8] == PNG  # each run draws its curves
    assert len({json.dumps(_results(swept / n)) for n in NAMES}) == 4
    # Started again, the same command trains nothing.
    argv = ["sweep", str(swept), "--no-progress"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "4 runs, 0 trained now, 4 finished before, 0 failed" in out
    assert "latent_dim" in out.splitlines()[0] and len(out.splitlines()) == 4


def test_a_sigkilled_sweep_resumes_one_run_at_a_time_to_the_bits_of_jobs_2(swept, tmp_path, capsys):
    """The latent_dim=4 runs finished; latent_dim=8,seed=0 stopped inside its 10th step by
    SIGTERM (what a worker does when its sweep is gone), and latent_dim=8,seed=1 never
    started. The sweep is started again and SIGKILLed as soon as it launched its first
    worker, which then stops on its own; a third start finishes the sweep, one run at a
    time, without touching the finished runs, to the bits of the uninterrupted sweep that
    ran two at a time."""
    directory = tmp_path / "s"
    shutil.copytree(swept, directory)
    stopped, fresh = directory / NAMES[2], directory / NAMES[3]
    shutil.rmtree(stopped)
    shutil.rmtree(fresh)
    config = directory / "configs" / f"{NAMES[2]}.json"
    proc = subprocess.run(
        [sys.executable, str(SIGNAL_AT_STEP), "9", "SIGTERM", "train", "--config", str(config)]
        + ["--workdir", str(stopped), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 143 and "step 10 (mid-epoch) is kept" in proc.stderr, proc.stderr
    finished = {n: _stamp(directory, n) for n in NAMES[:2]}
    log = directory / "logs" / f"{NAMES[2]}.log"
    argv = ["sweep", str(directory), "--jobs", "1", "--no-progress"]
    sweep = subprocess.Popen(
        [sys.executable, "-m", "aejax.cli", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait(lambda: log.is_file() and "resuming" in log.read_text(), "the first worker")
    finally:
        sweep.kill()  # SIGKILL: no handler of the sweep runs
        sweep.wait()
    # Its worker sees its sweep gone and stops (as on SIGTERM), releasing its run's lock.
    _wait(lambda: "aejax train: terminated (SIGTERM)" in log.read_text(), "the worker to stop")
    _wait(lambda: _unlocked(stopped / ".lock"), "the worker to exit")
    assert not (stopped / "summary.json").exists() and not fresh.exists()
    assert cli.main(argv) == 0
    assert "4 runs, 2 trained now, 2 finished before, 0 failed" in capsys.readouterr().out
    assert {n: _stamp(directory, n) for n in NAMES[:2]} == finished  # not touched again
    for name in NAMES[2:]:  # the resumed run and the new one: the uninterrupted bits
        assert _results(directory / name) == _results(swept / name)


def _stamp(directory, name):
    """A finished run's summary (bytes, modification time) and its log's size."""
    summary = directory / name / "summary.json"
    log = directory / "logs" / f"{name}.log"
    return summary.read_bytes(), summary.stat().st_mtime_ns, log.stat().st_size


def _wait(condition, what, timeout=120):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _unlocked(path):
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_a_failed_run_is_named_with_its_error_and_log(tmp_path, capsys):
    directory = tmp_path / "s"
    missing = tmp_path / "missing.npy"
    assert cli.main(["sweep", str(directory), "--data", str(missing), "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert "1 run, 0 trained now, 0 finished before, 1 failed" in captured.out
    log = directory / "logs" / "seed=0.log"
    assert captured.err.startswith(
        "aejax sweep: error: 1 of 1 runs failed: seed=0: aejax train: error: "
    )
    assert (
        str(missing) in captured.err and f"(log: {log}); the same command retries" in captured.err
    )
    assert len(captured.err.splitlines()) == 1


def test_the_workers_watch_the_variable_the_sweep_sets():
    from aejax.apps import sweep
    from aejax.cli import process

    assert sweep.PARENT_ENV == process.PARENT_ENV


def test_the_grid_of_flags_and_sets_and_the_names_of_its_runs():
    args = cli.build_parser("sweep").parse_args(
        ["sweep", "d", "--lr", "1e-3,3e-3", "--set", "hidden=16,8/32", "--set", "patience=3"]
    )
    fixed, grid = parse_grid(args)
    assert fixed == ["patience=3"] and grid == {"lr": ["1e-3", "3e-3"], "hidden": ["16,8", "32"]}
    manifest = plan(Config(seed=5), grid, 2)
    names = [r["name"] for r in manifest["runs"]]
    assert names[:3] == [
        "lr=0.001,hidden=16-8,seed=5",
        "lr=0.001,hidden=16-8,seed=6",
        "lr=0.001,hidden=32,seed=5",
    ]
    assert len(names) == 8 and manifest["runs"][2]["config"]["hidden"] == [32]


def test_an_existing_sweep_with_another_grid_is_refused(swept, base, capsys):
    argv = ["sweep", str(swept), *base, "--latent-dim", "4,16", "--seeds", "2"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "holds another sweep (grid: {'latent_dim': [4, 8]} -> {'latent_dim': [4, 16]})" in err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "lrr=1e-3,3e-3"], "unknown config field 'lrr' (did you mean 'lr'?)"),
        (["--set", "beta=1,4"], "model 'ae' does not use beta=1.0"),
        (["--set", "lr=1e-3,"], "lr=1e-3,: an empty value in the list of values"),
        (["--lr", "1e-3,0.001"], "grid key 'lr': the value 0.001 is given twice"),
        (["--lr", "1e-3", "--set", "lr=3e-3"], "lr is given twice"),
        (["--set", "seed=0,1"], "the seeds are --seeds N"),
        (["--lr", "1e-3,-1"], "grid lr='-1': lr=-1.0 is not allowed: a number > 0"),
        (["--lr", "1e-3,3e-3", "--jobs", "0"], "--jobs 0: at least 1 run at a time"),
        (["--seeds", "0"], "--seeds 0: at least 1"),
        ([], "holds no sweep.json: give the grid"),
    ],
)
def test_bad_input_is_one_line_and_makes_nothing(tmp_path, capsys, args, message):
    directory = tmp_path / "s"
    assert cli.main(["sweep", str(directory), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert not directory.exists()


def test_a_folder_that_is_a_run_or_holds_other_files_is_refused(swept, tmp_path, capsys):
    assert cli.main(["sweep", str(swept / NAMES[0]), "--lr", "1e-3,3e-3"]) == 2
    assert "is a run directory (aejax train), not a sweep" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("mine")
    assert cli.main(["sweep", str(tmp_path), "--lr", "1e-3,3e-3"]) == 2
    assert "exists and holds no sweep.json" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
