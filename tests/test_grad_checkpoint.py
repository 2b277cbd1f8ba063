"""Gradient checkpointing (`--grad-checkpoint`): same gradients, body recomputed in backward."""

from __future__ import annotations

import copy

import pytest
import torch

from rsna_pkg.models.fusion import CancerClassifier
from rsna_pkg.models.zoo import BACKBONES, body_segments


def _grads(model: CancerClassifier, x: torch.Tensor, meta: torch.Tensor) -> dict[str, torch.Tensor]:
    model.train()
    model.zero_grad(set_to_none=True)
    torch.manual_seed(7)  # the head's dropout draws the same mask in both runs
    model(x, meta).square().mean().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _count_calls(module: torch.nn.Module) -> list[int]:
    calls = [0]
    # a pre-hook: recomputation may stop early, before the forward returns
    module.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.mark.parametrize(
    ("name", "first_block"),
    [("resnet18", lambda b: b.layer1[0]), ("densenet121", lambda b: b[0].denseblock1),
     ("squeezenet1_1", lambda b: b[0][3]), ("efficientnet_b0", lambda b: b[0][1][0]),
     ("timm:resnet18", lambda b: b.layer1[0]), ("timm:convnext_atto", lambda b: b.stages[0].blocks[0])],
)  # fmt: skip
def test_checkpointed_gradients_equal_plain_ones(name: str, first_block) -> None:
    torch.manual_seed(0)
    plain = CancerClassifier(name, meta_dim=2)
    ckpt = copy.deepcopy(plain)
    ckpt.set_grad_checkpointing(True)
    x, meta = torch.randn(2, 1, 64, 32), torch.randn(2, 2)
    calls_plain, calls_ckpt = (
        _count_calls(first_block(plain.body)),
        _count_calls(first_block(ckpt.body)),
    )
    expected, got = _grads(plain, x, meta), _grads(ckpt, x, meta)
    assert calls_plain == [1] and calls_ckpt == [2]  # recomputed in backward: it is on
    assert expected.keys() == got.keys() and len(got) == len(list(plain.parameters()))
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-6, msg=key)
    ckpt.eval()
    with torch.no_grad():  # inference runs the body once, as without checkpointing
        ckpt(x, meta)
    assert calls_ckpt == [3]


@pytest.mark.parametrize("name", [b for b in BACKBONES if b != "resnet50"])
def test_body_segments_compose_to_the_body(name: str) -> None:
    """Every family's segments chain back to its body; a cut only after a block or a pool."""
    torch.manual_seed(0)
    body = CancerClassifier(name, meta_dim=0).body.eval()
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        y = x
        for segment in body_segments(body):
            y = segment(y)
        torch.testing.assert_close(y, body(x))


def test_segments_cut_resnet_after_the_stem_pool_and_at_each_block() -> None:
    body = CancerClassifier("resnet18").body
    segments = body_segments(body)
    assert [type(m).__name__ for m in segments[0]] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"]
    blocks = [s[0] for s in segments[1:9]]
    assert blocks == [*body.layer1, *body.layer2, *body.layer3, *body.layer4]
