"""``aejax train`` in a process that sends itself a real signal at a chosen training step.

Usage: ``python tests/_signal_at_step.py K SIGNAL train ARGS...``: the CLI runs as the console
script does (it owns the process), and ``SIGNAL`` (SIGINT or SIGTERM) goes to this process
with ``os.kill`` while the K-th training batch of this process (counted from 0) is placed,
so the signal lands inside a known step instead of after a racy delay.
"""

import os
import signal
import sys

from aejax import cli
from aejax.train import shard

_K, _SIGNAL = int(sys.argv[1]), getattr(signal, sys.argv[2])
# As in a terminal. A job put in the background by a non-interactive shell (a CI script's
# `cmd &`) starts with SIGINT ignored, which Python and aejax then rightly leave ignored.
signal.signal(signal.SIGINT, signal.default_int_handler)
# The host-fed loop (its batches are placed one by one, and a signal is seen before each
# step); the run it resumes may be device-resident: the bits are the same.
sys.argv = [sys.argv[0], *sys.argv[3:], "--set", "device_data=off"]
_put_batch = shard.put_batch
_count = 0


def _put_batch_then_signal(x, mesh):
    global _count
    if sys._getframe(1).f_code.co_name == "run_epoch":  # not the evals' batches
        if _count == _K:
            os.kill(os.getpid(), _SIGNAL)
        _count += 1
    return _put_batch(x, mesh)


shard.put_batch = _put_batch_then_signal
sys.exit(cli.main())
