"""The options of ``aejax train`` and ``aejax evaluate``."""

from __future__ import annotations

import argparse

from aejax.cli.arguments import config_flags, data_options

HELP = {
    "train": dict(
        help="train a model and compare it with PCA on held-out data",
        description="Train a model and compare it with PCA on held-out data.",
        epilog="Every other config field is set with --set KEY=VALUE (a list as --set "
        "hidden=1000,500,250, none as --set warmup_steps=none): run `aejax config` for "
        "each field's type, default, allowed values and meaning, or `aejax config --model "
        "NAME` for only the fields model NAME reads.",
    ),
    "evaluate": dict(help="evaluate a trained run directory on its test split"),
}


def train(t: argparse.ArgumentParser) -> None:
    config_flags(t)
    t.add_argument(
        "--workdir",
        default=None,
        help="run directory (default runs/<model>-<data>-<timestamp>-<suffix>); an existing "
        "one is resumed",
    )
    t.add_argument(
        "--fresh",
        action="store_true",
        help="discard a run already in --workdir instead of resuming it",
    )
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--json", action="store_true", help="print the summary as JSON")


def evaluate(e: argparse.ArgumentParser) -> None:
    e.add_argument("workdir")
    e.add_argument("--data", default=None, help="evaluate on another dataset spec")
    data_options(e)
    e.add_argument("--json", action="store_true")
    e.add_argument(
        "--iw",
        type=int,
        default=0,
        metavar="K",
        help="also report the test ELBO and the importance-weighted IW-K NLL in nats "
        "(vae, conv_vae; Burda et al. 2016), e.g. --iw 5000",
    )
    e.add_argument(
        "--iw-examples",
        type=int,
        default=None,
        metavar="N",
        help="bound only the first N test examples (default: all)",
    )
