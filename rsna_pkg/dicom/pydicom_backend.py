"""pydicom 3 ``pixel_array`` (pylibjpeg / Pillow plugins): the reference decoder."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from rsna_pkg.dicom.backend import Capabilities, Decoded, per_syntax
from rsna_pkg.dicom.frames import (
    J2K_SYNTAXES,
    JPEG_LOSSLESS_SYNTAXES,
    NATIVE_SYNTAXES,
    RLE_SYNTAXES,
)
from rsna_pkg.dicom.header import DicomHeader
from rsna_pkg.dicom.pixeldata import read_pixel_dataset
from rsna_pkg.dicom.pixels import to_stored
from rsna_pkg.errors import DicomError


@cache
def _decodable() -> frozenset[str]:
    """Compressed syntaxes whose pydicom decoder has a working plugin installed here."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import AllTransferSyntaxes

    found = set()
    for uid in AllTransferSyntaxes:
        try:
            if get_decoder(uid).is_available:
                found.add(str(uid))
        except NotImplementedError:
            continue
    return frozenset(found)


# ms/Mpx measured (shared/reference/dicom.md): J2K 654 ms / 7.2 Mpx, JPEG lossless SV1 218 ms
# / 7.2 Mpx, RLE 170 ms / 3.2 Mpx; native PixelData is a copy.
MS_PER_MPX = per_syntax([(NATIVE_SYNTAXES, 2.0), (J2K_SYNTAXES, 91.0),
                         (JPEG_LOSSLESS_SYNTAXES, 30.0), (RLE_SYNTAXES, 53.0)])  # fmt: skip


class PydicomDecoder:
    name = "pydicom"

    def available(self) -> bool:
        return True

    def capabilities(self) -> Capabilities:
        return Capabilities(NATIVE_SYNTAXES | _decodable(), ms_per_mpx=MS_PER_MPX)

    def decode(self, path: Path, header: DicomHeader, reduce: int) -> Decoded:
        ds = read_pixel_dataset(path, header)
        if "PixelData" not in ds:
            raise DicomError(path, "no PixelData element")
        arr = ds.pixel_array
        return Decoded(to_stored(arr, header), reduced=False)


DECODER = PydicomDecoder()
