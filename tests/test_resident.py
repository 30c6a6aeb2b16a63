"""Device-resident epochs (``aejax.train.resident``): the same bits as the host-fed loop,
an exact resume after a signal between two chunks, 8 devices = 1, one compile."""

import os
import signal

import numpy as np
import pytest
from _configs import SMALL
from _trees import host_leaves

from aejax.assemble import train
from aejax.train import loop as loop_mod
from aejax.train import resident

# 1348 training digits at batch 64: 21 steps an epoch and a remainder of 4 rows dropped.
CONFIG = SMALL.replace(epochs=2, checkpoint_every=0)


def _records(result) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in result.history]


def _assert_same(a, b):
    for x, y in zip(host_leaves(a.state), host_leaves(b.state), strict=True):
        np.testing.assert_array_equal(x, y)
    assert _records(a) == _records(b)


@pytest.fixture(scope="module")
def host_fed(digits):
    result = train(CONFIG.replace(device_data="off"), dataset=digits)
    assert result.stats["device_data"] is False
    return result


def test_device_resident_epochs_equal_the_host_fed_bits_and_compile_once(
    digits, host_fed, monkeypatch
):
    traces = []
    real = loop_mod.make_train_step

    def counting(*args, **kwargs):
        step = real(*args, **kwargs)

        def traced(*a, **k):
            traces.append(1)
            return step(*a, **k)

        return traced

    monkeypatch.setattr(loop_mod, "make_train_step", counting)
    # Chunks of 5 steps, then of 1 (the clock's target is 0 s): the bounds are arguments,
    # so every chunk runs the one compiled program.
    monkeypatch.setattr(resident, "FIRST_CHUNK", 5)
    monkeypatch.setattr(resident, "CHUNK_SECONDS", 0.0)
    result = train(CONFIG.replace(device_data="on"), dataset=digits)
    assert result.stats["device_data"] is True
    assert len(traces) == 1
    _assert_same(result, host_fed)


def test_auto_keeps_small_data_on_the_device_and_large_data_on_the_host(digits):
    import jax

    mesh = loop_mod.shard.make_mesh(1)
    x = {"x": np.zeros((100, 10), np.float32)}  # 4 kB
    dense, conv = (lambda: False), (lambda: True)
    assert resident.use_device_data("auto", 0.25, x, mesh, dense)
    assert not resident.use_device_data("auto", 1e-12, x, mesh, dense)
    assert resident.use_device_data("on", 1e-12, x, mesh, conv)
    assert not resident.use_device_data("off", 1.0, x, mesh, dense)
    # XLA's CPU convolutions are slower inside a loop: auto keeps such a model host-fed.
    assert not resident.use_device_data("auto", 0.25, x, mesh, conv)
    assert resident.device_memory(mesh) > 0  # a CPU: its physical RAM
    assert jax.devices()[0].platform == "cpu"


def test_a_signal_between_chunks_saves_the_step_and_resumes_to_the_same_bits(
    digits, host_fed, tmp_path, monkeypatch
):
    monkeypatch.setattr(resident, "FIRST_CHUNK", 4)
    monkeypatch.setattr(resident, "CHUNK_SECONDS", 0.0)
    real = resident.run_epoch_resident
    calls = {"n": 0}

    def signalling(*args, **kwargs):
        before = kwargs["before_chunk"]

        def before_chunk(i):
            calls["n"] += 1
            if calls["n"] == 30:
                os.kill(os.getpid(), signal.SIGINT)
            before(i)

        return real(*args, **{**kwargs, "before_chunk": before_chunk})

    monkeypatch.setattr(resident, "run_epoch_resident", signalling)
    config = CONFIG.replace(device_data="on")

    def callers_handler(signum, frame):  # Python's default; pytest-xdist workers ignore SIGINT
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGINT, callers_handler)
    try:
        with pytest.raises(KeyboardInterrupt) as e:
            train(config, tmp_path, dataset=digits)
    finally:
        signal.signal(signal.SIGINT, before)
    # Epoch 1: chunks at steps 0 (4 steps), 4, 5, ..., 20 (18 chunks); epoch 2: chunks of
    # 1 step at 21, 22, ...: the signal comes before the 30th, at step 32, which is saved.
    step = int(e.value.result.state.step)
    assert step == 32 and len(e.value.result.history) == 1
    monkeypatch.undo()
    resumed = train(config, tmp_path, dataset=digits)
    assert resumed.stats["epochs_run"] == 1
    _assert_same(resumed, host_fed)


def test_8_devices_equal_1(digits, host_fed):
    # 1348 rows on 8 devices: the device array is padded with 4 rows no batch reads.
    eight = train(CONFIG.replace(devices=8, device_data="on"), dataset=digits)
    assert eight.stats["device_data"] and eight.stats["devices"] == 8
    for x, y in zip(host_leaves(eight.state), host_leaves(host_fed.state), strict=True):
        np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-5)


def test_convolutional_finds_the_conv_models(digits):
    from aejax.assemble import assemble

    spec = {"x": np.zeros((2, *digits.input_shape), np.float32)}
    found = {}
    for name in ("ae", "conv_ae"):
        run = assemble(CONFIG.replace(model=name), digits)
        from aejax.train.state import state_shapes

        shapes = state_shapes(run.model, run.optimizers, digits.input_shape, 0)
        found[name] = resident.convolutional(run.model, shapes.variables(), spec)
    assert found == {"ae": False, "conv_ae": True}


# Run in a child with a timeout: if the watchdog failed, the wait would block forever and
# must fail this test, not stall the suite. A result that never comes while the process
# idles is what XLA's lost wakeup looked like (threads idle, the main one waiting); one
# that comes after 2 s of CPU is a slow chunk, which must not be called a hang.
_WATCHDOG = """
import threading, time
from aejax.errors import DeviceHangError
from aejax.train import resident
from aejax.train.epoch import Carry

class Pending:  # a result leaf: block_until_ready idles until released, or computes
    def __init__(self, busy):
        self.busy, self.release = busy, threading.Event()
    def block_until_ready(self):
        if self.busy:
            t = time.process_time()
            while time.process_time() - t < 2.0:
                pass
            self.busy = False
            self.release.set()
        self.release.wait()
        return self

resident.STALL_SECONDS = 0.5
resident.shard.fetch = lambda tree: tree
for busy in (False, True):
    acc = {"loss": Pending(busy)}
    carry = Carry({}, {})
    run = lambda state, _acc, *args: (state, acc)
    t0 = time.monotonic()
    try:
        planner = resident.ChunkPlanner(first=1)  # 2 chunks: 1 step, then 1 more
        resident.run_epoch_resident(run, carry, None, {}, None, 2, planner)
        print("busy" if busy else "idle", "done", carry.in_step, flush=True)
    except DeviceHangError as e:
        print("busy" if busy else "idle", "raised", carry.in_step, round(time.monotonic() - t0), e)
    acc["loss"].release.set()
"""


def test_a_chunk_that_never_finishes_while_the_process_idles_raises():
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _WATCHDOG], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    idle, busy = out.stdout.strip().splitlines()
    assert idle.startswith("idle raised True")  # its state will never be ready
    assert "no progress" in idle and "--set device_data=off" in idle
    assert busy == "busy done False"
