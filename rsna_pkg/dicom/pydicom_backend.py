"""pydicom 3 ``pixel_array`` (pylibjpeg / Pillow plugins): the reference decoder."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from rsna_pkg.dicom.backend import Decoded
from rsna_pkg.dicom.frames import NATIVE_SYNTAXES
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


class PydicomBackend:
    name = "pydicom"

    def available(self) -> bool:
        return True

    def syntaxes(self) -> frozenset[str]:
        return NATIVE_SYNTAXES | _decodable()

    def decode(self, path: Path, header: DicomHeader, reduce: int) -> Decoded:
        ds = read_pixel_dataset(path, header)
        if "PixelData" not in ds:
            raise DicomError(path, "no PixelData element")
        arr = ds.pixel_array
        return Decoded(to_stored(arr, header), reduced=False)


BACKEND = PydicomBackend()
