"""The options of ``aejax sweep`` (a grid of settings times seeds, one run each) and
``aejax compare`` (runs and sweeps in one table, and their learning curves)."""

from __future__ import annotations

import argparse

from aejax.cli.arguments import config_flags, force_option

HELP = {
    "sweep": dict(
        help="train a grid of settings times seeds, one run directory each; resumable",
        description="Train every point of a grid (--set KEY=V1,V2,... or --latent-dim 8,16, "
        "...) with --seeds N seeds each, one run directory per point under DIR (named by "
        "its settings, e.g. DIR/latent_dim=8,seed=0) and DIR/sweep.json listing them; "
        "--jobs J trains J at a time, each in its own process. Run the same command again "
        "(or `aejax sweep DIR`) after an interruption: finished runs are skipped and "
        "interrupted ones resume from their checkpoint. Ends with `aejax compare DIR`'s "
        "table.",
        epilog="Each run is `aejax train --config DIR/configs/NAME.json --workdir "
        "DIR/NAME` in a process of its own (its output in DIR/logs/NAME.log); a run that "
        "fails does not stop the others, and the sweep then exits with status 2 naming it.",
    ),
    "compare": dict(
        help="runs and sweeps in one table: test metrics and baselines, mean ± std over seeds",
        description="Read each run's summary.json and config.json (a sweep: each of its "
        "finished runs), group the runs by setting (the config fields that differ between "
        "them, seed left out) and print each metric's mean ± sample standard deviation over "
        "the group's runs, n, and * at the best group of each metric with a direction.",
    ),
}


def sweep(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "directory",
        metavar="DIR",
        help="the sweep's folder (created; one that holds a sweep.json is resumed)",
    )
    config_flags(s, grid=True)
    s.add_argument(
        "--seeds",
        type=int,
        default=None,
        metavar="N",
        help="seeds per point of the grid: S, S+1, ..., S+N-1 with S = --seed (default 1)",
    )
    s.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="J",
        help="runs trained at once, each in its own process (default 1); on one GPU they "
        "share its memory",
    )
    s.add_argument("--no-progress", action="store_true", help="no progress bar")


def compare(c: argparse.ArgumentParser) -> None:
    c.add_argument(
        "paths",
        nargs="+",
        metavar="RUN_OR_SWEEP",
        help="run directories (aejax train) and sweep directories (aejax sweep)",
    )
    c.add_argument(
        "--metrics",
        default=None,
        metavar="M1,M2",
        help="the columns, by name or pattern (test_*,pca_recon_mse); default: every test "
        "metric and baseline of the summaries",
    )
    c.add_argument(
        "--runs",
        action="store_true",
        help="one row per run (with its seed and directory) instead of one per setting",
    )
    out = c.add_mutually_exclusive_group()
    out.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    out.add_argument("--json", action="store_true", help="print the rows as JSON")
    c.add_argument("--csv", default=None, metavar="FILE", help="also write the rows as CSV")
    c.add_argument(
        "--curves",
        default=None,
        metavar="FILE",
        help="also draw every term's learning curve (train and validation, mean over seeds "
        "with their range) into one figure, e.g. curves.png",
    )
    force_option(c)
