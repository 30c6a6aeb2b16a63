"""Atomic Orbax checkpoints of the whole run: state, best parameters and loop metadata."""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import signal
import tempfile
import threading
import time
import warnings
from typing import Any

import jax
import orbax.checkpoint as ocp

from aejax._logging import absl_quiet
from aejax.errors import CheckpointError
from aejax.train import _integrity

# Orbax names an unfinished save "<step>.orbax-checkpoint-tmp"; only the final rename to
# "<step>" makes it a checkpoint.
_TMP_MARK = ".orbax-checkpoint-tmp"
# How many differing leaves a structure error lists before it says "and N more".
_SHOW = 6
# The layout of what is saved. 1: aejax 0.1 (one optimizer state, no model state);
# 2: engine v2 (an optimizer state per parameter group, model state, ``best`` holding
# params and model state); 3: format 2 plus the integrity manifest in the metadata
# (``_integrity``). Format 1 checkpoints are refused with an error naming it. Format 2
# ones hold the same arrays and are loaded, with a warning that they cannot be verified:
# refusing them would strand every run trained before the manifest existed. A format 3
# checkpoint without a manifest is damaged.
FORMAT = 3
READABLE = (2, 3)


def abstract_like(tree: Any) -> Any:
    """Shape/dtype/sharding skeleton of ``tree``, the restore target Orbax needs.

    Carrying each leaf's sharding lets a checkpoint written on N devices restore on M.
    """
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
        tree,
    )


