"""Render the Kaggle metadata files and kernel bootstrap blocks from kaggle.toml.

The committed JSON files and the bootstrap copy inside each kernel script are outputs of
these functions: ``rsna kaggle render`` writes them, ``rsna kaggle check`` compares them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rsna_pkg.errors import InputError
from rsna_pkg.kaggle import bootstrap
from rsna_pkg.kaggle.paths import (
    DATASET_METADATA,
    KERNEL_METADATA,
    KaggleConfig,
    dataset_dir,
    kernel_dir,
)

CODE_FILE = "kernel.py"
GPU_SHAPE = "NvidiaTeslaT4"
BEGIN, END = "# >>> bootstrap", "# <<< bootstrap"


def kernel_metadata(cfg: KaggleConfig, name: str) -> dict[str, Any]:
    """kernel-metadata.json for one kernel. Every boolean is written out: an omitted
    ``enable_internet`` means internet ON to the Kaggle CLI."""
    spec = cfg.kernels[name]
    for dep in spec.datasets:
        if dep not in cfg.datasets:
            raise InputError(f"kaggle.toml [kernels.{name}] datasets: unknown dataset {dep!r}")
    for dep in spec.kernels:
        if dep not in cfg.kernels:
            raise InputError(f"kaggle.toml [kernels.{name}] kernels: unknown kernel {dep!r}")
    meta: dict[str, Any] = {
        "id": cfg.ref(spec.slug),
        "title": spec.title,
        "code_file": CODE_FILE,
        "language": "python",
        "kernel_type": "script",
        "is_private": True,
        "enable_gpu": spec.gpu,
        "enable_tpu": False,
        "enable_internet": spec.internet,
        "dataset_sources": [cfg.ref(cfg.datasets[d].slug) for d in spec.datasets],
        "competition_sources": [cfg.competition],
        "kernel_sources": [cfg.ref(cfg.kernels[k].slug) for k in spec.kernels],
        "model_sources": [],
        "docker_image_pinning_type": "original",
    }
    if spec.gpu:
        meta["machine_shape"] = GPU_SHAPE
    return meta


def dataset_metadata(cfg: KaggleConfig, name: str) -> dict[str, Any]:
    spec = cfg.datasets[name]
    return {
        "title": spec.title,
        "subtitle": spec.subtitle,
        "id": cfg.ref(spec.slug),
        "licenses": [{"name": spec.license}],
        "keywords": [],
    }


def dumps(meta: dict[str, Any]) -> str:
    return json.dumps(meta, indent=2) + "\n"


def bootstrap_block() -> str:
    """The text between (and including) the bootstrap markers in bootstrap.py."""
    return extract_block(Path(bootstrap.__file__).read_text(encoding="utf-8"), bootstrap.__file__)


def extract_block(text: str, where: str | Path) -> str:
    start, stop = text.find(BEGIN), text.find(END)
    if start < 0 or stop < start:
        raise InputError(f"{where}: missing the '{BEGIN}' ... '{END}' block")
    return text[start : stop + len(END)]


def with_block(text: str, where: str | Path) -> str:
    """``text`` with its bootstrap block replaced by the current one."""
    old = extract_block(text, where)
    return text.replace(old, bootstrap_block(), 1)


def rendered_files(repo: Path, cfg: KaggleConfig) -> dict[Path, str]:
    """Every file ``render`` owns, path -> the content it should have."""
    files: dict[Path, str] = {}
    for name in cfg.kernels:
        folder = kernel_dir(repo, name)
        files[folder / KERNEL_METADATA] = dumps(kernel_metadata(cfg, name))
        code = folder / CODE_FILE
        if code.is_file() and BEGIN in (text := code.read_text(encoding="utf-8")):
            files[code] = with_block(text, code)
    for name in cfg.datasets:
        files[dataset_dir(repo, name) / DATASET_METADATA] = dumps(dataset_metadata(cfg, name))
    return files


def out_of_sync(repo: Path, cfg: KaggleConfig) -> list[tuple[Path, str]]:
    """(file, why) for rendered files whose committed content differs, is missing, or has
    no bootstrap block to keep in sync."""
    stale = []
    for path, content in rendered_files(repo, cfg).items():
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            stale.append((path, "differs from kaggle.toml/bootstrap.py: run rsna kaggle render"))
    for name in cfg.kernels:
        code = kernel_dir(repo, name) / CODE_FILE
        if code.is_file() and BEGIN not in code.read_text(encoding="utf-8"):
            stale.append((code, f"no '{BEGIN}' block"))
    return stale


def render(repo: Path, cfg: KaggleConfig) -> list[Path]:
    """Write every rendered file that changed; returns the paths written."""
    written = []
    for path, content in rendered_files(repo, cfg).items():
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
            written.append(path)
    return written
