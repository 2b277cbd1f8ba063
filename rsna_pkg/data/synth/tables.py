"""Who the synthetic patients are: ids, sites, machines, views and labels.

All randomness of the tables comes from one Generator seeded by ``seed``; pixels get
their own per-image Generator (``image_seed``), so the CSVs do not depend on how the
images are rendered or on how many workers render them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rsna_pkg.data.schema import DENSITIES, TEST_COLUMNS, TRAIN_COLUMNS, prediction_id
from rsna_pkg.data.synth import findings
from rsna_pkg.data.synth.findings import Finding
from rsna_pkg.data.synth.machines import MACHINES

STANDARD_VIEWS = (("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "MLO"))
EXTRA_VIEWS = ("AT", "LM", "ML", "LMO")
CANCER_KINDS = ("spiculated_mass", "calc_cluster")
BENIGN_KINDS = ("round_mass", "single_calc")


@dataclass(frozen=True)
class Lesion:
    """A finding in one breast, placed in breast coordinates so every view shows it.

    depth: 0 at the chest wall .. 1 at the nipple; height: -1 .. 1 across the breast;
    size: multiplier of the kind's nominal radius.
    """

    kind: str
    depth: float
    height: float
    size: float


@dataclass
class Breast:
    laterality: str
    cancer: int = 0
    biopsy: int = 0
    invasive: int = 0
    birads: float = math.nan
    difficult_negative: bool = False
    lesion: Lesion | Finding | None = None


@dataclass
class Patient:
    index: int
    patient_id: int
    split: str
    machine_id: int
    age: float
    implant: int
    density: str | None
    breasts: dict[str, Breast]
    images: list[tuple[int, str, str]] = field(default_factory=list)  # (image_id, lat, view)

    @property
    def site_id(self) -> int:
        return MACHINES[self.machine_id].site_id


def image_seed(seed: int, image_index: int) -> np.random.SeedSequence:
    """Per-image entropy: the same image gets the same pixels whatever the worker count."""
    return np.random.SeedSequence([seed, 2, image_index])


def _unique_ints(rng: np.random.Generator, n: int, low: int, high: int) -> np.ndarray:
    return rng.choice(high - low, size=n, replace=False).astype(np.int64) + low


def _assign_machines(n: int, rng: np.random.Generator) -> list[int]:
    """Round-robin over every machine first (so a small set holds each kind), then by weight."""
    ids = list(MACHINES)
    weights = np.array([MACHINES[m].weight for m in ids])
    drawn = rng.choice(ids, size=n, p=weights / weights.sum())
    return [ids[i] if i < len(ids) else int(drawn[i]) for i in range(n)]


def _lesion(kind: str, rng: np.random.Generator) -> Lesion:
    return Lesion(
        kind=kind,
        depth=float(rng.uniform(0.3, 0.7)),
        height=float(rng.uniform(-0.55, 0.55)),
        size=float(rng.uniform(0.85, 1.2)),
    )


def _breasts_by_split(
    patients: list[Patient], rate: float
) -> list[tuple[str, list[tuple[Patient, Breast]], int]]:
    """Each split's name, its (patient, breast) pairs and how many of them are positive:
    ``rate`` of them, and at least two in a train split with any cancers (both cancer kinds
    appear, and a tiny set still has something to learn)."""
    out = []
    for split in ("train", "test"):
        breasts = [(p, b) for p in patients if p.split == split for b in p.breasts.values()]
        if not breasts:
            continue
        n_pos = round(rate * len(breasts))
        if split == "train" and rate > 0:
            n_pos = max(n_pos, min(2, len(breasts)))
        out.append((split, breasts, n_pos))
    return out


def _label_breasts(patients: list[Patient], rate: float, rng: np.random.Generator) -> None:
    """Pick positive breasts (an exact share per split) and set the label columns."""
    for split, breasts, n_pos in _breasts_by_split(patients, rate):
        positive = set(rng.choice(len(breasts), size=n_pos, replace=False).tolist())
        n_benign = 0
        for i, (patient, breast) in enumerate(breasts):
            missing_birads = patient.site_id == 2 or rng.random() < 0.15
            if i in positive:
                kind = CANCER_KINDS[len([j for j in positive if j < i]) % 2]
                set_cancer_columns(breast, rng)
                breast.lesion = _lesion(kind, rng)
            elif rng.random() < 0.15 or (split == "train" and n_benign < 2 and i >= 2):
                breast.lesion = _lesion(BENIGN_KINDS[n_benign % 2], rng)
                n_benign += 1
                set_benign_columns(breast, rng)
            else:
                set_normal_columns(breast, rng)
            if missing_birads:
                breast.birads = math.nan


def _label_breasts_realistic(
    patients: list[Patient], rate: float, rng: np.random.Generator
) -> None:
    """Like ``_label_breasts`` with findings in mm: positives drawn with per-machine weights
    (``findings.MACHINE_PREVALENCE``), some cancers hidden in one view, benign look-alikes."""
    for _, breasts, n_pos in _breasts_by_split(patients, rate):
        weights = findings.machine_weights([p.machine_id for p, _ in breasts])
        positive = set(rng.choice(len(breasts), size=n_pos, replace=False, p=weights).tolist())
        for i, (patient, breast) in enumerate(breasts):
            missing_birads = patient.site_id == 2 or rng.random() < 0.15
            if i in positive:
                set_cancer_columns(breast, rng)
                kind = findings.pick_kind(findings.CANCER_MIX, rng)
                breast.lesion = findings.draw_finding(kind, rng, findings.ONE_VIEW_RATE)
            elif rng.random() < findings.BENIGN_RATE:
                kind = findings.pick_kind(findings.BENIGN_MIX, rng)
                breast.lesion = findings.draw_finding(kind, rng)
                set_benign_columns(breast, rng)
            else:
                set_normal_columns(breast, rng)
            if missing_birads:
                breast.birads = math.nan


def set_cancer_columns(breast: Breast, rng: np.random.Generator) -> None:
    """A cancer was biopsied; BIRADS 0 (recalled); about two in three invasive."""
    breast.cancer, breast.biopsy = 1, 1
    breast.invasive = int(rng.random() < 0.65)
    breast.birads = 0.0


def set_benign_columns(breast: Breast, rng: np.random.Generator) -> None:
    """A benign finding: often recalled, sometimes biopsied, mostly a difficult negative."""
    breast.biopsy = int(rng.random() < 0.3)
    breast.birads = float(rng.choice([0.0, 2.0], p=[0.6, 0.4]))
    breast.difficult_negative = bool(rng.random() < 0.7)


def set_normal_columns(breast: Breast, rng: np.random.Generator) -> None:
    breast.biopsy = int(rng.random() < 0.01)
    breast.birads = float(rng.choice([1.0, 2.0, 0.0], p=[0.65, 0.3, 0.05]))
    breast.difficult_negative = bool(breast.biopsy or rng.random() < 0.05)


def plan_patients(
    n: int, seed: int, cancer_rate: float, test_frac: float, difficulty: str = "easy"
) -> list[Patient]:
    """Draw patients, their images and labels. The last ``n_test`` patients form the test set.
    ``difficulty`` changes only the labels and findings (who, which images: the same)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    n_test = min(n - 1, max(1, round(n * test_frac)))
    n_train = n - n_test
    machines = _assign_machines(n_train, rng) + _assign_machines(n_test, rng)
    patient_ids = _unique_ints(rng, n, 10_000, max(65_536, 10_000 + 4 * n))
    patients: list[Patient] = []
    for i in range(n):
        site = MACHINES[machines[i]].site_id
        age = float(np.clip(round(rng.normal(58, 10)), 38, 89))
        if i == 0 or rng.random() < 0.002:  # the real set misses a few ages
            age = math.nan
        density = None if site == 2 else str(rng.choice(DENSITIES, p=[0.1, 0.42, 0.4, 0.08]))
        views = list(STANDARD_VIEWS)
        if i == 1:
            views += [("L", "AT"), ("R", "LM")]
        elif i == 2:
            views += [("L", "ML"), ("R", "LMO"), ("R", "CC")]
        elif rng.random() < 0.35:  # the real set averages 4.6 images per patient
            for _ in range(rng.choice([1, 2, 3, 4], p=[0.5, 0.3, 0.1, 0.1])):
                rare = rng.random() < 0.01
                view = str(rng.choice(EXTRA_VIEWS if rare else ("CC", "MLO")))
                views.append((str(rng.choice(["L", "R"])), view))
        patients.append(
            Patient(
                index=i,
                patient_id=int(patient_ids[i]),
                split="train" if i < n_train else "test",
                machine_id=machines[i],
                age=age,
                implant=int(i == 3 or rng.random() < 0.015),
                density=density,
                breasts={lat: Breast(lat) for lat in ("L", "R")},
                images=[(0, lat, view) for lat, view in views],
            )
        )
    n_images = sum(len(p.images) for p in patients)
    image_ids = iter(_unique_ints(rng, n_images, 100_000, 2**31 - 1).tolist())
    for p in patients:
        p.images = [(next(image_ids), lat, view) for _, lat, view in p.images]
    if difficulty not in findings.DIFFICULTIES:
        raise ValueError(f"unknown difficulty {difficulty!r}")
    if difficulty == "realistic":
        _label_breasts_realistic(patients, cancer_rate, rng)
    else:
        _label_breasts(patients, cancer_rate, rng)
    return patients