class Checkpointer:
    """Saves and restores ``{"state", "best", "meta"}`` under ``directory``.

    Orbax writes every save to a temporary directory and renames it when complete, so a
    killed process never leaves a half-written checkpoint that looks valid. Every save
    records a hash of each array and of the metadata (``_integrity``), checked on every
    read. ``restore`` walks back from the newest step and skips (with a warning) any that
    fail to load or to match their hashes; in write mode it also renames such a step to
    ``<step>.unreadable`` so the resumed run can write that step again. Saves are
    asynchronous: a failed write is reported as a ``CheckpointError`` by the next
    ``save``, ``wait`` or ``close``.
    """

    def __init__(self, directory: str | os.PathLike, keep: int = 2, *, read_only: bool = False):
        self.directory = pathlib.Path(directory).absolute()
        self.read_only = read_only
        if not read_only:
            check_writable(self.directory)
        elif not self.directory.is_dir():
            raise CheckpointError(f"no checkpoint directory at {self.directory}")
        self._pending: int | None = None  # the step of a save that may still be running
        self._closed = False
        self.keep = keep
        self._warned: set[int] = set()  # steps already reported as unreadable
        try:
            # Read-only mode is what we asked for: Orbax's two warnings saying so ("setting
            # save_interval_steps=0", "directory is read only") are noise for a user.
            with absl_quiet(read_only):
                options = ocp.CheckpointManagerOptions(
                    max_to_keep=None if read_only else keep,
                    create=False,
                    read_only=read_only,
                    # Removes "<step>.orbax-checkpoint-tmp" left by a process killed mid-save.
                    cleanup_tmp_directories=not read_only,
                )
                self._manager = ocp.CheckpointManager(
                    self.directory,
                    options=options,
                    item_handlers={
                        "state": ocp.StandardCheckpointHandler(),
                        "best": ocp.StandardCheckpointHandler(),
                        "meta": ocp.JsonCheckpointHandler(),
                    },
                )
        except (OSError, ValueError) as e:
            raise CheckpointError(f"cannot open checkpoint directory {self.directory}: {e}") from e

    def steps(self) -> list[int]:
        """Committed checkpoint steps, oldest first."""
        return sorted(self._manager.all_steps())

    def save(self, step: int, state: Any, best: Any, meta: dict) -> None:
        """Starts an asynchronous save; device buffers are copied before it returns.

        The arrays are hashed here, before returning, from the buffers being saved (a
        caller may donate them right after); the hashes travel in ``meta``.

        Raises:
          CheckpointError: this save could not start, or the previous one failed (disk full,
            permissions...). Nothing of a failed save is left under a step's name.
        """
        self.wait()
        meta = _integrity.seal({**meta, "format": FORMAT}, {"state": state, "best": best})
        with _signals_deferred():
            try:
                self._manager.save(
                    step,
                    args=ocp.args.Composite(
                        state=ocp.args.StandardSave(state),
                        best=ocp.args.StandardSave(best),
                        meta=ocp.args.JsonSave(meta),
                    ),
                    force=True,
                )
            except Exception as e:  # noqa: BLE001 - any failure to write is a CheckpointError
                self._remove_unfinished()
                raise CheckpointError(self._failure(step, e)) from e
            self._pending = step

    def restore(self, state_like: Any, best_like: Any) -> tuple[Any, Any, dict, int] | None:
        """Restores the newest loadable checkpoint onto the shapes/shardings of the examples.

        Args:
          state_like: a state (or abstract state) with the target structure and shardings.
          best_like: likewise for the best-parameter tree.

        A checkpoint whose arrays or metadata differ from the hashes recorded when it was
        written is treated like an unreadable one: skipped with a warning naming it and its
        damaged leaves, never returned. One written before checkpoints carried hashes
        (format 2) is returned with a warning that it could not be verified.

        Returns:
          ``(state, best, meta, step)``, or None when there is no checkpoint at all.

        Raises:
          CheckpointError: a checkpoint has other parameters than the target (missing, extra
            or reshaped leaves: another model), or no checkpoint is loadable.
        """
        steps = self.steps()
        if not steps:
            return None
        errors, unreadable = [], []
        for step in reversed(steps):
            try:
                meta = self._read_meta(step)
                stored = self._manager.metadata(step).item_metadata
                trees = {name: getattr(stored[name], "tree", None) for name in ("state", "best")}
                absent = [name for name, tree in trees.items() if tree is None]
                if absent:
                    raise ValueError(f"no tree metadata for {absent}")
            except Exception as e:  # noqa: BLE001 - any unreadable checkpoint is skipped
                errors.append(self._skip(step, e))
                unreadable.append(step)
                continue
            check_format(meta, f"{self.directory}/{step}")
            # A checkpoint with other parameters is another model, not a damaged file: stop
            # instead of silently falling back to an even older step.
            for name, like in (("state", state_like), ("best", best_like)):
                diff = structure_diff(trees[name], like)
                if diff:
                    raise CheckpointError(
                        f"checkpoint {self.directory}/{step} does not match this model "
                        f"({name}: {diff}). Was it written with another model or config? Use "
                        "another workdir, or --fresh (fresh=True) to discard it."
                    )
            try:
                restored = self._manager.restore(
                    step,
                    args=ocp.args.Composite(
                        state=ocp.args.StandardRestore(abstract_like(state_like)),
                        best=ocp.args.StandardRestore(abstract_like(best_like)),
                    ),
                )
                items = {"state": restored["state"], "best": restored["best"]}
                if "integrity" in meta:
                    _integrity.check_arrays(meta, items)
            except Exception as e:  # noqa: BLE001 - truncated or corrupted array data
                errors.append(self._skip(step, e))
                unreadable.append(step)
                continue
            if "integrity" not in meta:
                warnings.warn(
                    f"checkpoint {self.directory}/{step} was written before aejax checkpoints "
                    f"carried hashes (format {meta.get('format', 1)}): loaded without "
                    "verifying its arrays",
                    stacklevel=2,
                )
            self._set_aside(unreadable)
            self._prune()
            return items["state"], items["best"], meta, step
        raise CheckpointError(
            f"no loadable checkpoint in {self.directory}:\n  "
            + "\n  ".join(errors)
            + "\nUse --fresh (fresh=True) to discard them and start again."
        )

    def read_meta(self, step: int | None = None) -> dict | None:
        """The JSON metadata of ``step`` (default: the newest readable one), or None if none.

        Raises:
          CheckpointError: checkpoints exist but none has readable metadata.
        """
        steps = self.steps()
        if not steps:
            return None
        if step is not None:
            try:
                return self._read_meta(step)
            except Exception as e:  # noqa: BLE001
                raise CheckpointError(
                    f"checkpoint {self.directory}/{step} is unreadable: {_brief(e)}"
                ) from e
        return self.latest_meta()[1]

    def latest_meta(self) -> tuple[int, dict] | None:
        """``(step, metadata)`` of the newest step with readable metadata, or None if none.

        Raises:
          CheckpointError: checkpoints exist but none has readable metadata.
        """
        steps = self.steps()
        if not steps:
            return None
        errors = []
        for s in reversed(steps):
            try:
                return s, self._read_meta(s)
            except Exception as e:  # noqa: BLE001
                errors.append(self._skip(s, e))
        raise CheckpointError(
            f"no readable checkpoint in {self.directory}:\n  " + "\n  ".join(errors)
        )

    def wait(self) -> None:
        """Blocks until a pending asynchronous save is committed.

        Raises:
          CheckpointError: that save failed; the checkpoints committed before it are intact.
        """
        with _signals_deferred():
            try:
                self._manager.wait_until_finished()
            except Exception as e:  # noqa: BLE001
                self._remove_unfinished()
                raise CheckpointError(self._failure(self._pending, e)) from e
            finally:
                self._pending = None

    def close(self) -> None:
        """Waits for a pending save (raising CheckpointError if it failed) and closes.

        Closing again does nothing.
        """
        if self._closed:
            return
        try:
            self.wait()
        finally:
            self._closed = True
            with _signals_deferred():
                try:
                    self._manager.close()
                except Exception:  # noqa: BLE001 - the failure was already reported by wait()
                    pass

    def close_quietly(self) -> None:
        """``close`` for paths that already raise: a failed pending save is not reported."""
        try:
            self.close()
        except CheckpointError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- internals -----------------------------------------------------------------------
    def _read_meta(self, step: int) -> dict:
        meta = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        meta = meta["meta"]
        if not isinstance(meta, dict) or "loop" not in meta:
            raise ValueError(f"metadata is not an aejax record: {str(meta)[:80]!r}")
        # A format 3 checkpoint must carry its manifest: one whose "integrity" key was
        # damaged must not pass for an older, unverifiable checkpoint.
        found = meta.get("format", 1)
        if "integrity" in meta or not isinstance(found, int) or found >= 3:
            _integrity.check_meta(meta)
        return meta

    def _skip(self, step: int, e: Exception) -> str:
        damaged = isinstance(e, _integrity.IntegrityError)
        detail = str(e) if damaged else _brief(e)  # damage: the leaves, no type name
        if step not in self._warned:
            self._warned.add(step)
            warnings.warn(
                f"skipping {'damaged' if damaged else 'unreadable'} checkpoint "
                f"{self.directory}/{step} ({detail})",
                stacklevel=3,
            )
        return f"step {step}: {detail}"

    def _set_aside(self, steps: list[int]) -> None:
        """Renames unreadable steps newer than the restored one, so they can be re-saved."""
        if self.read_only or not steps:
            return
        for step in steps:
            src = self.directory / str(step)
            dst = self.directory / f"{step}.unreadable"
            n = 1
            while dst.exists():
                n += 1
                dst = self.directory / f"{step}.unreadable-{n}"
            try:
                src.rename(dst)
            except OSError as e:
                raise CheckpointError(f"cannot move unreadable checkpoint {src} aside: {e}") from e
            warnings.warn(
                f"moved unreadable checkpoint {src} to {dst}; delete it when you no longer need it",
                stacklevel=3,
            )
        self._manager.reload()

    def _prune(self) -> None:
        """Deletes the oldest steps beyond ``keep`` (write mode).

        Orbax applies ``max_to_keep`` only when it saves, so a directory holding more (a
        kill between a commit and the deletion of the step it replaces, or a lower
        ``keep_checkpoints`` on resume) would keep them for good if the resumed run is
        complete or is interrupted before its next save.
        """
        if self.read_only or not self.keep:
            return
        steps = self.steps()
        for step in steps[: max(len(steps) - self.keep, 0)]:
            try:
                self._manager.delete(step)
            except (OSError, FileNotFoundError) as e:
                raise CheckpointError(
                    f"cannot delete old checkpoint {self.directory}/{step}: {e}"
                ) from e

    def _remove_unfinished(self) -> None:
        """Deletes temporary directories of failed saves (frees the space they took).

        Orbax reports the first failed item while others may still be writing, and a late
        write can recreate a removed directory, so this retries briefly. Any remains are
        removed when the directory is next opened for writing; they never carry a step's
        name, so they never look like a checkpoint.
        """
        for _ in range(20):
            leftovers = list(self.directory.glob(f"*{_TMP_MARK}*"))
            if not leftovers:
                return
            for p in leftovers:
                shutil.rmtree(p, ignore_errors=True)
            time.sleep(0.05)

    def _failure(self, step: int | None, e: Exception) -> str:
        try:
            committed = self.steps()
        except Exception:  # noqa: BLE001
            committed = []
        kept = (
            f"the last committed checkpoint, step {committed[-1]}, is intact"
            if committed
            else "no checkpoint was committed"
        )
        which = f"checkpoint {step}" if step is not None else "a checkpoint"
        return (
            f"cannot write {which} in {self.directory}: {_brief(e)}. Nothing of it was "
            f"kept; {kept}. Free space or fix permissions, then run again to resume."
        )


