"""Streamed training (``stream=on``): the in-memory bits, nothing read whole, and a run
SIGKILLed mid-epoch resumed exactly from the data iterator's state in its checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import aejax
from aejax.data import stream
from aejax.data.arrayrecord import writer
from aejax.data.builtin import load_dataset
from aejax.evaluate import evaluate_workdir
from aejax.run import load_run
from aejax.train.resume import committed_checkpoint

TINY = dict(model="vae", hidden=(16,), latent_dim=4, epochs=2, batch_size=64, lr=3e-3)
TINY.update(progress=False, devices=1, device_data="off")


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    """The digits as 8-bit images in ArrayRecord files (labelled), written in chunks."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.round(d.images / 16 * 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("arec") / "digits"
    with writer(path, split="train", shape=(8, 8), dtype="uint8", labels=True) as w:
        for i in range(0, len(x), 400):
            w.write(x[i : i + 400], d.target[i : i + 400])
    return path


def _same(a, b) -> bool:
    return all(
        np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def test_streamed_training_gives_the_in_memory_bits_and_reads_no_split_whole(
    digits_dir, monkeypatch
):
    spec = f"arrayrecord:{digits_dir}"
    streamed = load_dataset(spec, stream="on")
    loaded = load_dataset(spec, stream="off")
    assert stream.streamed(streamed.x_train) and isinstance(loaded.x_train, np.ndarray)
    assert loaded.x_train.dtype == np.uint8 and streamed.x_train.shape == loaded.x_train.shape
    config = aejax.Config(data=spec, **TINY)
    _, in_memory = aejax.train_and_evaluate(config, dataset=loaded, plot=False)

    def whole(self, dtype=None, copy=None):
        raise AssertionError(f"{self!r} was read whole")

    # Training, validation and the report read batches and samples, never a whole split.
    monkeypatch.setattr(stream.StreamedArray, "__array__", whole)
    summary, result = aejax.train_and_evaluate(config, dataset=streamed, plot=False)
    assert result.stats["device_data"] is False  # streamed data are never put on the device
    assert _same(result.variables, in_memory.variables)
    assert [h["val_loss"] for h in result.history] == [h["val_loss"] for h in in_memory.history]
    # The report's samples hold the whole (small) splits here: the same figures.
    assert summary["report_sample"] == {"x_train": 1293, "x_test": 360}
    assert (
        summary["test_recon_mse"]
        == aejax.train_and_evaluate(config, dataset=loaded, plot=False)[0]["test_recon_mse"]
    )


def test_streamed_reads_are_checked_as_they_come(tmp_path):
    src = np.zeros((10, 4, 4, 1), np.float32)
    src[7, 0, 0, 0] = 2.0  # outside [0, 1]
    ds = stream.streamed_dataset("bad", src, (4, 4, 1), np.float32, val_fraction=0, test_fraction=0)
    ds.x_train[:3]  # fine
    with pytest.raises(aejax.DataError, match=r"record 7 has pixels outside \[0, 1\]"):
        ds.x_train[np.arange(10)]
    with pytest.raises(aejax.DataError, match="stream='sometimes' is not one of auto, on, off"):
        load_dataset("digits", stream="sometimes")


def _cli(workdir, spec, *extra) -> list[str]:
    return [
        sys.executable, "-m", "aejax.cli", "train", "--model", "vae", "--data", spec,
        "--workdir", str(workdir), "--epochs", "2", "--batch-size", "64", "--devices", "1",
        "--no-progress", "--set", "hidden=16", "--set", "latent_dim=4", *extra,
    ]  # fmt: skip


def test_a_streamed_run_killed_mid_epoch_resumes_from_the_iterator_state_exactly(
    digits_dir, tmp_path
):
    spec = f"arrayrecord:{digits_dir}"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    # The reference: the same run loaded into memory (stream changes no bit).
    ref = subprocess.run(
        _cli(tmp_path / "ref", spec, "--set", "stream=off"),
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert ref.returncode == 0, ref.stderr.decode()[-2000:]
    workdir = tmp_path / "run"
    # Streamed epochs checkpoint mid-epoch every checkpoint_seconds: here before every step.
    cmd = _cli(workdir, spec, "--set", "stream=on", "--set", "checkpoint_seconds=0")
    log = tmp_path / "killed.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            meta = committed_checkpoint(workdir)
            # Killed once a checkpoint in the second epoch's middle is committed.
            if meta and meta.get("partial") and meta["loop"]["epoch"] >= 1:
                break
            time.sleep(0.02)
        alive = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert alive, log.read_text()[-2000:]
    meta = committed_checkpoint(workdir)
    partial = meta["partial"]
    assert partial["data_iterator"] == {"next_index": partial["steps"]} and partial["steps"] > 0
    done = subprocess.run(cmd[:-4] + ["--set", "stream=on", "--json"], env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert json.loads(done.stdout)["epochs_run"] == 2 - meta["loop"]["epoch"]
    # aejax evaluate of the streamed run: its (small) test split whole, the reference's figure.
    ref_summary = json.loads((tmp_path / "ref" / "summary.json").read_text())
    assert evaluate_workdir(workdir)["test_recon_mse"] == ref_summary["test_recon_mse"]
    _, _, params, _ = load_run(workdir)
    _, _, ref_params, _ = load_run(tmp_path / "ref")
    assert _same(params, ref_params)
    ref_log = (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()
    log = (workdir / "metrics.jsonl").read_text().splitlines()
    drop = ("epoch_seconds",)
    strip = [{k: v for k, v in json.loads(r).items() if k not in drop} for r in log]
    assert strip == [{k: v for k, v in json.loads(r).items() if k not in drop} for r in ref_log]
