"""Faults: killed runs resume exactly, bad checkpoints are skipped, unwritable disks fail clearly.

The end-to-end tests drive ``aejax train`` in subprocesses, as a preempted machine would. They
share a persistent JAX compilation cache so that only the first process pays for compiling.
"""

from __future__ import annotations

import errno
import gc
import json
import os
import pathlib
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings

import jax
import numpy as np
import pytest
from _trees import host

from aejax import Config, cli
from aejax.assemble import train
from aejax.errors import CheckpointError
from aejax.models import model_from_config
from aejax.run import abstract_state, best_like, load_run
from aejax.train.checkpoint import Checkpointer
from aejax.train.optim import make_optimizer, make_optimizers

EPOCHS, STEPS_PER_EPOCH = 8, 20  # digits: 1293 training images // batch 64
LAST, BEFORE_LAST = EPOCHS * STEPS_PER_EPOCH, (EPOCHS - 1) * STEPS_PER_EPOCH  # keep_checkpoints=2
# The digits as a .npy file: the same images and split, without importing scikit-learn in
# every process.
DIGITS_NPY = pathlib.Path(tempfile.gettempdir()) / f"aejax-test-digits-{os.getpid()}.npy"
ARGS = (
    "--data",
    str(DIGITS_NPY),
    "--set",
    "hidden=32",
    "--epochs",
    str(EPOCHS),
    "--batch-size",
    "64",
    "--devices",
    "1",
    "--no-progress",
    "--set",
    "checkpoint_every=1",
)
# Tensorstore callbacks that land after Orbax closed their event loop (see below).
LOOP_CLOSED_NOISE = "ignore:(?s).*Event loop is closed:pytest.PytestUnraisableExceptionWarning"
# In-process runs: tiny and quick.
TINY = Config(
    data="digits",
    hidden=(16,),
    latent_dim=4,
    epochs=2,
    batch_size=64,
    lr=3e-3,
    warmup_steps=5,
    progress=False,
    devices=1,
    checkpoint_every=1,  # the tests interrupt and resume at epoch boundaries
)


# --- helpers ---------------------------------------------------------------------------------


def _assert_trees_equal(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb) and jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(la, lb, strict=True):
        np.testing.assert_array_equal(host(x), host(y))


def _train_cmd(workdir, *extra):
    return [sys.executable, "-m", "aejax.cli", "train", *ARGS, "--workdir", str(workdir), *extra]


def _run(env, workdir, *extra, preexec_fn=None):
    return subprocess.run(
        _train_cmd(workdir, *extra),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=preexec_fn,
    )


def _committed(workdir) -> list[int]:
    """Steps Orbax has committed: renamed from the temporary name, with the marker file."""
    d = workdir / "checkpoints"
    if not d.is_dir():
        return []
    return sorted(
        int(p.name)
        for p in d.iterdir()
        if p.name.isdigit() and (p / "commit_success.txt").is_file()
    )


def _leftovers(workdir) -> list[str]:
    """Anything in checkpoints/ that is neither a committed step nor set aside on purpose."""
    d = workdir / "checkpoints"
    return sorted(
        p.name
        for p in d.iterdir()
        if not p.name.isdigit()
        and ".unreadable" not in p.name
        and not p.name.startswith(".write-test")
    )


def _final_checkpoint(workdir):
    """``(state, best, meta, step)`` of the newest checkpoint, restored in this process."""
    config, model, _, _ = load_run(workdir)
    state = abstract_state(model, make_optimizers(config, 1, model), model.input_shape, config.seed)
    with Checkpointer(workdir / "checkpoints", read_only=True) as c:
        return c.restore(state, best_like(state))


def _records(workdir) -> list[dict]:
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k != "epoch_seconds"} for x in lines]


def _assert_same_run(workdir, reference):
    state, best, meta, step = _final_checkpoint(workdir)
    ref_state, ref_best, ref_meta, ref_step = _final_checkpoint(reference)
    assert step == ref_step == LAST
    _assert_trees_equal(state, ref_state)  # params, Adam moments, schedule count, step, rng
    _assert_trees_equal(best, ref_best)
    assert meta["loop"] == ref_meta["loop"]
    assert _records(workdir) == _records(reference)  # one line per epoch, same losses


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from sklearn.datasets import load_digits

    np.save(DIGITS_NPY, (load_digits().images / 16.0).astype(np.float32))
    cache = tmp_path_factory.mktemp("jax-cache")
    yield dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        JAX_COMPILATION_CACHE_DIR=str(cache),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )
    DIGITS_NPY.unlink()


@pytest.fixture(scope="module")
def reference(env, tmp_path_factory):
    """An uninterrupted run: what every interrupted run must end up equal to."""
    workdir = tmp_path_factory.mktemp("ref") / "run"
    proc = _run(env, workdir)
    assert proc.returncode == 0, proc.stderr
    assert _committed(workdir) == [BEFORE_LAST, LAST]
    return workdir