@contextlib.contextmanager
def _signals_deferred():
    """Holds Ctrl-C and a Python SIGTERM handler's exception until Orbax has returned.

    An exception raised inside Orbax's save machinery can leave one of its threads waiting
    forever, so that the process never exits; raised just after, it lets ``close`` commit the
    pending save. Signals with no Python handler (SIGKILL, a default SIGTERM) are untouched:
    they end the process at once, which the atomic commits already tolerate.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread receives Python signal handlers
        return
    held, previous = [], {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(sig)
        if callable(handler):
            previous[sig] = handler
            signal.signal(sig, lambda signum, frame: held.append((signum, frame)))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if held:
            signum, frame = held[0]
            previous[signum](signum, frame)


def check_format(meta: dict, where: str) -> None:
    """Raises CheckpointError unless ``meta`` was written in a format this version reads."""
    found = meta.get("format", 1)
    if found not in READABLE:
        raise CheckpointError(
            f"checkpoint {where} is in aejax checkpoint format {found}"
            + (" (aejax 0.1: one optimizer state, no model state)" if found == 1 else "")
            + f"; this aejax reads formats {' and '.join(map(str, READABLE))}. Train it "
            "again (--fresh), or load it with the aejax version that wrote it."
        )


def structure_diff(stored: Any, target: Any) -> str:
    """Describes how the leaves of a checkpoint's tree metadata differ from ``target``.

    Args:
      stored: Orbax tree metadata (nested dicts/lists of array metadata).
      target: the pytree a restore would fill (arrays or ``ShapeDtypeStruct``).

    Returns:
      ``""`` when every leaf path exists on both sides with the same shape; otherwise a
      message naming missing, extra and reshaped leaves (``params/encoder/dense_0/kernel``).
    """
    have, want = _leaf_shapes(stored), _leaf_shapes(target)

    def order(path: str) -> tuple[bool, str]:
        return "opt_state" in path, path  # parameters first: the moments repeat them

    missing = sorted(set(want) - set(have), key=order)
    extra = sorted(set(have) - set(want), key=order)
    reshaped = [
        f"{k} {have[k]} in the checkpoint vs {want[k]} expected"
        for k in sorted(set(have) & set(want), key=order)
        if have[k] is not None and want[k] is not None and have[k] != want[k]
    ]
    parts = []
    for label, items in (("missing", missing), ("extra", extra), ("reshaped", reshaped)):
        if items:
            more = f" and {len(items) - _SHOW} more" if len(items) > _SHOW else ""
            parts.append(f"{label} {', '.join(items[:_SHOW])}{more}")
    return "; ".join(parts)


def _leaf_shapes(tree: Any) -> dict[str, tuple[int, ...] | None]:
    """``{"a/b/0/c": shape}`` for every leaf; None for PRNG keys (stored as raw key data)."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        name = "/".join(_key_name(k) for k in path)
        dtype = getattr(leaf, "dtype", None)
        is_key = dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)
        shape = getattr(leaf, "shape", None)
        out[name] = None if is_key or shape is None else tuple(shape)
    return out


def _key_name(k: Any) -> str:
    for attr in ("key", "name", "idx"):  # DictKey, GetAttrKey, SequenceKey
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def _brief(e: BaseException) -> str:
    """``Type: message`` on one line, its middle cut out when it is long."""
    text = " ".join(str(e).split())
    if len(text) > 320:  # tensorstore puts the cause (e.g. "File too large") at the end
        text = text[:160] + " ... " + text[-160:]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def check_writable(directory: pathlib.Path) -> None:
    """Creates ``directory`` if needed and writes (and deletes) a probe file in it.

    Raises:
      CheckpointError: it exists as a file, or cannot be created or written.
    """
    if directory.exists() and not directory.is_dir():
        raise CheckpointError(
            f"checkpoint directory {directory} is not writable: it exists "
            "as a file, not a directory"
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-test-"):
            pass
    except OSError as e:
        raise CheckpointError(f"checkpoint directory {directory} is not writable: {e}") from e
