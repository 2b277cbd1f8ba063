"""What `rsna compare` trains: variants ``BACKBONE[@FREEZE]``, study presets, their weights,
and the train-side score that shows overfitting.

A plain name trains with the run's ``--freeze`` (``auto``: ``features`` when it has a
pretrained file, else ``none``); ``vgg11@classifier`` and ``vgg11@features`` fix the freeze
mode (``models/fusion.py``): ``classifier`` trains the fusion head alone (frozen features +
metadata), ``features`` also trains the backbone's own FC layers. Weights come from
``--pretrained`` (one file) or ``--pretrained-dir DIR`` (``DIR/<name>.pth`` or
``.safetensors`` per backbone; a backbone without one starts from random weights).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsna_pkg.config_fields import FieldError
from rsna_pkg.errors import InputError

log = logging.getLogger(__name__)

SEP = "@"
# The four-notebook study this package grew from: seven backbones, then vgg11's frozen
# features + metadata (only the fusion head trains) against vgg11 with its FC layers
# unfrozen (found to overfit).
STUDIES: dict[str, tuple[str, ...]] = {
    "notebooks": ("resnet50", "alexnet", "vgg11", "vgg16", "vgg19", "squeezenet1_1", "densenet121",
             "vgg11@classifier", "vgg11@features"),
}  # fmt: skip
# Earlier names, still accepted: "seed" read like --seed's value.
STUDY_ALIASES: dict[str, str] = {"seed": "notebooks"}
WEIGHT_SUFFIXES: tuple[str, ...] = (".pth", ".pt", ".safetensors")


@dataclass(frozen=True)
class Variant:
    name: str  # as listed: "vgg11", "vgg11@classifier", "timm:convnext_small"
    backbone: str
    freeze: str  # resolved: none | features | classifier
    pretrained: str | None  # local weights file, or None (random init)

    @property
    def folder(self) -> str:
        """OUT/<folder>: the name without characters some file systems refuse."""
        return self.name.replace(":", "_")


def split_name(text: str) -> tuple[str, str | None]:
    """'vgg11@classifier' -> ('vgg11', 'classifier'); 'vgg11' -> ('vgg11', None)."""
    from rsna_pkg.models.fusion import FREEZE_MODES

    backbone, sep, freeze = text.partition(SEP)
    if sep and freeze not in FREEZE_MODES:
        raise InputError(
            f"{text!r}: freeze mode after {SEP} must be one of {', '.join(FREEZE_MODES)}"
        )
    return backbone, (freeze if sep else None)


def weights_file(pretrained_dir: Path, backbone: str) -> str | None:
    """DIR/<backbone>.pth|.pt|.safetensors (a timm name without its 'timm:'), or None."""
    stem = backbone.removeprefix("timm:")
    for suffix in WEIGHT_SUFFIXES:
        path = pretrained_dir / f"{stem}{suffix}"
        if path.is_file():
            return str(path)
    return None


def resolve_variants(
    names: list[str], freeze: str, pretrained: Path | None, pretrained_dir: Path | None
) -> list[Variant]:
    """Each listed name as the run it is; a plain name that is the same run as an explicit
    ``@`` variant is dropped (the explicit one says what it is)."""
    if pretrained_dir is not None and not pretrained_dir.is_dir():
        raise FieldError("pretrained_dir", "not a folder", value=pretrained_dir)
    variants = []
    for name in names:
        backbone, mode = split_name(name)
        weights = str(pretrained) if pretrained else None
        if pretrained_dir is not None:
            weights = weights_file(pretrained_dir, backbone)
        if mode is None:
            mode = ("features" if weights else "none") if freeze == "auto" else freeze
        variants.append(Variant(name, backbone, mode, weights))
    explicit = {(v.backbone, v.freeze) for v in variants if SEP in v.name}
    kept = [v for v in variants if SEP in v.name or (v.backbone, v.freeze) not in explicit]
    for v in variants:
        if v not in kept:
            log.info(f"{v.name}: the same run as {v.name}{SEP}{v.freeze}; trained once")
    return kept


def random_frozen_note(variants: list[Variant]) -> str:
    """The report's warning when a frozen variant freezes random convolutions ('' if none)."""
    names = [v.name for v in variants if v.freeze != "none" and v.pretrained is None]
    if not names:
        return ""
    return (f"{', '.join(names)}: no pretrained file, so the frozen part is random weights "
            "(a random-feature baseline, not transfer learning); give --pretrained-dir "
            "with <backbone>.pth files for the real study")  # fmt: skip


def train_side_scores(run_dir: Path, cfg: Any, data: Path, images: Path) -> dict[str, Any]:
    """The best checkpoint scored on its own training split (no augmentation, no
    oversampling): per-breast train AUC, next to which the validation AUC shows
    overfitting; plus trainable/total parameters under the run's freeze mode."""
    import numpy as np
    from torch.utils.data import DataLoader

    from rsna_pkg.data.dataset import EpochSampler, MammoDataset
    from rsna_pkg.data.splits import load_split
    from rsna_pkg.models.checkpoint import load_checkpoint
    from rsna_pkg.models.fusion import apply_freeze
    from rsna_pkg.outputs import RunFolder
    from rsna_pkg.train.evaluate import predict, score
    from rsna_pkg.train.prepare import prepare

    run = RunFolder(Path(run_dir))
    loaded = load_checkpoint(run.model, device=cfg.device)
    m = loaded.config
    prep = prepare(cfg, data, images, load_split(run.split))
    labels = prep.train["cancer"].to_numpy()
    meta = prep.encoder.transform(prep.train) if m.use_metadata else None
    dataset = MammoDataset(prep.train["path"].tolist(), labels, meta, m.norm_mean, m.norm_std,
                           augment=None, seed=cfg.seed, size=(m.height, m.width))  # fmt: skip
    loader = DataLoader(dataset, batch_size=cfg.batch_size * 2, num_workers=cfg.workers,
                        sampler=EpochSampler(labels, train=False))  # fmt: skip
    rows, probs = predict(loaded.model, loader, loaded.device, channels_last=False)
    full = np.full(len(prep.train), np.nan)
    full[rows] = probs
    scores = score(prep.train, full, m.aggregation)
    apply_freeze(loaded.model, cfg.freeze)
    params = list(loaded.model.parameters())
    return {
        "train_auc": scores["val_auc"],  # score() names its per-breast AUC for validation
        "params_m": round(sum(p.numel() for p in params) / 1e6, 2),
        "trainable_m": round(sum(p.numel() for p in params if p.requires_grad) / 1e6, 2),
    }
