"""Vendor-like behaviour of each competition machine_id.

Every real machine writes its DICOMs one fixed way (transfer syntax, photometric
interpretation, bits stored, matrix size, VOI tags). The synthetic set copies that:
a reader that handles every profile here handles every kind of file the
competition's data is known to contain (shared/reference/dicom.md).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Literal

JPEG2000_LOSSLESS = "1.2.840.10008.1.2.4.90"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"

# codec name -> transfer syntax; "jp2" is the JP2-wrapped frame RSNA's files carry,
# "j2k" the bare codestream the DICOM standard asks for.
CODEC_SYNTAX = {"jp2": JPEG2000_LOSSLESS, "j2k": JPEG2000_LOSSLESS, "ljpeg": JPEG_LOSSLESS_SV1}
Scale = Literal["small", "full"]
SCALES: tuple[str, ...] = typing.get_args(Scale)


@dataclass(frozen=True)
class MachineProfile:
    """How one machine encodes its images. ``voi`` is "none", "single" or "multi"."""

    machine_id: int
    site_id: int
    codec: str
    photometric: str
    bits_stored: int
    full_shape: tuple[int, int]  # (rows, columns) at --scale full
    pixel_spacing_mm: float
    voi: str
    voi_function: str | None  # "LINEAR", "SIGMOID" or None (tag absent)
    explanations: tuple[str, ...]  # WindowCenterWidthExplanation per window, () = tag absent
    sets_rescale: bool
    tissue_top: float  # fraction of the stored range the densest tissue reaches
    weight: float  # share of images in a large set (site/vendor mix of the real train set)

    @property
    def transfer_syntax(self) -> str:
        return CODEC_SYNTAX[self.codec]

    @property
    def voi_kind(self) -> str:
        """A label for the VOI behaviour, used in summaries and coverage tests."""
        if self.voi == "none":
            return "none"
        return f"{self.voi}-{(self.voi_function or 'LINEAR').lower()}"

    def shape(self, scale: str) -> tuple[int, int]:
        """Matrix size: the vendor's real size, or about a sixth of it (512–800 rows), same aspect."""
        rows, cols = self.full_shape
        if scale == "full":
            return rows, cols
        small_rows = min(800, max(512, round(rows / 6)))
        return small_rows, round(small_rows * cols / rows)

    def mm_per_pixel(self, scale: str) -> float:
        """Physical size of one pixel: the same breast in fewer pixels at --scale small."""
        return self.pixel_spacing_mm * self.full_shape[0] / self.shape(scale)[0]


# Weights follow the real image shares roughly: site 1 ~54 %, site 2 ~46 %; the two SIGMOID
# machines (29, 93) plus 216 carry ~22 % of the images, as SIGMOID files do in the real set.
_P = MachineProfile
MACHINES: dict[int, MachineProfile] = {
    p.machine_id: p
    for p in (
        # id, site, codec, photometric, bits, (rows, cols), mm, voi, function, explanations,
        # rescale, tissue_top, weight
        _P(49, 1, "jp2", "MONOCHROME2", 12, (4096, 3328), 0.065, "multi", "LINEAR",
           ("NORMAL", "HARDER", "SOFTER"), True, 0.85, 0.40),
        _P(93, 1, "jp2", "MONOCHROME1", 14, (2294, 1914), 0.1, "single", "SIGMOID",
           (), False, 0.70, 0.04),
        _P(170, 1, "ljpeg", "MONOCHROME2", 16, (2776, 2082), 0.1, "none", None,
           (), False, 0.60, 0.02),
        _P(190, 1, "j2k", "MONOCHROME2", 12, (3328, 2560), 0.085, "single", "LINEAR",
           ("USER",), True, 0.80, 0.01),
        _P(197, 1, "j2k", "MONOCHROME1", 16, (4096, 3328), 0.065, "none", None,
           (), False, 0.55, 0.03),
        _P(210, 1, "jp2", "MONOCHROME2", 10, (2294, 1914), 0.1, "single", "LINEAR",
           (), True, 0.90, 0.04),
        _P(216, 1, "ljpeg", "MONOCHROME2", 14, (3062, 2394), 0.1, "multi", "SIGMOID",
           ("WINDOW1", "WINDOW2"), False, 0.75, 0.01),
        _P(21, 2, "ljpeg", "MONOCHROME1", 10, (2294, 1914), 0.1, "single", "LINEAR",
           ("STANDARD",), False, 0.90, 0.08),
        _P(29, 2, "jp2", "MONOCHROME1", 14, (3062, 2394), 0.1, "single", "SIGMOID",
           (), False, 0.70, 0.17),
        _P(48, 2, "jp2", "MONOCHROME2", 12, (3328, 2560), 0.085, "multi", "LINEAR",
           ("WINDOW1", "WINDOW2"), True, 0.80, 0.20),
    )
}  # fmt: skip
