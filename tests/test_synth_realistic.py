"""``rsna synth --difficulty realistic``: findings sized in mm, the real set's rates,
per-machine prevalence, one-view label noise, masking; ``easy`` unchanged."""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rsna_pkg.data.synth import SynthConfig, findings, generate, lesions_mm, tables
from rsna_pkg.data.synth import command as synth_command
from rsna_pkg.data.synth.dataset import image_tasks
from rsna_pkg.data.synth.findings import (
    REAL_BREAST_RATE,
    Finding,
    draw_finding,
    visible_in,
)
from rsna_pkg.data.synth.machines import MACHINES
from rsna_pkg.data.synth.phantom import FAT, GLAND, render
from rsna_pkg.data.synth.tables import plan_patients, train_table
from rsna_pkg.errors import InputError

KINDS = (*findings.CANCER_MIX, *findings.BENIGN_MIX)


def _breast_table(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop_duplicates(["patient_id", "laterality"])


@pytest.mark.parametrize("kind", KINDS)
def test_finding_sizes_are_millimetres_in_range(kind: str) -> None:
    rng = np.random.default_rng(3)
    drawn = [draw_finding(kind, rng, one_view_rate=0.5) for _ in range(400)]
    sizes = np.array([f.diameter_mm for f in drawn])
    low, high = {"mass": findings.MASS_MM, "spiculated_mass": findings.MASS_MM,
                 "benign_mass": findings.BENIGN_MASS_MM, "distortion": findings.DISTORTION_MM,
                 "calc_cluster": findings.CLUSTER_MM, "benign_calcs": (8.0, 30.0)}[kind]  # fmt: skip
    assert low <= sizes.min() and sizes.max() <= high
    assert sizes.max() - sizes.min() > 0.8 * (high - low)  # the whole range is used
    counts = np.array([len(f.specks_mm) for f in drawn])
    specks = np.concatenate([f.specks_mm for f in drawn]) if counts.any() else np.zeros(0)
    if kind == "calc_cluster":
        assert counts.min() == 5 and counts.max() == 30
        assert specks.min() >= 0.1 and specks.max() <= 0.5
    elif kind == "benign_calcs":  # look-alikes: few and coarse
        assert counts.max() <= 5 and specks.min() >= 0.8
    else:
        assert not counts.any()
    assert (np.array([f.spicules for f in drawn]) > 0).all() == (
        kind in ("spiculated_mass", "distortion")
    )
    hidden = Counter(f.hidden_view for f in drawn)
    if kind in findings.CANCER_MIX:
        assert set(hidden) == {None, "CC", "MLO"} and 120 < hidden[None] < 280
    else:
        assert set(hidden) == {None}  # label noise is about cancers only
    contrasts = np.array([f.contrast for f in drawn])
    assert (contrasts > 0).all() and (contrasts <= 0.6).all()


def test_realistic_rates_at_the_real_train_sets_level() -> None:
    """Table-only draw: about 2 % positive images and breasts, as in the real set."""
    patients = plan_patients(4000, seed=5, cancer_rate=REAL_BREAST_RATE, test_frac=0.1,
                             difficulty="realistic")  # fmt: skip
    train = train_table(patients)
    assert abs(_breast_table(train).cancer.mean() - REAL_BREAST_RATE) < 0.002
    assert 0.016 < train.cancer.mean() < 0.026  # images (real: 1,158 / 54,706 = 2.1 %)
    kinds = Counter(
        b.lesion.kind for p in patients for b in p.breasts.values() if b.cancer and b.lesion
    )
    assert set(kinds) == set(findings.CANCER_MIX)
    assert sum(b.cancer for p in patients for b in p.breasts.values() if p.split == "test") > 0


def test_prevalence_differs_by_machine() -> None:
    patients = plan_patients(4000, seed=6, cancer_rate=0.1, test_frac=0.0, difficulty="realistic")
    rate = _breast_table(train_table(patients)).groupby("machine_id").cancer.mean()
    assert rate[49] > 1.4 * rate[29]  # chosen 1.25 vs 0.7
    assert rate[190] > 2 * rate[170]  # chosen 1.5 vs 0.5
    # the easy generator draws positives uniformly over machines
    easy = plan_patients(4000, seed=6, cancer_rate=0.1, test_frac=0.0)
    easy_rate = _breast_table(train_table(easy)).groupby("machine_id").cancer.mean()
    assert easy_rate[49] < 1.25 * easy_rate[29]


def test_some_cancers_show_in_one_view_only(tmp_path: Path) -> None:
    patients = plan_patients(3000, seed=7, cancer_rate=0.1, test_frac=0.1, difficulty="realistic")
    cancers = [b.lesion for p in patients for b in p.breasts.values() if b.cancer]
    assert all(isinstance(f, Finding) for f in cancers)
    one_view = [f for f in cancers if isinstance(f, Finding) and f.hidden_view is not None]
    share = len(one_view) / len(cancers)
    assert 0.5 * findings.ONE_VIEW_RATE < share < 1.5 * findings.ONE_VIEW_RATE
    # the hidden view's image is rendered without the finding but stays labelled cancer = 1
    cfg = SynthConfig(patients=3000, seed=7, difficulty="realistic")
    tasks = {t.ids.image_id: t for t in image_tasks(patients, cfg)}
    train = train_table(patients)
    hidden_rows = [r for r in train.itertuples() if r.cancer and tasks[r.image_id].lesion is None]
    assert hidden_rows and all(r.cancer == 1 for r in hidden_rows)
    for r in hidden_rows:
        lesion = next(p for p in patients if p.patient_id == r.patient_id).breasts[r.laterality]
        assert isinstance(lesion.lesion, Finding) and not visible_in(lesion.lesion, r.view)
    shown = [r for r in train.itertuples() if r.cancer and tasks[r.image_id].lesion is not None]
    assert len(shown) > 5 * len(hidden_rows)


def test_auxiliary_columns_follow_cancer() -> None:
    patients = plan_patients(2000, seed=8, cancer_rate=0.1, test_frac=0.1, difficulty="realistic")
    train = train_table(patients)
    pos, neg = train[train.cancer == 1], train[train.cancer == 0]
    assert (pos.biopsy == 1).all() and set(pos.BIRADS.dropna()) == {0.0}
    assert not pos.difficult_negative_case.any()
    assert (train.invasive <= train.cancer).all() and 0.4 < pos.invasive.mean() < 0.9
    benign = [b for p in patients for b in p.breasts.values()
              if not b.cancer and b.lesion is not None]  # fmt: skip
    assert {b.lesion.kind for b in benign if b.lesion} == set(findings.BENIGN_MIX)
    assert np.mean([b.difficult_negative for b in benign]) > 0.5
    assert neg.difficult_negative_case.mean() < 0.2 and neg.biopsy.mean() < 0.1


def test_difficulty_changes_labels_only() -> None:
    """Who the patients are and which images they have: the same for both difficulties."""
    easy = plan_patients(50, seed=2, cancer_rate=0.2, test_frac=0.1)
    real = plan_patients(50, seed=2, cancer_rate=0.2, test_frac=0.1, difficulty="realistic")
    cols = ["patient_id", "image_id", "laterality", "view", "age", "machine_id", "density"]
    pd.testing.assert_frame_equal(train_table(easy)[cols], train_table(real)[cols])
    pd.testing.assert_frame_equal(tables.test_table(easy), tables.test_table(real))
    with pytest.raises(ValueError, match="difficulty"):
        plan_patients(5, seed=2, cancer_rate=0.2, test_frac=0.1, difficulty="hard")


def test_easy_tables_are_unchanged() -> None:
    """Digest of the easy tables for one seed, recorded with the generator as it was before
    ``--difficulty`` existed (commit c1e42c5): the default output must not move."""
    patients = plan_patients(60, seed=4, cancer_rate=0.2, test_frac=0.1)
    frames = (train_table(patients), tables.test_table(patients))
    text = "".join(df.to_csv(index=False) for df in frames)
    digest = hashlib.sha256(text.encode()).hexdigest()
    assert digest == "4c09d1c6c6f25be12f3f0567f091fc2e2f20a59f1a3e11a7d25ed053323b1d80"


@pytest.mark.parametrize("radius", [0.05, 0.2, 0.3, 0.7, 1.5, 4.0])
def test_speck_coverage_keeps_the_area(radius: float) -> None:
    _, _, cov = lesions_mm.speck_coverage(10.3, 7.6, radius)
    assert cov.sum() == pytest.approx(math.pi * radius**2, rel=0.08)
    assert cov.max() <= 1.0 and cov.min() >= 0.0


def _flat(level: float, shape: tuple[int, int] = (200, 200)) -> tuple[np.ndarray, np.ndarray]:
    return np.full(shape, level, np.float32), np.ones(shape, bool)


def test_specks_need_resolution() -> None:
    """The same cluster at full-scale and at small-scale pixel size: the same integrated
    density, but only the fine pixels show the specks with their own contrast."""
    f = Finding("calc_cluster", 0.5, 0.0, 8.0, 0.3, (0.2,) * 12)
    peaks, totals = [], []
    for mm_px in (0.065, 0.39):
        t, _ = _flat(FAT, (400, 400))
        out = lesions_mm.add_specks(t, f, (200.0, 200.0), mm_px, np.random.default_rng(0))
        added = out - t
        peaks.append(added.max())
        totals.append(added.sum() * mm_px**2)
    assert peaks[0] > 0.25 and peaks[1] < 0.4 * peaks[0]
    assert totals[1] == pytest.approx(totals[0], rel=0.1)


def test_dense_tissue_masks_a_mass() -> None:
    f = Finding("mass", 0.5, 0.0, 10.0, 0.06)
    added = []
    for level in (FAT, GLAND):
        t, mask = _flat(level)
        out = lesions_mm.draw_mass(t, mask, f, (100.0, 100.0), 0.2, np.random.default_rng(1))
        added.append(float((out - t).max()))
        ys, _ = np.nonzero(out - t > 1e-4)
        assert 8.0 / 0.2 < ys.max() - ys.min() < 15.0 / 0.2  # about 10 mm across, lobulated
    assert added[0] == pytest.approx(0.06, rel=0.05)
    assert added[1] == pytest.approx(0.06 * (1 - lesions_mm.MASKING), rel=0.1)


@pytest.mark.parametrize("kind", KINDS)
def test_realistic_findings_change_only_their_neighbourhood(kind: str) -> None:
    profile = MACHINES[48]
    shape, mm_px = profile.shape("small"), profile.mm_per_pixel("small")
    base = render(shape, "L", "MLO", "B", False, None, np.random.default_rng(4), mm_px)
    drawn = draw_finding(kind, np.random.default_rng(9))
    f = Finding(kind, 0.5, 0.0, drawn.diameter_mm, drawn.contrast, drawn.specks_mm, drawn.spicules)
    img = render(shape, "L", "MLO", "B", False, f, np.random.default_rng(4), mm_px)
    ys, xs = np.nonzero(np.abs(img - base) > 1e-5)
    assert ys.size > 3, kind
    extent_mm = max(ys.max() - ys.min(), xs.max() - xs.min()) * mm_px
    reach = {"spiculated_mass": 3.2, "mass": 1.8, "distortion": 1.3}.get(kind, 1.2)  # spicules
    assert extent_mm < reach * f.diameter_mm + 2, (kind, extent_mm)
    assert np.abs(img - base).max() < 0.5
    with pytest.raises(ValueError, match="mm_per_px"):
        render(shape, "L", "MLO", "B", False, f, np.random.default_rng(4))


def test_realistic_output_is_deterministic(tmp_path: Path) -> None:
    cfg = SynthConfig(patients=2, seed=3, difficulty="realistic", cancer_rate=1.0)
    generate(tmp_path / "a", cfg)
    generate(tmp_path / "b", SynthConfig(**{**cfg.__dict__, "workers": 2}))
    generate(tmp_path / "easy", SynthConfig(patients=2, seed=3, cancer_rate=1.0))
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.dcm"))
    assert len(files) >= 8
    for rel in files:
        assert filecmp.cmp(tmp_path / "a" / rel, tmp_path / "b" / rel, shallow=False), rel
    assert any(
        not filecmp.cmp(tmp_path / "a" / rel, tmp_path / "easy" / rel, shallow=False)
        for rel in files
    )
    train = pd.read_csv(tmp_path / "a" / "train.csv")
    assert train.cancer.sum() > 0


def test_command_line_difficulty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    synth_command.add_arguments(parser)
    args = parser.parse_args([str(tmp_path / "x"), "--patients", "2", "--difficulty", "realistic"])
    assert args.difficulty == "realistic"
    assert parser.parse_args([str(tmp_path / "y"), "--patients", "2"]).difficulty == "easy"
    with pytest.raises(SystemExit):
        parser.parse_args([str(tmp_path / "z"), "--patients", "2", "--difficulty", "hard"])
    capsys.readouterr()
    with pytest.raises(InputError, match="^difficulty: must be one of"):
        generate(tmp_path / "w", SynthConfig(patients=2, difficulty="hard"))
    assert SynthConfig(difficulty="realistic").resolved_cancer_rate() == REAL_BREAST_RATE
    assert SynthConfig(difficulty="realistic", scale="full").resolved_cancer_rate() == (
        REAL_BREAST_RATE
    )
    assert SynthConfig().resolved_cancer_rate() == 0.2


def test_replicate_passes_difficulty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rsna_pkg.data import synth
    from rsna_pkg.kaggle import replay, replicate_command

    parser = argparse.ArgumentParser()
    replicate_command.add_arguments(parser)
    assert parser.parse_args([]).difficulty == "easy"
    assert parser.parse_args(["--difficulty", "realistic"]).difficulty == "realistic"
    seen: list[SynthConfig] = []

    def fake_generate(out: Path, cfg: SynthConfig) -> object:
        seen.append(cfg)
        raise RuntimeError("stop")

    monkeypatch.setattr(synth, "generate", fake_generate)
    opts = replay.ReplayOptions(work=tmp_path, patients=7, difficulty="realistic")
    with pytest.raises(RuntimeError, match="stop"):
        replay._synthetic(tmp_path / "data", opts)
    assert seen[0].difficulty == "realistic" and seen[0].patients == 7
