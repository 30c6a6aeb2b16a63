"""The options of the generation commands, ``aejax sample`` and ``aejax interpolate``.

The sampler listing (``aejax sample --help``) reads the sampler registry's names and
descriptions, which import no jax; a sampler's options and whether it serves a run need
the library, so ``aejax sample --list-samplers`` prints those in its handler.
"""

from __future__ import annotations

import argparse
import shutil
import textwrap
from collections.abc import Callable

SAMPLE = dict(
    help="write samples of a trained run (a PNG grid; a CSV for tabular runs)",
    description=textwrap.fill(
        "Write --n samples of a trained run: RUN/samples.png (a grid of images, titled with "
        "the sampler) or RUN/samples.csv (tabular rows in the data's units). --sampler picks "
        "how codes are drawn; by default the model's prior, or for a model with none a "
        "Gaussian mixture fitted to the codes of the run's training split.",
        88,
    ),
)

INTERPOLATE = dict(
    help="write interpolations between test examples of a trained run (PNG; CSV if tabular)",
)


def sampler_listing(extra: dict[str, list[str]] | None = None) -> str:
    """Every sampler's name and description, wrapped to the terminal: ``aejax sample
    --help``'s epilog; ``extra`` adds lines under a sampler (``--list-samplers``)."""
    from aejax.sampling.registry import describe

    width = min(shutil.get_terminal_size((100, 24)).columns, 100)
    names = describe()
    pad = max(map(len, names)) + 4
    lines = ["samplers (--sampler NAME; its options as --sampler-set KEY=VALUE):"]
    for name, text in names.items():
        wrapped = [w for t in (text, *(extra or {}).get(name, [])) for w in _wrap(t, width - pad)]
        lines.append(f"  {name:<{pad - 2}}{wrapped[0]}")
        lines += [" " * pad + more for more in wrapped[1:]]
    if extra is None:
        lines.append(
            "aejax sample [RUN] --list-samplers adds their options and, with RUN, which apply."
        )
    return "\n".join(lines)


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, max(width, 40)) or [""]


def sample_arguments(g: argparse.ArgumentParser, seed_type: Callable[[str], int]) -> None:
    """``aejax sample``'s options but ``--force`` (the caller adds the shared one)."""
    g.formatter_class = argparse.RawDescriptionHelpFormatter
    g.epilog = sampler_listing()
    g.add_argument("workdir", nargs="?", metavar="RUN", help="the run directory")
    g.add_argument("--n", type=int, default=64, help="how many samples (default 64)")
    g.add_argument("--seed", type=seed_type, default=0, help="the sampling seed (default 0)")
    g.add_argument(
        "--sampler",
        default=None,
        metavar="NAME",
        help="how codes are drawn: one of the samplers below (default: prior, or gmm for a "
        "model without one)",
    )
    g.add_argument(
        "--sampler-set",
        dest="sampler_options",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a sampler option, read as its default's type, e.g. --sampler two_stage "
        "--sampler-set epochs=100",
    )
    g.add_argument(
        "--list-samplers",
        action="store_true",
        help="list the samplers with their options (with RUN: whether each serves it) and exit",
    )
    g.add_argument(
        "--out",
        default=None,
        help="file, never an existing one without --force (default: RUN/samples.png or "
        ".csv, replaced by each run)",
    )


def interpolate_arguments(i: argparse.ArgumentParser) -> None:
    """``aejax interpolate``'s options but ``--force``."""
    i.add_argument("workdir")
    i.add_argument("--steps", type=int, default=10, help="points per path (default 10)")
    i.add_argument("--method", choices=("linear", "slerp"), default="linear")
    i.add_argument("--pairs", type=int, default=4, help="pairs of test examples (default 4)")
    i.add_argument(
        "--out",
        default=None,
        help="file, never an existing one without --force (default: "
        "WORKDIR/interpolations.png or .csv, replaced by each run)",
    )
