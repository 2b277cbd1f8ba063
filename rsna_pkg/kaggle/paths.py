"""Where the Kaggle packaging files live, and the one config they are rendered from.

``kaggle.toml`` at the repository root names the owner, the dataset and kernel slugs and
each kernel's settings; the kernel-metadata.json and dataset-metadata.json files are
rendered from it (``render.py``), never edited by hand.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsna_pkg.errors import InputError

CONFIG_NAME = "kaggle.toml"
KERNELS_DIR = "kaggle_kernels"
DATASETS_DIR = "dataset_metadata"
KERNEL_METADATA = "kernel-metadata.json"
DATASET_METADATA = "dataset-metadata.json"
OWNER_ENV = "RSNA_KAGGLE_OWNER"
KERNEL_ORDER = ("eda", "preprocess", "train", "inference")


@dataclass(frozen=True)
class DatasetSpec:
    name: str  # key in kaggle.toml, also the folder under dataset_metadata/
    slug: str
    title: str
    subtitle: str
    license: str


@dataclass(frozen=True)
class KernelSpec:
    name: str  # key in kaggle.toml, also the folder under kaggle_kernels/
    slug: str
    title: str
    gpu: bool
    internet: bool
    datasets: tuple[str, ...]  # dataset names (keys), not slugs
    kernels: tuple[str, ...]  # kernel names whose output this one reads


@dataclass(frozen=True)
class KaggleConfig:
    owner: str
    competition: str
    datasets: dict[str, DatasetSpec]
    kernels: dict[str, KernelSpec]

    def ref(self, slug: str) -> str:
        return f"{self.owner}/{slug}"


def find_repo(start: Path | None = None) -> Path:
    """The repository root: the first folder from ``start`` (default: cwd, then the
    package's parent) upward that holds kaggle.toml."""
    here = Path(__file__).resolve().parents[2]
    candidates = [start] if start is not None else [Path.cwd(), here]
    for base in candidates:
        for folder in [base.resolve(), *base.resolve().parents]:
            if (folder / CONFIG_NAME).is_file():
                return folder
    raise InputError(f"no {CONFIG_NAME} found above {candidates[0]}; pass --repo")


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path}: {exc}") from exc


def _field(table: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in table:
        raise InputError(f"{where}: missing field {key!r}")
    value = table[key]
    if kind is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InputError(f"{where}: field {key!r} must be a list of strings")
        return tuple(value)
    if not isinstance(value, kind):
        raise InputError(f"{where}: field {key!r} must be {kind.__name__}")
    return value


def _check_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise InputError(f"{where}: unknown field(s) {', '.join(unknown)}")


def load_config(repo: Path, owner: str | None = None) -> KaggleConfig:
    """Read kaggle.toml; the owner comes from ``owner``, else $RSNA_KAGGLE_OWNER, else the file."""
    path = repo / CONFIG_NAME
    raw = _load_toml(path)
    _check_keys(raw, {"owner", "competition", "datasets", "kernels"}, str(path))
    datasets = {}
    for name, table in _field(raw, "datasets", dict, str(path)).items():
        where = f"{path} [datasets.{name}]"
        _check_keys(table, {"slug", "title", "subtitle", "license"}, where)
        datasets[name] = DatasetSpec(
            name=name,
            slug=_field(table, "slug", str, where),
            title=_field(table, "title", str, where),
            subtitle=_field(table, "subtitle", str, where),
            license=_field(table, "license", str, where),
        )
    kernels = {}
    for name, table in _field(raw, "kernels", dict, str(path)).items():
        where = f"{path} [kernels.{name}]"
        _check_keys(table, {"slug", "title", "gpu", "internet", "datasets", "kernels"}, where)
        kernels[name] = KernelSpec(
            name=name,
            slug=_field(table, "slug", str, where),
            title=_field(table, "title", str, where),
            gpu=_field(table, "gpu", bool, where),
            internet=_field(table, "internet", bool, where),
            datasets=_field(table, "datasets", tuple, where),
            kernels=_field(table, "kernels", tuple, where),
        )
    return KaggleConfig(
        owner=owner or os.environ.get(OWNER_ENV) or _field(raw, "owner", str, str(path)),
        competition=_field(raw, "competition", str, str(path)),
        datasets=datasets,
        kernels=kernels,
    )


def kernel_dir(repo: Path, name: str) -> Path:
    return repo / KERNELS_DIR / name


def dataset_dir(repo: Path, name: str) -> Path:
    return repo / DATASETS_DIR / name
