"""What a config dataclass field declares about itself, for every place that reads it.

A field made with ``option`` carries its default, its help text and, for a number, its
bounds; a field typed ``Literal[...]`` carries its choices (or ``option(choices=...)``, for
a list that lives elsewhere, such as the decoder registry). ``check_fields`` validates a
config from those declarations (its ``__post_init__`` calls it), and the CLI layer
(``cli_options``) makes the argparse options from the same declarations, so a new setting
is one field: its flag, choices, help, validation and its place in config.json follow.

Errors here name the field (``batch_size``), never a flag: flag names belong to the CLI,
which renames them (``FieldError.field``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import typing
from dataclasses import MISSING, fields
from typing import Any

from rsna_pkg.errors import InputError


class FieldError(InputError):
    """A setting's value is unusable: ``field`` names it (a config field, or a parameter
    of a library call), ``value`` is what was given when the message shows it, ``reason``
    says what is wrong, so the CLI can say the same of the flag the value came from
    (``cli_options.flags_in_errors``); ``what`` names the config (``preprocess height:
    ...``), for a value read back from a file."""

    def __init__(self, field: str, reason: str, what: str = "", value: object = None) -> None:
        self.field = field
        self.reason = reason
        self.value = value
        shown = "" if value is None else f" {value}"
        super().__init__(f"{what + ' ' if what else ''}{field}{shown}: {reason}")

    def renamed(self, flag: str) -> str:
        """The message with the flag in the field's place (``--pretrained x.pt: ...``)."""
        shown = "" if self.value is None else f" {self.value}"
        return f"{flag}{shown}: {self.reason}"


def option(
    default: Any = MISSING,
    *,
    help: str,
    bounds: tuple[float, float] | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
    flag: str | tuple[str, ...] | None = None,
    group: str | None = None,
    cli: bool = True,
    required: bool = False,
    choices: tuple[Any, ...] | None = None,
    default_factory: Any = MISSING,
) -> Any:
    """A config field that declares itself: ``bounds`` for a number (``lo_open`` /
    ``hi_open`` exclude an end), ``flag`` when its option is not ``--field-name`` (a
    True-by-default bool is ``--no-field-name``), ``group`` for options that exclude each
    other, ``cli=False`` for a field a command sets from other options, ``required`` for
    an option the command line must give (the field's default serves library callers),
    ``choices`` for a ``str`` field whose values a registry owns (one list, no ``Literal``
    to keep in step with it)."""
    meta = {"help": help, "bounds": bounds, "lo_open": lo_open, "hi_open": hi_open,
            "flag": flag, "group": group, "cli": cli, "required": required,
            "choices": choices}  # fmt: skip
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """Each field's resolved type (annotations are strings under ``from __future__``)."""
    return typing.get_type_hints(cls)


def choices_of(tp: Any) -> tuple[Any, ...]:
    """The values a ``Literal[...]`` (or ``Literal[...] | None``) type allows; () if none."""
    if typing.get_origin(tp) is typing.Literal:
        return typing.get_args(tp)
    for arg in typing.get_args(tp):
        if typing.get_origin(arg) is typing.Literal:
            return typing.get_args(arg)
    return ()


def field_choices(f: dataclasses.Field[Any], tp: Any) -> tuple[Any, ...]:
    """The values field ``f`` of type ``tp`` allows: ``option(choices=...)``, else its
    ``Literal``; () if it declares none."""
    declared = f.metadata.get("choices")
    return tuple(declared) if declared else choices_of(tp)


def interval(bounds: tuple[float, float], lo_open: bool, hi_open: bool) -> str:
    """[0, 1), (0, 1000000] ...: how a bound reads in a message."""
    lo, hi = (str(int(b)) if float(b).is_integer() else f"{b:g}" for b in bounds)
    return f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"


def in_bounds(value: float, bounds: tuple[float, float], lo_open: bool, hi_open: bool) -> bool:
    """Whether a finite ``value`` lies in the interval (NaN and inf never do)."""
    lo, hi = bounds
    if not math.isfinite(value) or value < lo or value > hi:
        return False
    return not ((lo_open and value == lo) or (hi_open and value == hi))


def check_fields(config: Any) -> None:
    """FieldError for the first field whose value is outside its ``Literal`` choices or
    its declared bounds, or is not the integer an ``int`` field needs (numpy's integers
    are integers); named with the config's ``WHAT``."""
    what = getattr(config, "WHAT", "")
    types = field_types(config.__class__)
    for f in fields(config):
        value, tp = getattr(config, f.name), types[f.name]
        choices = field_choices(f, tp)
        if choices and value not in choices:
            raise FieldError(f.name, f"must be one of {choices}, got {value!r}", what)
        bounds = f.metadata.get("bounds")
        if bounds is None or value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise FieldError(f.name, f"must be a number, got {value!r}", what)
        if tp is int and not isinstance(value, numbers.Integral):
            raise FieldError(f.name, f"must be an integer, got {value!r}", what)
        lo_open, hi_open = f.metadata["lo_open"], f.metadata["hi_open"]
        if not in_bounds(float(value), bounds, lo_open, hi_open):
            span = interval(bounds, lo_open, hi_open)
            raise FieldError(f.name, f"must be in {span}, got {value}", what)
