"""What ``--difficulty realistic`` puts in a breast: findings sized in millimetres, the real
set's cancer rate, per-machine prevalence and one-view label noise (docs/SYNTH_DIFFICULTY.md).

Pure parameter draws from a Generator passed in; the pixels are drawn by ``lesions_mm``, which
turns millimetres into pixels through the machine's pixel spacing and the matrix size.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Literal

import numpy as np

Difficulty = Literal["easy", "realistic"]
DIFFICULTIES: tuple[str, ...] = typing.get_args(Difficulty)
REAL_BREAST_RATE = 492 / 23_826  # positive breasts of the real train set (1,158 / 54,706 images)

# Screen-detected cancers: mostly masses, about a third calcifications, a few distortions.
CANCER_MIX = {"mass": 0.35, "spiculated_mass": 0.25, "calc_cluster": 0.3, "distortion": 0.1}
BENIGN_MIX = {"benign_mass": 0.6, "benign_calcs": 0.4}
BENIGN_RATE = 0.12  # negative breasts holding a benign look-alike
ONE_VIEW_RATE = 0.12  # cancers seen in only one of CC / MLO (the label stays per breast)

# Sizes in mm: (low, high) of a uniform draw.
MASS_MM = (4.0, 15.0)
DISTORTION_MM = (10.0, 25.0)  # extent of the radiating lines
CLUSTER_MM = (4.0, 12.0)  # extent of a calcification cluster
SPECK_MM = (0.1, 0.5)
SPECKS = (5, 30)
BENIGN_MASS_MM = (5.0, 20.0)
COARSE_CALC_MM = (0.8, 2.5)
COARSE_CALCS = (1, 5)
# Added density (t units; fat 0.30, gland 0.60) before masking by the tissue around it.
MASS_CONTRAST = (0.2, 0.4)
SPECK_CONTRAST = (0.3, 0.6)
DISTORTION_CONTRAST = (0.08, 0.15)

# Relative cancer prevalence by machine (chosen, not measured): the real set's rates differ by
# site and vendor; these make the rates span about 0.5x to 1.5x the mean.
MACHINE_PREVALENCE = {49: 1.25, 93: 0.6, 170: 0.5, 190: 1.5, 197: 0.8, 210: 1.0, 216: 1.2,
                      21: 1.15, 29: 0.7, 48: 0.85}  # fmt: skip


@dataclass(frozen=True)
class Finding:
    """A realistic finding in one breast, in breast coordinates and millimetres.

    depth: 0 at the chest wall .. 1 at the nipple; height: -1 .. 1 across the breast;
    diameter_mm: the mass, cluster or distortion extent; specks_mm: calcification diameters;
    hidden_view: "CC" or "MLO" when the finding does not show in that view (label noise).
    """

    kind: str
    depth: float
    height: float
    diameter_mm: float
    contrast: float
    specks_mm: tuple[float, ...] = ()
    spicules: int = 0
    hidden_view: str | None = None

    @property
    def is_cancer(self) -> bool:
        return self.kind in CANCER_MIX


def view_family(view: str) -> str:
    """CC for cranio-caudal views, MLO for every lateral-ish one (ML, LM, LMO, AT)."""
    return "CC" if view == "CC" else "MLO"


def visible_in(finding: Finding, view: str) -> bool:
    return finding.hidden_view is None or view_family(view) != finding.hidden_view


def pick_kind(mix: dict[str, float], rng: np.random.Generator) -> str:
    kinds = list(mix)
    p = np.array([mix[k] for k in kinds])
    return kinds[int(rng.choice(len(kinds), p=p / p.sum()))]


def draw_finding(kind: str, rng: np.random.Generator, one_view_rate: float = 0.0) -> Finding:
    """Sizes, contrast and speck diameters of one finding of ``kind``."""
    depth, height = float(rng.uniform(0.3, 0.7)), float(rng.uniform(-0.55, 0.55))
    specks: tuple[float, ...] = ()
    spicules = 0
    if kind in ("mass", "spiculated_mass", "benign_mass"):
        diameter = rng.uniform(*(BENIGN_MASS_MM if kind == "benign_mass" else MASS_MM))
        contrast = rng.uniform(*MASS_CONTRAST)
        spicules = int(rng.integers(8, 21)) if kind == "spiculated_mass" else 0
    elif kind == "distortion":
        diameter, contrast = rng.uniform(*DISTORTION_MM), rng.uniform(*DISTORTION_CONTRAST)
        spicules = int(rng.integers(10, 21))
    elif kind == "calc_cluster":
        diameter, contrast = rng.uniform(*CLUSTER_MM), rng.uniform(*SPECK_CONTRAST)
        n = int(rng.integers(SPECKS[0], SPECKS[1] + 1))
        specks = tuple(float(d) for d in rng.uniform(*SPECK_MM, n))
    elif kind == "benign_calcs":
        diameter, contrast = rng.uniform(8.0, 30.0), rng.uniform(*SPECK_CONTRAST)
        n = int(rng.integers(COARSE_CALCS[0], COARSE_CALCS[1] + 1))
        specks = tuple(float(d) for d in rng.uniform(*COARSE_CALC_MM, n))
    else:
        raise ValueError(f"unknown finding kind {kind!r}")
    hidden = None
    if kind in CANCER_MIX and rng.random() < one_view_rate:
        hidden = str(rng.choice(["CC", "MLO"]))
    return Finding(kind, depth, height, float(diameter), float(contrast), specks, spicules, hidden)


def machine_weights(machine_ids: list[int]) -> np.ndarray:
    """Selection probabilities of breasts on these machines, proportional to prevalence."""
    w = np.array([MACHINE_PREVALENCE[m] for m in machine_ids], dtype=np.float64)
    return w / w.sum()
