"""The run directory's bookkeeping: config, scaler and metrics files, resume checks.

``workdir/`` holds ``config.json``, ``scaler.json`` (tabular data), ``metrics.jsonl`` (one
line per epoch), ``checkpoints/`` and ``.lock`` (the writer's lock, ``runlock``). Every plain
file is written atomically; a log line whose epoch never reached a committed checkpoint is
dropped when the run resumes.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import warnings

from aejax.config import Config
from aejax.errors import CheckpointError
from aejax.train.checkpoint import Checkpointer, check_writable


def check_same_run(workdir: pathlib.Path, config: Config) -> None:
    """Refuses a workdir whose run computes something else than ``config`` would.

    ``config`` is compared with ``config.json`` and with the config recorded in the newest
    checkpoint with readable metadata: the checkpoint's is what its weights were trained
    with, so an edited ``config.json`` cannot make a run resume across a change.
    Presentation fields may differ, and ``epochs`` may grow (the run is continued).

    Raises:
      CheckpointError: naming every differing field, or an unreadable saved config.
    """
    saved = workdir / "config.json"
    on_file = None
    if saved.exists():
        try:
            on_file = Config.from_dict(json.loads(saved.read_text()))
        except (OSError, ValueError) as e:  # JSONDecodeError and ConfigError are ValueErrors
            raise CheckpointError(
                f"{saved} is unreadable ({e}); use a new workdir or --fresh"
            ) from e
    recorded = checkpoint_config(workdir / "checkpoints")
    fix = "Use another --workdir, or --fresh (fresh=True) to discard it and start again."
    if recorded is not None:
        old, where = recorded
        listing = config_changes(old, config)
        if listing:
            raise CheckpointError(
                f"workdir {workdir} holds a run with another config ({listing}), as its "
                f"checkpoint {where} records. {fix}"
            )
        if on_file is not None:
            check_recorded_config(saved, on_file, old, where, fix)
    elif on_file is not None:
        listing = config_changes(on_file, config)
        if listing:
            raise CheckpointError(
                f"workdir {workdir} holds a run with another config ({listing}). {fix}"
            )


def check_recorded_config(
    path: pathlib.Path, config: Config, recorded: Config, where: str, fix: str = ""
) -> None:
    """Refuses a run's ``config.json`` that differs from its checkpoint's recorded config.

    Args:
      path: the ``config.json`` that ``config`` was read from.
      config: its contents.
      recorded: the config the checkpoint's weights were trained with (``config_of``).
      where: the checkpoint's path, for the message.
      fix: what the message suggests besides putting the values back.

    Raises:
      CheckpointError: a computing field differs, naming each (a larger ``epochs`` in
        ``config`` is a continued run killed before its next checkpoint, and passes).
    """
    listing = config_changes(recorded, config)
    if listing:
        raise CheckpointError(
            f"{path} differs from the config its checkpoint {where} was written with "
            f"({listing}); was it edited? Put the checkpoint's values back"
            + (f". {fix}" if fix else ", or train again with --fresh")
        )


def config_changes(old: Config, new: Config) -> str:
    """The computing fields in which ``new`` differs from ``old``, or ``""``.

    Fields that change only presentation or storage (``Config.semantic_dict`` leaves them
    out) may differ, and a larger ``epochs`` in ``new`` continues the run of ``old``.

    Returns:
      ``"field: old -> new, ..."`` in field order, e.g. ``"activation: 'gelu' -> 'relu'"``.
    """
    a, b = old.semantic_dict(), new.semantic_dict()
    diff = {k: (a[k], b.get(k)) for k in a if a[k] != b.get(k)}
    if "epochs" in diff and b["epochs"] > a["epochs"]:
        # More epochs continue this run: from the last checkpoint on, the learning-rate
        # schedule is the one of a run planned for the new length.
        del diff["epochs"]
    return ", ".join(f"{k}: {o!r} -> {n!r}" for k, (o, n) in sorted(diff.items()))


def checkpoint_config(ckpts: pathlib.Path) -> tuple[Config, str] | None:
    """The config recorded in the newest checkpoint with readable metadata, and its path.

    Returns:
      ``(config, "<ckpts>/<step>")``, or None when ``ckpts`` holds no checkpoint.

    Raises:
      CheckpointError: checkpoints exist but none has readable metadata, or its config
        cannot be read.
    """
    if not ckpts.is_dir() or not any(p.name.isdigit() for p in ckpts.iterdir()):
        return None
    with warnings.catch_warnings():
        # Damaged steps are reported by the restore that follows; not twice.
        warnings.simplefilter("ignore")
        with Checkpointer(ckpts, read_only=True) as c:
            latest = c.latest_meta()
    if latest is None:
        return None
    step, meta = latest
    where = f"{ckpts}/{step}"
    return config_of(meta, where), where


def config_of(meta: dict, where: str) -> Config:
    """The ``Config`` recorded in a checkpoint's metadata.

    Raises:
      CheckpointError: it is missing or unreadable.
    """
    try:
        return Config.from_dict(meta["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(
            f"{where}: the checkpoint's config is unreadable ({e}); use a new workdir or --fresh"
        ) from e


def check_workdir(workdir: pathlib.Path, config: Config, *, fresh: bool = False) -> None:
    """Checks, before data are loaded and steps compiled, that the run can be saved there.

    Creates nothing, so a run refused for another reason leaves no empty directory behind.

    Args:
      workdir: the run directory.
      config: the run's config, compared with the one of a run already in ``workdir``.
      fresh: the run in ``workdir`` will be discarded: skip the checks of its contents.

    Raises:
      CheckpointError: ``workdir`` or its ``checkpoints`` is a file or is not writable, or
        ``workdir`` holds a run with another config (a computing field differs).
    """
    if workdir.exists() and not workdir.is_dir():
        raise CheckpointError(f"workdir {workdir} exists as a file, not a directory")
    ckpts = workdir / "checkpoints"
    if ckpts.is_dir() and not fresh:
        check_writable(ckpts)
        check_same_run(workdir, config)
        return
    if ckpts.exists() and not fresh:
        check_writable(ckpts)  # names the file that is in the way
    parent = workdir
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise CheckpointError(
            f"cannot create workdir {workdir}: {parent} is not a writable directory"
        )
    if workdir.is_dir() and not fresh:
        check_same_run(workdir, config)


def make_workdir(workdir: pathlib.Path) -> None:
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CheckpointError(f"cannot create workdir {workdir}: {e}") from e


def write_atomic(path: pathlib.Path, data: str | bytes) -> None:
    """Writes ``data`` to a temporary file and renames it over ``path``: all or nothing."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise CheckpointError(f"cannot write {path}: {e}") from e


