"""Wheel dataset, simulated Kaggle image and kernel bootstrap: the pieces the replay stands on."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rsna_pkg.errors import RsnaError
from rsna_pkg.kaggle import bootstrap, sandbox
from rsna_pkg.kaggle.build import BuildOptions, build_dataset
from rsna_pkg.kaggle.bundle_check import check_bundle
from rsna_pkg.kaggle.docker_image import build_farm, stand_ins
from rsna_pkg.kaggle.manifest import load_manifest
from rsna_pkg.kaggle.paths import find_repo, load_config
from rsna_pkg.kaggle.replay import check_submission

REPO = find_repo(Path(__file__).parent)
PY = f"{sys.version_info.major}.{sys.version_info.minor}"


@pytest.fixture(scope="module")
def image_env() -> Path:
    """The cached image (~/.cache/rsna_pkg/kaggle-image): built once per machine."""
    return sandbox.make_image_env(load_manifest())


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ds") / "wheels"
    build_dataset(out, load_config(REPO), BuildOptions(python=PY, decoder="cpu"), repo=REPO)
    return out


def run_py(venv: Path, code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(sandbox.python(venv)), "-c", code],
        capture_output=True,
        text=True,
        env=env or sandbox.clean_env(),
        cwd=venv.parent,
    )  # fmt: skip  (cwd: not the repo, whose rsna_pkg/ would be importable from "")


def test_image_env_sees_only_the_image(image_env: Path) -> None:
    ok = run_py(
        image_env, "import torch, torchvision, numpy, pandas, sklearn, scipy, PIL, tqdm, pydicom"
    )  # fmt: skip  (Kaggle installs pydicom on top of the Colab base)
    assert ok.returncode == 0, ok.stderr
    for hidden in ("rsna_pkg", "dicomsdl", "pylibjpeg", "imagecodecs", "nvidia.dali"):
        res = run_py(image_env, f"import {hidden}")
        assert res.returncode != 0 and "ModuleNotFoundError" in res.stderr, hidden


def test_image_env_has_the_manifest_versions_not_this_machines(image_env: Path) -> None:
    """The replay's packages are the image's pins, whatever the running venv holds."""
    image = load_manifest()
    code = ("import importlib.metadata as md; print(' '.join(md.version(n) for n in "
            "('numpy', 'pandas', 'packaging', 'scikit-learn', 'pip')))")  # fmt: skip
    res = run_py(image_env, code)
    assert res.returncode == 0, res.stderr
    pins = [image.pins[n] for n in ("numpy", "pandas", "packaging", "scikit-learn", "pip")]
    assert res.stdout.split() == pins
    import packaging

    here = packaging.__version__
    print(f"packaging here {here}, in the image env {pins[2]}")


def test_image_env_is_cached_and_a_kernel_copy_cannot_alter_it(
    image_env: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="rsna_pkg"):
        assert sandbox.make_image_env(load_manifest()) == image_env
    assert any("cached in" in line for line in caplog.messages)
    copy = sandbox.fresh_copy(image_env, tmp_path / "image")
    (copy.parent / "site" / "six.py").unlink()  # hard links: the cache keeps its file
    assert run_py(copy, "import six").returncode != 0
    assert run_py(image_env, "import six").returncode == 0


def test_stand_ins_link_torch_and_warn_on_versions() -> None:
    import importlib.metadata as md

    linked, notes = stand_ins(load_manifest())
    assert "torch" in linked and "numpy" not in linked
    here = md.version("torch")
    if here != load_manifest().pins["torch"]:
        assert any(f"torch {here} (image {load_manifest().pins['torch']})" in n for n in notes)


def test_farm_splits_shared_namespace_folders(tmp_path: Path) -> None:
    """nvidia/ holds torch's CUDA libraries and DALI: only the former may appear."""
    build_farm(tmp_path, stand_ins(load_manifest())[0])
    assert (tmp_path / "torch").is_symlink()
    assert not (tmp_path / "pydicom").exists()
    if (tmp_path / "nvidia").exists():
        assert not (tmp_path / "nvidia").is_symlink() or not (tmp_path / "nvidia/dali").exists()
        assert not (tmp_path / "nvidia" / "dali").exists()


def test_wheel_dataset_is_flat_and_installs_offline(
    wheels: Path, image_env: Path, tmp_path: Path
) -> None:
    names = sorted(p.name for p in wheels.iterdir())
    assert "dataset-metadata.json" in names
    assert all(p.is_file() for p in wheels.iterdir())  # flat: Kaggle skips subfolders
    for stem in ("rsna_pkg-", "dicomsdl-", "pylibjpeg-", "imagecodecs-"):
        assert any(n.startswith(stem) for n in names), stem
    assert not any(n.startswith(("torch-", "numpy-", "pandas-", "pydicom-")) for n in names)
    venv = sandbox.fresh_copy(image_env, tmp_path / "venv")
    pip = [str(sandbox.python(venv)), "-m", "pip", "install", "-q", "--no-index"]
    done = subprocess.run([*pip, "--find-links", str(wheels), "rsna_pkg"],
                          capture_output=True, text=True, env=sandbox.clean_env())  # fmt: skip
    assert done.returncode == 0, done.stderr
    res = run_py(venv, "import rsna_pkg.dicom, pydicom, dicomsdl, openjpeg, imagecodecs; "
                 "print(pydicom.__version__)")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("3.")


