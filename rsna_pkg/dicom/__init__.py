"""DICOM at the edge: the header, pixel decoding behind several backends, and windowing.

Heavy libraries (dicomsdl, imagecodecs, Pillow, DALI, torch) are imported inside the
functions that use them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rsna_pkg.dicom.backend import CHOICES as DECODER_CHOICES
from rsna_pkg.dicom.backend import available_backends, available_decoders
from rsna_pkg.dicom.decode import DecodeResult, decode, decode_file
from rsna_pkg.dicom.header import DicomHeader, VoiLut, read_header
from rsna_pkg.dicom.image import MAX_REDUCE, DicomImage, Level, open_image
from rsna_pkg.dicom.pixels import AreaPyramid, area_downsample, reduced_shape
from rsna_pkg.dicom.voi import apply_voi, oriented_values, voi_plan

if TYPE_CHECKING:
    import torch


def apply_voi_torch(stored: torch.Tensor, header: DicomHeader, index: int = 0) -> torch.Tensor:
    """Torch twin of apply_voi on any device (torch is imported on first use)."""
    from rsna_pkg.dicom.voi_torch import apply_voi_torch as impl

    return impl(stored, header, index)


__all__ = [
    "DECODER_CHOICES",
    "MAX_REDUCE",
    "AreaPyramid",
    "DecodeResult",
    "DicomHeader",
    "DicomImage",
    "Level",
    "VoiLut",
    "apply_voi",
    "apply_voi_torch",
    "area_downsample",
    "available_backends",
    "available_decoders",
    "decode",
    "decode_file",
    "open_image",
    "oriented_values",
    "read_header",
    "reduced_shape",
    "voi_plan",
]
