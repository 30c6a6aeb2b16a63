"""The ``aejax`` process: its entry point ``main``, what it sets when it owns the process
(warnings, log filters, SIGTERM), a closed pipe, Ctrl-C and SIGTERM.

Nothing here imports the library: the command's handler (``aejax.cli.commands``) imports
what it needs when it runs, so ``aejax --help``, ``aejax models`` or a typo start fast.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import warnings

from aejax.cli.commands import handler_for
from aejax.cli.commands.train import after_interrupt
from aejax.cli.parser import build_parser, command_of
from aejax.errors import AejaxError, Terminated


def _on_sigterm(signum, frame):
    raise Terminated


class _NoTracebacks(logging.Filter):
    """Keeps Orbax's error log lines but drops their tracebacks: aejax reports the cause.

    Also drops asyncio's "exception was never retrieved" records: the same failed write,
    found again when its tasks are garbage-collected.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "asyncio" and "exception was never retrieved" in record.getMessage():
            return False
        record.exc_info, record.exc_text = None, None
        return True


def _quiet_unraisable(default):
    # When a checkpoint read fails, tensorstore completes its other reads after Orbax has
    # closed their event loop; Python then prints "RuntimeError: Event loop is closed"
    # tracebacks that say nothing about the real (already reported) problem.
    def hook(unraisable):
        if isinstance(unraisable.exc_value, RuntimeError) and "Event loop is closed" in str(
            unraisable.exc_value
        ):
            return
        default(unraisable)

    return hook


# Set by ``aejax sweep`` (``aejax.apps.sweep``) in its workers' environment: its own pid.
PARENT_ENV = "AEJAX_PARENT_PID"


def _exit_with_parent() -> None:
    """A sweep's worker ends as on SIGTERM once its sweep is gone (SIGKILL, a closed
    terminal): it checkpoints its step and exits, which releases its run directory's lock
    for the sweep run again. A thread polls ``os.getppid()``: portable, and a worker's
    parent changes only when the sweep ends (at once, if it is gone already)."""
    try:
        parent = int(os.environ.pop(PARENT_ENV, ""))
    except ValueError:
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="aejax-exit-with-parent", daemon=True).start()


def _setup_process() -> None:
    """Process-wide settings the command line may make and the library must not."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    # Python warnings (e.g. "skipping unreadable checkpoint") as one line each.
    warnings.formatwarning = lambda message, category, *_: f"warning: {message}\n"
    for name in ("absl", "asyncio"):
        logging.getLogger(name).addFilter(_NoTracebacks())
    sys.unraisablehook = _quiet_unraisable(sys.unraisablehook)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        # Lets a pending checkpoint save commit before the process exits.
        signal.signal(signal.SIGTERM, _on_sigterm)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``aejax`` console script.

    Without ``argv`` (the console script, ``python -m aejax.cli``) it owns the process: it
    sets process-wide logging and a SIGTERM handler, and an interrupt ends it with status
    130 (Ctrl-C) or 143 (SIGTERM). With ``argv`` (a notebook, a test, a script's loop) it
    changes no process-wide handler, and an interrupt is raised again after its message:
    the caller's Ctrl-C is not swallowed.

    A reader that stops early (``aejax config | head``) closes the pipe: the command then
    ends quietly with status 141 (128 + SIGPIPE, what a shell reports for a tool killed by
    the closed pipe) instead of a ``BrokenPipeError`` traceback, the recipe of Python's
    ``signal`` documentation ("Note on SIGPIPE").
    """
    try:
        try:
            return _main(argv)
        finally:
            if argv is None:  # flush now: a closed pipe surfaces here, not at exit
                sys.stdout.flush()
    except BrokenPipeError:
        if argv is None:
            # Python flushes stdout again at exit: point it at devnull so that flush
            # cannot fail (and print "Exception ignored ... BrokenPipeError") too.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 141


def _main(argv: list[str] | None) -> int:
    """Parses ``argv``, runs the command's handler and turns its errors into statuses."""
    words = sys.argv[1:] if argv is None else list(argv)
    command = command_of(words)
    # Only the named command's options are built: the others need not be read.
    args = build_parser(command, every=False).parse_args(argv)
    handler = handler_for(args.command)
    if argv is None:  # the console script or ``python -m aejax.cli``: we own the process
        _setup_process()
    else:
        warnings.filterwarnings("ignore", category=DeprecationWarning)
    try:
        if argv is None:  # inside the try: a sweep already gone stops it as SIGTERM does
            _exit_with_parent()
        return handler(args)
    except AejaxError as e:
        print(f"aejax {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM as Terminated
        what = "terminated (SIGTERM)" if isinstance(e, Terminated) else "interrupted"
        print(f"aejax {args.command}: {what}; {after_interrupt(args, e)}", file=sys.stderr)
        if argv is not None:
            raise  # the caller owns Ctrl-C: a test suite or a notebook loop stops too
        return 143 if isinstance(e, Terminated) else 130
