"""Helpers for the DICOM tests: real test files and small in-memory datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

J2K = "1.2.840.10008.1.2.4.90"
LJPEG = "1.2.840.10008.1.2.4.70"
LJPEG_ANY = "1.2.840.10008.1.2.4.57"  # process 14, any selection value

# real file -> ground-truth file (its uncompressed twin) or None (compare with pydicom)
REAL_FILES: dict[str, str | None] = {
    "RG1_J2KR": "RG1_UNCR",  # MONOCHROME1, 15 bits
    "RG3_J2KR": "RG3_UNCR",  # MONOCHROME1, 10 bits
    "MR2_J2KR": "MR2_UNCR",  # 12 bits, rescale
    "693_J2KR": "693_UNCR",  # signed
    "J2K_pixelrep_mismatch": None,  # codestream unsigned, header signed
    "JPEG-LL": None,  # JPEG lossless .70, 16 bits signed header
    "JPGLosslessP14SV1_1s_1f_8b": None,  # JPEG lossless .70, 8 bits
    "RG1_UNCR": None,
    "vlut_04": None,  # VOI LUT Sequence
}


def real(name: str) -> Path:
    path = get_testdata_file(f"{name}.dcm")
    assert path is not None, name
    return Path(path)


def make_dataset(stored: np.ndarray, *, signed: bool = False, bits_stored: int = 12,
                 photometric: str = "MONOCHROME2", bits_allocated: int = 16,
                 **tags: object) -> Dataset:  # fmt: skip
    """Uncompressed grayscale dataset holding ``stored``; extra tags by keyword."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.PatientID = "7"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = int(signed)
    dtype = f"{'i' if signed else 'u'}{bits_allocated // 8}"
    ds.PixelData = stored.astype(dtype).tobytes()
    for key, value in tags.items():
        setattr(ds, key, value)
    return ds


