"""Ctrl-C and SIGTERM during training: noted by a handler, acted on between two steps.

``train`` installs ``InterruptGuard`` for its loop only and restores the handlers it found
when the loop ends (nothing is installed at import). The first SIGINT or SIGTERM sets a
flag that the loop reads between steps (a Python attribute: no host sync); the loop then
checkpoints the current step and passes the signal on to the handler that was installed
before (Python's default raises ``KeyboardInterrupt``; the ``aejax`` command's raises
``Terminated``). A second signal is passed on at once, as if aejax were not there.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from aejax.errors import Terminated

SIGNALS = (signal.SIGINT, signal.SIGTERM)
__all__ = ["SIGNALS", "InterruptGuard", "Terminated"]


class InterruptGuard:
    """While active (in the main thread), SIGINT and SIGTERM are held for ``deliver``.

    Signals whose handler is ``SIG_IGN`` (a background job's SIGINT) or not set from Python
    are left alone. Elsewhere than in the main thread it does nothing: only the main thread
    receives Python signal handlers.
    """

    def __init__(self) -> None:
        self.pending: int | None = None  # the signal number noted and not yet passed on
        self._frame: FrameType | None = None
        self._previous: dict[int, Any] = {}

    def start(self) -> None:
        """Installs the noting handler for SIGINT and SIGTERM (in the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in SIGNALS:
            previous = signal.getsignal(sig)
            if previous is signal.SIG_IGN or previous is None:
                continue
            self._previous[sig] = previous
            signal.signal(sig, self._note)

    def stop(self, deliver: bool = True) -> None:
        """Restores the handlers found by ``start``; then ``deliver``s a pending signal.

        Stopping again does nothing.
        """
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}
        if deliver and self.pending is not None:
            self.deliver()  # noted after the loop's last look: not swallowed

    def __enter__(self) -> InterruptGuard:
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.stop(deliver=exc_type is None)

    def _note(self, signum: int, frame: FrameType | None) -> None:
        if self.pending is None:
            self.pending, self._frame = signum, frame
            return
        # Asked twice: stop now, as without aejax (checkpoint writes hold signals until
        # Orbax returns, so this cannot leave a save half done).
        self.pending, self._frame = signum, frame
        self.deliver()

    def deliver(self) -> None:
        """Passes the pending signal to the handler installed before, and clears it.

        Raises:
          Whatever that handler raises: ``KeyboardInterrupt`` for Python's SIGINT default,
          ``Terminated`` for a SIGTERM whose default would have ended the process.
        """
        signum, frame = self.pending, self._frame
        self.pending, self._frame = None, None
        if signum is None:
            return
        previous = self._previous.get(signum, signal.getsignal(signum))
        if callable(previous):
            previous(signum, frame)
        elif signum == signal.SIGTERM:
            raise Terminated
        else:
            raise KeyboardInterrupt
