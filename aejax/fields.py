"""Field metadata shared by ``aejax.Config`` and the models' options: meaning, allowed values.

A field is a dataclass field whose metadata holds a one-line ``help`` and an ``Allowed``
(what it accepts). ``Config`` and every model's options dataclass (``aejax.models``) are
built from these, so ``aejax config`` and docs/configuration.md are generated from one
source and ``check_fields`` enforces the same rules. Imports no jax and no ``aejax.config``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from collections.abc import Callable
from typing import Any

from aejax.errors import ConfigError, did_you_mean


@dataclasses.dataclass(frozen=True)
class Allowed:
    """What a field accepts: ``text`` for people, ``check`` for the dataclass's checks.

    ``text`` and ``choices`` may be functions, for lists that live where this module must
    not import (the model registry, the data sets).

    Attributes:
      text: one line, e.g. ``"an integer >= 1"`` or ``"one of adam, adamw"``.
      check: ``check(value) -> bool``; a TypeError counts as False.
      choices: the accepted strings, where there is such a list: a wrong value gets a
        did-you-mean against them.
    """

    text: str | Callable[[], str]
    check: Callable[[Any], bool] = lambda _: True
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] = ()

    def describe(self) -> tuple[str, tuple[str, ...]]:
        """Returns ``(text, choices)``, computing the lazy ones."""
        text = self.text() if callable(self.text) else self.text
        choices = self.choices() if callable(self.choices) else self.choices
        return text, tuple(choices)


def one_of(*choices: str) -> Allowed:
    """One of ``choices`` (a wrong one gets a did-you-mean)."""
    return Allowed("one of " + ", ".join(choices), lambda v: v in choices, choices)


def integer(low: int) -> Allowed:
    """An integer ``>= low``."""
    return Allowed(f"an integer >= {low}", lambda v: v >= low)


def integers(low: int, *, nonempty: bool = False) -> Allowed:
    """A tuple of integers ``>= low`` (at least one if ``nonempty``)."""

    def check(v) -> bool:
        return (len(v) >= 1 or not nonempty) and all(x >= low for x in v)

    return Allowed(f"a {'non-empty ' if nonempty else ''}list of integers >= {low}", check)


def number(
    low: float, high: float | None = None, *, above: bool = False, finite: bool = False
) -> Allowed:
    """A number >= ``low`` (> ``low`` if ``above``), below ``high`` if given; NaN never."""

    def check(v) -> bool:
        in_low = v > low if above else v >= low
        return in_low and (high is None or v < high) and (not finite or math.isfinite(v))

    if high is None:
        text = f"a {'finite ' if finite else ''}number {'>' if above else '>='} {low:g}"
    else:
        text = f"a number in {'(' if above else '['}{low:g}, {high:g})"
    return Allowed(text, check)


ACTIVATION_NAMES = ("relu", "gelu", "silu", "elu", "tanh", "sigmoid", "leaky_relu", "softplus")
ACTIVATIONS = one_of(*ACTIVATION_NAMES)


def field(default: Any, doc: str, allowed: Allowed | None = None) -> Any:
    """A field with its one-line meaning and what it accepts (None: any of its type)."""
    return dataclasses.field(default=default, metadata={"help": doc, "allowed": allowed})


# --- checking and reading values ------------------------------------------------------
@functools.cache
def type_hints(cls: type) -> dict[str, Any]:
    """``typing.get_type_hints(cls)`` of a dataclass, cached."""
    return typing.get_type_hints(cls)


def optional_fields(cls: type) -> frozenset[str]:
    """The fields of ``cls`` that also accept None (typed ``X | None``)."""
    hints = type_hints(cls)
    return frozenset(k for k, h in hints.items() if type(None) in typing.get_args(h))


def problem(name: str, value: Any, allowed: Allowed | None, optional: bool) -> str | None:
    """What is wrong with ``name=value``, or None when ``allowed`` accepts it."""
    if allowed is None or (optional and value is None):
        return None
    try:
        ok = bool(allowed.check(value))
    except TypeError:  # e.g. a string where a number belongs
        ok = False
    if ok:
        return None
    text, choices = allowed.describe()
    hint = did_you_mean(value, choices) if isinstance(value, str) and choices else ""
    return f"{name}={value!r} is not allowed: {text}{', or none' if optional else ''}{hint}"


def field_problems(obj: Any) -> list[str]:
    """Every field of dataclass ``obj`` whose value its ``Allowed`` refuses, as messages."""
    optional = optional_fields(type(obj))
    out = []
    for f in dataclasses.fields(obj):
        p = problem(f.name, getattr(obj, f.name), f.metadata.get("allowed"), f.name in optional)
        if p:
            out.append(p)
    return out


def check_fields(obj: Any) -> None:
    """Raises a ConfigError listing every refused field of dataclass ``obj``."""
    problems = field_problems(obj)
    if problems:
        raise ConfigError("; ".join(problems))


def coerce(name: str, value: Any, hint: Any) -> Any:
    """Converts strings (from the command line) and lists (from JSON) to the field's type."""
    args = typing.get_args(hint)
    optional = type(None) in args
    if optional and (value is None or (isinstance(value, str) and value.lower() in ("none", ""))):
        return None
    base = next((a for a in args if a is not type(None)), hint) if optional else hint
    try:
        if typing.get_origin(base) is tuple:
            if isinstance(value, str):
                value = [v for v in value.replace("(", "").replace(")", "").split(",") if v.strip()]
            item = typing.get_args(base)[0]
            return tuple(item(v.strip()) if isinstance(v, str) else item(v) for v in value)
        if base is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if base is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if base is float:
            return float(value)
        if base is str:
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"config field {name!r}: cannot read {value!r} as {hint}") from None
    return value


def type_name(hint: Any) -> str:
    """A field's type as a user reads it: ``int``, ``list of int``, ``str or none``."""
    args = typing.get_args(hint)
    if type(None) in args:
        return type_name(next(a for a in args if a is not type(None))) + " or none"
    if typing.get_origin(hint) is tuple:
        return "list of " + type_name(args[0])
    return hint.__name__


_ANY_OF_TYPE = {bool: "true or false", int: "any integer", float: "any number", str: "any string"}


def describe(cls: type, f: dataclasses.Field, default: Any) -> dict[str, Any]:
    """One field of dataclass ``cls`` as ``aejax config`` shows it (no ``group``/``models``).

    Returns:
      ``name``, ``type`` (e.g. ``"list of int"``), ``default`` (JSON: lists for tuples),
      ``allowed`` (one line), ``choices`` (the accepted strings, or ``[]``), ``help``.
    """
    hint = type_hints(cls)[f.name]
    allowed: Allowed | None = f.metadata.get("allowed")
    if allowed is None:
        text, choices = _ANY_OF_TYPE.get(hint, "any value"), ()
    else:
        text, choices = allowed.describe()
    if f.name in optional_fields(cls):
        text += ", or none"
    return {
        "name": f.name,
        "type": type_name(hint),
        "default": list(default) if isinstance(default, tuple) else default,
        "allowed": text,
        "choices": list(choices),
        "help": f.metadata.get("help", ""),
    }
