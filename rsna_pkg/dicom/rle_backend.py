"""imagecodecs' own DICOM RLE codec (``dicomrle_decode``) for RLE Lossless (PS3.5 G).

It decodes a 2294x1914 frame (two byte segments) in 5.7 ms against dicomsdl's 16.5 ms, and
it takes the frame bytes the caller has already read and checked, where dicomsdl opens the
file again. Bit-exact with pydicom on the suite's RLE cases (tests/test_decoders.py).

Declined by design (``auto`` then takes pydicom): BitsAllocated other than 8 or 16 (no
encoder here writes a 32-bit RLE file to test against). A frame that does not fit the header
is refused with an error, not decoded: imagecodecs checks the segment count against the
sample size, and the decode must fill exactly Rows x Columns (dicomsdl, which RLE used to go
to, aborts the process on a frame larger than the header).
"""

from __future__ import annotations

import numpy as np

from rsna_pkg.dicom.backend import (
    Capabilities,
    Declined,
    Decoded,
    ReadsFrame,
    imagecodecs_has,
    per_syntax,
)
from rsna_pkg.dicom.frames import RLE_SYNTAXES
from rsna_pkg.dicom.header import DicomHeader
from rsna_pkg.dicom.pixels import to_stored

# ms/Mpx measured: 5.7 ms / 4.39 Mpx (2294x1914, 10 bits in 16), quiet machine, best of 9.
MS_PER_MPX = per_syntax([(RLE_SYNTAXES, 1.3)])


class RleDecoder(ReadsFrame):
    name = "imagecodecs-rle"

    def available(self) -> bool:
        return imagecodecs_has("DICOMRLE")

    def capabilities(self) -> Capabilities:
        return Capabilities(RLE_SYNTAXES, ms_per_mpx=MS_PER_MPX)

    def decode_frame(self, frame: bytes, header: DicomHeader, reduce: int = 0) -> Decoded:
        import imagecodecs

        if header.bits_allocated not in (8, 16):
            raise Declined(f"BitsAllocated={header.bits_allocated} (8 or 16 taken)")
        # unsigned, most significant segment first as PS3.5 G.2 orders them; the header's
        # sign is applied by to_stored, as for every decoder
        dtype = np.dtype(f"<u{header.bits_allocated // 8}")
        pixels = header.rows * header.columns
        # decoded into a writable buffer of exactly the header's size: imagecodecs refuses
        # a frame that decodes to more, and returns the part it filled of one that is short
        out = np.empty(pixels * dtype.itemsize, np.uint8)
        try:
            filled = len(imagecodecs.dicomrle_decode(frame, dtype, out=out.data))
        except Exception as exc:
            if "OUTPUT_TOO_SMALL" not in str(exc):
                raise
            raise ValueError(f"RLE frame holds more than the {out.size} bytes of the header's "
                             f"Rows x Columns = {header.rows}x{header.columns}") from None  # fmt: skip
        if filled != out.size:
            raise ValueError(f"RLE frame decodes to {filled} bytes, the header's Rows x "
                             f"Columns = {header.rows}x{header.columns} needs {out.size}")  # fmt: skip
        raw = out.view(dtype).reshape(header.rows, header.columns)
        return Decoded(to_stored(raw, header), reduced=False)


DECODER = RleDecoder()