# --- kills -----------------------------------------------------------------------------------


def _start_and_stop(env, workdir, rng, sig, log):
    """Starts training, waits for a new commit plus a random delay, then sends ``sig``."""
    before = max(_committed(workdir), default=0)
    with open(log, "w") as err:
        proc = subprocess.Popen(_train_cmd(workdir), env=env, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 240
        while not [s for s in _committed(workdir) if s > before]:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"run ended or hung before a new checkpoint: {log.read_text()}")
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.12))  # anywhere in the next epoch, a save included
        proc.send_signal(sig)
        rc = proc.wait(timeout=120)
    return rc, log.read_text()


def test_killed_runs_resume_to_the_uninterrupted_parameters(env, reference, tmp_path):
    rng = random.Random(20240607)
    workdir = tmp_path / "run"
    for i in (1, 2):
        rc, _ = _start_and_stop(env, workdir, rng, signal.SIGKILL, tmp_path / f"{i}.log")
        assert rc == -signal.SIGKILL
        assert 0 < _committed(workdir)[-1] < LAST
    # SIGTERM (what a preempted VM gets first) stops cleanly, the pending save committed.
    rc, err = _start_and_stop(env, workdir, rng, signal.SIGTERM, tmp_path / "3.log")
    assert rc == 143 and "terminated (SIGTERM)" in err and "Traceback" not in err, err
    assert not _leftovers(workdir)
    resumed_from = _committed(workdir)[-1]
    assert resumed_from < LAST
    proc = _run(env, workdir, "--json")
    assert proc.returncode == 0, proc.stderr
    assert "skipping unreadable" not in proc.stderr  # a kill never corrupts a committed step
    assert json.loads(proc.stdout)["epochs_run"] == EPOCHS - resumed_from // STEPS_PER_EPOCH
    _assert_same_run(workdir, reference)
    summary = json.loads((workdir / "summary.json").read_text())
    ref_summary = json.loads((reference / "summary.json").read_text())
    assert summary["test_recon_mse"] == ref_summary["test_recon_mse"]


SIGNAL_AT_STEP = pathlib.Path(__file__).with_name("_signal_at_step.py")


