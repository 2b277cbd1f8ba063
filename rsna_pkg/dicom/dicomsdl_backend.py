"""dicomsdl: the fastest full-resolution decoder of J2K measured here, and a JPEG lossless
decoder.

Not RLE: dicomsdl aborts the whole process (heap corruption, "free(): invalid next size") on
an RLE frame that holds more pixels than the header's Rows x Columns, which no header check
can see short of decoding the segments; imagecodecs' RLE codec (``rle_backend``) decodes
RLE about 3x faster and refuses such a frame with an error."""

from __future__ import annotations

from pathlib import Path

from rsna_pkg.dicom.backend import Capabilities, Declined, Decoded, importable, per_syntax
from rsna_pkg.dicom.frames import (
    J2K_SYNTAXES,
    JPEG_LOSSLESS_SYNTAXES,
    jpeg_info,
)
from rsna_pkg.dicom.header import DicomHeader
from rsna_pkg.dicom.pixeldata import read_frame
from rsna_pkg.dicom.pixels import to_stored
from rsna_pkg.errors import DicomError

# Compressed syntaxes only, by design: dicomsdl kills the process (no exception) when it
# opens a truncated uncompressed file, and pydicom reads those fast anyway.
SYNTAXES = J2K_SYNTAXES | JPEG_LOSSLESS_SYNTAXES
# ms/Mpx measured (shared/reference/dicom.md): J2K 593 ms / 7.2 Mpx, JPEG lossless SV1
# 71 ms / 5.78 Mpx.
MS_PER_MPX = per_syntax([(J2K_SYNTAXES, 82.0), (JPEG_LOSSLESS_SYNTAXES, 12.3)])


class DicomsdlDecoder:
    name = "dicomsdl"

    def available(self) -> bool:
        return importable("dicomsdl")

    def capabilities(self) -> Capabilities:
        return Capabilities(SYNTAXES, ms_per_mpx=MS_PER_MPX)

    def decode(self, path: Path, header: DicomHeader, reduce: int) -> Decoded:
        import dicomsdl

        if header.transfer_syntax_uid in JPEG_LOSSLESS_SYNTAXES:
            # dicomsdl decodes lossless JPEG with libjpeg-turbo, which does not read DNL.
            frame = read_frame(path, header)
            try:
                dnl = jpeg_info(frame).height == 0
            except (ValueError, IndexError):
                dnl = False  # left to the decoder, which reports the mangled header
            if dnl:
                raise Declined("height defined by a DNL marker")

        dset = dicomsdl.open(str(path))
        # dicomsdl crashes the process (no exception) on an absent or short PixelData.
        elem = dset.getDataElement("PixelData")
        if elem.vr() == dicomsdl.VR.NONE:
            raise DicomError(path, "no PixelData element")
        if elem.vr() != dicomsdl.VR.PIXSEQ:
            raise DicomError(path, "PixelData is not encapsulated")
        # storedvalue=True: raw stored values, not float32 with the rescale applied.
        arr = dset.pixelData(storedvalue=True)
        return Decoded(to_stored(arr, header), reduced=False)


DECODER = DicomsdlDecoder()
