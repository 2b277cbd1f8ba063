"""Config dataclass fields are the one source of the training options: a new setting is
one field, and the CLI, its validation, config.json and the checkpoint pick it up."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, fields
from pathlib import Path

import pytest
from train_data import make_dataset

from rsna_pkg.cli_options import cli_fields, flag_of, flags_in_errors
from rsna_pkg.config_fields import FieldError, check_fields, option
from rsna_pkg.errors import InputError
from rsna_pkg.models.checkpoint import read_checkpoint
from rsna_pkg.models.config import ModelConfig
from rsna_pkg.train import command
from rsna_pkg.train import config as train_config
from rsna_pkg.train.config import TrainConfig


@dataclass(frozen=True)
class WithSmoothing(TrainConfig):
    """A training option this package does not have: one field, nothing else."""

    label_smoothing: float = option(0.0, help="label smoothing", bounds=(0, 0.5))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rsna train")
    command.add_arguments(parser)
    return parser


def _base(data: Path, images: Path, out: Path) -> list[str]:
    return ["--data", str(data), "--images", str(images), "--out", str(out), "--epochs", "1",
            "--batch-size", "8", "--workers", "0", "--threads", "1"]  # fmt: skip


def test_a_new_field_is_a_validated_option_saved_in_config_json_and_the_checkpoint(
    tmp_path, monkeypatch, capsys
) -> None:
    data, images = make_dataset(tmp_path / "d", patients=8, size=(64, 32), seed=0)
    monkeypatch.setattr(train_config, "TrainConfig", WithSmoothing)
    out = tmp_path / "out"
    args = _parser().parse_args([*_base(data, images, out), "--label-smoothing", "0.1"])
    cfg = command.config_from_args(args, "resnet18")
    assert isinstance(cfg, WithSmoothing) and cfg.label_smoothing == 0.1
    assert "--label-smoothing" in _parser().format_help()
    with pytest.raises(SystemExit):  # refused where it is typed, with the declared bounds
        _parser().parse_args([*_base(data, images, out), "--label-smoothing", "0.9"])
    assert "--label-smoothing: must be a number in [0, 0.5], got 0.9" in capsys.readouterr().err

    assert command.run(args) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["label_smoothing"] == 0.1
    assert WithSmoothing.from_dict(saved) == cfg.with_(model=WithSmoothing.from_dict(saved).model)
    train_state = read_checkpoint(out / "last.pt")["train"]
    assert WithSmoothing.from_dict(train_state).label_smoothing == 0.1
    with pytest.raises(InputError, match=r"unknown key\(s\) \['label_smoothing'\]"):
        TrainConfig.from_dict(saved)  # the plain config does not know it: nothing is dropped


def test_every_train_option_of_a_field_round_trips_from_flag_to_config() -> None:
    """Each generated option, given a non-default value, lands in its field."""
    parser = _parser()
    given: list[str] = ["--data", "d", "--images", "i", "--out", "o"]
    wanted = {}
    for cls in (TrainConfig, ModelConfig):
        for f in cli_fields(cls):
            action = next(a for a in parser._actions if f.name == a.dest)
            if action.nargs == 0:  # a switch: flips the default
                given.append(flag_of(f))
                wanted[f.name] = not f.default
            elif action.choices:
                value = next(c for c in action.choices if c != f.default)
                given += [flag_of(f), str(value)]
                wanted[f.name] = value
            else:
                value = f.metadata["bounds"][1] if f.name != "folds" else 5
                value = int(value) if isinstance(f.default, int) else value * 0.5
                given += [flag_of(f), str(value)]
                wanted[f.name] = value
    given.remove("--folds")  # excludes --val-frac (one group)
    given.remove("5")
    wanted.pop("folds")
    args = parser.parse_args(given)
    for name, value in wanted.items():
        assert getattr(args, name) == value, name
    assert parser.parse_args([*given[:6], "--folds", "5"]).folds == 5
    with pytest.raises(SystemExit):  # one group: a K-fold split has no validation fraction
        parser.parse_args([*given[:6], "--folds", "5", "--val-frac", "0.3"])


def test_config_errors_name_the_field_and_the_cli_names_the_flag() -> None:
    with pytest.raises(
        FieldError, match=r"^train config batch_size: must be in \[1, 4096\], got 0$"
    ):
        TrainConfig(batch_size=0)
    with pytest.raises(
        FieldError, match=r"^train config optimizer: must be one of \('adamw', 'sgd'\)"
    ):
        TrainConfig(optimizer="adam")  # type: ignore[arg-type]
    with pytest.raises(FieldError, match=r"^train config ema: must be in \[0, 1\), got 1.0"):
        TrainConfig(ema=1.0)
    with pytest.raises(FieldError, match="^train config epochs: must be an integer"):
        TrainConfig(epochs=2.5)  # type: ignore[arg-type]
    with pytest.raises(FieldError, match="^model config aggregation: must be one of"):
        ModelConfig(aggregation="median")  # type: ignore[arg-type]
    renamed = pytest.raises(InputError, match=r"^--no-metadata: must be one of")
    with renamed as info, flags_in_errors(TrainConfig, ModelConfig):
        raise FieldError("use_metadata", "must be one of (True, False)")
    assert not isinstance(info.value, FieldError)
    renamed = pytest.raises(InputError, match=r"^--batch-size: must be in \[1, 4096\], got 0$")
    with renamed, flags_in_errors(TrainConfig, ModelConfig):
        TrainConfig(batch_size=0)
    with pytest.raises(InputError, match=r"^--aux: unknown target 'cancer'"):
        command.config_from_args(
            _parser().parse_args(["--data", "d", "--images", "i", "--out", "o", "--size", "64",
                                  "32", "--aux", "cancer"]), "resnet18")  # fmt: skip


def test_check_fields_refuses_non_finite_numbers_and_bools_for_numbers() -> None:
    for value in (float("nan"), float("inf"), True):
        with pytest.raises(FieldError, match="^train config lr: "):
            TrainConfig(lr=value)
    check_fields(TrainConfig())  # the defaults are valid
    declared = [f.name for f in fields(TrainConfig) if "help" in f.metadata]
    assert {"epochs", "lr", "freeze", "aux", "workers"} <= set(declared)


def test_preprocess_options_are_its_config_fields() -> None:
    from rsna_pkg.cli_options import config_kwargs
    from rsna_pkg.preprocess import command as preprocess_command
    from rsna_pkg.preprocess.config import PreprocessConfig

    parser = argparse.ArgumentParser(prog="rsna preprocess")
    preprocess_command.add_arguments(parser)
    args = parser.parse_args(["--out", "o", "--bits", "16", "--backend", "pydicom", "--no-reduce",
                              "--no-crop", "--margin", "0.01", "--roi", "threshold",
                              "--probe-size", "128", "--voi-index", "1"])  # fmt: skip
    cfg = PreprocessConfig(height=64, width=32, **config_kwargs(args, PreprocessConfig))
    assert cfg == PreprocessConfig(64, 32, bits=16, backend="pydicom", voi_index=1, reduce=False,
                                   crop=False, margin=0.01, roi="threshold", probe_size=128)  # fmt: skip
    assert parser.parse_args(["--out", "o"]).backend == "auto"  # the defaults are the config's
    with pytest.raises(InputError, match=r"^preprocess margin: must be in \[0, 0.5\), got 0.5$"):
        PreprocessConfig(margin=0.5)


def test_infer_options_are_its_fields_and_its_vocabularies_agree_with_the_library() -> None:
    import typing

    from rsna_pkg import metrics
    from rsna_pkg.cli_options import config_kwargs
    from rsna_pkg.config_fields import choices_of, field_types
    from rsna_pkg.infer import command as infer_command
    from rsna_pkg.infer.options import InferOptions

    parser = argparse.ArgumentParser(prog="rsna infer")
    infer_command.add_arguments(parser)
    args = parser.parse_args(["--data", "d", "--model", "m.pt", "--out", "s.csv", "--agg", "max",
                              "--tta", "vflip", "--split", "train", "--batch-size", "3"])  # fmt: skip
    kwargs = config_kwargs(args, InferOptions)
    assert kwargs == {"split": "train", "agg": "max", "tta": "vflip", "batch_size": 3}
    opts = InferOptions(data=Path("d"), models=(Path("m.pt"),), out=Path("s.csv"), **kwargs)
    assert opts.batch_size == 3
    light = choices_of(field_types(InferOptions)["agg"])
    assert light == typing.get_args(metrics.Aggregation)
    assert light == choices_of(field_types(ModelConfig)["aggregation"])
    with pytest.raises(InputError, match=r"^infer options tta: must be one of"):
        InferOptions(data=Path("d"), models=(), out=Path("s.csv"), tta="rot90")  # type: ignore[arg-type]


def test_library_errors_name_the_setting_and_each_command_names_its_flag(tmp_path, capsys) -> None:
    """A library call names what it was given (``pretrained x.pt: ...``); the command that
    set it from a flag says the flag (``--pretrained x.pt: ...``), whatever the flag is
    called (weights convert's ``backbone`` is ``--to``)."""
    from rsna_pkg.cli import main
    from rsna_pkg.models.foreign import init_weights

    missing = tmp_path / "nowhere.pth"
    with pytest.raises(FieldError, match=r"^pretrained .*nowhere.pth: file not found"):
        init_weights(missing)
    src = tmp_path / "w.pth"
    src.write_bytes(b"")
    for argv, said in (
        (["weights", "convert", str(src), "--to", "resnet18", "--out", str(tmp_path / "o.st")],
         "rsna weights: error: --to resnet18: expected timm:NAME"),
        (["train", "--data", str(tmp_path), "--images", str(tmp_path / "i"), "--out",
          str(tmp_path / "o"), "--size", "64", "32", "--pretrained", str(missing)],
         f"rsna train: error: --pretrained {missing}: file not found"),
    ):  # fmt: skip
        assert main(argv) == 2
        assert said in capsys.readouterr().err


def test_replicate_options_are_its_fields_and_agree_with_synth() -> None:
    import typing

    from rsna_pkg.cli_options import config_kwargs
    from rsna_pkg.config_fields import choices_of, field_types
    from rsna_pkg.data.synth.findings import Difficulty
    from rsna_pkg.kaggle import replicate_command
    from rsna_pkg.kaggle.replay import ReplayOptions

    parser = argparse.ArgumentParser(prog="rsna replicate")
    replicate_command.add_arguments(parser)
    args = parser.parse_args(["--patients", "12", "--layout", "old", "--difficulty", "realistic",
                              "--timeout", "60", "--seed", "4"])  # fmt: skip
    assert config_kwargs(args, ReplayOptions) == {"patients": 12, "seed": 4,
                                                  "difficulty": "realistic", "layout": "old",
                                                  "timeout": 60.0}  # fmt: skip
    assert choices_of(field_types(ReplayOptions)["difficulty"]) == typing.get_args(Difficulty)
    with pytest.raises(InputError, match="^layout: must be one of"):
        ReplayOptions(work=Path("w"), layout="flat")  # type: ignore[arg-type]
