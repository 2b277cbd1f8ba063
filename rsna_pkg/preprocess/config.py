"""PreprocessConfig: everything that decides what a preprocessed image looks like.

It is saved beside every output (``preprocess_config.json``) and inside every checkpoint,
so inference rebuilds exactly the training-time preprocessing from it.
"""

from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass
from typing import Any

from rsna_pkg.dataclass_io import from_plain
from rsna_pkg.errors import InputError

ROI_METHODS = ("segment", "threshold")  # rsna_pkg.preprocess.roi: breast_mask, threshold_mask
# Output sides in pixels. Models here take at most 2048 x 1024 (a mammogram is at most
# 5355 x 4915): 4096 leaves room, while a stored or typed 100000 (a 40 GB float resize
# per image) is refused before any image is read.
MIN_SIZE, MAX_SIZE = 8, 4096
# Decoder names (rsna_pkg.dicom.backend.CHOICES: "auto", "cpu" and the registry); repeated
# here, not imported, to keep this config free of the decoding modules. A test checks
# the two agree.
BACKENDS: tuple[str, ...] = ("auto", "cpu", "dicomsdl", "libjpeg-turbo", "openjpeg", "pydicom",
                             "dali", "nvimgcodec")  # fmt: skip


@dataclass(frozen=True)
class PreprocessConfig:
    height: int = 1024
    width: int = 512
    bits: int = 8  # 8 -> uint8 PNG, 16 -> uint16 PNG
    backend: str = "auto"  # rsna_pkg.dicom decoder (--decoder)
    voi_index: int = 0  # which WindowCenter/Width pair (or VOI LUT) to apply
    reduce: bool = True  # decode J2K at the deepest resolution level the crop allows
    crop: bool = True  # crop to the breast's bounding box before resizing
    margin: float = 0.005  # box margin, as a fraction of the image's longer side
    roi: str = "segment"  # breast box: "segment" (breast_mask) or "threshold" (the earlier crop)
    probe_size: int = 256  # long side of the low-resolution decode used to find the box

    def __post_init__(self) -> None:
        for name in ("height", "width"):
            value = getattr(self, name)
            try:  # numpy integers are fine, floats and strings are not
                value = operator.index(value)
            except TypeError:
                raise InputError(f"preprocess {name} {value!r} is not an integer") from None
            if not MIN_SIZE <= value <= MAX_SIZE:
                raise InputError(f"preprocess {name} {value} outside {MIN_SIZE}..{MAX_SIZE} px")
        if self.backend not in BACKENDS:
            raise InputError(f"preprocess backend {self.backend!r} unknown; known: "
                             f"{', '.join(BACKENDS)}")  # fmt: skip
        if self.bits not in (8, 16):
            raise InputError(f"preprocess bits must be 8 or 16, got {self.bits}")
        if self.voi_index < 0:
            raise InputError(f"voi_index must be >= 0, got {self.voi_index}")
        if not 0 <= self.margin < 0.5:
            raise InputError(f"margin must be in [0, 0.5), got {self.margin}")
        if self.roi not in ROI_METHODS:
            raise InputError(f"roi must be one of {', '.join(ROI_METHODS)}, got {self.roi!r}")
        if self.probe_size < 32:
            raise InputError(f"probe_size must be >= 32, got {self.probe_size}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreprocessConfig:
        """Inverse of to_dict; unknown keys are an error (a config from another version).
        A config saved before ``roi`` existed was made with the threshold crop and its own
        margin, and is rebuilt that way, so old checkpoints see what they were trained on."""
        return from_plain(cls, {"roi": "threshold", **d}, "PreprocessConfig")

    def with_(self, **changes: Any) -> PreprocessConfig:
        return dataclasses.replace(self, **changes)
