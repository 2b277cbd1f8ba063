"""`rsna kaggle check`: passes on the repository, fails naming file and field on broken copies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rsna_pkg.kaggle.check import check_kernel, check_repo, offline_api
from rsna_pkg.kaggle.paths import CONFIG_NAME, DATASETS_DIR, KERNELS_DIR, find_repo, load_config
from rsna_pkg.kaggle.render import render

REPO = find_repo(Path(__file__).parent)


@pytest.fixture()
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the repository's Kaggle files that a test may break."""
    monkeypatch.delenv("RSNA_KAGGLE_OWNER", raising=False)
    for name in (KERNELS_DIR, DATASETS_DIR):
        shutil.copytree(REPO / name, tmp_path / name)
    shutil.copy(REPO / CONFIG_NAME, tmp_path / CONFIG_NAME)
    return tmp_path


def problems(repo: Path) -> list[str]:
    return [str(p) for p in check_repo(repo, load_config(repo))]


def edit(path: Path, **changes: object) -> None:
    meta = json.loads(path.read_text())
    meta.update(changes)
    path.write_text(json.dumps(meta))


def test_repository_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RSNA_KAGGLE_OWNER", raising=False)
    assert problems(REPO) == []


def test_kaggle_push_request_is_what_we_meant() -> None:
    """The request kernels_push would send: internet off, sources as rendered."""
    meta = json.loads((REPO / KERNELS_DIR / "inference" / "kernel-metadata.json").read_text())
    with offline_api() as api:
        probs, request = check_kernel(api, REPO / KERNELS_DIR / "inference", meta)
    assert probs == []
    assert request.enable_internet is False
    assert request.competition_data_sources == ["rsna-breast-cancer-detection"]
    assert request.kernel_data_sources == [meta["kernel_sources"][0]]
    assert "find_input" in request.text  # the script body that would be pushed


def test_internet_on_for_inference_fails(repo: Path) -> None:
    edit(repo / KERNELS_DIR / "inference" / "kernel-metadata.json", enable_internet=True)
    found = problems(repo)
    assert any("inference/kernel-metadata.json: enable_internet" in p for p in found), found


def test_omitted_internet_flag_fails(repo: Path) -> None:
    path = repo / KERNELS_DIR / "inference" / "kernel-metadata.json"
    meta = json.loads(path.read_text())
    del meta["enable_internet"]
    path.write_text(json.dumps(meta))
    found = problems(repo)
    assert any("inference/kernel-metadata.json: enable_internet: must be false" in p for p in found)


def test_missing_code_file_fails(repo: Path) -> None:
    (repo / KERNELS_DIR / "train" / "kernel.py").unlink()
    found = problems(repo)
    assert any("train/kernel-metadata.json: code_file" in p for p in found), found


def test_bad_slug_fails(repo: Path) -> None:
    edit(repo / KERNELS_DIR / "eda" / "kernel-metadata.json", id="rsna-pkg/Bad_Slug")
    edit(repo / DATASETS_DIR / "model" / "dataset-metadata.json", id="rsna-pkg/short")
    found = problems(repo)
    assert any("eda/kernel-metadata.json: id: " in p and "Bad_Slug" in p for p in found), found
    assert any("model/dataset-metadata.json: id: " in p for p in found), found


def test_missing_dataset_source_fails(repo: Path) -> None:
    edit(repo / KERNELS_DIR / "train" / "kernel-metadata.json",
         dataset_sources=["rsna-pkg/no-such-dataset"])  # fmt: skip
    found = problems(repo)
    assert any("train/kernel-metadata.json: dataset_sources[0]" in p for p in found), found


def test_kaggle_validator_catches_malformed_source(repo: Path) -> None:
    edit(repo / KERNELS_DIR / "train" / "kernel-metadata.json", kernel_sources=["no-owner-slug"])
    edit(repo / KERNELS_DIR / "eda" / "kernel-metadata.json", enable_gpu="yes")
    found = problems(repo)
    assert any("train/kernel-metadata.json: kernel_sources[0]: ValueError" in p for p in found)
    assert any("eda/kernel-metadata.json: enable_gpu: ValueError" in p for p in found), found


def test_dataset_title_and_license_checked(repo: Path) -> None:
    edit(repo / DATASETS_DIR / "wheels" / "dataset-metadata.json", title="abc", licenses=[])
    found = problems(repo)
    assert any("wheels/dataset-metadata.json: title" in p for p in found), found
    assert any("wheels/dataset-metadata.json: licenses" in p for p in found), found


def test_out_of_sync_with_config_fails_until_rendered(repo: Path) -> None:
    toml = repo / CONFIG_NAME
    toml.write_text(toml.read_text().replace('owner = "rsna-pkg"', 'owner = "someone-else"'))
    found = problems(repo)
    assert any("kernel-metadata.json: (content): differs from kaggle.toml" in p for p in found)
    render(repo, load_config(repo))
    assert problems(repo) == []
    meta = json.loads((repo / KERNELS_DIR / "train" / "kernel-metadata.json").read_text())
    assert meta["kernel_sources"] == ["someone-else/rsna-pkg-preprocess"]


def test_drifted_bootstrap_copy_fails(repo: Path) -> None:
    code = repo / KERNELS_DIR / "eda" / "kernel.py"
    code.write_text(code.read_text().replace('"/kaggle"', '"/kaggle/"'))
    found = problems(repo)
    assert any("eda/kernel.py: (content)" in p for p in found), found


def test_title_must_resolve_to_slug(repo: Path) -> None:
    edit(repo / KERNELS_DIR / "eda" / "kernel-metadata.json", title="Some other title")
    found = problems(repo)
    assert any("eda/kernel-metadata.json: title: slugifies to" in p for p in found), found


def test_push_dry_run_prints_the_commands_in_chain_order(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from rsna_pkg.kaggle import push as push_mod
    from rsna_pkg.kaggle.build import BuildOptions

    def no_cli(*args: object, **kwargs: object) -> int:
        raise AssertionError("a dry run must not call the kaggle CLI")

    monkeypatch.setattr(push_mod, "_run", no_cli)
    model = tmp_path / "model.pt"
    model.write_bytes(b"weights")
    opts = BuildOptions(python=f"{sys.version_info.major}.{sys.version_info.minor}", dali=False)
    code = push_mod.push(REPO, load_config(REPO), opts, tmp_path / "stage", True, None, model, "v1")
    out = capsys.readouterr().out
    assert code == 0
    order = [out.index(f"kaggle kernels push -p {REPO / KERNELS_DIR / k}")
             for k in ("eda", "preprocess", "train", "inference")]  # fmt: skip
    assert order == sorted(order)
    assert "kaggle datasets create -p" in out and "rsna-pkg-wheels" in out
    assert (tmp_path / "stage" / "rsna-pkg-model" / "model.pt").read_bytes() == b"weights"
