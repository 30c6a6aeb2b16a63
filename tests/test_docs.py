"""The documentation's code runs as written: docs/python.md's own loop."""

from __future__ import annotations

import pathlib
import re

import numpy as np

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"


def _tested_block(path: pathlib.Path) -> str:
    """The python block that follows ``<!-- tested: tests/test_docs.py -->`` in ``path``."""
    text = path.read_text()
    m = re.search(r"<!-- tested: tests/test_docs.py -->\n```python\n(.*?)```", text, re.S)
    assert m, f"{path.name}: no tested block"
    return m.group(1)


def test_own_loop_in_docs_trains_and_evaluates(capsys):
    scope: dict = {}
    exec(compile(_tested_block(DOCS / "python.md"), "docs/python.md", "exec"), scope)
    printed = capsys.readouterr().out
    loss = float(re.search(r"validation loss per example: ([0-9.]+)", printed).group(1))
    # The digits' VAE starts near 64 * log 2 = 44 nats per image and falls well below it.
    assert 0 < loss < 35, printed
    state, codes = scope["state"], scope["codes"]
    assert int(state.step) == 300
    assert codes.shape == (len(scope["ds"].x_test), 8) and np.isfinite(codes).all()
