"""The synthetic dataset: competition schema, decodable vendor-style DICOMs covering every
kind of file, consistent labels, determinism and refusal of bad input."""

from __future__ import annotations

import argparse
import filecmp
from collections import Counter
from pathlib import Path

import dicomsdl
import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.encaps import generate_frames
from pydicom.pixels import apply_voi_lut

from rsna_pkg.data import schema
from rsna_pkg.data.synth import SynthConfig, generate
from rsna_pkg.data.synth import command as synth_command
from rsna_pkg.data.synth import dataset as synth_dataset
from rsna_pkg.data.synth.machines import JPEG2000_LOSSLESS, JPEG_LOSSLESS_SV1, MACHINES
from rsna_pkg.data.synth.phantom import MASS_CONTRAST, render
from rsna_pkg.data.synth.tables import Lesion, plan_patients
from rsna_pkg.errors import InputError

MAGIC = {"jp2": b"\x00\x00\x00\x0cjP  ", "j2k": b"\xff\x4f\xff\x51", "ljpeg": b"\xff\xd8"}


def _tables(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return schema.read_table(root / "train.csv", "train"), schema.read_table(
        root / "test.csv", "test"
    )


def _all_files(root: Path) -> list[tuple[str, pd.Series]]:
    train, test = _tables(root)
    return [("train", r) for _, r in train.iterrows()] + [("test", r) for _, r in test.iterrows()]


@pytest.fixture(scope="module")
def headers(synth_data: Path) -> list[tuple[pd.Series, pydicom.Dataset]]:
    return [
        (row, pydicom.dcmread(schema.image_path(synth_data, split, row.patient_id, row.image_id)))
        for split, row in _all_files(synth_data)
    ]


def test_csv_schema_matches_competition(synth_data: Path) -> None:
    assert tuple(pd.read_csv(synth_data / "train.csv").columns) == schema.TRAIN_COLUMNS
    assert tuple(pd.read_csv(synth_data / "test.csv").columns) == schema.TEST_COLUMNS
    train, test = _tables(synth_data)
    for df in (train, test):
        assert set(df.laterality) <= set(schema.LATERALITIES)
        assert set(df.view) <= set(schema.VIEWS)
        assert set(df.implant) <= {0, 1}
        assert df.image_id.is_unique and (df.image_id > 0).all()
        for site, machine in zip(df.site_id, df.machine_id, strict=True):
            assert machine in schema.SITE_MACHINES[site]
        ages = df.age.dropna()
        assert ((ages >= 38) & (ages <= 89)).all()
    assert set(train.density.dropna()) <= set(schema.DENSITIES)
    assert set(train.BIRADS.dropna()) <= set(schema.BIRADS_VALUES)
    for col in ("cancer", "biopsy", "invasive"):
        assert set(train[col]) <= {0, 1}
    assert train.difficult_negative_case.dtype == bool
    expected = [f"{p}_{lat}" for p, lat in zip(test.patient_id, test.laterality, strict=True)]
    assert test.prediction_id.tolist() == expected
    sub = pd.read_csv(synth_data / "sample_submission.csv")
    assert tuple(sub.columns) == schema.SUBMISSION_COLUMNS
    assert sub.prediction_id.tolist() == list(dict.fromkeys(expected))
    assert sub.cancer.nunique() == 1 and 0 < sub.cancer.iloc[0] < 1


def test_labels_are_consistent(synth_data: Path) -> None:
    train, test = _tables(synth_data)
    assert set(train.patient_id).isdisjoint(test.patient_id)
    assert len(set(test.patient_id)) >= 1
    assert (train.biopsy[train.cancer == 1] == 1).all()
    assert (train.cancer[train.invasive == 1] == 1).all()
    assert not train.difficult_negative_case[train.cancer == 1].any()
    breast_cols = ["cancer", "biopsy", "invasive", "BIRADS", "difficult_negative_case"]
    per_breast = train.groupby(["patient_id", "laterality"])[breast_cols].nunique(dropna=False)
    assert (per_breast == 1).all().all()
    per_patient = pd.concat([train, test]).groupby("patient_id")[["age", "implant", "machine_id"]]
    assert (per_patient.nunique(dropna=False) == 1).all().all()
    # cancer is per breast: a positive breast's other side stays negative in most patients
    assert train.cancer.sum() > 0 and train.groupby("patient_id").cancer.max().mean() < 1
    solution = pd.read_csv(synth_data / "test_solution.csv")
    assert set(solution.prediction_id) == set(test.prediction_id)


def test_mix_covers_every_kind(synth_data: Path, headers: list) -> None:
    train, test = _tables(synth_data)
    both = pd.concat([train, test])
    assert set(both.machine_id) == set(schema.MACHINE_IDS)
    assert set(train.machine_id) == set(schema.MACHINE_IDS)
    assert set(both.view) == set(schema.VIEWS)
    assert train.age.isna().any() and train.density.isna().any() and train.BIRADS.isna().any()
    assert train.implant.any() and train.cancer.any() and train.difficult_negative_case.any()
    assert (both.groupby(["patient_id", "laterality", "view"]).size() > 1).any()  # a repeat
    kinds: Counter[str] = Counter()
    for _, ds in headers:
        frame = next(generate_frames(ds.PixelData, number_of_frames=1))
        codec = next(k for k, m in MAGIC.items() if frame.startswith(m))
        kinds[codec] += 1
        if codec == "ljpeg":  # lossless process (SOF3), no JFIF segment
            assert b"\xff\xc3" in frame[:1000] and frame[2:4] != b"\xff\xe0"
        kinds[ds.PhotometricInterpretation] += 1
        kinds[f"bits{ds.BitsStored}"] += 1
        if "WindowCenter" not in ds:
            kinds["no-window"] += 1
        else:
            kinds[str(ds.get("VOILUTFunction", "LINEAR"))] += 1
            kinds["multi" if ds["WindowCenter"].VM > 1 else "single"] += 1
    expected = {"jp2", "j2k", "ljpeg", "MONOCHROME1", "MONOCHROME2", "bits10", "bits12", "bits14",
                "bits16", "no-window", "LINEAR", "SIGMOID", "multi", "single"}  # fmt: skip
    assert expected <= set(kinds), kinds


def test_headers_agree_with_tables_and_profiles(headers: list) -> None:
    for row, ds in headers:
        profile = MACHINES[row.machine_id]
        assert ds.file_meta.MediaStorageSOPClassUID == "1.2.840.10008.5.1.4.1.1.1.2"
        assert ds.file_meta.TransferSyntaxUID == profile.transfer_syntax
        assert ds.PatientID == str(row.patient_id) and ds.Modality == "MG"
        assert (ds.ImageLaterality, ds.ViewPosition) == (row.laterality, row.view)
        assert (ds.Rows, ds.Columns) == profile.shape("small")
        assert 512 <= ds.Rows <= 800
        assert ds.PhotometricInterpretation == profile.photometric
        assert ds.BitsStored == profile.bits_stored
    assert len({ds.SOPInstanceUID for _, ds in headers}) == len(headers)
    syntaxes = {str(ds.file_meta.TransferSyntaxUID) for _, ds in headers}
    assert syntaxes == {JPEG2000_LOSSLESS, JPEG_LOSSLESS_SV1}


def test_every_file_decodes_identically_with_pydicom_and_dicomsdl(synth_data: Path) -> None:
    rows = _all_files(synth_data)
    assert len(rows) == len(list(synth_data.rglob("*.dcm")))  # no orphan files
    for split, row in rows:
        path = schema.image_path(synth_data, split, row.patient_id, row.image_id)
        ds = pydicom.dcmread(path)
        a = ds.pixel_array
        b = dicomsdl.open(str(path)).pixelData(storedvalue=True)
        assert a.shape == (ds.Rows, ds.Columns), path
        assert np.array_equal(a, b), path
        assert int(a.max()) < 2**ds.BitsStored and a.max() > a.min()


def _brightness(ds: pydicom.Dataset) -> np.ndarray:
    """Windowed (or min-max) image with bright = dense, as readers display it."""
    arr = ds.pixel_array.astype(np.float64)
    out = apply_voi_lut(arr, ds) if "WindowCenter" in ds else arr
    out = (out - out.min()) / (out.max() - out.min())
    return 1 - out if ds.PhotometricInterpretation == "MONOCHROME1" else out


def test_breast_sits_on_its_side_and_window_shows_tissue(headers: list) -> None:
    for row, ds in headers[::3]:
        img = _brightness(ds)
        h, w = img.shape
        chest = (
            img[: int(0.8 * h), : w // 5]
            if row.laterality == "L"
            else img[: int(0.8 * h), -w // 5 :]
        )
        far = (
            img[int(0.3 * h) : int(0.7 * h), -w // 10 :]
            if row.laterality == "L"
            else img[int(0.3 * h) : int(0.7 * h), : w // 10]
        )
        assert chest.mean() > far.mean() + 0.15, (row.image_id, row.laterality)
        if "WindowCenter" in ds and not row.implant:
            band = img[int(0.55 * h) : int(0.7 * h)]
            band = band[:, : w // 4] if row.laterality == "L" else band[:, -w // 4 :]
            unclipped = ((band > 0.005) & (band < 0.995)).mean()
            assert unclipped > 0.9 and band.std() > 0.02, (row.image_id, unclipped)


def test_lesions_change_only_their_neighbourhood() -> None:
    shape = (600, 480)
    base = render(shape, "R", "MLO", "C", False, None, np.random.default_rng(7))
    for kind in ("spiculated_mass", "calc_cluster", "round_mass", "single_calc"):
        img = render(
            shape, "R", "MLO", "C", False, Lesion(kind, 0.5, 0.0, 1.0), np.random.default_rng(7)
        )
        diff = img - base
        ys, xs = np.nonzero(np.abs(diff) > 1e-6)
        assert ys.size > 20, kind
        # a few % of the image, not one pixel and not the whole breast
        assert 0.01 * shape[0] < ys.max() - ys.min() < 0.3 * shape[0], kind
        assert xs.min() > shape[1] // 4, kind  # right breast: lesion away from the left edge
        assert 0.5 * MASS_CONTRAST < diff.max() <= 0.5, kind


def test_generation_is_deterministic_and_seed_dependent(tmp_path: Path) -> None:
    """Same seed: byte-identical output, whatever the worker count."""
    cfg = SynthConfig(patients=2, seed=11, scale="small")
    generate(tmp_path / "a", cfg)
    generate(tmp_path / "b", SynthConfig(patients=2, seed=11, scale="small", workers=2))
    for name in ("train.csv", "test.csv", "sample_submission.csv", "test_solution.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.dcm"))
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.dcm"))
    assert len(files) >= 8
    for rel in files:  # same pixels, same UIDs: byte-identical files
        assert filecmp.cmp(tmp_path / "a" / rel, tmp_path / "b" / rel, shallow=False), rel
    other = plan_patients(2, seed=12, cancer_rate=0.2, test_frac=0.1)
    same = plan_patients(2, seed=11, cancer_rate=0.2, test_frac=0.1)
    assert [p.patient_id for p in other] != [p.patient_id for p in same]
    assert str(same[0].patient_id) in {p.name for p in (tmp_path / "a" / "train_images").iterdir()}


def test_plan_statistics_at_scale() -> None:
    patients = plan_patients(3000, seed=1, cancer_rate=0.02, test_frac=0.1)
    assert len({p.patient_id for p in patients}) == 3000
    image_ids = [i for p in patients for i, _, _ in p.images]
    assert len(set(image_ids)) == len(image_ids)
    train_breasts = [b for p in patients if p.split == "train" for b in p.breasts.values()]
    assert abs(np.mean([b.cancer for b in train_breasts]) - 0.02) < 0.002
    assert sum(p.split == "test" for p in patients) == 300
    images = Counter(p.machine_id for p in patients for _ in p.images)
    sigmoid = sum(n for m, n in images.items() if MACHINES[m].voi_function == "SIGMOID")
    assert 0.17 < sigmoid / sum(images.values()) < 0.27
    site1 = sum(n for m, n in images.items() if MACHINES[m].site_id == 1)
    assert 0.45 < site1 / sum(images.values()) < 0.65
    assert 4.4 < len(image_ids) / 3000 < 4.8
    others = sum(v not in ("CC", "MLO") for p in patients for _, _, v in p.images)
    assert 0 < others < 0.005 * len(image_ids)


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [({"patients": 0}, "^patients: "), ({"patients": 1}, "^patients: "), ({"cancer_rate": 1.5}, "^cancer_rate: "),
     ({"cancer_rate": -0.1}, "^cancer_rate: "), ({"test_frac": 1.0}, "^test_frac: "), ({"scale": "huge"}, "^scale: "),
     ({"workers": 0}, "^workers: "), ({"seed": -1}, "^seed: ")],
)  # fmt: skip
def test_bad_parameters_name_the_argument(tmp_path: Path, kwargs: dict, word: str) -> None:
    """The library names the setting (``rsna synth`` says its flag: test_config_options)."""
    with pytest.raises(InputError, match=word):
        generate(tmp_path / "out", SynthConfig(**{"patients": 3, **kwargs}))
    assert not (tmp_path / "out").exists()


def test_refuses_foreign_folder_and_replaces_own_output(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not a previous synth output"):
        generate(foreign, SynthConfig(patients=2))
    assert (foreign / "notes.txt").read_text() == "keep me"
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        generate(tmp_path / "file", SynthConfig(patients=2))
    out = tmp_path / "own"
    assert not generate(out, SynthConfig(patients=2, seed=1)).replaced
    (out / "stale.txt").write_text("old")
    summary = generate(out, SynthConfig(patients=2, seed=2))
    assert summary.replaced and not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "foreign", "own"]


def test_failure_leaves_nothing_that_looks_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(task: object, root: str) -> tuple[str, int, int]:
        raise RuntimeError("disk full")

    monkeypatch.setattr(synth_dataset, "make_image", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        generate(tmp_path / "out", SynthConfig(patients=2))
    assert list(tmp_path.iterdir()) == []


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    synth_command.add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args([str(tmp_path / "x"), "--patients", "3", "--scale", "huge"])
    capsys.readouterr()
    args = parser.parse_args(
        [str(tmp_path / "x"), "--patients", "2", "--seed", "4", "--cancer-rate", "0.5"]
    )
    assert synth_command.run(args) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "images/s" in out and "1.2.840.10008.1.2.4" in out
    assert (tmp_path / "x" / "train.csv").is_file() and (
        tmp_path / "x" / "rsna_synth.json"
    ).is_file()
