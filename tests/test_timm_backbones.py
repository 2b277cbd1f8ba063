"""timm backbones (`--backbone timm:NAME`): build, 1-channel stem, local weights, the
pretrained config in the checkpoint, and a tiny `rsna train` + `rsna infer` run."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import safetensors.torch
import timm
import torch
from test_infer import GUARD, read_sub, run_infer
from train_data import make_dataset

from rsna_pkg.errors import InputError
from rsna_pkg.models.checkpoint import build_model, load_checkpoint, save_checkpoint
from rsna_pkg.models.config import ModelConfig, PretrainedConfig
from rsna_pkg.models.fusion import CancerClassifier
from rsna_pkg.models.zoo import backbone_model_fields, build_backbone
from rsna_pkg.preprocess import PreprocessConfig
from rsna_pkg.train import command

SMALL = ("timm:resnet18", "timm:efficientnet_b0", "timm:convnext_atto")


@pytest.mark.parametrize("name", SMALL)
def test_timm_backbone_forward_is_finite_with_one_channel_stem(name: str) -> None:
    torch.manual_seed(0)
    model = CancerClassifier(name, meta_dim=3).eval()
    stem = next(m for m in model.body.modules() if isinstance(m, torch.nn.Conv2d))
    assert stem.in_channels == 1
    with torch.no_grad():
        out = model(torch.randn(2, 1, 64, 32), torch.randn(2, 3))
    assert out.shape == (2,)
    assert torch.isfinite(out).all()


def test_unknown_timm_name_or_tag_is_one_line_input_error() -> None:
    for name, reason in (("timm:resnet1000", "no model 'resnet1000'"),
                         ("timm:convnext_small.nope", "Invalid pretrained tag")):  # fmt: skip
        with pytest.raises(InputError, match=reason) as info:
            backbone_model_fields(name)
        assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="no model"):
        build_backbone("timm:resnet1000")


def _reference(arch: str, seed: int) -> torch.nn.Module:
    """A random 3-channel timm model with its 1000-class head, as ImageNet weights come."""
    torch.manual_seed(seed)
    return timm.create_model(arch, pretrained=False).eval()


@pytest.mark.parametrize(
    ("arch", "form"),
    [("resnet18", "safetensors"), ("convnext_atto", "pth"), ("efficientnet_b0", "state_dict"),
     ("resnet18", "model")],
)  # fmt: skip
def test_local_weights_equal_gray_image_fed_three_times(tmp_path, arch: str, form: str) -> None:
    ref = _reference(arch, seed=3)
    state = ref.state_dict()
    path = tmp_path / f"w.{'safetensors' if form == 'safetensors' else 'pth'}"
    if form == "safetensors":
        safetensors.torch.save_file(state, str(path))
    else:
        torch.save(state if form == "pth" else {form: state, "epoch": 3}, path)
    body = build_backbone(f"timm:{arch}", pretrained=path).body.eval()
    ref.reset_classifier(0)
    x = torch.rand(2, 1, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(body(x), ref(x.repeat(1, 3, 1, 1)), rtol=1e-4, atol=1e-4)


def test_wrong_weights_file_is_one_line_error_naming_it(tmp_path) -> None:
    missing = tmp_path / "missing.safetensors"
    with pytest.raises(InputError, match="not found"):
        build_backbone("timm:resnet18", pretrained=missing)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not weights at all")
    other = tmp_path / "other.pth"
    torch.save(_reference("convnext_atto", 0).state_dict(), other)
    for path, reason in ((junk, "not a loadable weights file"), (other, "does not match")):
        with pytest.raises(InputError, match=reason) as info:
            build_backbone("timm:resnet18", pretrained=path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)


class _RunsCode:
    """Unpickling this would create a file: what weights_only=True must refuse."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_weights_file_that_would_run_code_is_refused(tmp_path) -> None:
    marker, evil = tmp_path / "ran", tmp_path / "evil.pth"
    torch.save({"state_dict": _RunsCode(marker)}, evil)
    with pytest.raises(InputError, match="not a loadable weights file"):
        build_backbone("timm:resnet18", pretrained=evil)
    assert not marker.exists()


