"""libjpeg-turbo (through imagecodecs' ``jpeg8_decode``) for JPEG Lossless, process 14.

libjpeg-turbo 3 decodes lossless JPEG (ITU T.81 H, SOF3) of 2 to 16 bits with every
predictor (selection values 1-7, so both .57 and .70) and is bit-exact with pydicom on them
(tests/test_decoders.py). It is the fastest full decode of .70 measured here: a 2776x2082
16-bit frame in 41 ms against dicomsdl's 71 ms (shared/reference/dicom.md, quiet machine).

What it declines by design, from the frame header before decoding (``auto`` then takes the
next decoder): a frame that is not lossless Huffman (SOF3), with more than one component,
outside 2..16 bits, or whose height is left to a DNL marker (libjpeg-turbo does not read it).
"""

from __future__ import annotations

from rsna_pkg.dicom.backend import (
    Capabilities,
    Declined,
    Decoded,
    ReadsFrame,
    imagecodecs_has,
    per_syntax,
)
from rsna_pkg.dicom.frames import JPEG_LOSSLESS_SYNTAXES, jpeg_info, sniff_codec
from rsna_pkg.dicom.header import DicomHeader
from rsna_pkg.dicom.pixels import to_stored

# ms/Mpx measured (shared/reference/dicom.md): 41 ms / 5.78 Mpx.
MS_PER_MPX = per_syntax([(JPEG_LOSSLESS_SYNTAXES, 7.1)])


def refusal(frame: bytes) -> str:
    """Why libjpeg-turbo does not take this frame by design ('' when it does)."""
    if sniff_codec(frame) != "jpeg":
        return f"not a JPEG frame (starts {frame[:8].hex()})"
    try:
        info = jpeg_info(frame)
    except (ValueError, IndexError) as exc:
        return f"mangled JPEG header ({exc})"
    if info.sof != 0xC3:
        return f"SOF marker FF{info.sof:02X} is not lossless Huffman (FFC3)"
    if info.components != 1:
        return f"{info.components} components"
    if not 2 <= info.precision <= 16:
        return f"precision {info.precision} bits outside 2..16"
    if info.height == 0:
        return "height defined by a DNL marker"
    return ""


class LibjpegTurboDecoder(ReadsFrame):
    name = "libjpeg-turbo"

    def available(self) -> bool:
        return imagecodecs_has("JPEG8")

    def capabilities(self) -> Capabilities:
        return Capabilities(JPEG_LOSSLESS_SYNTAXES, ms_per_mpx=MS_PER_MPX)

    def decode_frame(self, frame: bytes, header: DicomHeader, reduce: int = 0) -> Decoded:
        import imagecodecs

        reason = refusal(frame)
        if reason:
            raise Declined(reason)
        return Decoded(to_stored(imagecodecs.jpeg8_decode(frame), header), reduced=False)


DECODER = LibjpegTurboDecoder()
