"""Auxiliary heads: label encoding, masked loss, the option, the model, and a tiny
`rsna train --aux` whose checkpoint loads weights_only and predicts exactly as the same
weights without heads."""

from __future__ import annotations

import argparse
import copy
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_infer import read_sub, run_infer
from train_data import ctrl_c_in_second_epoch, make_dataset

from rsna_pkg.data.aux_targets import MISSING, aux_heads, aux_labels, describe_aux, parse_aux
from rsna_pkg.errors import InputError
from rsna_pkg.models.checkpoint import build_model, load_checkpoint, save_checkpoint
from rsna_pkg.models.config import ModelConfig
from rsna_pkg.models.fusion import CancerClassifier
from rsna_pkg.preprocess import PreprocessConfig
from rsna_pkg.train import command
from rsna_pkg.train.aux_loss import aux_loss, masked_head_loss
from rsna_pkg.train.config import TrainConfig
from rsna_pkg.train.ddp import DistContext
from rsna_pkg.train.trainer import Trainer

AUX = "birads=0.2,density=0.2,biopsy=0.1,invasive=0.1,difficult_negative_case=0.1"


def bce(z: float, y: float) -> float:
    return math.log1p(math.exp(z)) - y * z


def ce(zs: list[float], k: int) -> float:
    return math.log(sum(math.exp(z) for z in zs)) - zs[k]


@pytest.mark.parametrize(
    ("logits", "target", "expected"),
    [
        ([[0.0], [2.0], [-1.0]], [1, -1, 0], (bce(0, 1) + bce(-1, 0)) / 2),
        ([[3.0], [-2.0]], [0, 1], (bce(3, 0) + bce(-2, 1)) / 2),
        ([[3.0], [-2.0]], [-1, -1], 0.0),
        ([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], [2, -1], ce([1, 2, 3], 2)),
        ([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], [0, 1], (ce([1, 2, 3], 0) + math.log(3)) / 2),
        ([[1.0, 2.0, 3.0, 4.0]], [-1], 0.0),
    ],
)
def test_masked_head_loss_leaves_missing_labels_out(logits, target, expected) -> None:
    z = torch.tensor(logits, requires_grad=True)
    loss = masked_head_loss(z, torch.tensor(target, dtype=torch.float32))
    assert loss.item() == pytest.approx(expected, rel=1e-6, abs=1e-7)
    loss.backward()  # always in the graph: DDP needs a gradient, even an all-zero one
    assert z.grad is not None
    missing = torch.tensor(target) < 0
    assert (z.grad[missing] == 0).all()


def test_aux_loss_is_the_weighted_sum() -> None:
    logits = {"density": torch.tensor([[0.0, 1.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0]]),
              "biopsy": torch.tensor([[1.0], [-1.0]])}  # fmt: skip
    targets = torch.tensor([[1.0, 1.0], [MISSING, 0.0]])
    got = aux_loss(logits, targets, ["density", "biopsy"], {"density": 0.2, "biopsy": 0.5})
    density = ce([0, 1, 0, 0], 1)
    biopsy = (bce(1, 1) + bce(-1, 0)) / 2
    assert got.item() == pytest.approx(0.2 * density + 0.5 * biopsy, rel=1e-6)


def test_aux_labels_encode_classes_and_mark_missing() -> None:
    df = pd.DataFrame({
        "BIRADS": [0.0, 1.0, 2.0, np.nan, 5.0],
        "density": ["A", " d", np.nan, "B", "X"],
        "biopsy": [1, 0, 1, 0, 1],
        "invasive": ["1", "0.0", "", None, "yes"],
        "difficult_negative_case": [True, False, "True", "false", np.nan],
    })  # fmt: skip
    names = ["birads", "density", "biopsy", "invasive", "difficult_negative_case"]
    m = MISSING
    expected = np.array([[0, 1, 2, m, m], [0, 3, m, 1, m], [1, 0, 1, 0, 1], [1, 0, m, m, m],
                         [1, 0, 1, 0, m]], dtype=np.float32).T  # fmt: skip
    np.testing.assert_array_equal(aux_labels(df, names), expected)
    assert aux_heads(names) == (("birads", 3), ("density", 4), ("biopsy", 1), ("invasive", 1),
                                ("difficult_negative_case", 1))  # fmt: skip
    assert describe_aux({"birads": 0.2, "biopsy": 1.0}, df) == (
        "auxiliary heads: birads x0.2 (3/5 labelled), biopsy x1 (5/5 labelled)"
    )
    with pytest.raises(InputError, match="no BIRADS column"):
        aux_labels(df.drop(columns=["BIRADS"]), ["birads"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("density=0.5, BIRADS", {"birads": 0.1, "density": 0.5}),  # table order, default weight
        (AUX, {"birads": 0.2, "density": 0.2, "biopsy": 0.1, "invasive": 0.1,
               "difficult_negative_case": 0.1}),
        ("cancer", "unknown target 'cancer'"),
        ("birads=high", "weight of birads must be a positive number, got 'high'"),
        ("birads=0", "weight of birads must be a positive number"),
        ("birads=inf", "weight of birads must be a positive number"),
        ("biopsy,biopsy=2", "biopsy is given twice"),
    ],
)  # fmt: skip
def test_aux_option(text, expected) -> None:
    if isinstance(expected, dict):
        got = parse_aux(text)
        assert got == expected and list(got) == list(expected)
    else:
        with pytest.raises(InputError, match=f"^aux: {expected}"):
            parse_aux(text)  # the library names the field; the CLI names the flag (test_cli)