def test_checkpoint_keeps_the_pretrained_config_and_its_gray_norm(tmp_path) -> None:
    fields = backbone_model_fields("timm:tf_efficientnet_lite0.in1k")
    cfg = ModelConfig(
        backbone="timm:tf_efficientnet_lite0.in1k", preprocess=PreprocessConfig(height=64, width=32),
        use_metadata=False, **fields,
    )  # fmt: skip
    pre = cfg.pretrained_cfg
    assert pre is not None and pre.name == "tf_efficientnet_lite0.in1k"
    assert pre.mean == (0.5, 0.5, 0.5) and pre.input_size == (3, 224, 224)
    assert (cfg.norm_mean, cfg.norm_std) == (0.5, 0.5)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    save_checkpoint(tmp_path / "m.pt", model, cfg)
    raw = torch.load(tmp_path / "m.pt", weights_only=True)
    assert raw["model"]["pretrained_cfg"]["name"] == pre.name
    loaded = load_checkpoint(tmp_path / "m.pt")
    assert loaded.config == cfg and loaded.config.pretrained_cfg == pre
    x = torch.rand(2, 1, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.forward(x), model(x))
    # a format-2 config written before the field existed reads as torchvision's default
    old = {k: v for k, v in ModelConfig().to_dict().items() if k != "pretrained_cfg"}
    assert ModelConfig.from_dict(old).pretrained_cfg is None
    with pytest.raises(InputError, match="unknown key"):
        PretrainedConfig.from_dict({**pre.to_dict(), "colour": "rgb"})


def test_timm_gray_norm_is_the_channel_mean_of_imagenet_stats() -> None:
    fields = backbone_model_fields("timm:resnet18")
    assert fields["norm_mean"] == pytest.approx((0.485 + 0.456 + 0.406) / 3)
    assert fields["norm_std"] == pytest.approx((0.229 + 0.224 + 0.225) / 3)
    assert backbone_model_fields("resnet18") == {}  # torchvision: ModelConfig defaults


BUILD = """
import sys, torch
from rsna_pkg.models.zoo import backbone_model_fields, build_backbone
backbone_model_fields("timm:resnet18")
body = build_backbone("timm:resnet18", pretrained=sys.argv[1]).body.eval()
print(body(torch.rand(1, 1, 64, 32)).shape)
"""


def test_timm_build_with_weights_opens_no_socket(tmp_path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(textwrap.dedent(GUARD))
    weights = tmp_path / "r18.safetensors"
    safetensors.torch.save_file(_reference("resnet18", 1).state_dict(), str(weights))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.getcwd()])}
    done = subprocess.run([sys.executable, "-c", BUILD, str(weights)], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "NETWORK" not in done.stderr and "torch.Size([1, 512])" in done.stdout


def test_rsna_train_timm_backbone_then_infer(tmp_path, synth_data) -> None:
    data, images = make_dataset(tmp_path, patients=8, size=(64, 32), seed=1)
    out = tmp_path / "run"
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args([
        "--data", str(data), "--images", str(images), "--out", str(out), "--size", "64", "32",
        "--epochs", "1", "--batch-size", "8", "--workers", "0", "--threads", "1",
        "--backbone", "timm:convnext_atto", "--grad-checkpoint",
    ])  # fmt: skip
    assert command.run(args) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["grad_checkpoint"] is True
    assert saved["model"]["pretrained_cfg"]["name"].startswith("convnext_atto.")
    loaded = load_checkpoint(out / "model.pt")
    assert loaded.config.backbone == "timm:convnext_atto"
    assert loaded.config.norm_mean == pytest.approx(0.449)
    # training-only, never stored: the rebuilt model does not checkpoint
    assert not any(getattr(m, "grad_checkpointing", False) for m in loaded.model.modules())
    sub = tmp_path / "submission.csv"
    report = run_infer(synth_data, [out / "model.pt"], sub, "--threshold", "none")
    scores = read_sub(sub)
    expected = pd.read_csv(synth_data / "test.csv").prediction_id.nunique()
    assert len(scores) == expected and scores.between(0, 1).all()
    assert report["images_failed"] == 0


def test_input_size_a_backbone_cannot_take_is_refused_before_training() -> None:
    from rsna_pkg.models.zoo import check_input_size

    check_input_size("alexnet", 64, 64)
    check_input_size("timm:convnext_atto", 2048, 1024)  # meta device: no memory, no time
    for name, h, w in (("alexnet", 64, 32), ("timm:vit_tiny_patch16_224", 512, 256)):
        with pytest.raises(InputError, match=f"cannot take {h}x{w}") as info:
            check_input_size(name, h, w)
        assert "\n" not in str(info.value)


NO_TIMM = """
import sys
sys.modules["timm"] = None  # as if the timm extra were not installed
from rsna_pkg.errors import InputError
from rsna_pkg.models.fusion import CancerClassifier
from rsna_pkg.models.zoo import check_backbone
CancerClassifier("squeezenet1_1")
try:
    check_backbone("timm:resnet18")
except InputError as exc:
    print(exc)
"""


def test_torchvision_zoo_works_without_timm_and_timm_names_say_what_to_install() -> None:
    done = subprocess.run([sys.executable, "-c", NO_TIMM], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": os.getcwd()})  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "timm is not installed (pip install 'rsna_pkg[timm]')" in done.stdout
