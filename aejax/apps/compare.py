"""Runs side by side: their test metrics and baselines grouped by setting, mean ± std over
seeds, and their learning curves in one figure.

``compare(paths)`` reads each run's ``config.json`` and ``summary.json`` (a sweep's runs
from its ``sweep.json``), groups the runs by the config fields that differ between them
(the seed and the fields that change no result, such as ``workdir``, left out) and returns
one flat dict per group: what ``pandas.DataFrame(rows)`` takes as it is. Nothing here
imports jax, and pandas is never needed.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import math
import os
import pathlib
import statistics
import warnings
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from aejax.config import PRESENTATION_FIELDS
from aejax.errors import ConfigError
from aejax.outputs import atomic_path, check_output, is_run_dir

# Summary keys that are results on the test split (or a baseline on it); the rest of a
# summary describes the run (sizes, epochs, speed, versions).
METRIC_PREFIXES = ("test_", "pca_", "iw_", "bias_test_", "global_mean_test_", "pretrain_test_")
METRIC_KEYS = ("sse_ratio_ae_over_pca", "active_units")
NOT_METRICS = ("pca_components", "test_examples", "iw_examples")
# A metric's direction, by the words of its name: the best group of a column is marked
# only where there is one (not for a KL, which trades against reconstruction).
LOWER = ("mse", "sse", "bce", "nll", "rmse", "mae", "loss", "ratio", "error")
HIGHER = ("psnr", "ssim", "elbo", "recall", "ndcg", "auc", "ap", "accuracy", "precision")
# Settings never grouped by: the seed, and the fields that change no result.
NOT_SETTINGS = ("seed", *PRESENTATION_FIELDS)


class RunRecord(NamedTuple):
    """One run as ``compare`` reads it."""

    path: pathlib.Path
    config: dict  # its config.json
    summary: dict  # its summary.json


def _read_json(path: pathlib.Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path} is unreadable: {e}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{path} does not hold a JSON object")
    return value


def _run(path: pathlib.Path) -> RunRecord:
    if not (path / "summary.json").is_file():
        raise ConfigError(
            f"{path} has no summary.json: the run has not finished (resume it: aejax train "
            f"--workdir {path}; or report it: aejax evaluate {path})"
        )
    return RunRecord(path, _read_json(path / "config.json"), _read_json(path / "summary.json"))


def load_runs(paths: Iterable[str | os.PathLike]) -> list[RunRecord]:
    """The runs named by ``paths``, in order: run directories, and sweeps' finished runs.

    A run named twice (itself and in its sweep) is read once. A sweep's unfinished runs are
    left out with a warning.

    Raises:
      ConfigError: a path that does not exist or is neither a run directory nor a sweep, a
        named run that has not finished, an unreadable file, or no run at all.
    """
    from aejax.apps.sweep import MANIFEST, read_manifest

    runs, seen = [], set()
    for p in paths:
        p = pathlib.Path(p)
        if not p.exists():
            raise ConfigError(f"{p}: no such run or sweep directory")
        if (p / MANIFEST).is_file():
            names = [r["name"] for r in read_manifest(p)["runs"]]
            found = [p / n for n in names if (p / n / "summary.json").is_file()]
            if len(found) < len(names):
                warnings.warn(
                    f"{p}: {len(names) - len(found)} of its {len(names)} runs have not "
                    "finished and are left out",
                    stacklevel=2,
                )
        elif is_run_dir(p):
            found = [p]
        else:
            raise ConfigError(
                f"{p} is neither a run directory (config.json and checkpoints/) nor a sweep "
                f"({MANIFEST})"
            )
        for run in found:
            key = run.resolve()
            if key not in seen:
                seen.add(key)
                runs.append(_run(run))
    if not runs:
        raise ConfigError(f"no finished run to compare in {', '.join(map(str, paths))}")
    return runs


def is_metric(key: str, value: Any) -> bool:
    """Whether a summary's ``key`` is a test result (or a baseline's) with a number."""
    if isinstance(value, bool) or not isinstance(value, int | float) or key in NOT_METRICS:
        return False
    return key.startswith(METRIC_PREFIXES) or key in METRIC_KEYS


def direction(metric: str) -> str | None:
    """``"lower"`` or ``"higher"`` is better, by the words of the name; None: neither."""
    words = metric.lower().replace("@", "_").split("_")
    if any(w in LOWER for w in words):
        return "lower"
    if any(w in HIGHER for w in words):
        return "higher"
    return None


def setting_keys(runs: Sequence[RunRecord]) -> list[str]:
    """The config fields whose values differ between ``runs`` (seed and presentation
    fields left out), in config order."""
    keys: dict[str, None] = {}
    for r in runs:
        keys.update(dict.fromkeys(r.config))
    return [
        k for k in keys if k not in NOT_SETTINGS and len({_flat(r.config.get(k)) for r in runs}) > 1
    ]


def metric_keys(runs: Sequence[RunRecord], metrics: Sequence[str] | str | None = None) -> list:
    """The metric columns: every metric of the summaries in the order first seen, or those
    matching ``metrics`` (names or patterns such as ``test_*``; a string: comma-separated).

    Raises:
      ConfigError: a name or pattern that matches no metric (naming those there are).
    """
    found: dict[str, None] = {}
    for r in runs:
        found.update({k: None for k, v in r.summary.items() if is_metric(k, v)})
    if metrics is None:
        return list(found)
    patterns = [m.strip() for m in metrics.split(",")] if isinstance(metrics, str) else metrics
    out: dict[str, None] = {}
    for pattern in patterns:
        hits = [k for k in found if fnmatch.fnmatchcase(k, pattern)]
        if not pattern or not hits:
            raise ConfigError(
                f"metric {pattern!r} is in no summary; there are {', '.join(found) or 'none'}"
            )
        out.update(dict.fromkeys(hits))
    return list(out)


def _flat(value: Any) -> Any:
    """A config value as one cell: a list as ``64,32``."""
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return value


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """The mean and the sample standard deviation (ddof 1; None for fewer than 2), in
    exact arithmetic (``statistics``): equal values have a std of exactly 0."""
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return None, None
    if len(values) < 2:
        return values[0], None
    return float(statistics.mean(values)), float(statistics.stdev(values))


def rows_of(
    runs: Sequence[RunRecord],
    *,
    per_run: bool = False,
    metrics: Sequence[str] | str | None = None,
) -> list[dict]:
    """The comparison table of loaded runs; see ``compare``."""
    settings = setting_keys(runs)
    columns = metric_keys(runs, metrics)
    head = ["model", *(k for k in settings if k != "model")]
    groups: dict[tuple, list[RunRecord]] = {}
    for r in runs:
        key = (str(r.path),) if per_run else tuple(_flat(r.config.get(k)) for k in head)
        groups.setdefault(key, []).append(r)
    rows = []
    for members in groups.values():
        first = members[0]
        row = {k: _flat(first.config.get(k)) for k in head}
        if per_run:
            row["seed"] = first.config.get("seed")
            row["run"] = str(first.path)
            for m in columns:
                v = first.summary.get(m)
                row[m] = float(v) if is_metric(m, v) and math.isfinite(v) else None
        else:
            row["n"] = len(members)
            row["seeds"] = ",".join(str(r.config.get("seed")) for r in members)
            for m in columns:
                values = [float(r.summary[m]) for r in members if is_metric(m, r.summary.get(m))]
                row[f"{m}_mean"], row[f"{m}_std"] = _mean_std(values)
        rows.append(row)
    _mark_best(rows, columns, per_run)
    return rows


def _mark_best(rows: list[dict], columns: list[str], per_run: bool) -> None:
    """``row["best"]``: the metrics (space-separated) whose best value is this row's."""
    for row in rows:
        row["best"] = ""
    if len(rows) < 2:
        return
    for m in columns:
        way = direction(m)
        key = m if per_run else f"{m}_mean"
        values = [row[key] for row in rows if row[key] is not None]
        if way is None or len(values) < 2 or min(values) == max(values):
            continue  # no direction, or nothing to choose between
        best = min(values) if way == "lower" else max(values)
        for row in rows:
            if row[key] == best:
                row["best"] = f"{row['best']} {m}".strip()


