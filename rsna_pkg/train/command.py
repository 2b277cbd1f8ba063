"""Train an image (+ metadata) cancer classifier on `rsna preprocess` PNGs.

Writes OUT/model.pt (best epoch: weights + full TrainConfig, loadable with
torch.load(weights_only=True)), OUT/last.pt (resumable), OUT/metrics.json,
OUT/history.csv, OUT/curves.png, OUT/config.json, OUT/split.csv and OUT/val_predictions.csv.
`--folds K` without `--fold` trains all K folds into OUT/fold_<i>/ and adds OUT/oof.csv and
OUT/metrics.json (out-of-fold scores; the OOF threshold goes into every fold's model.pt).
Multi-GPU: `torchrun --nproc_per_node N -m rsna_pkg.train ...` (same options).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from rsna_pkg.errors import InputError
from rsna_pkg.options import integer
from rsna_pkg.preprocess.config import MAX_SIZE

# Parameters of library calls that `rsna train` / `rsna compare` set from a flag of another
# name, or from a flag no config field declares: how a FieldError of theirs is said.
LIBRARY_FLAGS = {"resume": "--resume", "pretrained_dir": "--pretrained-dir", "size": "--size",
                 "backbone": "--backbone"}  # fmt: skip


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by `rsna train` and `rsna compare`: the command-line fields of
    TrainConfig and ModelConfig (``cli_options``), and those a command resolves itself."""
    from rsna_pkg.cli_options import add_config_options
    from rsna_pkg.config_fields import choices_of
    from rsna_pkg.models.config import ModelConfig
    from rsna_pkg.train.config import Freeze, TrainConfig

    p = parser
    p.add_argument("--data", type=Path, required=True, help="competition folder with train.csv")
    p.add_argument("--images", type=Path, required=True, help="`rsna preprocess` output folder")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument(
        "--size", nargs=2, type=integer(32, MAX_SIZE), metavar=("H", "W"),
        help="model input size; default: the size --images was preprocessed at "
        "(given, it must be that size)",
    )  # fmt: skip
    add_config_options(p, TrainConfig)
    add_config_options(p, ModelConfig)
    p.add_argument(
        "--fold", type=integer(0, 99), default=None,
        help="with --folds K: train only this fold (rsna compare: fold 0 unless given)",
    )  # fmt: skip
    p.add_argument(
        "--freeze", choices=("auto", *choices_of(Freeze)), default="auto",
        help="auto: 'features' with --pretrained, else 'none' (random features cannot be "
        "frozen); top: a timm EfficientNet frozen up to its last stage",
    )  # fmt: skip
    p.add_argument(
        "--aux", default="", metavar="NAME[=W],...",
        help="auxiliary heads and loss weights (training only): birads, density, biopsy, "
        "invasive, difficult_negative_case; a bare name weighs 0.1",
    )  # fmt: skip
    weights = p.add_mutually_exclusive_group()
    weights.add_argument(
        "--pretrained", type=Path, default=None,
        help="local weights file: a torchvision state_dict, or for timm:NAME a timm "
        ".safetensors/.pth (`rsna weights convert` makes one from efficientnet_pytorch weights)",
    )  # fmt: skip
    weights.add_argument(
        "--pretrained-dir", type=Path, default=None,
        help="weights per backbone: DIR/<backbone>.safetensors|.pth|.pt (a timm name without "
        "'timm:'); a backbone without one starts from random weights",
    )  # fmt: skip
    p.add_argument(
        "--workers", type=integer(0, 1_000_000), default=None,
        help="loader processes (default: cores - 1, at most 4, so the model keeps a core)",
    )  # fmt: skip
    p.add_argument("--no-augment", action="store_true", help="train without augmentation")


def default_workers() -> int:
    """Loader processes that leave the model a core: cores - 1, between 0 and 4."""
    import os

    return max(0, min(4, (os.cpu_count() or 1) - 1))


def worker_count(args: argparse.Namespace) -> int:
    """--workers (default: cores - 1, at most 4) capped at the usable cores, with one
    line when capped (a caller building several configs caps ``args.workers`` once)."""
    from rsna_pkg.options import capped_workers

    workers = default_workers() if args.workers is None else args.workers
    workers, capped = capped_workers("--workers", workers)
    if capped:
        print(f"train: {capped}", file=sys.stderr)
    return workers


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument(
        "--resume", action="store_true",
        help="continue OUT/last.pt (K folds: skip finished folds, continue the unfinished one)",
    )  # fmt: skip


