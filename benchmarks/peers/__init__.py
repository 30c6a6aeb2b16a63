"""Peer implementations run beside aejax: PyTorch twins of the registry models, sklearn PCA.

PyTorch is optional (the ``bench`` extra); ``torch_status`` says whether it can be used, so
that the suite reports the reason instead of failing when it is absent.
"""

from __future__ import annotations

import importlib.util

# A CPU-only wheel avoids pulling several GB of CUDA libraries (see the README).
TORCH_HINT = (
    "install the benchmark peers with `pip install torch --index-url "
    'https://download.pytorch.org/whl/cpu && pip install -e ".[bench]"`'
)


def torch_status() -> tuple[bool, str]:
    """Returns ``(available, reason)``; the reason says how to install torch when it is absent."""
    if importlib.util.find_spec("torch") is None:
        return False, f"PyTorch is not installed ({TORCH_HINT})"
    try:
        import torch  # noqa: F401
    except Exception as e:  # a broken install must not take the rest of the suite down
        return False, f"PyTorch failed to import ({type(e).__name__}: {e})"
    return True, "ok"