def compare(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    per_run: bool = False,
    metrics: Sequence[str] | str | None = None,
) -> list[dict]:
    """Runs and sweeps in one table: one flat dict per setting (or per run).

    Args:
      paths: run directories (``aejax train``) and sweep directories (``aejax sweep``).
      per_run: one row per run instead of one per setting.
      metrics: the metric columns, by name or pattern (``["test_*", "pca_recon_mse"]``);
        default: every test metric and baseline of the summaries (``is_metric``).

    Returns:
      A list of dicts, all of scalars: ``model``, then each setting (a config field that
      differs between the runs, the seed left out; a list as ``"64,32"``), then ``n`` (the
      group's runs), ``seeds`` (``"0,1,2"``), ``<metric>_mean`` and ``<metric>_std`` (the
      sample standard deviation over the group's runs, ddof 1; None for one run) for each
      metric, and ``best``: the metrics (space-separated) whose best group this is (lower
      or higher by the metric's name; none for a KL). ``per_run``: ``seed``, ``run`` (its
      directory) and each ``<metric>`` instead of ``n``, ``seeds`` and the statistics.
      ``pandas.DataFrame(rows)`` takes them as they are.

    Raises:
      ConfigError: see ``load_runs`` and ``metric_keys``.
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    return rows_of(load_runs(paths), per_run=per_run, metrics=metrics)


# --- output --------------------------------------------------------------------------------
def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _cells(rows: list[dict], markdown: bool) -> tuple[list[str], list[list[str]]]:
    """The table's header and cells: the settings, n (or the seed), then a metric a column
    (``mean ± std``), then the run's directory (per run)."""
    keys = list(rows[0])
    per_run = "run" in keys
    split = keys.index("seed" if per_run else "n") + 1
    head = keys[:split]
    rest = [k for k in keys[split:] if k not in ("seeds", "run", "best")]
    metrics = rest if per_run else [k[: -len("_mean")] for k in rest if k.endswith("_mean")]
    header = head + metrics + (["run"] if per_run else [])
    table = []
    for row in rows:
        cells = ["-" if row[k] is None else str(row[k]) for k in head]
        best = row["best"].split()
        for m in metrics:
            if per_run:
                text = _number(row[m])
            else:
                mean, std = row[f"{m}_mean"], row[f"{m}_std"]
                text = _number(mean) + ("" if std is None else f" ± {_number(std, 2)}")
            if m in best:
                text = f"**{text}**" if markdown else f"{text} *"
            cells.append(text)
        table.append(cells + ([row["run"]] if per_run else []))
    return header, table