def config_from_args(args: argparse.Namespace, backbone: str) -> Any:
    """A validated TrainConfig from parsed options."""
    from rsna_pkg.cli_options import config_kwargs, flags_in_errors
    from rsna_pkg.data.augment_config import AugmentConfig
    from rsna_pkg.data.aux_targets import aux_heads, parse_aux
    from rsna_pkg.models.config import ModelConfig
    from rsna_pkg.models.zoo import backbone_model_fields, check_backbone, check_input_size
    from rsna_pkg.preprocess import PreprocessConfig
    from rsna_pkg.train.config import TrainConfig

    try:
        check_backbone(backbone)
    except InputError as exc:
        raise InputError(f"--backbone: {exc}") from exc
    height, width = input_size(args)
    check_input_size(backbone, height, width)
    weights = pretrained_path(args, backbone)
    freeze = args.freeze
    if freeze == "auto":
        freeze = "features" if weights else "none"
    aug = AugmentConfig.off() if args.no_augment else AugmentConfig()
    workers = worker_count(args)
    # the size only, until training reads the images' own PreprocessConfig (train/prepare.py)
    size = PreprocessConfig(height=height, width=width)
    with flags_in_errors(TrainConfig, ModelConfig):
        aux = parse_aux(args.aux)
        model = ModelConfig(
            backbone=backbone, preprocess=size, aux_heads=aux_heads(list(aux)),
            **config_kwargs(args, ModelConfig), **backbone_model_fields(backbone),
        )  # fmt: skip
        cfg = TrainConfig(
            model=model, freeze=freeze, aux=aux, augment=aug, fold=args.fold or 0,
            workers=workers, **config_kwargs(args, TrainConfig),
        )  # fmt: skip
    return with_weights(cfg, weights)


def input_size(args: argparse.Namespace) -> tuple[int, int]:
    """--size, else the size the --images folder was preprocessed at (its
    preprocess_config.json), so `rsna preprocess --size H W` then `rsna train` just works."""
    if args.size is not None:
        return int(args.size[0]), int(args.size[1])
    from rsna_pkg.train.prepare import images_preprocess_config

    pre = images_preprocess_config(args.images)
    return pre.height, pre.width


def pretrained_path(args: argparse.Namespace, backbone: str) -> str | None:
    """--pretrained, else the backbone's file in --pretrained-dir; None: random weights."""
    from rsna_pkg.train.study import weights_file

    if args.pretrained is not None:
        return str(args.pretrained)
    if args.pretrained_dir is None:
        return None
    if not args.pretrained_dir.is_dir():
        raise InputError(f"--pretrained-dir {args.pretrained_dir}: not a folder")
    return weights_file(args.pretrained_dir, backbone)


def with_weights(cfg: Any, path: str | None) -> Any:
    """``cfg`` starting from weights file ``path`` (None: random), its name and sha256
    recorded in the model config, so the checkpoint says what it was fine-tuned from."""
    from rsna_pkg.models.foreign import init_weights

    origin = init_weights(Path(path)) if path else None
    return cfg.with_(pretrained=path).with_model(init_weights=origin)


def run(args: argparse.Namespace) -> int:
    """The run; a setting the library refuses is named by its flag (``FieldError``)."""
    from rsna_pkg.cli_options import flags_in_errors
    from rsna_pkg.models.config import ModelConfig
    from rsna_pkg.train.config import TrainConfig

    with flags_in_errors(TrainConfig, ModelConfig, **LIBRARY_FLAGS):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from rsna_pkg.train.loop import run_training

    check_output_folder(args)
    cfg = config_from_args(args, args.backbone)
    if args.pretrained_dir is not None and cfg.pretrained is None:
        print(f"--pretrained-dir {args.pretrained_dir}: no weights file for {args.backbone}; "
              "random initialisation")  # fmt: skip
    elif cfg.model.init_weights is not None:
        print(f"starting from {cfg.pretrained} (sha256 {cfg.model.init_weights.sha256})")
    if cfg.folds > 1 and args.fold is None:
        return run_all_folds(cfg, args)
    metrics = run_training(cfg, args.data, args.images, args.out, resume=args.resume)
    if os.environ.get("RANK", "0") != "0":
        return 0  # DDP: rank 0 reports
    print(
        f"best epoch {metrics['best_epoch']}: val AUC {metrics['val_auc']:.4f}, "
        f"pF1 {metrics['val_pf1']:.4f}, best-threshold pF1 {metrics['val_pf1_best']:.4f} "
        f"@ {metrics['threshold']:.3f} -> {args.out}/model.pt"
    )
    return 0


def check_output_folder(args: argparse.Namespace) -> None:
    """OUT is not DATA or the image folder (its model.pt, split.csv ... would land among
    the inputs), and --pretrained is not a file the run rewrites."""
    from rsna_pkg.options import check_outputs
    from rsna_pkg.outputs import RunFolder

    check_outputs({"--out": args.out}, {"--data": args.data, "--images": args.images})
    if args.pretrained is not None:
        run = RunFolder(args.out)
        written = {f"--out {path.name}": path for path in (run.model, run.last)}
        check_outputs(written, {"--pretrained": args.pretrained})


def run_all_folds(cfg: Any, args: argparse.Namespace) -> int:
    from rsna_pkg.train.folds import run_folds

    m = run_folds(cfg, args.data, args.images, args.out, resume=args.resume)
    if not m:
        return 0  # DDP: rank 0 reports
    print(
        f"out-of-fold over {cfg.folds} folds: AUC {m['val_auc']:.4f}, pF1 {m['val_pf1']:.4f}, "
        f"best-threshold pF1 {m['val_pf1_best']:.4f} @ {m['threshold']:.3f} (stored in every "
        f"fold's model.pt) -> {args.out}/oof.csv; ensemble: rsna infer --model {args.out}"
    )
    return 0
