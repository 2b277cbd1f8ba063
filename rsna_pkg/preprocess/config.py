"""PreprocessConfig: everything that decides what a preprocessed image looks like.

It is saved beside every output (``preprocess_config.json``) and inside every checkpoint,
so inference rebuilds exactly the training-time preprocessing from it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from rsna_pkg.dataclass_io import known_fields
from rsna_pkg.errors import InputError

ROI_METHODS = ("segment", "threshold")


@dataclass(frozen=True)
class PreprocessConfig:
    height: int = 1024
    width: int = 512
    bits: int = 8  # 8 -> uint8 PNG, 16 -> uint16 PNG
    backend: str = "auto"  # rsna_pkg.dicom decode backend
    voi_index: int = 0  # which WindowCenter/Width pair (or VOI LUT) to apply
    reduce: bool = True  # decode J2K at the deepest resolution level the crop allows
    crop: bool = True  # crop to the breast's bounding box before resizing
    margin: float = 0.005  # box margin, as a fraction of the image's longer side
    roi: str = "segment"  # breast box: "segment" (breast_mask) or "threshold" (the earlier crop)
    probe_size: int = 256  # long side of the low-resolution decode used to find the box

    def __post_init__(self) -> None:
        if self.height < 8 or self.width < 8:
            raise InputError(f"preprocess size {self.height}x{self.width} is too small")
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
        return cls(**known_fields(cls, {"roi": "threshold", **d}, "PreprocessConfig"))

    def with_(self, **changes: Any) -> PreprocessConfig:
        return dataclasses.replace(self, **changes)
