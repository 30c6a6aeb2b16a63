"""Strict JSON for the summaries aejax writes: no ``NaN`` or ``Infinity``, which Python's
``json`` writes by default and strict parsers (JavaScript, jq, Go, Rust) refuse."""

from __future__ import annotations

import json
import math
from typing import Any


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


__all__ = ["dumps_strict"]