def test_missing_bundled_wheel_fails_the_install(
    wheels: Path, image_env: Path, tmp_path: Path
) -> None:
    partial = tmp_path / "partial"
    shutil.copytree(wheels, partial)
    for wheel in partial.glob("dicomsdl-*.whl"):
        wheel.unlink()
    venv = sandbox.fresh_copy(image_env, tmp_path / "venv")
    pip = [str(sandbox.python(venv)), "-m", "pip", "install", "--no-index"]
    done = subprocess.run([*pip, "--find-links", str(partial), "rsna_pkg"],
                          capture_output=True, text=True, env=sandbox.clean_env())  # fmt: skip
    assert done.returncode != 0
    assert "dicomsdl" in done.stderr


def test_internet_off_blocks_ip_connections(image_env: Path, tmp_path: Path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    code = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5); print('ok')"
    netblock = image_env.parent / "netblock"
    try:
        for internet in (True, False):
            env = sandbox.kernel_env(image_env, tmp_path, internet=internet, netblock=netblock)
            res = run_py(image_env, code, env)
            if internet:
                assert res.stdout.strip() == "ok", res.stderr
            else:
                assert res.returncode != 0 and "internet is off" in res.stderr
    finally:
        server.close()


@pytest.mark.parametrize(
    "mount",
    ["rsna-breast-cancer-detection", "competitions/rsna-breast-cancer-detection",
     "datasets/someone/rsna-copy", "notebooks/someone/rsna-pkg-preprocess/preprocessed/deeper"],
)  # fmt: skip
def test_find_input_handles_every_mount_layout(
    mount: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "input" / mount
    (folder / "train_images" / "1").mkdir(parents=True)
    (folder / "train.csv").write_text("x\n")
    (tmp_path / "input" / "other").mkdir()
    monkeypatch.setattr(bootstrap, "INPUT", tmp_path / "input")
    assert bootstrap.find_input("train.csv") == folder
    with pytest.raises(SystemExit, match="no test.csv"):
        bootstrap.find_input("test.csv")


def test_find_input_follows_mount_links_and_refuses_to_guess(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two folders holding the pattern (an old output beside the new one) are an error that
    names both, whichever sorts or lies shallower."""
    inp, outputs = tmp_path / "input", tmp_path / "outputs"
    (outputs / "prep" / "preprocessed").mkdir(parents=True)
    (outputs / "prep" / "preprocessed" / "manifest.csv").write_text("x\n")
    (inp / "notebooks" / "me").mkdir(parents=True)
    (inp / "notebooks" / "me" / "rsna-pkg-preprocess").symlink_to(outputs / "prep")
    monkeypatch.setattr(bootstrap, "INPUT", inp)
    found = bootstrap.find_input("manifest.csv")  # depth 5, through a symlink
    assert found == inp / "notebooks/me/rsna-pkg-preprocess/preprocessed"
    (inp / "stale").mkdir()
    (inp / "stale" / "manifest.csv").write_text("x\n")
    with pytest.raises(SystemExit, match="manifest.csv is in 2 folders") as err:
        bootstrap.find_input("manifest.csv")
    assert "stale" in str(err.value) and "rsna-pkg-preprocess/preprocessed" in str(err.value)
    assert bootstrap.find_inputs("manifest.csv") == sorted([found, inp / "stale"])


def test_find_output_takes_a_kfold_folder_whole_and_refuses_a_second_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inp = tmp_path / "input"
    train = inp / "notebooks" / "me" / "rsna-pkg-train"
    for fold in ("fold_0", "fold_1"):
        (train / fold).mkdir(parents=True)
        (train / fold / "model.pt").write_bytes(b"")
    monkeypatch.setattr(bootstrap, "INPUT", inp)
    with pytest.raises(SystemExit, match="model.pt is in 2 folders"):
        bootstrap.find_input("model.pt")  # the two folds
    (train / "oof.csv").write_text("x\n")
    assert bootstrap.find_output("model.pt", marker="oof.csv") == train
    single = inp / "datasets" / "me" / "rsna-pkg-model"
    single.mkdir(parents=True)
    (single / "model.pt").write_bytes(b"")
    with pytest.raises(SystemExit, match="also in datasets/me/rsna-pkg-model"):
        bootstrap.find_output("model.pt", marker="oof.csv")
    for fold in ("fold_0", "fold_1"):
        (train / fold / "model.pt").unlink()
    (train / "oof.csv").unlink()
    assert bootstrap.find_output("model.pt", marker="oof.csv") == single


def test_settings_come_from_env_else_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RSNA_TRAIN_ARGS", raising=False)
    assert bootstrap.settings("train", "--epochs 12") == ["--epochs", "12"]
    monkeypatch.setenv("RSNA_TRAIN_ARGS", "--epochs 1 --size 64 32")
    assert bootstrap.settings("train", "--epochs 12") == ["--epochs", "1", "--size", "64", "32"]


def test_replay_bundle_fits_the_pins_but_not_the_images_python(wheels: Path) -> None:
    """Built for this interpreter (the replay's), its Requires-Dist all meet the image's pins;
    checked against the image's own Python 3.12, its compiled wheels are named."""
    image = load_manifest()
    assert check_bundle(wheels, image, BuildOptions(python=PY).target(image)) == []
    if image.python_minor != PY:
        found = [str(p) for p in check_bundle(wheels, image, BuildOptions().target(image))]
        assert any(p.startswith("dicomsdl-") and f"cp{PY.replace('.', '')}" in p for p in found)


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        ("prediction_id,cancer\n1_L,0.1\n1_R,0.2\n", None),
        ("prediction_id,cancer\n1_L,0.1\n", "missing prediction_id ['1_R']"),
        ("prediction_id,cancer\n1_L,0.1\n1_L,0.1\n1_R,0\n", "duplicated"),
        ("prediction_id,cancer\n1_L,\n1_R,0.2\n", "non-numeric"),
        ("prediction_id,cancer\n1_L,1.5\n1_R,0.2\n", "outside [0, 1]"),
        ("id,cancer\n1_L,0.1\n1_R,0.2\n", "header"),
        ("prediction_id,cancer\n1_L,0.1\n1_R,0.2\n9_L,0\n", "unknown"),
    ],
)
def test_check_submission(rows: str, problem: str | None, tmp_path: Path) -> None:
    test = tmp_path / "test.csv"
    test.write_text("patient_id,laterality,prediction_id\n1,L,1_L\n1,L,1_L\n1,R,1_R\n")
    sub = tmp_path / "submission.csv"
    sub.write_text(rows)
    assert (check_submission(sub, test) == []) == (problem is None)
    # Kaggle scores sample_submission's ids: with one beside test.csv, its ids are expected
    test.write_text(test.read_text() + "7,L,7_L\n")
    (tmp_path / "sample_submission.csv").write_text("prediction_id,cancer\n1_L,0\n1_R,0\n")
    sub = tmp_path / "submission.csv"
    sub.write_text(rows)
    found = check_submission(sub, test)
    if problem is None:
        assert found == []
    else:
        assert any(problem in p for p in found), found


@pytest.mark.parametrize(
    ("layout", "competition", "wheels", "kernel"),
    [
        ("new", "competitions/rsna-breast-cancer-detection", "datasets/rsna-pkg/rsna-pkg-wheels",
         "notebooks/rsna-pkg/rsna-pkg-preprocess"),
        ("old", "rsna-breast-cancer-detection", "rsna-pkg-wheels", "rsna-pkg-preprocess"),
    ],
)  # fmt: skip
def test_mount_follows_the_kernel_metadata(
    layout: str,
    competition: str,
    wheels: str,
    kernel: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    from rsna_pkg.kaggle.replay import mount

    monkeypatch.delenv("RSNA_KAGGLE_OWNER", raising=False)
    cfg = load_config(REPO)
    meta = json.loads((REPO / "kaggle_kernels/train/kernel-metadata.json").read_text())
    src = {n: tmp_path / n for n in ("data", "wheels", "weights", "prep")}
    for folder in src.values():
        folder.mkdir()
    (src["prep"] / "manifest.csv").write_text("x\n")
    mounts = {"competition": src["data"], "dataset:rsna-pkg-wheels": src["wheels"],
              "dataset:rsna-pkg-weights": src["weights"],
              "kernel:rsna-pkg-preprocess": src["prep"]}  # fmt: skip
    mount(tmp_path / "kaggle", cfg, mounts, meta, layout)
    inp = tmp_path / "kaggle" / "input"
    weights = wheels.replace("rsna-pkg-wheels", "rsna-pkg-weights")  # the train kernel's too
    assert (inp / competition).resolve() == src["data"]
    assert (inp / wheels).resolve() == src["wheels"]
    assert (inp / weights).resolve() == src["weights"]
    assert (inp / kernel).resolve() == src["prep"]
    assert sorted(p.relative_to(inp).as_posix() for p in inp.glob("**/*") if p.is_symlink()) == (
        sorted([competition, wheels, weights, kernel])
    )
    monkeypatch.setattr(bootstrap, "INPUT", inp)
    assert bootstrap.find_input("manifest.csv") == inp / kernel
    assert (tmp_path / "kaggle" / "working").is_dir()
    without_prep = {k: v for k, v in mounts.items() if not k.startswith("kernel:")}
    with pytest.raises(RsnaError, match="must run before"):
        mount(tmp_path / "k2", cfg, without_prep, meta, layout)
    with pytest.raises(RsnaError, match="^layout 'flat': choose from"):
        mount(tmp_path / "k3", cfg, mounts, meta, "flat")
