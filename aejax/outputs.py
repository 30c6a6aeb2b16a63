"""Where a command may write: never over a user's file or into a run's own records unless asked.

Every command that writes a file the user names (``aejax encode|sample|interpolate|embed|
restore|detect --out``) and the Python function behind it call ``check_output`` (one file)
or ``check_output_dir`` (a folder of named files) before any computation, then write each
file through ``atomic_path``, so an interrupted write never leaves half a file under the
user's name. What they write as JSON goes through ``dumps_strict`` (no ``NaN``/``Infinity``,
which Python's ``json`` writes by default and strict parsers refuse).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pathlib
import secrets
from collections.abc import Iterable, Iterator
from typing import Any

from aejax.errors import ConfigError

# What ``aejax train`` keeps in a run directory (``aejax.train.rundir``). Writing over
# ``config.json`` or into ``checkpoints/`` would break the run (it could not be resumed or
# loaded again), so not even ``force`` allows it; the same holds for hidden names (a lock,
# temporary files, checkpoints set aside), which the run's own processes manage.
BREAKS_THE_RUN = ("config.json", "checkpoints")
# The run's record of itself: overwriting one falsifies the record, so only with ``force``.
RUN_RECORDS = (
    "summary.json",
    "metrics.jsonl",
    "scaler.json",
    "pretrain",
    "tensorboard",
    "reconstructions.png",
    "curves.png",
)
FORCE = "--force (force=True)"


def is_run_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a run directory of ``aejax train``: ``config.json`` and
    ``checkpoints/`` side by side."""
    path = pathlib.Path(path)
    return (path / "config.json").is_file() and (path / "checkpoints").is_dir()


def _check_run_records(path: pathlib.Path, force: bool) -> None:
    """Refuses ``path`` inside any run directory's bookkeeping (see the module constants)."""
    real = path.resolve()  # a symlink or ``..`` must not smuggle a path into a run
    for parent in real.parents:
        if not is_run_dir(parent):
            continue
        parts = real.relative_to(parent).parts
        name = parts[0]
        own = f"the run {parent}'s own {name}"
        what = f"is {own}" if len(parts) == 1 else f"is in {own}/ folder"
        if name in BREAKS_THE_RUN or name.startswith(".") or name.endswith(".lock"):
            raise ConfigError(
                f"{path} {what}: writing there would break the run (it could no "
                "longer be loaded or resumed), so not even --force allows it; choose a path "
                "outside it"
            )
        if name in RUN_RECORDS and not force:
            raise ConfigError(
                f"{path} {what}: refusing to write into the run's records; choose "
                f"another path, or pass {FORCE} to write there anyway"
            )


def _check_writable_parent(path: pathlib.Path) -> None:
    """Refuses a path whose nearest existing ancestor is not a writable directory."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write {path}: {parent} is not a writable directory")


def check_output(
    path: str | os.PathLike, *, force: bool = False, default: bool = False
) -> pathlib.Path:
    """Checks, before anything is computed, that a command may write the file ``path``.

    Args:
      path: the file to write.
      force: the user allows replacing an existing file and writing into a run's records
        (``summary.json``, ``metrics.jsonl``, ...); never over a run's ``config.json`` or
        into its ``checkpoints/``.
      default: ``path`` is the command's own default output (e.g. ``RUN/samples.png``),
        which a re-run of the same command replaces without ``force``.

    Returns:
      ``path`` as a ``pathlib.Path``.

    Raises:
      ConfigError: one line naming ``path``: it exists (and neither ``force`` nor
        ``default``), it is a directory, it lies in a run's bookkeeping, or its folder
        is not writable.
    """
    path = pathlib.Path(path)
    _check_run_records(path, force)
    if path.is_dir():
        raise ConfigError(f"{path} is a directory: name the file to write")
    if (path.exists() or path.is_symlink()) and not (force or default):
        raise ConfigError(
            f"{path} exists: refusing to overwrite it; choose another path, or pass {FORCE} "
            "to replace it"
        )
    _check_writable_parent(path)
    return path


def check_output_dir(
    folder: str | os.PathLike,
    names: Iterable[str],
    *,
    force: bool = False,
    default: bool = False,
) -> list[pathlib.Path]:
    """``check_output`` for each of the files ``names`` a command writes into ``folder``.

    The folder may exist and hold other files; only the files the command would write
    must not exist (unless ``force`` or ``default``).

    Returns:
      The paths ``folder / name``, in the order of ``names``.

    Raises:
      ConfigError: ``folder`` is a file, or as ``check_output`` for one of the files.
    """
    folder = pathlib.Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} exists and is not a directory: name a folder to write in")
    return [check_output(folder / n, force=force, default=default) for n in names]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[pathlib.Path]:
    """Yields a temporary name beside ``path`` to write to; renamed over ``path`` when the
    block ends without error, removed otherwise: a reader never sees half a file, and an
    interrupted write leaves the old file (or none) under ``path``.

    The temporary name keeps ``path``'s suffix, so writers that choose the format by it
    (matplotlib's ``savefig``, ``np.save``) write the same bytes.

    Raises:
      ConfigError: the file could not be written (a full disk, permissions).
    """
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}-{secrets.token_hex(4)}{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {e}") from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


__all__ = [
    "BREAKS_THE_RUN",
    "RUN_RECORDS",
    "atomic_path",
    "check_output",
    "check_output_dir",
    "is_run_dir",
]


# --- strict JSON -------------------------------------------------------------------------


def _clean(value: Any, key: str, nulls: dict[str, str]) -> Any:
    """``value`` with every non-finite float replaced by None, recorded in ``nulls``."""
    if isinstance(value, float) and not math.isfinite(value):
        nulls[key] = f"not a finite number ({value!r})"
        return None
    if isinstance(value, dict):
        return {k: _clean(v, f"{key}.{k}" if key else str(k), nulls) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v, f"{key}[{i}]", nulls) for i, v in enumerate(value)]
    return value


def dumps_strict(summary: dict[str, Any]) -> str:
    """``summary`` as strict JSON (indent 2, a final newline).

    A non-finite float becomes ``null``, and the key ``null_because`` maps its path to the
    reason (``{"threshold": "not a finite number (inf)"}``), so a reader sees why.

    Args:
      summary: a JSON-serializable dict (floats may be NaN or infinite).

    Returns:
      Text that every JSON parser reads.
    """
    nulls: dict[str, str] = {}
    clean = _clean(summary, "", nulls)
    if nulls:
        clean["null_because"] = nulls
    return json.dumps(clean, indent=2, allow_nan=False) + "\n"
