"""Writes an experiment's result as a Markdown table and a JSON record (read by docs/results.md)."""

from __future__ import annotations

import json
import pathlib

from benchmarks import environment


def write(
    out_dir: str | pathlib.Path,
    name: str,
    *,
    title: str,
    command: str,
    data: str,
    header: list[str],
    rows: list[list[str]],
    headline: dict,
    config: dict,
    summary: dict,
    notes: list[str],
) -> tuple[pathlib.Path, pathlib.Path]:
    """Writes ``out_dir/name.md`` and ``out_dir/name.json``.

    Args:
      out_dir: the results folder.
      name: file stem, e.g. ``"hinton2006"``.
      title: the experiment's one-line title.
      command: the command that regenerates the files.
      data: the data set spec it ran on.
      header: column names of the table.
      rows: the table's rows (strings).
      headline: ``{"metric", "ours", "paper"}`` strings for the results page's table.
      config: the ``aejax.Config`` as a dict.
      summary: the run's full summary (``aejax.train_and_evaluate``).
      notes: lines under the table.

    Returns:
      The two paths.
    """
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = environment.device()
    record = {
        "experiment": name,
        "title": title,
        "command": command,
        "data": data,
        "headline": headline,
        "header": header,
        "rows": rows,
        "notes": notes,
        "config": config,
        "summary": summary,
        "machine": environment.machine_line(device),
        "device": device,
        "versions": environment.versions(),
        "date": environment.now(),
    }
    json_path = out_dir / f"{name}.json"
    json_path.write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        f"# {title}",
        "",
        f"Command: `{command}`",
        "",
        f"Ran on {record['date'][:10]}: {record['machine']}; "
        + ", ".join(
            f"{k} {v}" for k, v in record["versions"].items() if k in ("jax", "flax", "optax")
        )
        + ".",
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += [""] + [f"- {n}" for n in notes] + [""]
    md_path = out_dir / f"{name}.md"
    md_path.write_text("\n".join(lines))
    return md_path, json_path
