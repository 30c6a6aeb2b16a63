"""Sweeps: a grid of settings times seeds, one ``aejax train`` run per point, each in a worker
process of its own, resumable.

A sweep directory holds:

- ``sweep.json``: the manifest: the base config, the grid, the seeds and every run's name,
  settings and seed, written once when the sweep starts;
- ``configs/NAME.json``: each run's whole config, which its worker is given;
- ``NAME/``: each run's directory, as ``aejax train`` writes it (``summary.json`` when it
  finished);
- ``logs/NAME.log``: each worker's output, appended to by every attempt;
- ``.lock``: the lock of the process that runs the sweep (``aejax.train.runlock``).

A run is ``aejax train --config configs/NAME.json --workdir NAME`` in a new process
(``python -m aejax.cli``), not a function call in a process from a pool: each run gets the
process ``aejax train`` gets (its own JAX runtime, memory and signal handling; its own
lock on its own directory), a crash or an out-of-memory kill of one run is one failed
run, and Ctrl-C reaches each worker once, from the sweep (the workers run in sessions of
their own), so each checkpoints its step and exits. Whether a run is finished is read
from its directory, never recorded apart: ``summary.json`` (written last) means
finished, and a directory without it is resumed from its checkpoint by ``aejax train``
itself. A worker whose sweep was killed ends as on SIGTERM (``aejax.cli.process``), so a
SIGKILLed sweep leaves no run training behind.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import itertools
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from aejax.config import MAX_SEED, Config, check_model_keys
from aejax.errors import CheckpointError, ConfigError
from aejax.outputs import atomic_path, is_run_dir

MANIFEST = "sweep.json"
VERSION = 1
# Keys no grid may hold: the seeds are --seeds, and the sweep names each run's directory.
NOT_GRID = ("seed", "workdir", "progress")
# ``aejax.cli.process.PARENT_ENV`` (the library does not import the command line).
PARENT_ENV = "AEJAX_PARENT_PID"
POLL_SECONDS = 0.2
STOP_SECONDS = 120  # a stopped worker's time to checkpoint its step before it is killed


def plan(config: Config, grid: Mapping[str, Sequence[Any]], seeds: int | Sequence[int] = 1) -> dict:
    """The manifest of a sweep: every point of ``grid`` (in the order given, the last key
    varying fastest) times every seed, each checked as a run's config.

    Args:
      config: the base config (its ``seed`` is the first seed when ``seeds`` is a count).
      grid: ``{key: [value, ...]}``: config fields and their values (strings are read as
        on the command line: ``{"lr": ["1e-3", "3e-3"]}``).
      seeds: how many seeds (``config.seed``, ``config.seed + 1``, ...), or the seeds.

    Returns:
      ``{"aejax_sweep", "base", "grid", "seeds", "runs"}``: ``runs`` lists ``{"name",
      "settings", "seed", "config"}`` (``config``: the run's whole config as a dict).

    Raises:
      ConfigError: one line naming the key or the point: a key no grid may hold or the
        model does not read, an empty axis, a value given twice, a value the field
        refuses, a bad seed.
    """
    seeds = _seeds(config, seeds)
    axes: dict[str, list[Any]] = {}
    for key, values in grid.items():
        if key in NOT_GRID:
            raise ConfigError(
                f"grid key {key!r}: "
                + ("the seeds are --seeds N (and --seed S, the first)" if key == "seed" else "")
                + ("the sweep names each run's directory" if key == "workdir" else "")
                + ("sweep runs show no progress bar of their own" if key == "progress" else "")
            )
        values = list(values)
        if not values:
            raise ConfigError(f"grid key {key!r}: no value")
        coerced = []
        for v in values:
            try:
                c = getattr(config.replace(**{key: v}), key)
            except ConfigError as e:
                raise ConfigError(f"grid {key}={v!r}: {e}") from None
            if c in coerced:
                raise ConfigError(f"grid key {key!r}: the value {_text(c)} is given twice")
            coerced.append(c)
        axes[key] = coerced
    runs, names = [], set()
    for combo in itertools.product(*axes.values()):
        settings = dict(zip(axes, combo, strict=True))
        try:
            point = config.replace(**settings, progress=False, workdir=None)
            check_model_keys(point, explicit=tuple(settings))
        except ConfigError as e:
            raise ConfigError(f"grid point {_label(settings) or 'base'}: {e}") from None
        for seed in seeds:
            name = _unique(_label({**settings, "seed": seed}), names)
            runs.append(
                {
                    "name": name,
                    "settings": _jsonable(settings),
                    "seed": seed,
                    "config": point.replace(seed=seed).to_dict(),
                }
            )
    base = config.replace(progress=False, workdir=None).to_dict()
    return {
        "aejax_sweep": VERSION,
        "base": base,
        "grid": _jsonable(axes),
        "seeds": seeds,
        "runs": runs,
    }


def _seeds(config: Config, seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, bool) or not isinstance(seeds, int | Sequence):
        raise ConfigError(f"seeds={seeds!r}: a count or a list of seeds")
    if isinstance(seeds, int):
        if seeds < 1:
            raise ConfigError(f"--seeds {seeds}: at least 1")
        seeds = range(config.seed, config.seed + seeds)
    seeds = list(seeds)
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= MAX_SEED:
            raise ConfigError(f"seed {s!r}: a seed is an integer in [0, {MAX_SEED}]")
    if not seeds or len(set(seeds)) < len(seeds):
        raise ConfigError(f"seeds {seeds}: at least one, each once")
    return seeds


def _text(value: Any) -> str:
    """A value as a run's name shows it: ``0.001``, ``64-32``, ``true``, ``none``."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "none"
    if isinstance(value, tuple | list):
        return "-".join(_text(v) for v in value)
    return repr(value) if isinstance(value, float) else str(value)


def _label(settings: Mapping[str, Any]) -> str:
    """``latent_dim=8,lr=0.001,seed=0``: a run's name, safe as a folder name."""
    name = ",".join(f"{k}={_text(v)}" for k, v in settings.items())
    return re.sub(r"[^A-Za-z0-9._=,+@-]", "_", name)


def _unique(name: str, taken: set[str]) -> str:
    """``name`` (at most 150 characters), with ``~2``, ``~3``, ... when already taken."""
    name = name if len(name) <= 150 else name[:150]
    out, k = name, 1
    while out.lower() in taken:  # case-insensitive file systems
        k += 1
        out = f"{name}~{k}"
    taken.add(out.lower())
    return out


def _jsonable(d: Mapping[str, Any]) -> dict:
    return json.loads(json.dumps(d, default=list))


# --- the sweep directory ------------------------------------------------------------------
def _check_directory(directory: pathlib.Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"sweep {directory} exists as a file, not a directory")
    if is_run_dir(directory):
        raise ConfigError(f"{directory} is a run directory (aejax train), not a sweep")
    if directory.is_dir() and not (directory / MANIFEST).exists():
        if any(p.name != ".lock" for p in directory.iterdir()):
            raise ConfigError(
                f"{directory} exists and holds no {MANIFEST}: a sweep starts in a new or "
                "empty folder"
            )


def read_manifest(directory: str | os.PathLike) -> dict:
    """The ``sweep.json`` of a sweep directory.

    Raises:
      ConfigError: there is none, or it is not a sweep's manifest.
    """
    path = pathlib.Path(directory) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{directory} holds no {MANIFEST}: not a sweep") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path} is unreadable: {e}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("runs"), list):
        raise ConfigError(f"{path} is not a sweep's manifest (no list of runs)")
    if manifest.get("aejax_sweep") != VERSION:
        raise ConfigError(
            f"{path}: a sweep of format {manifest.get('aejax_sweep')!r}; this aejax reads "
            f"format {VERSION}"
        )
    return manifest


def _differences(old: dict, new: dict) -> str:
    """What differs between two manifests' base, grid and seeds, in words."""
    out = []
    a, b = old.get("base", {}), new["base"]
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            out.append(f"{k}: {a.get(k)!r} -> {b.get(k)!r}")
    for key in ("grid", "seeds"):
        if old.get(key) != new[key]:
            out.append(f"{key}: {old.get(key)} -> {new[key]}")
    return ", ".join(out)


def _write(path: pathlib.Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _prepare(directory: pathlib.Path, wanted: dict | None) -> dict:
    """The sweep's manifest, written (with the runs' configs) when the sweep starts."""
    if (directory / MANIFEST).exists():
        manifest = read_manifest(directory)
        if wanted is not None and _differences(manifest, wanted):
            raise ConfigError(
                f"{directory} holds another sweep ({_differences(manifest, wanted)}): "
                f"`aejax sweep {directory}` resumes it as it is; a new sweep needs a new folder"
            )
    elif wanted is None:
        raise ConfigError(
            f"{directory} holds no {MANIFEST}: give the grid (--set KEY=V1,V2 ...) to start a "
            "sweep there"
        )
    else:
        manifest = dict(wanted, created=_now())
        manifest["runs"] = [{k: r[k] for k in ("name", "settings", "seed")} for r in wanted["runs"]]
        for r in wanted["runs"]:
            _write(directory / "configs" / f"{r['name']}.json", json.dumps(r["config"], indent=2))
        _write(directory / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    for r in manifest["runs"]:
        if not (directory / "configs" / f"{r['name']}.json").is_file():
            raise ConfigError(f"{directory}/configs/{r['name']}.json is missing")
    return manifest


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


# --- the workers --------------------------------------------------------------------------
def _environment() -> dict[str, str]:
    """The workers' environment: this process's, the pid a worker watches, the aejax this
    process runs first on the path, and no GPU memory taken in advance."""
    env = dict(os.environ)
    env[PARENT_ENV] = str(os.getpid())
    # Several workers share one accelerator: each takes memory as it needs it, instead of
    # the 75% that JAX takes by default at start. (How memory is taken changes no result.)
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    root = str(pathlib.Path(__file__).resolve().parents[2])
    if pathlib.Path(root).name not in ("site-packages", "dist-packages"):
        paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join([root, *(p for p in paths if p != root)])
    return env


def _launch(directory: pathlib.Path, name: str, env: dict[str, str]) -> subprocess.Popen:
    log_path = directory / "logs" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "aejax.cli",
        "train",
        "--config",
        str(directory / "configs" / f"{name}.json"),
        "--workdir",
        str(directory / name),
        "--no-progress",
        "--json",
    ]
    with open(log_path, "ab") as log:
        what = "resuming" if (directory / name).exists() else "starting"
        log.write(f"--- {_now()} aejax sweep: {what} {name}\n".encode())
        log.flush()
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # Ctrl-C in a terminal reaches the sweep only
        )


def _error_line(log_path: pathlib.Path, code: int) -> str:
    """The error a worker printed last (its log's last ``error:`` line), else its status."""
    try:
        with open(log_path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 8192))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        lines = []
    for line in reversed(lines):
        if "error:" in line or "Error:" in line:
            return line.strip()
    return f"the worker exited with status {code}"