def train_table(patients: list[Patient]) -> pd.DataFrame:
    rows = []
    for p in patients:
        if p.split != "train":
            continue
        for image_id, lat, view in p.images:
            b = p.breasts[lat]
            rows.append(
                (p.site_id, p.patient_id, image_id, lat, view, p.age, b.cancer, b.biopsy,
                 b.invasive, b.birads, p.implant, p.density, p.machine_id, b.difficult_negative)
            )  # fmt: skip
    df = pd.DataFrame(rows, columns=list(TRAIN_COLUMNS))
    return df.sort_values(["patient_id"], kind="stable").reset_index(drop=True)


def test_table(patients: list[Patient]) -> pd.DataFrame:
    rows = [
        (p.site_id, p.patient_id, image_id, lat, view, p.age, p.implant, p.machine_id,
         prediction_id(p.patient_id, lat))
        for p in patients if p.split == "test" for image_id, lat, view in p.images
    ]  # fmt: skip
    df = pd.DataFrame(rows, columns=list(TEST_COLUMNS))
    return df.sort_values(["patient_id"], kind="stable").reset_index(drop=True)


def test_solution(patients: list[Patient]) -> pd.DataFrame:
    """Per-breast truth of the test split (not part of the competition layout), for scoring."""
    rows = [
        (prediction_id(p.patient_id, lat), b.cancer)
        for p in sorted(patients, key=lambda q: q.patient_id) if p.split == "test"
        for lat, b in p.breasts.items()
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=["prediction_id", "cancer"])