def format_table(rows: list[dict], *, markdown: bool = False) -> str:
    """``compare``'s rows as an aligned text table (or Markdown): a setting a line, each
    metric's ``mean ± std`` (the std over n >= 2 runs), the best per column marked ``*``
    (bold in Markdown); ``-`` where there is no value."""
    if not rows:
        return ""
    header, table = _cells(rows, markdown)
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cells) + " |" for cells in table]
        return "\n".join(lines)
    widths = [max(len(h), *(len(c[i]) for c in table)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) for cells in table]
    return "\n".join(line.rstrip() for line in lines)


def rows_to_csv(rows: list[dict]) -> str:
    """``rows`` as CSV text: a column per key (in the order first seen), empty for None."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buffer.getvalue()


def write_csv(rows: list[dict], path: str | os.PathLike, *, force: bool = False) -> None:
    """Writes ``rows_to_csv(rows)`` to ``path``; an existing file only with ``force``.

    Raises:
      ConfigError: see ``aejax.outputs.check_output``.
    """
    path = check_output(path, force=force)
    with atomic_path(path) as tmp:
        tmp.write_text(rows_to_csv(rows))


def check_curves_path(path: str | os.PathLike, *, force: bool = False) -> pathlib.Path:
    """Checks, before anything is read, that the curves' figure may be written to ``path``.

    Raises:
      ConfigError: a suffix matplotlib does not write, or see ``check_output``.
    """
    from aejax import plots

    plots.check_figure_path(path)
    return check_output(path, force=force)


def write_curves(
    runs: Sequence[RunRecord], path: str | os.PathLike, *, force: bool = False
) -> None:
    """Draws the learning curves of every term of ``runs`` (their ``metrics.jsonl``) into
    one figure, a colour per setting: the mean over its runs, shaded over their range.

    Raises:
      ConfigError: see ``check_curves_path``.
    """
    from aejax import plots

    path = check_curves_path(path, force=force)
    settings = [k for k in setting_keys(runs) if k != "model"]
    groups: dict[str, list[list[dict]]] = {}
    for r in runs:
        label = ", ".join(
            [str(r.config.get("model"))] + [f"{k}={_flat(r.config.get(k))}" for k in settings]
        )
        groups.setdefault(label, []).append(plots.read_history(r.path / "metrics.jsonl"))
    labelled = [(f"{label} (n={len(h)})", h) for label, h in groups.items()]
    with atomic_path(path) as tmp:
        plots.learning_curves(tmp, labelled, title="learning curves")


__all__ = [
    "RunRecord",
    "compare",
    "format_table",
    "load_runs",
    "rows_of",
    "rows_to_csv",
    "write_csv",
    "write_curves",
]