def _stop(running: dict[subprocess.Popen, dict]) -> None:
    """SIGTERM to each worker (it checkpoints its step), then waits; kills what hangs."""
    for proc in running:
        with contextlib.suppress(OSError):
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    for proc in running:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def sweep(
    directory: str | os.PathLike,
    config: Config | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
    seeds: int | Sequence[int] | None = None,
    *,
    jobs: int = 1,
    progress: bool = True,
) -> list[dict]:
    """Trains every run of a sweep that has not finished, ``jobs`` at a time.

    A new sweep is planned (``plan``) and its manifest written first; a directory that
    holds one is resumed: finished runs are skipped, interrupted ones resumed from their
    checkpoint. ``aejax.compare(directory)`` tabulates the result.

    Args:
      directory: the sweep's folder: new or empty, or one that holds a sweep.
      config: the base config (default ``Config()``).
      grid: ``{key: [value, ...]}``, see ``plan``.
      seeds: how many seeds per point (default 1), or the seeds.
      jobs: how many runs train at once, each in a process of its own.
      progress: a progress bar over the runs (tqdm, on stderr).
      With ``config``, ``grid`` and ``seeds`` all None the sweep in ``directory`` is
      resumed as its manifest says; given, they must be the ones it was started with.

    Returns:
      One dict per run, in the manifest's order: ``name``, ``workdir``, ``settings``,
      ``seed``, ``status`` (``"skipped"``: it had finished before; ``"trained"``;
      ``"failed"``), ``error`` (the worker's last error line, or None), ``log``.

    Raises:
      ConfigError: a bad grid, seeds or ``jobs``; a folder that is a file, a run, or holds
        other files; a sweep there that was started with another grid.
      CheckpointError: another process runs this sweep.
      KeyboardInterrupt: Ctrl-C or SIGTERM; the running workers were stopped first (each
        checkpoints its step): the same call resumes.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"--jobs {jobs}: at least 1 run at a time")
    directory = pathlib.Path(directory)
    wanted = None
    if not (config is None and grid is None and seeds is None):
        wanted = plan(config or Config(), grid or {}, 1 if seeds is None else seeds)
    _check_directory(directory)
    from aejax.train import runlock

    try:
        lock = runlock.lock_run(directory)
    except CheckpointError as e:
        if "in use" not in str(e):
            raise
        holder = str(e).partition("(")[2].partition(")")[0]
        raise CheckpointError(
            f"sweep {directory} is being run by another process ({holder}); one sweep "
            "directory takes one sweep process"
        ) from None
    with lock:
        manifest = _prepare(directory, wanted)
        return _run(directory, manifest["runs"], jobs, progress)


def _run(directory: pathlib.Path, runs: list[dict], jobs: int, progress: bool) -> list[dict]:
    from tqdm.auto import tqdm

    results = []
    for r in runs:
        done = (directory / r["name"] / "summary.json").is_file()
        results.append(
            {
                "name": r["name"],
                "workdir": str(directory / r["name"]),
                "settings": r["settings"],
                "seed": r["seed"],
                "status": "skipped" if done else None,
                "error": None,
                "log": str(directory / "logs" / f"{r['name']}.log"),
            }
        )
    pending = collections.deque(x for x in results if x["status"] is None)
    running: dict[subprocess.Popen, dict] = {}
    env = _environment()
    bar = tqdm(
        total=len(results),
        initial=len(results) - len(pending),
        unit="run",
        desc=f"sweep {directory.name}",
        disable=not progress,
        dynamic_ncols=True,
    )
    shown = ""  # the bar's postfix, set again only when it changes
    try:
        while pending or running:
            while pending and len(running) < jobs:
                run = pending.popleft()
                running[_launch(directory, run["name"], env)] = run
            time.sleep(POLL_SECONDS)
            for proc in [p for p in running if p.poll() is not None]:
                run = running.pop(proc)
                if (
                    proc.returncode == 0
                    and (pathlib.Path(run["workdir"]) / "summary.json").is_file()
                ):
                    run["status"] = "trained"
                else:
                    run["status"] = "failed"
                    run["error"] = _error_line(pathlib.Path(run["log"]), proc.returncode)
                    if progress:
                        bar.write(f"{run['name']}: failed: {run['error']}", file=sys.stderr)
                bar.update(1)
            failed = sum(r["status"] == "failed" for r in results)
            if shown != (shown := f"{len(running)} training, {failed} failed"):
                bar.set_postfix_str(shown)
    except BaseException:
        _stop(running)
        raise
    finally:
        bar.close()
    return results


__all__ = ["MANIFEST", "plan", "read_manifest", "sweep"]