def test_signals_at_random_steps_save_them_and_resume_to_the_uninterrupted_bits(
    env, reference, tmp_path
):
    # A failure names its seed; AEJAX_TEST_SIGNAL_SEED=<seed> replays it.
    seed = int(os.environ.get("AEJAX_TEST_SIGNAL_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    workdir, done = tmp_path / "run", 0
    for sig, status, what, top in (
        ("SIGTERM", 143, "terminated (SIGTERM)", LAST * 2 // 3),
        ("SIGINT", 130, "interrupted", LAST),
    ):
        # A real signal inside a step strictly within an epoch: its end is saved, not the
        # last epoch's (the run checkpoints every epoch, so that is what would be kept).
        target = rng.choice([s for s in range(done + 1, top) if s % STEPS_PER_EPOCH])
        why = f"random seed {seed}: {sig} in step {target}"
        proc = subprocess.run(
            [sys.executable, str(SIGNAL_AT_STEP), str(target - done - 1), sig]
            + _train_cmd(workdir)[3:],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == status, (why, proc.stderr)
        kept = (
            f"aejax train: {what}; the checkpoint of epoch {target // STEPS_PER_EPOCH + 1}, "
            f"step {target} (mid-epoch) is kept in {workdir}: the same command resumes it"
        )
        assert kept in proc.stderr and "Traceback" not in proc.stderr, (why, proc.stderr)
        assert _committed(workdir)[-1] == target and not _leftovers(workdir), why
        # The log holds the finished epochs only (none before the first epoch's end): the
        # partial one is in the checkpoint.
        logged = _records(workdir) if (workdir / "metrics.jsonl").exists() else []
        assert [r["epoch"] for r in logged] == list(range(1, target // STEPS_PER_EPOCH + 1)), why
        done = target
    proc = _run(env, workdir, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["epochs_run"] == EPOCHS - done // STEPS_PER_EPOCH
    _assert_same_run(workdir, reference)  # parameters, Adam, step, rng, metrics.jsonl


# --- one writer per run directory ------------------------------------------------------------


@pytest.mark.slow  # ~22 s: two real processes
def test_two_runs_started_together_into_one_workdir(env, tmp_path):
    workdir = tmp_path / "run"
    procs = [
        subprocess.Popen(
            _train_cmd(workdir, "--epochs", "20", "--seed", str(seed), "--json"),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    outs = []
    for proc in procs:
        try:
            outs.append(proc.communicate(timeout=300))  # both processes end
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            pytest.fail("a run did not exit")
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], [o[1] for o in outs]
    winner = 0 if procs[0].returncode == 0 else 1
    refused = outs[1 - winner][1]
    assert (
        f"aejax train: error: workdir {workdir} is in use by another training run (pid "
        f"{procs[winner].pid} on {socket.gethostname()}, started " in refused
    ), refused
    assert "Traceback" not in refused
    # The winner's files only: its config, epochs 1..20 once each, its summary.
    seed = (1, 2)[winner]
    assert json.loads((workdir / "config.json").read_text())["seed"] == seed
    records = _records(workdir)
    assert [r["epoch"] for r in records] == list(range(1, 21))
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary == json.loads(outs[winner][0]) and summary["seed"] == seed
    assert summary["final_val_loss"] == records[-1]["val_loss"]


def test_default_workdirs_started_in_the_same_second_differ(monkeypatch):
    import datetime
    import re

    class Frozen(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 12, 6, 20, 45, 1)

    monkeypatch.setattr(datetime, "datetime", Frozen)
    names = {cli.default_workdir(Config(data="digits")) for _ in range(50)}
    assert len(names) == 50  # the same second, 50 directories
    for name in names:
        assert re.fullmatch(r"runs/ae-digits-20261206-204501-[0-9a-f]{4}", str(name)), name


_HOLD_LOCK = (
    "import sys, time; from aejax.train.runlock import lock_run; "
    "lock_run(sys.argv[1]).__enter__(); print('locked', flush=True); time.sleep(600)"
)


def test_a_held_lock_refuses_writers_not_readers_and_dies_with_its_holder(
    tiny_run, digits, tmp_path, capsys
):
    workdir = tmp_path / "run"
    shutil.copytree(tiny_run, workdir)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(workdir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "locked\n"
        named = (
            f"workdir {workdir} is in use by another training run (pid {holder.pid} on "
            f"{socket.gethostname()}, started "
        )
        # A second writer is refused at once, the command line and Python alike, even one
        # that would discard the run; nothing in the directory changes.
        before = sorted(p.name for p in (workdir / "checkpoints").iterdir())
        argv = ["train", "--data", "digits", "--workdir", str(workdir), "--no-progress"]
        for extra in ([], ["--fresh"]):
            assert cli.main([*argv, *extra]) == 2
            assert named in capsys.readouterr().err
        with pytest.raises(CheckpointError, match="is in use by another training run"):
            train(TINY, workdir, dataset=digits)
        assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == before
        # Readers never take the lock: they read the last committed checkpoint.
        assert cli.main(["evaluate", str(workdir), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["test_recon_mse"] > 0
        load_run(workdir)
    finally:
        holder.kill()  # SIGKILL: no clean-up code runs in the holder
        holder.wait(timeout=60)
        holder.stdout.close()
    # The OS released the dead holder's lock: the next run takes it and resumes.
    result = train(TINY.replace(epochs=3), workdir, dataset=digits)
    assert result.stats["epochs_run"] == 1
    assert json.loads((workdir / ".lock").read_text())["pid"] == os.getpid()


@pytest.mark.parametrize("how", ["removed", "replaced"])
def test_a_run_whose_lock_file_is_taken_away_stops_at_its_next_checkpoint(digits, tmp_path, how):
    def take_the_lock_away(record):
        if record["epoch"] == 1:
            (tmp_path / ".lock").unlink()
            if how == "replaced":  # e.g. another run started after a hand-made --fresh
                (tmp_path / ".lock").write_text("{}")

    with pytest.raises(CheckpointError, match=rf"lock file .*\.lock of this run was {how}") as e:
        train(TINY.replace(epochs=3), tmp_path, dataset=digits, on_epoch_end=take_the_lock_away)
    assert len(e.value.result.history) == 2  # the run so far comes with the error
    assert _committed(tmp_path) == [STEPS_PER_EPOCH]  # nothing written after the loss


def test_every_error_after_the_checkpointer_opens_closes_it(digits, tmp_path, monkeypatch):
    from aejax.train import loop as loop_mod

    closed = []
    real_close = Checkpointer.close
    monkeypatch.setattr(Checkpointer, "close", lambda self: closed.append(1) or real_close(self))

    def compile_fails(*args, **kwargs):
        raise RuntimeError("XLA could not compile")

    monkeypatch.setattr(loop_mod, "metric_names", compile_fails)  # between restore and loop
    with pytest.raises(RuntimeError, match="could not compile"):
        train(TINY, tmp_path, dataset=digits)
    assert closed  # no Orbax manager left open to hang the process at exit
    monkeypatch.undo()
    assert train(TINY, tmp_path, dataset=digits).stats["epochs_run"] == 2  # lock released


def test_a_resumed_run_keeps_only_keep_checkpoints(digits, tmp_path):
    # Three committed steps, as a kill between a commit and the deletion of the step it
    # replaces leaves them (here: written with a larger keep_checkpoints).
    config = TINY.replace(epochs=3)
    train(config.replace(keep_checkpoints=9), tmp_path, dataset=digits)
    assert _committed(tmp_path) == [20, 40, 60]
    result = train(config, tmp_path, dataset=digits)  # complete: nothing new is saved
    assert result.stats["already_complete"]
    assert _committed(tmp_path) == [40, 60]


def test_in_process_main_passes_ctrl_c_on_and_restores_the_signal_handlers(
    digits, tmp_path, capsys, monkeypatch
):
    from aejax.train import shard

    calls = []

    def callers_handler(signum, frame):  # a program's own handler, e.g. a notebook's
        calls.append(signum)
        raise KeyboardInterrupt

    real_put = shard.put_batch
    count = {"n": 0}

    def put_batch(x, mesh):  # a real SIGINT to this process inside training step 27
        if sys._getframe(1).f_code.co_name == "run_epoch":  # not the evals' batches
            count["n"] += 1
            if count["n"] == 27:
                os.kill(os.getpid(), signal.SIGINT)
        return real_put(x, mesh)

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGINT, callers_handler)
    try:
        monkeypatch.setattr(shard, "put_batch", put_batch)
        argv = ["train", "--epochs", "2", "--set", "hidden=16", "--no-progress"]
        argv += ["--set", "checkpoint_every=1", "--workdir", str(tmp_path)]
        argv += ["--set", "device_data=off"]  # host-fed: a signal is seen before each step
        with pytest.raises(KeyboardInterrupt) as e:
            cli.main(argv)  # the caller's Ctrl-C is raised again, not swallowed
        assert calls == [signal.SIGINT]  # passed on once, after the save
        assert signal.getsignal(signal.SIGINT) is callers_handler
        assert signal.getsignal(signal.SIGTERM) is before[1]
        assert "the checkpoint of epoch 2, step 27 (mid-epoch) is kept" in capsys.readouterr().err
        assert int(e.value.result.state.step) == 27 and len(e.value.result.history) == 1
        assert _committed(tmp_path) == [20, 27]
        monkeypatch.undo()
        assert cli.main(argv) == 0  # resumes mid-epoch and finishes
        assert signal.getsignal(signal.SIGINT) is callers_handler
        assert signal.getsignal(signal.SIGTERM) is before[1]
    finally:
        signal.signal(signal.SIGINT, before[0])


# --- damaged checkpoints ---------------------------------------------------------------------


def _truncate_arrays(step_dir):
    """Cuts the array data of ``state`` in half: Orbax's reader fails on it."""
    for f in (step_dir / "state").rglob("*"):
        if f.is_file() and f.parent.name == "d":
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def _flip_arrays(step_dir):
    """Flips 64 bytes of the array data of ``state`` and ``best`` where Orbax still reads it.

    The largest data file of each item holds its zstd-compressed chunks; only the shard
    index at its end has a checksum (crc32c), so without aejax's hashes Orbax restores
    such a flip silently as other numbers. A flip can also break a compressed block, which
    the decoder then refuses (an unreadable, not a damaged, checkpoint): the offsets are
    tried in turn until the checkpoint, read without aejax's hashes, loads.
    """
    for item in ("state", "best"):
        files = [f for f in (step_dir / item).rglob("*") if f.is_file() and f.parent.name == "d"]
        f = max(files, key=lambda f: (f.stat().st_size, f.name))
        original = f.read_bytes()
        for fraction in (0.5, 0.4, 0.6, 0.3, 0.7, 0.45, 0.55, 0.35, 0.65):
            data = bytearray(original)
            at = int(len(data) * fraction)
            data[at : at + 64] = bytes(b ^ 0xFF for b in data[at : at + 64])
            f.write_bytes(bytes(data))
            if _loads_without_hashes(step_dir):
                break
        else:
            raise AssertionError(f"no flip of {f} left it readable")


def _loads_without_hashes(step_dir) -> bool:
    """Whether the run's checkpoint ``step_dir`` restores when aejax's hashes are not checked."""
    from unittest import mock

    from aejax.train import _integrity

    workdir = step_dir.parent.parent
    later = [
        d
        for d in step_dir.parent.iterdir()
        if d.name.isdigit() and int(d.name) > int(step_dir.name)
    ]
    for d in later:  # the latest checkpoint is the one load_run reads
        d.rename(workdir.parent / f"{workdir.name}-set-aside-{d.name}")
    try:
        with mock.patch.object(_integrity, "check_arrays", lambda meta, items: None):
            with warnings.catch_warnings(record=True) as record:
                warnings.simplefilter("always")
                run = load_run(workdir)
    finally:
        for d in later:
            (workdir.parent / f"{workdir.name}-set-aside-{d.name}").rename(d)
    return not [w for w in record if "skipping" in str(w.message)] and run is not None


@pytest.mark.parametrize(
    ("damage", "warning"),
    [
        pytest.param(_truncate_arrays, "skipping unreadable checkpoint", id="truncated"),
        pytest.param(_flip_arrays, "skipping damaged checkpoint", id="flipped"),
    ],
)
def test_corrupted_latest_checkpoint_falls_back_to_the_previous(
    env, reference, tmp_path, damage, warning
):
    workdir = tmp_path / "run"
    shutil.copytree(reference, workdir)
    damage(workdir / "checkpoints" / str(LAST))
    proc = _run(env, workdir, "--json")
    assert proc.returncode == 0, proc.stderr
    assert f"{warning} {workdir}/checkpoints/{LAST} " in proc.stderr, proc.stderr
    if damage is _flip_arrays:  # the hashes name the damaged arrays
        assert "params/" in proc.stderr.split(warning)[1].splitlines()[0]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert json.loads(proc.stdout)["epochs_run"] == 1  # resumed from the one before
    assert (workdir / "checkpoints" / f"{LAST}.unreadable").is_dir()  # set aside, not deleted
    _assert_same_run(workdir, reference)


@pytest.fixture(scope="module")
def tiny_run(digits, tmp_path_factory):
    """A 2-epoch in-process run with checkpoints at steps 20 and 40."""
    workdir = tmp_path_factory.mktemp("tiny") / "run"
    train(TINY, workdir, dataset=digits)
    return workdir


def _tiny_state(config=TINY):
    model = model_from_config(config, (8, 8, 1), "image")
    return abstract_state(model, make_optimizers(config, 1, model), (8, 8, 1), config.seed)


def _corrupt_meta(step_dir):
    (step_dir / "meta" / "metadata").write_text('{"loop": {"epo')


def _flip_meta_digit(step_dir):
    """One flipped bit that leaves valid JSON: a digit of ``best_val`` becomes another."""
    path = step_dir / "meta" / "metadata"
    text = path.read_text()
    at = text.index(".", text.index('"best_val": ')) + 1  # 29.4... -> 29.5...
    path.write_text(text[:at] + chr(ord(text[at]) ^ 1) + text[at + 1 :])


def _drop_manifest(step_dir):
    """Valid metadata of this version's format, its hashes gone."""
    path = step_dir / "meta" / "metadata"
    meta = json.loads(path.read_text())
    del meta["integrity"]
    path.write_text(json.dumps(meta))


def _drop_tree_metadata(step_dir):
    (step_dir / "state" / "_METADATA").unlink()


def _drop_item(step_dir):
    shutil.rmtree(step_dir / "best")


def _empty_step(step_dir):
    shutil.rmtree(step_dir)
    step_dir.mkdir()


@pytest.fixture(scope="module")
def tiny_state():
    return _tiny_state()


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        pytest.param(_corrupt_meta, "unreadable", id="meta-cut"),
        pytest.param(_drop_tree_metadata, "unreadable", id="no-tree-metadata"),
        pytest.param(_drop_item, "unreadable", id="no-best"),
        pytest.param(_empty_step, "unreadable", id="empty"),
        pytest.param(
            _flip_arrays, r"damaged.*\(damaged: .*params/.* differ from the hashes", id="flip"
        ),
        pytest.param(
            _flip_meta_digit, r"damaged.*its metadata differs from the hash", id="meta-flip"
        ),
        pytest.param(_drop_manifest, r"damaged.*no integrity manifest", id="no-manifest"),
    ],
)
def test_unreadable_checkpoints_are_skipped_with_a_warning(
    tiny_run, tiny_state, tmp_path, damage, why
):
    workdir = tmp_path / "run"
    shutil.copytree(tiny_run, workdir)
    damage(workdir / "checkpoints" / "40")
    with pytest.warns(UserWarning, match=rf"skipping {why}") as record:
        with Checkpointer(workdir / "checkpoints", read_only=True) as c:
            _, _, meta, step = c.restore(tiny_state, best_like(tiny_state))
    assert any("checkpoints/40 " in str(w.message) for w in record)
    assert step == 20 and meta["loop"]["epoch"] == 1
    assert (workdir / "checkpoints" / "40").exists()  # read-only: nothing moved
    # In write mode (a resumed run) the bad step is set aside, so it can be written again.
    with pytest.warns(UserWarning) as record:
        with Checkpointer(workdir / "checkpoints") as c:
            assert c.restore(tiny_state, best_like(tiny_state))[3] == 20
            assert c.steps() == [20]
    assert any("40 to" in str(w.message) and "40.unreadable" in str(w.message) for w in record)
    assert (workdir / "checkpoints" / "40.unreadable").is_dir()


def test_load_run_falls_back_past_an_unreadable_checkpoint(tiny_run, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(tiny_run, workdir)
    _corrupt_meta(workdir / "checkpoints" / "40")
    with pytest.warns(UserWarning, match="checkpoints/40") as record:
        load_run(workdir)
    assert len([w for w in record if "skipping" in str(w.message)]) == 1  # warned once


def test_evaluate_never_reports_a_damaged_checkpoint(tiny_run, tmp_path, capsys):
    older = tmp_path / "older"  # what the checkpoint before the damaged one reports
    shutil.copytree(tiny_run, older)
    shutil.rmtree(older / "checkpoints" / "40")
    assert cli.main(["evaluate", str(older), "--json"]) == 0
    expected = json.loads(capsys.readouterr().out)
    workdir = tmp_path / "run"
    shutil.copytree(tiny_run, workdir)
    _flip_arrays(workdir / "checkpoints" / "40")
    with pytest.warns(UserWarning, match=r"skipping damaged checkpoint .*checkpoints/40 .*params/"):
        assert cli.main(["evaluate", str(workdir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == expected
    assert (workdir / "checkpoints" / "40").is_dir()  # read-only: nothing moved
    _flip_arrays(workdir / "checkpoints" / "20")  # now none is good: an error, no figures
    with pytest.warns(UserWarning, match="skipping damaged checkpoint") as record:
        assert cli.main(["evaluate", str(workdir), "--json"]) == 2
    assert len(record) == 2 and "checkpoints/20 " in str(record[1].message)
    out, err = capsys.readouterr()
    assert out == "" and "no loadable checkpoint" in err, err
    assert "step 40: damaged" in err and "step 20: damaged" in err


def test_checkpoint_from_before_the_hashes_loads_with_a_warning(digits, tmp_path, monkeypatch):
    from aejax.train import _integrity, checkpoint

    # What aejax wrote before checkpoints carried hashes: format 2, no manifest.
    monkeypatch.setattr(checkpoint, "FORMAT", 2)
    monkeypatch.setattr(_integrity, "seal", lambda meta, items: meta)
    train(TINY.replace(epochs=1), tmp_path, dataset=digits)
    monkeypatch.undo()
    assert "integrity" not in json.loads((tmp_path / "checkpoints/20/meta/metadata").read_text())
    unverified = r"checkpoints/20 was written before aejax checkpoints carried hashes \(format 2\)"
    with pytest.warns(UserWarning, match=unverified):
        load_run(tmp_path)
    with pytest.warns(UserWarning, match=unverified):  # resumed: continued in format 3
        assert train(TINY, tmp_path, dataset=digits).history[-1]["epoch"] == 2
    meta = json.loads((tmp_path / "checkpoints/40/meta/metadata").read_text())
    assert meta["format"] == 3 and len(meta["integrity"]["arrays"]) > 10


def test_no_loadable_checkpoint_is_a_clear_error(tiny_run, tiny_state, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(tiny_run, workdir)
    for step in (20, 40):
        _drop_tree_metadata(workdir / "checkpoints" / str(step))
    with pytest.warns(UserWarning, match="skipping"):
        with pytest.raises(
            CheckpointError,
            match=r"(?s)no loadable checkpoint.*step 40.*step 20.*"
            r"--fresh",
        ):
            with Checkpointer(workdir / "checkpoints") as c:
                c.restore(tiny_state, best_like(tiny_state))
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["20", "40"]


@pytest.mark.parametrize(
    ("other", "expected"),
    [
        ({"hidden": (16, 8)}, r"missing params/decoder/dense_2/bias"),
        ({"hidden": ()}, r"extra params/decoder/dense_1/bias"),
        (
            {"latent_dim": 3},
            r"reshaped params/decoder/dense_0/kernel \(4, 16\) in the checkpoint "
            r"vs \(3, 16\) expected",
        ),
    ],
)
def test_checkpoint_of_another_model_is_a_clear_error(tiny_run, other, expected):
    state = _tiny_state(TINY.replace(**other))
    with Checkpointer(tiny_run / "checkpoints", read_only=True) as c:
        with pytest.raises(CheckpointError, match=rf"does not match this model.*{expected}"):
            c.restore(state, best_like(state))


def test_load_run_with_edited_config_names_the_missing_keys(tiny_run, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(tiny_run, workdir)
    config = json.loads((workdir / "config.json").read_text())
    (workdir / "config.json").write_text(json.dumps({**config, "hidden": [16, 8]}))
    with pytest.raises(
        CheckpointError,
        match=r"checkpoints/40 does not match this model.*"
        r"missing params/.*dense_2",
    ):
        load_run(workdir)


def test_evaluate_needs_a_run_directory(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli.main(["evaluate", str(tmp_path / "empty")]) == 2
    assert "not an aejax run directory (no config.json)" in capsys.readouterr().err
    assert cli.main(["evaluate", str(tmp_path / "nope")]) == 2
    assert "no such directory" in capsys.readouterr().err
    run = tmp_path / "no-ckpt"
    run.mkdir()
    (run / "config.json").write_text(TINY.dumps())
    assert cli.main(["evaluate", str(run)]) == 2
    assert "no checkpoint directory" in capsys.readouterr().err
    (run / "checkpoints").mkdir()
    assert cli.main(["evaluate", str(run)]) == 2
    assert "holds no committed checkpoint" in capsys.readouterr().err
    (run / "config.json").write_text("{not json")
    assert cli.main(["evaluate", str(run)]) == 2
    assert "config.json is unreadable" in capsys.readouterr().err


# --- another run in the workdir --------------------------------------------------------------


def test_workdir_of_another_config_is_refused_then_fresh_starts_over(reference, tmp_path, capsys):
    workdir = tmp_path / "run"
    shutil.copytree(reference, workdir)
    before = (workdir / "config.json").read_text()
    assert (
        cli.main(["train", *ARGS, "--workdir", str(workdir), "--model", "vae", "--latent-dim", "4"])
        == 2
    )
    err = capsys.readouterr().err
    assert "holds a run with another config" in err
    assert "model: 'ae' -> 'vae'" in err and "latent_dim: 8 -> 4" in err and "--fresh" in err
    assert (workdir / "config.json").read_text() == before
    assert _committed(workdir) == [BEFORE_LAST, LAST]
    # Without config.json (a run killed before writing it) the checkpoints tell the config.
    (workdir / "config.json").unlink()
    argv = ["train", *ARGS, "--workdir", str(workdir), "--set", "hidden=16", "--json"]
    assert cli.main(argv) == 2
    assert "hidden: [32] -> [16]" in capsys.readouterr().err
    assert cli.main([*argv, "--epochs", "1", "--fresh"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == STEPS_PER_EPOCH
    assert _committed(workdir) == [STEPS_PER_EPOCH]
    assert json.loads((workdir / "config.json").read_text())["hidden"] == [16]


# --- unwritable or full disks ----------------------------------------------------------------


def test_edited_config_json_is_refused_by_evaluate_and_train(reference, tmp_path, capsys):
    workdir = tmp_path / "run"
    shutil.copytree(reference, workdir)
    config = json.loads((workdir / "config.json").read_text())
    assert config["activation"] == "gelu"
    # Every shape stays the same: only the config recorded in the checkpoint tells.
    (workdir / "config.json").write_text(json.dumps({**config, "activation": "relu"}))
    assert cli.main(["evaluate", str(workdir)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1, err
    assert "activation: 'gelu' -> 'relu'" in err and f"checkpoints/{LAST}" in err
    # Resuming: with the edited value asked for, and with the run's own command.
    for extra in (["--set", "activation=relu"], []):
        assert cli.main(["train", *ARGS, "--workdir", str(workdir), *extra]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "activation: 'gelu' -> 'relu'" in err, err
    assert _committed(workdir) == [BEFORE_LAST, LAST]
    assert json.loads((workdir / "config.json").read_text())["activation"] == "relu"  # untouched
    # More epochs in config.json: a continued run killed before its next checkpoint.
    (workdir / "config.json").write_text(json.dumps({**config, "epochs": EPOCHS + 2}))
    assert cli.main(["evaluate", str(workdir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test_recon_mse"] > 0


def test_unwritable_checkpoint_directory_fails_before_training(tmp_path, capsys):
    # chmod does not stop root, so the directory is made impossible instead: it is a file.
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoints").write_text("not a directory")
    argv = ["train", "--workdir", str(tmp_path / "run"), "--no-progress"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "checkpoint directory" in err and "is not writable" in err and "not a directory" in err
    (tmp_path / "file").write_text("")
    argv[2] = str(tmp_path / "file")
    assert cli.main(argv) == 2
    assert "exists as a file, not a directory" in capsys.readouterr().err


def _limit_file_size():
    """In the child: files may not grow past 4 KiB, as on a full disk (works for root too)."""
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write (EFBIG) instead of dying
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_full_disk_is_a_clear_error_and_the_run_resumes(env, reference, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(reference, workdir)
    shutil.rmtree(workdir / "checkpoints" / str(LAST))  # as if killed after the one before
    proc = _run(env, workdir, preexec_fn=_limit_file_size)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr
    assert f"cannot write checkpoint {LAST}" in err and "File too large" in err, err
    assert f"the last committed checkpoint, step {BEFORE_LAST}, is intact" in err
    assert "Traceback" not in err, err
    # Nothing of the failed save is left, and nothing under a step's name.
    assert _committed(workdir) == [BEFORE_LAST] and not _leftovers(workdir)
    proc = _run(env, workdir, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["epochs_run"] == 1
    _assert_same_run(workdir, reference)


# When one write of an asynchronous save fails, Orbax closes its event loop while tensorstore
# finishes the others; their callbacks then raise "Event loop is closed" as unraisable
# exceptions (upstream noise: the failure itself is reported by the CheckpointError).
@pytest.mark.filterwarnings(LOOP_CLOSED_NOISE)
def test_failed_save_keeps_the_in_memory_run(digits, tmp_path, monkeypatch):
    from orbax.checkpoint._src.handlers import json_checkpoint_handler as handler

    config = TINY.replace(epochs=4)
    uninterrupted = train(config, dataset=digits)  # in memory: no checkpoint at all
    original = handler.JsonCheckpointHandler._save_fn
    saves = []

    async def full_disk(self, x, directory):
        saves.append(x["record"]["step"])
        if len(saves) >= 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return await original(self, x, directory)

    monkeypatch.setattr(handler.JsonCheckpointHandler, "_save_fn", full_disk)
    with pytest.raises(
        CheckpointError,
        match=r"cannot write checkpoint 60 .*No space left on "
        r"device.*step 40, is intact",
    ) as info:
        train(config, tmp_path, dataset=digits)
    time.sleep(0.5)  # lets those late callbacks fire within this test
    gc.collect()
    # Saves are asynchronous: the failure of epoch 3's save surfaces at epoch 4's.
    result = info.value.result
    assert int(result.state.step) == 4 * STEPS_PER_EPOCH and len(result.history) == 4
    _assert_trees_equal(result.state, uninterrupted.state)  # nothing trained was lost
    assert _committed(tmp_path) == [20, 40] and not _leftovers(tmp_path)
    # (Resuming after a failed save: test_full_disk_is_a_clear_error_and_the_run_resumes.)


# --- numerics guards -------------------------------------------------------------------------


def test_gradient_clipping_is_on_by_default():
    import jax.numpy as jnp

    config = Config()
    assert config.grad_clip == 1.0
    tx = make_optimizer(config, total_steps=10)
    params = {"w": jnp.zeros(4)}
    huge = {"w": jnp.full(4, 1e6)}
    _, opt_state = tx.update(huge, tx.init(params), params)
    # Adam's first moment after one step is (1 - b1) * gradient: the gradient was clipped to
    # global norm 1 before Adam saw it.
    mu = jax.tree.leaves(
        [
            s.mu
            for s in jax.tree.leaves(opt_state, is_leaf=lambda s: hasattr(s, "mu"))
            if hasattr(s, "mu")
        ]
    )
    np.testing.assert_allclose(float(jnp.linalg.norm(mu[0])), 0.1, rtol=1e-5)


def test_clip_by_global_norm_equals_optax():
    import jax.numpy as jnp
    import optax

    from aejax.train.optim import clip_by_global_norm

    rng = np.random.default_rng(0)
    grads = {"w": jnp.asarray(rng.normal(size=(7, 5)), jnp.float32), "b": jnp.ones(5)}
    norm = float(optax.global_norm(grads))  # ~6.4
    for max_norm in (0.5, 1.0, 3.0, norm * 2, 1e3):
        ours, _ = clip_by_global_norm(max_norm).update(grads, optax.EmptyState())
        ref, _ = optax.clip_by_global_norm(max_norm).update(grads, optax.EmptyState())
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=3e-7, atol=0), ours, ref)
        np.testing.assert_allclose(float(optax.global_norm(ours)), min(norm, max_norm), rtol=1e-6)
        if max_norm > norm:  # below the threshold the updates pass through bit for bit
            jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), ours, grads)
    zeros = jax.tree.map(jnp.zeros_like, grads)  # norm 0: unchanged, no NaN from max/0
    ours, _ = clip_by_global_norm(1.0).update(zeros, optax.EmptyState())
    jax.tree.map(lambda a: np.testing.assert_array_equal(a, 0.0), ours)


def test_nonfinite_validation_loss_stops_either_policy(digits):
    from aejax.data import Dataset
    from aejax.errors import TrainingDivergedError

    rng = np.random.default_rng(0)
    ds = Dataset(
        "toy",
        "tabular",
        rng.normal(size=(256, 6)).astype(np.float32),
        (rng.normal(size=(32, 6)) * 1e30).astype(np.float32),
        rng.normal(size=(32, 6)).astype(np.float32),
    )
    config = TINY.replace(data="toy", nonfinite="skip")
    with pytest.raises(TrainingDivergedError, match="validation loss became inf in epoch 1") as e:
        train(config, dataset=ds)
    assert int(e.value.result.state.step) == 256 // 64  # the run so far comes with the error


def test_load_run_logs_no_orbax_read_only_warnings(tiny_run, caplog):
    import logging

    with caplog.at_level(logging.INFO):
        load_run(tiny_run)
    noise = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert noise == [], [r.getMessage() for r in noise]
