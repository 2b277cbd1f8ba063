"""Auxiliary training targets: train.csv columns besides ``cancer`` that a model can learn
alongside it, as the top solutions did (BIRADS, density, biopsy, invasive,
difficult_negative_case). Only training reads them: the test set has none, and inference
never calls the heads that predict them.

A target is multi-class (its values listed in class order) or binary (two values: one
logit). Labels are encoded as class indices (0/1 for a binary target) with ``MISSING``
where the value is missing or not one of the known values, so the loss masks it out
instead of imputing it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rsna_pkg.config_fields import FieldError
from rsna_pkg.data.schema import BIRADS_VALUES, DENSITIES
from rsna_pkg.errors import InputError

MISSING = -1.0
DEFAULT_AUX_WEIGHT = 0.1


@dataclass(frozen=True)
class AuxTarget:
    column: str  # in train.csv
    values: tuple[str, ...]  # class order, as normalised by ``_token``

    @property
    def outputs(self) -> int:
        """Logits of its head: one for a binary target (BCE), one per class otherwise (CE)."""
        return 1 if len(self.values) == 2 else len(self.values)


BINARY = ("0", "1")
# The order here is the order of the heads (and of their random init), whatever order
# the user lists them in.
AUX_TARGETS: dict[str, AuxTarget] = {
    "birads": AuxTarget("BIRADS", tuple(str(v) for v in BIRADS_VALUES)),
    "density": AuxTarget("density", DENSITIES),
    "biopsy": AuxTarget("biopsy", BINARY),
    "invasive": AuxTarget("invasive", BINARY),
    "difficult_negative_case": AuxTarget("difficult_negative_case", BINARY),
}


def _token(value: object) -> str | None:
    """A cell as the text its class is listed by: 1, 1.0, True and "true" are "1";
    "b" is "B"; NaN, None and "" are None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    if isinstance(value, int | float | np.integer | np.floating):
        return str(int(value)) if float(value).is_integer() else str(value)
    text = str(value).strip().upper()
    words = {"TRUE": "1", "FALSE": "0", "": None}
    if text in words:
        return words[text]
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def aux_labels(df: pd.DataFrame, names: Sequence[str]) -> np.ndarray:
    """[N, len(names)] float32 class indices of the named targets, MISSING where unknown."""
    out = np.full((len(df), len(names)), MISSING, dtype=np.float32)
    for j, name in enumerate(names):
        target = AUX_TARGETS[name]
        if target.column not in df.columns:
            raise InputError(f"train.csv: no {target.column} column for the {name} auxiliary head")
        index = {v: i for i, v in enumerate(target.values)}
        codes = [index.get(t, MISSING) if t is not None else MISSING
                 for t in map(_token, df[target.column].tolist())]  # fmt: skip
        out[:, j] = np.asarray(codes, dtype=np.float32)
    return out


def describe_aux(weights: Mapping[str, float], df: pd.DataFrame) -> str:
    """One line: each head's loss weight and how many of the rows are labelled for it."""
    known = (aux_labels(df, list(weights)) >= 0).sum(axis=0)
    parts = [f"{name} x{weight:g} ({k}/{len(df)} labelled)"
             for (name, weight), k in zip(weights.items(), known, strict=True)]  # fmt: skip
    return "auxiliary heads: " + ", ".join(parts)


def aux_heads(names: Sequence[str]) -> tuple[tuple[str, int], ...]:
    """The (name, outputs) of each head, as ModelConfig.aux_heads stores them."""
    return tuple((name, AUX_TARGETS[name].outputs) for name in names)


def check_aux_weights(weights: Mapping[str, float]) -> None:
    """FieldError naming the aux field for an unknown target or a weight that is not
    positive."""
    for name, weight in weights.items():
        if name not in AUX_TARGETS:
            raise FieldError(
                "aux", f"unknown target {name!r}; choose from {', '.join(AUX_TARGETS)}"
            )
        if not isinstance(weight, int | float) or not math.isfinite(weight) or weight <= 0:
            raise FieldError("aux", f"weight of {name} must be a positive number, got {weight!r}")


def parse_aux(text: str) -> dict[str, float]:
    """``"birads=0.2,density,biopsy=0.1"`` -> loss weights in AUX_TARGETS order; a bare
    name takes DEFAULT_AUX_WEIGHT; "" is no heads."""
    weights: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, raw = (s.strip() for s in item.partition("="))
        name = name.lower()
        if name in weights:
            raise FieldError("aux", f"{name} is given twice")
        try:
            weights[name] = float(raw) if sep else DEFAULT_AUX_WEIGHT
        except ValueError:
            raise FieldError(
                "aux", f"weight of {name} must be a positive number, got {raw!r}"
            ) from None
    check_aux_weights(weights)
    return {name: weights[name] for name in AUX_TARGETS if name in weights}
