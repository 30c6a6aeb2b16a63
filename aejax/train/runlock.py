"""One run directory, one writer: an advisory lock held for the life of a training process.

The lock is ``fcntl.flock`` on ``<workdir>/.lock``, a file that records the holder (pid,
host, start time) as JSON. The operating system releases it when the process ends, however
it ends, so a SIGKILLed run never leaves a stale lock: the next run takes it. Readers
(``load_run``, ``aejax evaluate``, ``encode``, ``sample``...) never take it.

On a platform without ``fcntl`` (Windows) no lock is taken: keeping one writer per run
directory is then up to the user.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import socket
import threading

from aejax.errors import CheckpointError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_NAME = ".lock"

# Locks this process holds, by resolved path: ``train`` inside ``train_and_evaluate`` takes
# the lock its caller already holds (the same thread), never a second flock that would
# conflict with the first.
_HELD: dict[str, RunLock] = {}
_HELD_GUARD = threading.Lock()


class RunLock:
    """The writer's lock on a run directory; use ``lock_run`` to take it."""

    def __init__(self, workdir: pathlib.Path):
        self.workdir = workdir
        self.path = workdir / LOCK_NAME
        self._fd: int | None = None
        self._inode: tuple[int, int] | None = None
        self._created = False  # this lock created the workdir (removed again if left empty)
        self._owner = threading.get_ident()
        self._depth = 0

    def acquire(self) -> None:
        """Creates the workdir if needed and takes the lock, or refuses at once.

        Raises:
          CheckpointError: another process (or another thread of this one) holds it; the
            message names the directory and the holder (pid, host, start time).
        """
        self._created = not self.workdir.exists()
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CheckpointError(f"cannot create workdir {self.workdir}: {e}") from e
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise CheckpointError(f"cannot create the lock file {self.path}: {e}") from e
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise CheckpointError(
                    f"workdir {self.workdir} is in use by another training run ({holder}); "
                    "one run directory takes one writer. Wait for it to finish, stop it, or "
                    "use another --workdir."
                ) from None
            except OSError as e:
                os.close(fd)
                raise CheckpointError(f"cannot lock {self.path}: {e}") from e
            # The file may have been removed (an empty workdir cleaned up by its previous
            # holder) between our open and our flock: then this lock guards nothing.
            if _same_file(fd, self.path):
                break
            os.close(fd)
        self._fd = fd
        st = os.fstat(fd)
        self._inode = (st.st_dev, st.st_ino)
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)

    def check(self) -> None:
        """Raises CheckpointError if the lock file was removed or replaced under this run.

        Someone deleted the workdir, or discarded it by hand while this run wrote into it:
        a checkpoint written now would mix two runs or land in a deleted directory.
        """
        if self._fd is None:
            return
        try:
            st = os.stat(self.path)
        except OSError:
            st = None
        if st is None or (st.st_dev, st.st_ino) != self._inode:
            raise CheckpointError(
                f"the lock file {self.path} of this run was "
                + ("removed" if st is None else "replaced")
                + " while it trained (the workdir deleted or discarded by hand?); stopping "
                "instead of writing checkpoints into a directory this run no longer owns"
            )

    def release(self) -> None:
        """Releases the lock; an empty workdir this lock created is removed again."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if self._created and _only_lock(self.workdir) and _same_file(fd, self.path):
                # A run refused (bad data, another config) before it wrote anything leaves
                # no directory behind. Unlinked while still locked: a process that opened
                # the old file meanwhile sees it gone after its flock and opens the new one.
                self.path.unlink(missing_ok=True)
                self.workdir.rmdir()
        except OSError:
            pass  # something appeared in it meanwhile: keep it
        finally:
            os.close(fd)


class _Held:
    """Context manager returned by ``lock_run``: releases on exit, reentrant per thread."""

    def __init__(self, lock: RunLock | None):
        self.lock = lock

    def __enter__(self) -> RunLock | None:
        return self.lock

    def __exit__(self, *exc) -> None:
        if self.lock is None:
            return
        with _HELD_GUARD:
            self.lock._depth -= 1
            if self.lock._depth:
                return
            _HELD.pop(str(self.lock.workdir.resolve()), None)
        self.lock.release()


def lock_run(workdir: str | os.PathLike, *, take: bool = True) -> _Held:
    """Takes the writer's lock on ``workdir`` (created if needed) for a ``with`` block.

    Reentrant within one thread (``train`` inside ``train_and_evaluate``); another thread
    of this process is refused like another process. Under ``jax.distributed`` only process
    0 takes it (``take=False`` elsewhere): the processes write one checkpoint directory
    together.

    Args:
      workdir: the run directory.
      take: False returns a context that locks nothing (other processes of a
        distributed run, platforms without ``fcntl``).

    Returns:
      A context manager whose value is the ``RunLock`` (None when nothing was taken).

    Raises:
      CheckpointError: the lock is held elsewhere (naming the holder), or the workdir or
        its lock file cannot be created.
    """
    if not take or fcntl is None:
        return _Held(None)
    workdir = pathlib.Path(workdir)
    key = str(workdir.resolve())
    with _HELD_GUARD:
        held = _HELD.get(key)
        if held is not None:
            if held._owner != threading.get_ident():
                raise CheckpointError(
                    f"workdir {workdir} is in use by another training run in this process "
                    f"(pid {os.getpid()}, another thread); use another --workdir"
                )
            held._depth += 1
            return _Held(held)
        lock = RunLock(workdir)
        lock.acquire()
        lock._depth = 1
        _HELD[key] = lock
        return _Held(lock)


def _same_file(fd: int, path: pathlib.Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _only_lock(workdir: pathlib.Path) -> bool:
    try:
        return [p.name for p in workdir.iterdir()] == [LOCK_NAME]
    except OSError:
        return False


def _read_holder(fd: int) -> str:
    """The holder recorded in the lock file, in words."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "null")
        return f"pid {info['pid']} on {info['host']}, started {info['started']}"
    except (OSError, ValueError, TypeError, KeyError):
        return "holder not recorded yet"
