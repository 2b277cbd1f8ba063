"""The one rule every config dataclass reads its dict by: unknown keys are an error.

A key this version does not know means a file from another version (or a typo); silently
dropping it would rebuild something other than what was saved."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from rsna_pkg.errors import InputError


def known_fields(cls: type, d: Mapping[str, Any], what: str) -> dict[str, Any]:
    """``d`` as keyword arguments of dataclass ``cls``; InputError naming any unknown key."""
    unknown = set(d) - {f.name for f in fields(cls)}
    if unknown:
        raise InputError(f"{what}: unknown key(s) {sorted(unknown)}")
    return dict(d)
