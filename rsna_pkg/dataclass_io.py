"""How every config dataclass becomes a JSON-ready dict and comes back.

One rule for reading: unknown keys are an error. A key this version does not know means a
file from another version (or a typo); silently dropping it would rebuild something other
than what was saved. One serialiser for both ways (``to_plain`` / ``from_plain``): nested
dataclasses become dicts and are rebuilt by their own ``from_dict``; tuples become lists and
come back as the tuples the field's type names, element by element, so no field needs a
hand-written cast (a forgotten one came back from a checkpoint as a list, and ``--resume``
compares configs by equality)."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import fields
from typing import Any, ClassVar, Self, TypeVar

from rsna_pkg.errors import InputError

T = TypeVar("T")
_SCALARS: tuple[type, ...] = (int, float, str, bool)


def known_fields(cls: type, d: Mapping[str, Any], what: str) -> dict[str, Any]:
    """``d`` as keyword arguments of dataclass ``cls``; InputError naming any unknown key."""
    unknown = set(d) - {f.name for f in fields(cls)}
    if unknown:
        raise InputError(f"{what}: unknown key(s) {sorted(unknown)}")
    return dict(d)


class PlainDict:
    """``to_dict`` / ``from_dict`` for a config dataclass, by ``to_plain`` / ``from_plain``;
    ``WHAT`` names the config in an error."""

    WHAT: ClassVar[str] = "config"

    def to_dict(self) -> dict[str, Any]:
        plain: dict[str, Any] = to_plain(self)
        return plain

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        return from_plain(cls, d, cls.WHAT)


def to_plain(value: Any) -> Any:
    """A dataclass as a dict of its fields (in field order), nested ones and tuples (as
    lists) included; dicts are walked; everything else is returned as it is."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple | list):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    return value


def from_plain(cls: type[T], d: Mapping[str, Any], what: str) -> T:
    """``cls`` rebuilt from ``to_plain``'s dict: InputError on an unknown key or a missing
    required one; each value converted by its field's type (``_convert``)."""
    hints = typing.get_type_hints(cls)
    kw = {key: _convert(hints[key], value) for key, value in known_fields(cls, d, what).items()}
    try:
        return cls(**kw)
    except TypeError as exc:  # a required field missing
        raise InputError(f"{what}: {exc}") from exc


def _convert(tp: Any, value: Any) -> Any:
    """``value`` (from JSON) as type ``tp`` names it: ``X | None``, a nested dataclass (by
    its ``from_dict``), ``tuple[X, ...]`` and ``tuple[X, Y]`` rebuilt element by element;
    a scalar inside a tuple cast to its type; anything else returned as it is."""
    if value is None:
        return None
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        kinds = [a for a in args if a is not type(None)]
        return _convert(kinds[0], value) if len(kinds) == 1 else value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp) and isinstance(value, Mapping):
        from_dict = getattr(tp, "from_dict", None)
        return from_dict(value) if from_dict else from_plain(tp, value, tp.__name__)
    if origin is tuple and isinstance(value, list | tuple):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_element(args[0], v) for v in value)
        return tuple(_element(a, v) for a, v in zip(args, value, strict=True))
    return value


def _element(tp: Any, value: Any) -> Any:
    return tp(value) if tp in _SCALARS else _convert(tp, value)
