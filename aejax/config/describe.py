"""Every config key described for people: ``aejax config`` and docs/configuration.md."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from aejax.config._config import _SHARED_GROUPS, Config, _registry, config_keys
from aejax.fields import describe
from aejax.models.spec import COMMON


def format_value(value: Any) -> str:
    """A value as ``--set`` reads it back: ``512,256`` for a list, ``none``, ``true``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value) if value else "()"
    return str(value)


def _groups() -> list[tuple[str, str, list[tuple[type, dataclasses.Field]]]]:
    """``(group, title, [(dataclass, field), ...])`` in display order, every model's."""
    shared = dataclasses.fields(Config)
    n = len(COMMON) + 1
    out: list = [(*_SHARED_GROUPS["model"], [(Config, f) for f in shared[:n]])]
    seen = set()
    for spec in _registry().MODELS.values():
        for f in dataclasses.fields(spec.options):
            if f.name in seen:
                continue
            seen.add(f.name)
            owner = next(
                c
                for c in reversed(spec.options.__mro__)
                if f.name in vars(c).get("__annotations__", {})
            )
            group, title = owner.GROUP or (spec.name, spec.description)
            if not any(g == group for g, _, _ in out):
                out.append((group, title, []))
            next(fs for g, _, fs in out if g == group).append((spec.options, f))
    for f in shared[n:]:
        if f.name in _SHARED_GROUPS:
            out.append((*_SHARED_GROUPS[f.name], []))
        out[-1][2].append((Config, f))
    return out


class _Groups(Mapping):
    """``GROUPS``: first field of each group -> ``(group, one line)``, computed on use."""

    def _table(self) -> dict[str, tuple[str, str]]:
        return {fs[0][1].name: (g, title) for g, title, fs in _groups()}

    def __getitem__(self, key: str) -> tuple[str, str]:
        return self._table()[key]

    def __iter__(self):
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


GROUPS: Mapping[str, tuple[str, str]] = _Groups()


def describe_fields(model: str | None = None) -> list[dict[str, Any]]:
    """Every key, grouped as ``aejax config`` shows it: shared fields and model options.

    Args:
      model: only the keys a run of this model reads (``config_keys``); None = all.

    Returns:
      One dict per key: ``name``, ``group`` (see ``GROUPS``), ``type`` (e.g. ``"list of
      int"``), ``default`` (JSON, as in ``to_dict``), ``allowed`` (one line), ``choices``
      (the accepted strings, or ``[]``), ``help`` (one line of meaning) and ``models``
      (the models that read it; None for a field of every run).
    """
    keep = set(config_keys(model)) if model is not None else None
    owners = _registry().option_owners()
    models = list(_registry().MODELS)
    common_readers = {k: [m for m in models if k in _registry().get_spec(m).common] for k in COMMON}
    out = []
    for group, _, fs in _groups():
        for cls, f in fs:
            if keep is not None and f.name not in keep:
                continue
            d = describe(cls, f, f.default)
            d["group"] = group
            d["models"] = owners.get(f.name) or common_readers.get(f.name)
            out.append(d)
    return out