def append_metrics(path: pathlib.Path, record: dict) -> None:
    try:
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")
    except OSError as e:
        raise CheckpointError(f"cannot write {path}: {e}") from e


def clear_run(workdir: pathlib.Path) -> None:
    _remove_discarded(workdir)  # left by a --fresh run killed while deleting
    ckpts = workdir / "checkpoints"
    if ckpts.exists() or ckpts.is_symlink():
        # Renamed first, so a kill while deleting cannot leave half a checkpoint behind
        # under a step's name.
        try:
            os.replace(ckpts, workdir / f".checkpoints.discarded-{os.getpid()}")
        except OSError as e:
            raise CheckpointError(f"cannot discard {ckpts}: {e}") from e
        _remove_discarded(workdir)
    for name in ("metrics.jsonl", "summary.json", "config.json", "scaler.json"):
        (workdir / name).unlink(missing_ok=True)


def _remove_discarded(workdir: pathlib.Path) -> None:
    for doomed in workdir.glob(".checkpoints.discarded-*"):
        if doomed.is_dir() and not doomed.is_symlink():
            shutil.rmtree(doomed, ignore_errors=True)
        else:
            doomed.unlink(missing_ok=True)


def truncate_metrics(path: pathlib.Path, epochs_done: int) -> None:
    """Drops log lines of epochs whose checkpoint never committed (the run died after them)."""
    if not path.exists():
        return
    kept = [r for r in read_metrics(path) if r.get("epoch", 0) <= epochs_done]
    write_atomic(path, "".join(json.dumps(r) + "\n" for r in kept))


def read_metrics(path: pathlib.Path) -> list[dict]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut short by a kill; everything after it is stale too
    return records


def start_run(workdir: pathlib.Path, config: Config, scaler, epochs_done: int) -> None:
    """Writes ``config.json`` (and ``scaler.json``) and trims the log to committed epochs.

    Called once a run has restored (or not found) its checkpoint. Atomic writes: a kill
    while writing must not leave a file that blocks resuming.
    """
    write_atomic(workdir / "config.json", config.dumps())
    if scaler is not None:
        write_atomic(workdir / "scaler.json", json.dumps(scaler.to_dict()))
    truncate_metrics(workdir / "metrics.jsonl", epochs_done)
