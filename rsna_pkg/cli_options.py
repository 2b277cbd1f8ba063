"""argparse options made from config dataclass fields, and flag names in their errors.

The one place a config field becomes a flag (``config_fields`` says what a field
declares): ``batch_size`` is ``--batch-size``, a True-by-default bool ``amp`` is
``--no-amp``, a ``Literal`` type gives the choices, declared bounds give a ``type`` that
refuses NaN, inf and out-of-range values where they are typed, and fields of one
``group`` exclude each other. ``config_kwargs`` reads the parsed values back by field
name, and ``flags_in_errors`` says a config's ``FieldError`` in terms of the flag.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import MISSING, Field, fields
from typing import Any

from rsna_pkg.config_fields import FieldError, field_choices, field_types
from rsna_pkg.errors import InputError
from rsna_pkg.options import number


def cli_fields(cls: type) -> list[Field[Any]]:
    """The fields of config class ``cls`` that are command-line options."""
    return [f for f in fields(cls) if f.metadata.get("cli")]


def default_of(f: Field[Any]) -> Any:
    if f.default_factory is not MISSING:
        return f.default_factory()
    return f.default


def flags_of(f: Field[Any]) -> tuple[str, ...]:
    """The option strings a field is set by: its declared ``flag`` (one, or several with
    the first the name to use), else ``--field-name`` (``--no-field-name`` for a bool that
    is True by default)."""
    given = f.metadata.get("flag")
    if given:
        return (given,) if isinstance(given, str) else tuple(given)
    flag = dashed(f.name)
    return (f"--no-{flag[2:]}" if default_of(f) is True else flag,)


def flag_of(f: Field[Any]) -> str:
    """The option a field is set by (its first option string)."""
    return flags_of(f)[0]


def argument(f: Field[Any], tp: Any) -> dict[str, Any]:
    """``add_argument`` keywords for field ``f`` of type ``tp``."""
    meta, default = f.metadata, default_of(f)
    if tp is bool:
        return {"action": "store_false" if default else "store_true", "help": meta["help"]}
    shown = "" if default is None else " (default: %(default)s)"  # None: the help says it
    kw: dict[str, Any] = {"default": default, "help": f"{meta['help']}{shown}"}
    if meta.get("required"):
        kw = {"required": True, "help": meta["help"]}
    choices = field_choices(f, tp)
    if choices:
        kw["choices"] = choices
        kw["type"] = type(choices[0])  # Literal[8, 16]: "8" typed becomes 8
        if len(choices) > 4:  # a long list reads better once, in the help, than in the usage
            kw["metavar"] = flag_of(f).lstrip("-").upper().replace("-", "_")
            kw["help"] = f"{meta['help']}; one of {', '.join(map(str, choices))}{shown}"
    elif meta.get("bounds") is not None:
        lo, hi = meta["bounds"]
        kw["type"] = number(lo, hi, integer=tp is int, lo_open=meta["lo_open"],
                            hi_open=meta["hi_open"])  # fmt: skip
    else:
        kw["type"] = tp
    return kw


def add_config_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """One option per command-line field of ``cls``, in field order."""
    types = field_types(cls)
    groups: dict[str, Any] = {}
    for f in cli_fields(cls):
        target: Any = parser
        name = f.metadata.get("group")
        if name:
            if name not in groups:
                groups[name] = parser.add_mutually_exclusive_group()
            target = groups[name]
        target.add_argument(*flags_of(f), dest=f.name, **argument(f, types[f.name]))


def config_kwargs(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The parsed values of ``cls``'s command-line fields, by field name."""
    return {f.name: getattr(args, f.name) for f in cli_fields(cls)}


def dashed(name: str) -> str:
    """``neg_ratio`` -> ``--neg-ratio``: the flag a setting has unless it declares another."""
    return "--" + name.replace("_", "-")


def same_name_flags(*names: str) -> dict[str, str]:
    """``{"neg_ratio": "--neg-ratio", ...}``: settings whose flag is their dashed name."""
    return {name: dashed(name) for name in names}


@contextmanager
def flags_in_errors(*classes: type, **flags: str) -> Iterator[None]:
    """A ``FieldError`` raised inside, said again naming the flag its field is set by
    (``--batch-size: ...``): a field of one of ``classes`` declared with ``option`` (a
    hand-made option's too: ``cli=False`` with its own flag of the same name or the declared
    ``flag``), or a parameter a command sets from a flag it names in ``flags``
    (``resume="--resume"``). A field no flag sets keeps its name."""
    try:
        yield
    except FieldError as exc:
        if exc.field in flags:
            raise InputError(exc.renamed(flags[exc.field])) from exc
        for cls in classes:
            for f in fields(cls):
                if f.name == exc.field and "help" in f.metadata:  # declared with option()
                    raise InputError(exc.renamed(flag_of(f))) from exc
        raise