def write(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def encapsulated(stored: np.ndarray, frame: bytes, tsuid: str, bits_stored: int,
                 signed: bool = False, photometric: str = "MONOCHROME2") -> Dataset:  # fmt: skip
    """A dataset whose PixelData is one encapsulated compressed frame (BitsAllocated 8 up
    to 8 bits stored, else 16)."""
    ds = make_dataset(stored, signed=signed, bits_stored=bits_stored, photometric=photometric,
                      bits_allocated=8 if bits_stored <= 8 else 16)  # fmt: skip
    ds.file_meta.TransferSyntaxUID = tsuid
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    return ds


def phantom(rows: int = 96, cols: int = 64, bits: int = 12, seed: int = 0,
            side: str = "left") -> np.ndarray:  # fmt: skip
    """A bright half-disc 'breast' against one side, a small bright 'label' in the opposite
    corner, noise; unsigned stored values below 2**bits."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols]
    cx = 0 if side == "left" else cols - 1
    r = np.hypot((yy - rows / 2) / (rows * 0.42), (xx - cx) / (cols * 0.6))
    top = (1 << bits) - 1
    img = np.where(r < 1, 0.55 + 0.25 * (1 - r), 0.05) * top
    img += rng.normal(0, 0.01 * top, size=img.shape)
    lx = cols - 6 if side == "left" else 2
    img[2:6, lx : lx + 4] = top  # burned-in marker, opposite side
    return np.clip(np.rint(img), 0, top).astype(np.uint16)


def _low_pass_53(x: np.ndarray, axis: int) -> np.ndarray:
    """One level of the reversible 5/3 lifting (ISO 15444-1 F.3.8.2) along ``axis``, low-pass
    half only, for samples anchored at index 0, with whole-sample symmetric extension."""
    x = np.moveaxis(x.astype(np.int64), axis, 0)
    if x.shape[0] == 1:
        return np.moveaxis(x, 0, axis)
    even, odd = x[0::2], x[1::2]
    # x[2k + 2] beside each odd sample; an even-length signal mirrors x[n] to x[n - 2]
    right = even[1:] if x.shape[0] % 2 else np.concatenate([even[1:], even[-1:]])
    d = odd - np.floor_divide(even[: len(odd)] + right, 2)
    d_left = np.concatenate([d[:1], d])[: len(even)]  # d[k - 1], d[-1] mirrored to d[0]
    d_right = np.concatenate([d, d[-1:]])[: len(even)]  # d[k], past the end mirrored
    return np.moveaxis(even + np.floor_divide(d_left + d_right + 2, 4), 0, axis)


def ll_band(img: np.ndarray, levels: int) -> np.ndarray:
    """The LL band after ``levels`` levels of the reversible 5/3 wavelet, vertical then
    horizontal at each level (F.4.8.2): what an exact decoder returns at resolution level
    ``levels`` of a lossless single-tile codestream, before clipping to the sample range."""
    out = img.astype(np.int64)
    for _ in range(levels):
        out = _low_pass_53(_low_pass_53(out, 0), 1)
    return out


def j2k_file(tmp_path: Path, name: str, img: np.ndarray, bits: int, signed_header: bool = False,
             photometric: str = "MONOCHROME2", fmt: str = "JP2") -> Path:  # fmt: skip
    """A J2K (JP2-wrapped or bare) DICOM of ``img`` with a LINEAR window."""
    import imagecodecs

    frame = imagecodecs.jpeg2k_encode(img, level=0, codecformat=fmt, reversible=True,
                                      bitspersample=bits)  # fmt: skip
    signed = signed_header or img.dtype.kind == "i"
    ds = encapsulated(img, frame, J2K, bits, signed=signed, photometric=photometric)
    ds.WindowCenter, ds.WindowWidth = 1 << (bits - 1), 1 << (bits - 2)
    return write(ds, tmp_path / f"{name}.dcm")


def good_and_cut_j2k(tmp_path: Path) -> tuple[np.ndarray, Path, Path]:
    """A 12-bit image, a good J2K file of it, and one whose main header is intact (a batch decoder takes it
    by design) but whose body is cut, so it decodes nowhere."""
    import imagecodecs

    img = phantom(24, 24, bits=12)
    good = j2k_file(tmp_path, "good", img, 12)
    frame = imagecodecs.jpeg2k_encode(img, level=0, codecformat="J2K", reversible=True,
                                      bitspersample=12)  # fmt: skip
    cut = write(encapsulated(img, frame[: len(frame) // 3], J2K, 12), tmp_path / "cut.dcm")
    return img, good, cut


def assert_windowed_equals_apply_voi(decoder: object, files: list[Path]) -> None:
    """A batch decoder's ``decode_windowed`` equals pydicom's pixels through apply_voi."""
    import pydicom
    import torch

    from rsna_pkg.dicom import apply_voi, read_header

    out = decoder.decode_windowed(files)  # type: ignore[attr-defined]
    for path, t in zip(files, out, strict=True):
        assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
        ref = apply_voi(pydicom.dcmread(path).pixel_array, read_header(path))
        np.testing.assert_allclose(t.numpy(), ref, atol=1e-5)


def ljpeg_frame(img: np.ndarray, bits: int, predictor: int = 1, dnl: bool = False) -> bytes:
    """A lossless JPEG (process 14, ITU T.81 H) frame of ``img`` with selection value
    ``predictor``, as libjpeg-turbo writes it, without its JFIF APP0 (modality frames carry
    none). ``dnl``: the height left out of SOF3 and given in a DNL marker after the scan
    (T.81 B.2.5), as some modalities write it. libjpeg-turbo cannot write restart markers
    through imagecodecs (no restart interval option): ``ljpeg_restart_frame`` does."""
    import imagecodecs

    data = img.astype(np.uint8 if bits <= 8 else np.uint16)
    jpeg = bytes(imagecodecs.jpeg8_encode(data, lossless=True, predictor=predictor,
                                          bitspersample=bits))  # fmt: skip
    if jpeg[2:4] == b"\xff\xe0":
        jpeg = jpeg[:2] + jpeg[4 + int.from_bytes(jpeg[4:6], "big") :]
    if dnl:
        sof = jpeg.index(b"\xff\xc3")
        assert jpeg.endswith(b"\xff\xd9")
        height = jpeg[sof + 5 : sof + 7]
        jpeg = jpeg[: sof + 5] + b"\0\0" + jpeg[sof + 7 : -2] + b"\xff\xdc\x00\x04" + height
        jpeg += b"\xff\xd9"
    return jpeg


def ljpeg_file(tmp_path: Path, name: str, img: np.ndarray, bits: int, predictor: int = 1,
               tsuid: str = LJPEG, photometric: str = "MONOCHROME2", signed_header: bool = False,
               dnl: bool = False) -> Path:  # fmt: skip
    """A JPEG Lossless DICOM (.70 takes selection value 1 only, .57 any of 1-7)."""
    frame = ljpeg_frame(img, bits, predictor, dnl)
    ds = encapsulated(img, frame, tsuid, bits, signed=signed_header, photometric=photometric)
    return write(ds, tmp_path / f"{name}.dcm")


def ljpeg_restart_frame(
    img: np.ndarray, bits: int, predictor: int, rows_per_interval: int
) -> bytes:
    """A lossless JPEG frame (ITU T.81 H, SOF3) written here, with a restart marker every
    ``rows_per_interval`` rows (DRI, RSTm: T.81 B.2.4.4, E.1.4), which libjpeg-turbo cannot
    write through imagecodecs. One Huffman table of 5-bit codes for the 17 difference
    categories; prediction per H.1.2.1 (each restart interval starts like the image: the
    first sample predicted by 2**(P-1), the rest of its first row by Ra, first columns by Rb)."""
    import struct

    rows, cols = img.shape
    x = img.astype(np.int64)
    out = bytearray(b"\xff\xd8")
    out += b"\xff\xc3" + struct.pack(">HBHHBBBB", 11, bits, rows, cols, 1, 1, 0x11, 0)
    counts = [0, 0, 0, 0, 17] + [0] * 11  # 17 symbols (categories 0-16), all 5 bits long
    out += b"\xff\xc4" + struct.pack(">HB", 3 + 16 + 17, 0) + bytes(counts) + bytes(range(17))
    out += b"\xff\xdd" + struct.pack(">HH", 4, rows_per_interval * cols)
    out += b"\xff\xda" + struct.pack(">HBBBBBB", 8, 1, 1, 0x00, predictor, 0, 0)
    acc, nbits, scan = 0, 0, bytearray()

    def put(value: int, n: int) -> None:
        nonlocal acc, nbits
        acc, nbits = (acc << n) | (value & ((1 << n) - 1)), nbits + n
        while nbits >= 8:
            byte = (acc >> (nbits - 8)) & 0xFF
            nbits -= 8
            scan.append(byte)
            if byte == 0xFF:
                scan.append(0)  # byte stuffing

    for y in range(rows):
        start = y % rows_per_interval == 0  # the first row of a restart interval
        if start and y:
            if nbits:
                put((1 << (8 - nbits)) - 1, 8 - nbits)  # pad with 1-bits to a byte
            scan.extend(b"\xff" + bytes([0xD0 + (y // rows_per_interval - 1) % 8]))
        for c in range(cols):
            ra = x[y, c - 1] if c else 0
            rb = x[y - 1, c] if y else 0
            rc = x[y - 1, c - 1] if y and c else 0
            if start and c == 0:
                pred = 1 << (bits - 1)
            elif start:
                pred = ra
            elif c == 0:
                pred = rb
            else:
                pred = [ra, rb, rc, ra + rb - rc, ra + ((rb - rc) >> 1), rb + ((ra - rc) >> 1),
                        (ra + rb) >> 1][predictor - 1]  # fmt: skip
            diff = (int(x[y, c]) - int(pred)) % 65536
            diff = diff - 65536 if diff > 32768 else diff
            ssss = 16 if diff == 32768 else abs(diff).bit_length()
            put(ssss, 5)
            if 0 < ssss < 16:
                put(diff if diff > 0 else diff - 1, ssss)
    if nbits:
        put((1 << (8 - nbits)) - 1, 8 - nbits)
    return bytes(out + scan + b"\xff\xd9")
