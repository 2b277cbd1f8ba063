"""Decompression bombs under the pixel limit: small (or sparse) files whose PixelData
claims or inflates to 1.5 GB behind an honest 96 x 64 header. Each is written in well
under a second: the 1.5 GB exist only as a length field, a sparse hole, or a deflate
block of zeros repeated."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import imagecodecs
import numpy as np
from dicom_cases import J2K, make_dataset
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian

BOMB_BYTES = 1_500_000_000
PIXEL_DATA_TAG = struct.pack("<HH", 0x7FE0, 0x0010)
ITEM, SEQUENCE_END = struct.pack("<HH", 0xFFFE, 0xE000), struct.pack("<HH", 0xFFFE, 0xE0DD)


def header_only(img: np.ndarray, tsuid: str) -> Dataset:
    ds = make_dataset(img)
    ds.file_meta.TransferSyntaxUID = tsuid
    del ds.PixelData
    return ds


def file_meta_bytes(ds: Dataset) -> bytes:
    """Preamble, DICM and the file meta group."""
    fp = DicomBytesIO()
    fp.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(fp, ds.file_meta, enforce_standard=True)
    return fp.getvalue()


def data_set_bytes(ds: Dataset) -> bytes:
    """The data set (no PixelData) in Explicit VR Little Endian."""
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_dataset(fp, ds)
    return fp.getvalue()


def pixel_header(vr: bytes, length: int) -> bytes:
    return PIXEL_DATA_TAG + vr + b"\0\0" + struct.pack("<I", length)


def deflate_bomb(img: np.ndarray, path: Path) -> Path:
    """Deflated Explicit VR LE whose PixelData (declared 1.5e9 bytes, OW) inflates to
    1.5 GB of zeros from about 1.5 MB: one compressed MiB of zeros, ended by a full flush
    (so it refers to nothing before it), repeated."""
    ds = header_only(img, DeflatedExplicitVRLittleEndian)
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    head = packer.compress(data_set_bytes(ds) + pixel_header(b"OW", BOMB_BYTES))
    head += packer.flush(zlib.Z_FULL_FLUSH)
    mib = packer.compress(b"\0" * 2**20) + packer.flush(zlib.Z_FULL_FLUSH)
    final_empty_block = b"\x03\x00"
    body = head + mib * (BOMB_BYTES // 2**20 + 1) + final_empty_block
    path.write_bytes(file_meta_bytes(ds) + body)
    return path


def native_length_bomb(img: np.ndarray, path: Path) -> Path:
    """Explicit VR LE whose PixelData length field says 1.5e9, over a sparse file that
    is that long (a few KB on disk)."""
    ds = header_only(img, "1.2.840.10008.1.2.1")
    with open(path, "wb") as f:
        f.write(file_meta_bytes(ds) + data_set_bytes(ds) + pixel_header(b"OW", BOMB_BYTES))
        f.write(img.astype("<u2").tobytes())
        f.truncate(f.tell() - img.nbytes + BOMB_BYTES)
    return path


def j2k_fragment_bomb(img: np.ndarray, path: Path) -> Path:
    """J2K whose one fragment is its honest codestream padded (sparse) to 1.5 GB."""
    frame = bytes(imagecodecs.jpeg2k_encode(img, level=0, codecformat="JP2", reversible=True,
                                            bitspersample=12))  # fmt: skip
    ds = header_only(img, J2K)
    with open(path, "wb") as f:
        f.write(file_meta_bytes(ds) + data_set_bytes(ds) + pixel_header(b"OB", 0xFFFFFFFF))
        f.write(ITEM + struct.pack("<I", 0))  # empty basic offset table
        f.write(ITEM + struct.pack("<I", BOMB_BYTES) + frame)
        f.seek(BOMB_BYTES - len(frame), 1)
        f.write(SEQUENCE_END + struct.pack("<I", 0))
    return path


def many_fragments_bomb(img: np.ndarray, path: Path) -> Path:
    """J2K: the honest codestream, then 2,000 sparse 1 MiB fragments (2 GB on paper):
    each fragment is small, their sum is not."""
    frame = bytes(imagecodecs.jpeg2k_encode(img, level=0, codecformat="JP2", reversible=True,
                                            bitspersample=12))  # fmt: skip
    frame += b"\0" * (len(frame) % 2)
    ds = header_only(img, J2K)
    with open(path, "wb") as f:
        f.write(file_meta_bytes(ds) + data_set_bytes(ds) + pixel_header(b"OB", 0xFFFFFFFF))
        f.write(ITEM + struct.pack("<I", 0) + ITEM + struct.pack("<I", len(frame)) + frame)
        for _ in range(2000):
            f.write(ITEM + struct.pack("<I", 2**20))
            f.seek(2**20, 1)
        f.write(SEQUENCE_END + struct.pack("<I", 0))
    return path


def private_element_bomb(img: np.ndarray, path: Path) -> Path:
    """A good native image behind a private OB element of 1.5e9 bytes (sparse): nothing
    needs the element, so it must not be read."""
    ds = header_only(img, "1.2.840.10008.1.2.1")
    creator = struct.pack("<HH", 0x0029, 0x0010) + b"LO" + struct.pack("<H", 4) + b"ACME"
    blob = struct.pack("<HH", 0x0029, 0x1010) + b"OB\0\0" + struct.pack("<I", BOMB_BYTES)
    with open(path, "wb") as f:
        f.write(file_meta_bytes(ds) + data_set_bytes(ds) + creator + blob)
        f.seek(BOMB_BYTES, 1)
        f.write(pixel_header(b"OW", img.nbytes) + img.astype("<u2").tobytes())
    return path


BOMBS = {
    "deflate_bomb": deflate_bomb,
    "native_length_bomb": native_length_bomb,
    "j2k_fragment_bomb": j2k_fragment_bomb,
    "many_fragments_bomb": many_fragments_bomb,
    "private_element_bomb": private_element_bomb,
}