def test_heads_change_neither_init_nor_cancer_logits() -> None:
    heads = (("birads", 3), ("biopsy", 1))
    torch.manual_seed(0)
    plain = CancerClassifier("resnet18", meta_dim=3).eval()
    torch.manual_seed(0)
    with_heads = CancerClassifier("resnet18", meta_dim=3, aux_heads=heads).eval()
    extra = set(with_heads.state_dict()) - set(plain.state_dict())
    assert extra == {f"aux_heads.{n}.{p}" for n, _ in heads for p in ("weight", "bias")}
    for key, value in plain.state_dict().items():
        assert torch.equal(value, with_heads.state_dict()[key]), key
    x, meta = torch.randn(2, 1, 64, 32), torch.randn(2, 3)
    with torch.no_grad():
        logits = with_heads(x, meta)
        both, aux = with_heads(x, meta, aux=True)
        assert torch.equal(logits, plain(x, meta)) and torch.equal(both, logits)
    assert logits.shape == (2,)
    assert {k: tuple(v.shape) for k, v in aux.items()} == {"birads": (2, 3), "biopsy": (2, 1)}


def test_model_config_stores_heads_and_old_configs_have_none() -> None:
    cfg = ModelConfig(aux_heads=(("density", 4),))
    raw = cfg.to_dict()
    assert raw["aux_heads"] == [["density", 4]]
    assert ModelConfig.from_dict(raw) == cfg
    del raw["aux_heads"]  # a format-2 checkpoint written before the heads existed
    assert ModelConfig.from_dict(raw).aux_heads == ()
    for bad in ((("a.b", 2),), (("density", 0),), (("x", 1), ("x", 2))):
        with pytest.raises(InputError, match="aux_heads"):
            ModelConfig(aux_heads=bad)


