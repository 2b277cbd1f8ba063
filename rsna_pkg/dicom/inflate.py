"""Deflated Explicit VR Little Endian (PS3.5 A.5) read with a bound on what is inflated.

pydicom inflates the whole data set before reading a single tag, so a 1.46 MB file that
inflates to 1.5 GB cost 4.5 GB of memory just to read its header. Here the data set is
inflated only up to a limit: the header tags come first in a data set (tags ascend,
PS3.5 7.1), and the pixel data after them is bounded by what the header declares
(:mod:`rsna_pkg.dicom.pixeldata`). Nothing past the limit is ever inflated.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any, BinaryIO

DEFLATED = "1.2.840.10008.1.2.1.99"
# The data set before PixelData, inflated, at most: a mammogram's header is tens of KB.
HEADER_INFLATE_LIMIT = 16 * 2**20
CHUNK = 2**16
# Values longer than this are left unread (pydicom's defer_size) unless used: a 1.5 GB
# private element before PixelData was read whole, 5 s and 1.4 GB, though nothing needs it.
DEFER_SIZE = 2**20


def inflate(fp: BinaryIO, limit: int) -> bytes:
    """The raw-deflate stream from ``fp``'s position, inflated to at most ``limit`` bytes."""
    stream = zlib.decompressobj(-zlib.MAX_WBITS)
    out = bytearray()
    while len(out) < limit and not stream.eof:
        chunk = stream.unconsumed_tail or fp.read(CHUNK)
        if not chunk:
            break
        out += stream.decompress(chunk, limit - len(out))
    return bytes(out)


def is_pixel_data(tag: Any, vr: Any, length: int) -> bool:
    """pydicom ``stop_when``: stop at PixelData (7FE0,0010), leaving the stream on its tag."""
    return int(tag) == 0x7FE00010


def read_deflated(
    fp: BinaryIO, limit: int, specific_tags: list[str] | None = None
) -> tuple[Any, BinaryIO]:
    """(Dataset up to PixelData, the inflated stream positioned at PixelData's tag) of a
    Deflated file whose preamble and file meta were read from ``fp`` up to the data set."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filereader import read_dataset
    from pydicom.tag import Tag

    buf: Any = DicomBytesIO(inflate(fp, limit))
    tags: list[Any] | None = None if specific_tags is None else [Tag(t) for t in specific_tags]
    dataset = read_dataset(buf, False, True, stop_when=is_pixel_data, specific_tags=tags)
    return dataset, buf


def open_dataset(
    path: str | Path, limit: int, specific_tags: list[str] | None = None
) -> tuple[Any, BinaryIO]:
    """(dataset up to PixelData, a stream positioned at PixelData's tag) for any syntax;
    a Deflated data set is inflated to at most ``limit`` bytes. The caller closes the
    stream (an open file, or the inflated bytes)."""
    import pydicom
    from pydicom.dataset import FileDataset
    from pydicom.filereader import _read_file_meta_info, read_preamble

    fp: BinaryIO = open(path, "rb")  # noqa: SIM115 - returned open, closed by the caller
    try:
        preamble = read_preamble(fp, False)
        meta = _read_file_meta_info(fp)
        if str(meta.get("TransferSyntaxUID", "")) == DEFLATED:
            dataset, buf = read_deflated(fp, limit, specific_tags)
            fp.close()
            ds = FileDataset(str(path), dataset, preamble, meta, False, True)
            ds.set_original_encoding(False, True, dataset._character_set)
            return ds, buf
        fp.seek(0)
        ds = pydicom.dcmread(fp, stop_before_pixels=True, specific_tags=specific_tags,
                             defer_size=DEFER_SIZE)  # fmt: skip
        return ds, fp
    except BaseException:
        fp.close()
        raise
