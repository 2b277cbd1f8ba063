"""Backbone zoo, fusion head, freeze modes and checkpoint round trips (CPU, small inputs)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision.models as tvm
from train_data import make_table

from rsna_pkg.data.dataset import image_to_tensor
from rsna_pkg.data.metadata_encoder import fit_metadata_encoder
from rsna_pkg.errors import InputError
from rsna_pkg.models.checkpoint import build_model, load_checkpoint, save_checkpoint
from rsna_pkg.models.config import ModelConfig
from rsna_pkg.models.fusion import CancerClassifier, apply_freeze
from rsna_pkg.models.zoo import BACKBONES, build_backbone
from rsna_pkg.preprocess import PreprocessConfig


@pytest.mark.parametrize("name", BACKBONES)
def test_every_backbone_forward_is_finite_with_shape_b(name: str) -> None:
    torch.manual_seed(0)
    model = CancerClassifier(name, meta_dim=4).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, 64, 64), torch.randn(2, 4))
    assert out.shape == (2,)
    assert torch.isfinite(out).all()


def test_grayscale_conv_equals_gray_repeated_to_rgb() -> None:
    torch.manual_seed(0)
    rgb = tvm.resnet18(weights=None).eval()
    state = rgb.state_dict()
    torch.manual_seed(1)
    gray = build_backbone("resnet18").body.eval()
    gray.load_state_dict(
        {
            k: (v.sum(1, keepdim=True) if k == "conv1.weight" else v)
            for k, v in state.items()
            if not k.startswith("fc.")
        }  # fmt: skip
    )
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        rgb.fc = torch.nn.Identity()
        torch.testing.assert_close(gray(x), rgb(x.repeat(1, 3, 1, 1)), rtol=1e-4, atol=1e-4)


def test_pretrained_file_loads_and_missing_file_is_input_error(tmp_path) -> None:
    torch.manual_seed(3)
    ref = tvm.squeezenet1_1(weights=None)
    path = tmp_path / "sq.pth"
    torch.save(ref.state_dict(), path)
    bb = build_backbone("squeezenet1_1", pretrained=path)
    last_conv = ref.features[-1].expand3x3.weight
    assert torch.equal(bb.body[0][-1].expand3x3.weight, last_conv)
    with pytest.raises(InputError, match="not found"):
        build_backbone("squeezenet1_1", pretrained=tmp_path / "missing.pth")
    torch.save(tvm.resnet18(weights=None).state_dict(), tmp_path / "r18.pth")
    with pytest.raises(InputError, match="does not match"):
        build_backbone("squeezenet1_1", pretrained=tmp_path / "r18.pth")
    with pytest.raises(InputError, match="unknown backbone"):
        build_backbone("resnet1000")


def test_fusion_uses_metadata_only_when_enabled() -> None:
    torch.manual_seed(0)
    with_meta = CancerClassifier("resnet18", meta_dim=3).eval()
    x = torch.randn(2, 1, 64, 32)
    with torch.no_grad():
        a = with_meta(x, torch.zeros(2, 3))
        b = with_meta(x, torch.full((2, 3), 5.0))
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="metadata"):
        with_meta(x, None)
    no_meta = CancerClassifier("resnet18", meta_dim=0).eval()
    assert no_meta.head.meta is None
    assert no_meta(x, torch.zeros(2, 3)).shape == (2,)  # ignored when switched off


def _step(model: CancerClassifier) -> dict[str, torch.Tensor]:
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.train()
    loss = model(torch.randn(4, 1, 64, 64), None).pow(2).mean()
    loss.backward()
    opt.step()
    return before


@pytest.mark.parametrize(
    ("mode", "frozen", "trained"),
    [
        ("features", ("body.",), ("neck.", "head.")),
        ("classifier", ("body.", "neck."), ("head.",)),
        ("none", (), ("body.", "neck.", "head.")),
    ],
)
def test_freeze_modes_change_only_trainable_parts(mode, frozen, trained) -> None:
    torch.manual_seed(0)
    model = CancerClassifier("alexnet", meta_dim=0)  # alexnet has a neck (FC layers)
    apply_freeze(model, mode)
    before = _step(model)
    for name, p in model.named_parameters():
        changed = not torch.equal(before[name], p.detach())
        if name.startswith(frozen):
            assert not changed, name
    for prefix in trained:
        assert any(
            not torch.equal(before[n], p.detach())
            for n, p in model.named_parameters()
            if n.startswith(prefix)
        ), prefix
    with pytest.raises(InputError):
        apply_freeze(model, "everything")


def test_frozen_batchnorm_statistics_stay_fixed() -> None:
    torch.manual_seed(0)
    model = CancerClassifier("resnet18", meta_dim=0)
    apply_freeze(model, "features")
    mean = model.body.bn1.running_mean.clone()
    model.train()
    model(torch.randn(4, 1, 64, 64) * 3 + 1)
    assert torch.equal(model.body.bn1.running_mean, mean)


def _config(df: pd.DataFrame, **kw) -> ModelConfig:
    enc = fit_metadata_encoder(df)
    return ModelConfig(
        backbone="resnet18", preprocess=PreprocessConfig(height=64, width=32), metadata=enc,
        fallback_coef=(0.1,) * enc.width, fallback_intercept=-1.0, threshold=0.37,
        prevalence=0.2, **kw,
    )  # fmt: skip


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path) -> None:
    df = make_table(4)
    cfg = _config(df)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    path = tmp_path / "model.pt"
    save_checkpoint(path, model, cfg)
    raw = torch.load(path, weights_only=True)  # plain dict of primitives + tensors
    assert raw["model"]["threshold"] == pytest.approx(0.37)
    assert set(raw["model"]) == {f.name for f in dataclasses.fields(ModelConfig)}  # no run keys
    loaded = load_checkpoint(path)
    assert loaded.config == cfg
    assert not loaded.model.training
    img = np.random.default_rng(0).integers(0, 256, (64, 32), dtype=np.uint8)
    images = torch.stack([loaded.image_tensor(img)] * len(df))
    assert images.shape == (len(df), 1, 64, 32)
    meta = loaded.encode_metadata(df)
    assert meta is not None and meta.shape == (len(df), cfg.metadata.width)
    with torch.no_grad():
        expected = model(images, meta)
    torch.testing.assert_close(loaded.forward(images, meta), expected)
    fallback = loaded.metadata_only_proba(df)
    assert fallback is not None and fallback.shape == (len(df),)
    assert np.all((fallback > 0) & (fallback < 1))


def test_checkpoint_without_metadata_and_bad_files(tmp_path) -> None:
    df = make_table(2)
    cfg = _config(df, use_metadata=False)
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "m.pt", build_model(cfg), cfg)
    loaded = load_checkpoint(tmp_path / "m.pt")
    assert loaded.encode_metadata(df) is None
    assert loaded.forward(torch.zeros(1, 1, 64, 32)).shape == (1,)
    with pytest.raises(InputError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a loadable"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"a": 1}, tmp_path / "foreign.pt")
    with pytest.raises(InputError, match="not an rsna_pkg checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_image_to_tensor_scales_by_dtype_and_normalises() -> None:
    a8 = np.array([[0, 255]], dtype=np.uint8)
    a16 = np.array([[0, 65535]], dtype=np.uint16)
    for arr in (a8, a16):
        t = image_to_tensor(arr, mean=0.5, std=0.25)
        assert t.shape == (1, 1, 2) and t.dtype == torch.float32
        torch.testing.assert_close(t, torch.tensor([[[-2.0, 2.0]]]))
    with pytest.raises(InputError):
        image_to_tensor(np.zeros((2, 2, 3), np.uint8), 0.5, 0.25)
    with pytest.raises(InputError):
        image_to_tensor(np.zeros((2, 2), np.float32), 0.5, 0.25)


DATA = Path(__file__).parent / "data"


def test_format_1_checkpoint_made_before_model_config_still_loads() -> None:
    """tests/data/checkpoint_v1.pt was written by the code of commit 191636d (a flat
    TrainConfig under "config"); its logits then are in checkpoint_v1.json."""
    expected = json.loads((DATA / "checkpoint_v1.json").read_text())
    raw = torch.load(DATA / "checkpoint_v1.pt", weights_only=True)
    assert raw["format"] == "rsna_pkg.checkpoint/1" and "lr" in raw["config"]
    loaded = load_checkpoint(DATA / "checkpoint_v1.pt")
    cfg = loaded.config
    assert (cfg.backbone, cfg.height, cfg.width, cfg.threshold) == ("squeezenet1_1", 64, 32, 0.37)
    df = pd.DataFrame({"age": [50.0, 61.0], "view": ["CC", "MLO"], "laterality": ["L", "R"],
                       "implant": [0, 0], "site_id": [1, 2], "machine_id": [49, 21]})  # fmt: skip
    x = torch.rand(2, 1, 64, 32, generator=torch.Generator().manual_seed(0))
    logits = loaded.forward(x, loaded.encode_metadata(df))
    torch.testing.assert_close(logits, torch.tensor(expected["logits"]))
    fallback = loaded.metadata_only_proba(df)
    assert fallback is not None
    np.testing.assert_allclose(fallback, expected["metadata_only"], rtol=1e-12)


def test_models_never_import_train() -> None:
    """The checkpoint knows ModelConfig only: no import runs from models to train."""
    code = ("import sys, rsna_pkg.models.checkpoint, rsna_pkg.models.config; "
            "print([m for m in sys.modules if m.startswith('rsna_pkg.train')])")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_freeze_top_trains_the_last_stage_head_conv_and_fusion_head_only() -> None:
    pytest.importorskip("timm")
    model = CancerClassifier("timm:efficientnet_lite0", meta_dim=3)
    apply_freeze(model, "top")
    trainable = {n.split(".")[1] if n.startswith("body.") else n.split(".")[0]
                 for n, p in model.named_parameters() if p.requires_grad}  # fmt: skip
    assert trainable == {"blocks", "conv_head", "bn2", "head"}
    last = len(model.body.blocks) - 1
    for name, p in model.named_parameters():
        if name.startswith("body.blocks."):
            assert p.requires_grad == (int(name.split(".")[2]) == last), name
    model.train()
    assert not model.body.blocks[0].training and model.body.blocks[last].training
    with pytest.raises(InputError, match="^freeze top: ResNet"):  # the CLI says --freeze
        apply_freeze(CancerClassifier("resnet18"), "top")


def _non_default(cls: type) -> object:
    """An instance of config ``cls`` whose every tuple field holds values and whose nested
    configs are non-default too, so a round trip has something to lose."""
    from rsna_pkg.data.augment import AugmentConfig
    from rsna_pkg.data.metadata_encoder import MetadataEncoder
    from rsna_pkg.models.config import InitWeights, PretrainedConfig
    from rsna_pkg.train.config import TrainConfig

    pre = PreprocessConfig(height=64, width=32, roi="threshold")
    pretrained = PretrainedConfig(name="efficientnet_lite0.ra_in1k", mean=(0.5, 0.4, 0.3),
                                  std=(0.2, 0.25, 0.3), input_size=(3, 224, 224))  # fmt: skip
    init = InitWeights(file="w.safetensors", sha256="ab" * 32, source_file="w.pth")
    enc = MetadataEncoder(sites=(1, 2), machines=(29, 93), views=("CC", "MLO"),
                          feature_names=("age", "implant"))  # fmt: skip
    model = ModelConfig(backbone="timm:efficientnet_lite0", preprocess=pre, metadata=enc,
                        fallback_coef=(0.5, -1.25), aux_heads=(("birads", 3), ("biopsy", 1)),
                        pretrained_cfg=pretrained, init_weights=init)  # fmt: skip
    train = TrainConfig(model=model, aux={"birads": 0.1, "biopsy": 0.5},
                        augment=AugmentConfig(erase_p=0.3), pretrained="w.safetensors")  # fmt: skip
    return {PreprocessConfig: pre, PretrainedConfig: pretrained, InitWeights: init,
            MetadataEncoder: enc, ModelConfig: model, TrainConfig: train,
            AugmentConfig: AugmentConfig(erase_p=0.3)}[cls]  # fmt: skip


def _tuple_fields(obj: object) -> list[str]:
    """Dotted names of every tuple-valued field, nested configs included."""
    out = []
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        if isinstance(value, tuple):
            out.append(f.name)
        elif dataclasses.is_dataclass(value):
            out += [f"{f.name}.{n}" for n in _tuple_fields(value)]
    return out


@pytest.mark.parametrize("name", ["PreprocessConfig", "PretrainedConfig", "InitWeights",
                                  "MetadataEncoder", "ModelConfig", "TrainConfig",
                                  "AugmentConfig"])  # fmt: skip
def test_every_config_round_trips_through_json_with_its_tuples(name: str) -> None:
    """One generic serialiser: each config comes back from its JSON equal, with tuples as
    tuples at every depth (a hand-written cast forgotten once came back as a list, and
    ``--resume`` compares configs by equality)."""
    import rsna_pkg.data.augment as augment
    import rsna_pkg.data.metadata_encoder as encoder
    import rsna_pkg.models.config as model_config
    import rsna_pkg.train.config as train_config

    modules = (augment, encoder, model_config, train_config)
    cls = next(getattr(m, name) for m in (*modules, sys.modules[__name__]) if hasattr(m, name))
    original = _non_default(cls)
    back = cls.from_dict(json.loads(json.dumps(original.to_dict())))
    assert back == original
    for dotted in _tuple_fields(original):
        value = back
        for part in dotted.split("."):
            value = getattr(value, part)
        assert isinstance(value, tuple), dotted
    with pytest.raises(InputError, match="unknown key"):
        cls.from_dict({**original.to_dict(), "no_such_field": 1})