def _args(data: Path, images: Path, out: Path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser.parse_args([
        "--data", str(data), "--images", str(images), "--out", str(out), "--size", "32", "32",
        "--epochs", "1", "--batch-size", "8", "--workers", "0", "--threads", "1", "--seed", "1",
        *extra,
    ])  # fmt: skip


@pytest.fixture(scope="module")
def tiny_aux(tmp_path_factory) -> tuple[Path, Path]:
    """The tiny training set with BIRADS and density partly known (as in the real data)."""
    data, images = make_dataset(tmp_path_factory.mktemp("aux"), patients=12, size=(32, 32))
    table = pd.read_csv(data / "train.csv")
    rng = np.random.default_rng(0)
    n = len(table)
    table["BIRADS"] = np.where(rng.random(n) < 0.5, rng.integers(0, 3, n), np.nan)
    table["density"] = np.where(rng.random(n) < 0.6, rng.choice(list("ABCD"), n), None)
    table["invasive"] = table["cancer"] * (rng.random(len(table)) < 0.5)
    table.to_csv(data / "train.csv", index=False)
    return data, images


@pytest.fixture(scope="module")
def aux_run(tiny_aux, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("aux_run") / "out"
    assert command.run(_args(*tiny_aux, out, "--aux", AUX, "--ema", "0.5")) == 0
    return out


def test_aux_checkpoint_loads_weights_only_and_infers_as_without_heads(
    aux_run, synth_data, tmp_path
) -> None:
    raw = torch.load(aux_run / "model.pt", weights_only=True)
    heads = (("birads", 3), ("density", 4), ("biopsy", 1), ("invasive", 1),
             ("difficult_negative_case", 1))  # fmt: skip
    assert raw["model"]["aux_heads"] == [list(h) for h in heads]
    loaded = load_checkpoint(aux_run / "model.pt")
    assert {n: m.out_features for n, m in loaded.model.aux_heads.items()} == dict(heads)
    train_cfg = json.loads((aux_run / "config.json").read_text())
    assert train_cfg["aux"]["birads"] == 0.2 and "aux" not in raw["model"]  # weights: run only

    # the same weights with the heads removed: a config without heads, a state_dict without keys
    plain_cfg = loaded.config.with_(aux_heads=())
    state = {k: v for k, v in raw["state_dict"].items() if not k.startswith("aux_heads.")}
    assert len(state) < len(raw["state_dict"])
    plain = build_model(plain_cfg)
    plain.load_state_dict(state, strict=True)
    save_checkpoint(tmp_path / "plain.pt", plain, plain_cfg)

    subs = {}
    for name, ckpt in (("heads", aux_run / "model.pt"), ("plain", tmp_path / "plain.pt")):
        subs[name] = tmp_path / f"{name}.csv"
        run_infer(synth_data, [ckpt], subs[name], "--threshold", "none", "--workers", "0")
    assert subs["heads"].read_bytes() == subs["plain"].read_bytes()
    assert read_sub(subs["heads"]).nunique() > 1  # real predictions, not one fallback value


def test_trainer_adds_the_weighted_aux_loss_of_each_batch_row() -> None:
    """The loss the Trainer reports is BCE(cancer) + sum(weight x masked head loss), with
    each batch row's labels looked up by its dataset row."""
    heads = (("density", 4), ("biopsy", 1))
    weights = {"density": 0.3, "biopsy": 0.7}
    model_cfg = ModelConfig(preprocess=PreprocessConfig(height=32, width=32), use_metadata=False,
                            dropout=0.0, aux_heads=heads)  # fmt: skip
    cfg = TrainConfig(model=model_cfg, aux=weights, channels_last=False, lr=1e-9)
    torch.manual_seed(0)
    model = build_model(model_cfg)
    reference = copy.deepcopy(model).train()
    targets = torch.tensor([[0, 1], [MISSING, 0], [3, MISSING], [2, 1], [1, 0]])
    rows = torch.tensor([3, 0, 2])  # batch order is not row order
    x, y = torch.randn(3, 1, 32, 32), torch.tensor([1.0, 0.0, 0.0])
    ctx = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    trainer = Trainer(model, cfg, ctx, steps_per_epoch=1, pos_weight=None, aux_targets=targets)
    got = trainer.train_epoch([(x, torch.zeros(3, 0), y, rows)], show=False)  # type: ignore[list-item]
    logits, aux = reference(x, None, aux=True)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
    expected = expected + 0.3 * masked_head_loss(aux["density"], targets[rows, 0])
    expected = expected + 0.7 * masked_head_loss(aux["biopsy"], targets[rows, 1])
    assert got == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match="aux_targets"):
        Trainer(build_model(model_cfg), cfg, ctx, steps_per_epoch=1, pos_weight=None)


def test_resume_must_keep_the_heads(tiny_aux, aux_run) -> None:
    with pytest.raises(InputError, match="aux_heads"):
        command.run(_args(*tiny_aux, aux_run, "--resume", "--aux", "birads"))


def test_without_aux_the_run_is_the_default_run(tiny_aux, tmp_path) -> None:
    runs = {
        "absent": (),
        "explicit": ("--aux", "", "--neg-fraction", "1", "--balance", "oversample"),
    }
    for name, extra in runs.items():
        assert command.run(_args(*tiny_aux, tmp_path / name, *extra)) == 0
    timing = ["seconds", "elapsed_seconds"]
    a, b = (pd.read_csv(tmp_path / n / "history.csv").drop(columns=timing) for n in runs)
    pd.testing.assert_frame_equal(a, b)
    a_state = torch.load(tmp_path / "absent" / "model.pt", weights_only=True)["state_dict"]
    assert not any(k.startswith("aux_heads.") for k in a_state)


def test_resume_is_exact_with_heads_and_balanced_batches(tiny_aux, tmp_path, monkeypatch) -> None:
    extra = ("--epochs", "2", "--aux", "density,biopsy", "--balance", "batch",
             "--neg-fraction", "0.8", "--batch-size", "4")  # fmt: skip
    assert command.run(_args(*tiny_aux, tmp_path / "whole", *extra)) == 0
    restore = ctrl_c_in_second_epoch(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        command.run(_args(*tiny_aux, tmp_path / "cut", *extra))
    restore()
    assert command.run(_args(*tiny_aux, tmp_path / "cut", *extra, "--resume")) == 0
    timing = ["seconds", "elapsed_seconds"]
    whole, cut = (pd.read_csv(tmp_path / n / "history.csv").drop(columns=timing)
                  for n in ("whole", "cut"))  # fmt: skip
    pd.testing.assert_frame_equal(whole, cut)
