"""``aejax sweep`` (a grid of settings times seeds, one run each, resumable) and
``aejax compare`` (runs and sweeps in one table, and their learning curves)."""

from __future__ import annotations

import argparse
import json
import sys

from aejax.cli.arguments import FLAGS
from aejax.errors import AejaxError, ConfigError


def parse_grid(args: argparse.Namespace) -> tuple[list[str], dict[str, list[str]]]:
    """The fixed ``KEY=VALUE`` assignments and the grid ``{KEY: [V1, V2, ...]}`` of
    ``aejax sweep``'s flags (``--latent-dim 8,16``) and ``--set`` options, in that order.

    Values are apart with commas, those of a list field (``hidden``) with ``/``
    (``--set hidden=64,32/128,64``); one value sets the field for every run.

    Raises:
      ConfigError: ``--set`` without ``=``, a key given twice, an empty value in a list.
    """
    from aejax.config import describe_fields

    pairs = [(k, getattr(args, k)) for k in FLAGS if k != "seed" and getattr(args, k) is not None]
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        pairs.append((key.strip().replace("-", "_"), value.strip()))
    lists = {f["name"] for f in describe_fields() if f["type"].startswith("list of")}
    fixed, grid, seen = [], {}, set()
    for key, value in pairs:
        if key in seen:
            raise ConfigError(f"{key} is given twice: give all its values at once, {key}=V1,V2")
        seen.add(key)
        values = [v.strip() for v in value.split("/" if key in lists else ",")]
        if len(values) == 1:
            fixed.append(f"{key}={value}")
        elif "" in values:
            raise ConfigError(f"{key}={value}: an empty value in the list of values")
        else:
            grid[key] = values
    return fixed, grid


def sweep(args) -> int:
    from aejax.apps.sweep import sweep as run_sweep
    from aejax.cli.commands.train import build_config

    fixed, grid = parse_grid(args)
    given = bool(fixed or grid or args.config or args.seeds is not None or args.seed is not None)
    if given:
        flags = dict.fromkeys(FLAGS)
        flags["seed"] = args.seed
        base = argparse.Namespace(config=args.config, overrides=fixed, no_progress=True, **flags)
        config, seeds = build_config(base), 1 if args.seeds is None else args.seeds
    else:  # `aejax sweep DIR`: the sweep there, as its manifest says
        config, grid, seeds = None, None, None
    results = run_sweep(
        args.directory, config, grid, seeds, jobs=args.jobs, progress=not args.no_progress
    )
    failed = [r for r in results if r["status"] == "failed"]
    if len(failed) < len(results):
        import warnings

        from aejax.apps.compare import compare, format_table

        with warnings.catch_warnings():  # the failed runs are named below
            warnings.simplefilter("ignore")
            print(format_table(compare(args.directory)))
    counts = {s: sum(r["status"] == s for r in results) for s in ("trained", "skipped")}
    print(
        f"sweep {args.directory}: {len(results)} run{'s' * (len(results) != 1)}, "
        f"{counts['trained']} trained now, "
        f"{counts['skipped']} finished before, {len(failed)} failed"
    )
    if failed:
        named = "; ".join(f"{r['name']}: {r['error']} (log: {r['log']})" for r in failed[:3])
        more = f"; and {len(failed) - 3} more" if len(failed) > 3 else ""
        raise AejaxError(
            f"{len(failed)} of {len(results)} runs failed: {named}{more}; the same command "
            "retries them"
        )
    return 0


def compare(args) -> int:
    from aejax.apps import compare as cmp

    # Refused before anything is read: an existing file, a figure suffix matplotlib lacks.
    if args.csv:
        cmp.check_output(args.csv, force=args.force)
    if args.curves:
        cmp.check_curves_path(args.curves, force=args.force)
    runs = cmp.load_runs(args.paths)
    rows = cmp.rows_of(runs, per_run=args.runs, metrics=args.metrics)
    if args.json:
        print(json.dumps(rows, indent=2))
    elif args.markdown:
        print(cmp.format_table(rows, markdown=True))
    else:
        print(cmp.format_table(rows))
        print(
            f"{len(runs)} runs"
            + ("" if args.runs else "; mean ± sample standard deviation over each setting's n")
            + "; * the best of its column (lower or higher, by the metric)"
        )
    if args.csv:
        cmp.write_csv(rows, args.csv, force=args.force)
        print(f"wrote {args.csv}", file=sys.stderr)
    if args.curves:
        cmp.write_curves(runs, args.curves, force=args.force)
        print(f"wrote {args.curves}", file=sys.stderr)
    return 0
