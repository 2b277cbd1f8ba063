"""The DICOM header fields the package uses, read once into a frozen dataclass.

Only the listed tags are parsed (``specific_tags``, no pixel data), so a header costs well
under a millisecond. The VOI LUT Sequence (PS3.3 C.11.2.1.1) is carried as plain tuples so
that :func:`rsna_pkg.dicom.apply_voi` needs nothing but the header.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from struct import unpack_from
from typing import Any

from rsna_pkg.errors import DicomError, describe

# Keywords read by read_header (besides the file meta, which pydicom always reads).
HEADER_TAGS: tuple[str, ...] = (
    "Rows", "Columns", "BitsAllocated", "BitsStored", "PixelRepresentation",
    "PhotometricInterpretation", "SamplesPerPixel", "NumberOfFrames",
    "WindowCenter", "WindowWidth", "WindowCenterWidthExplanation", "VOILUTFunction",
    "VOILUTSequence", "RescaleSlope", "RescaleIntercept", "ImageLaterality", "Laterality",
    "ViewPosition", "PatientID", "InstanceNumber", "SOPInstanceUID",
)  # fmt: skip


@dataclass(frozen=True)
class VoiLut:
    """One item of the VOI LUT Sequence: LUT Descriptor (entries, first mapped, bits) + data.

    ``entries`` is what the descriptor declares (0 read as 2**16, C.11.2.1.1); ``data`` is
    what LUT Data holds, which a damaged file can make shorter or longer (checked by
    :func:`rsna_pkg.dicom.voi.voi_plan`). -1: not given (a LUT built in code)."""

    first_mapped: int
    bits: int
    data: tuple[int, ...]
    entries: int = -1


@dataclass(frozen=True)
class DicomHeader:
    """What decoding, windowing and the tables need from one image's header.

    ``image_id`` is the file name stem (the competition names files ``<image_id>.dcm``);
    ``laterality`` comes from ImageLaterality, else Laterality; missing strings are ``""``.
    """

    path: str
    transfer_syntax_uid: str
    rows: int
    columns: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    photometric: str
    samples_per_pixel: int
    number_of_frames: int
    window_centers: tuple[float, ...]
    window_widths: tuple[float, ...]
    window_explanations: tuple[str, ...]
    voi_lut_function: str | None
    voi_luts: tuple[VoiLut, ...]
    rescale_slope: float
    rescale_intercept: float
    has_rescale: bool
    laterality: str
    view: str
    patient_id: str
    image_id: str

    @property
    def has_voi_lut_sequence(self) -> bool:
        return bool(self.voi_luts)

    @property
    def signed(self) -> bool:
        return self.pixel_representation == 1

    @property
    def monochrome1(self) -> bool:
        return self.photometric == "MONOCHROME1"


def _floats(value: Any) -> tuple[float, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return tuple(float(v) for v in value)
    return (float(value),)


def _strings(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return tuple(str(v) for v in value)
    return (str(value),)


def _voi_luts(ds: Any, little_endian: bool) -> tuple[VoiLut, ...]:
    """Items with both LUT Descriptor and LUT Data; others are ignored, as pydicom does."""
    luts = []
    for item in ds.get("VOILUTSequence") or ():
        desc, data = item.get("LUTDescriptor"), item.get("LUTData")
        if desc is None or data is None:
            continue
        entries, first, bits = int(desc[0]) or 2**16, int(desc[1]), int(desc[2])
        if isinstance(data, (bytes, bytearray)):
            count = len(data) // 2  # 16-bit words (OW), however many the descriptor claims
            values = unpack_from(f"{'<' if little_endian else '>'}{count}H", data)
            if count > entries:  # padding after the declared entries
                values = values[:entries]
        else:
            values = tuple(int(v) for v in (data if hasattr(data, "__len__") else [data]))
        luts.append(VoiLut(first_mapped=first, bits=bits, data=tuple(values), entries=entries))
    return tuple(luts)


def header_from_dataset(ds: Any, path: str | Path) -> DicomHeader:
    """Build the header from a pydicom Dataset (with or without pixel data)."""
    meta = getattr(ds, "file_meta", None)
    tsuid = str(getattr(meta, "TransferSyntaxUID", "") or "")
    if not tsuid:
        raise DicomError(path, "no TransferSyntaxUID in the file meta information")
    for key in ("Rows", "Columns", "BitsAllocated", "BitsStored", "PhotometricInterpretation"):
        if ds.get(key) in (None, ""):
            raise DicomError(path, f"missing required tag {key}")
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    little_endian = tsuid != "1.2.840.10008.1.2.2"
    laterality = ds.get("ImageLaterality") or ds.get("Laterality") or ""
    return DicomHeader(
        path=str(path),
        transfer_syntax_uid=tsuid,
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        bits_allocated=int(ds.BitsAllocated),
        bits_stored=int(ds.BitsStored),
        pixel_representation=int(ds.get("PixelRepresentation") or 0),
        photometric=str(ds.PhotometricInterpretation).strip().upper(),
        samples_per_pixel=int(ds.get("SamplesPerPixel") or 1),
        number_of_frames=int(ds.get("NumberOfFrames") or 1),
        window_centers=_floats(ds.get("WindowCenter")),
        window_widths=_floats(ds.get("WindowWidth")),
        window_explanations=_strings(ds.get("WindowCenterWidthExplanation")),
        voi_lut_function=(str(ds.VOILUTFunction).strip().upper() or None)
        if ds.get("VOILUTFunction")
        else None,
        voi_luts=_voi_luts(ds, little_endian),
        rescale_slope=float(slope) if slope not in (None, "") else 1.0,
        rescale_intercept=float(intercept) if intercept not in (None, "") else 0.0,
        has_rescale=slope not in (None, "") and intercept not in (None, ""),
        laterality=str(laterality).strip().upper(),
        view=str(ds.get("ViewPosition") or "").strip().upper(),
        patient_id=str(ds.get("PatientID") or ""),
        image_id=Path(path).stem,
    )


def read_dataset(path: str | Path) -> Any:
    """The header tags (HEADER_TAGS) with our error type, no pixel data; a Deflated file is
    inflated only as far as HEADER_INFLATE_LIMIT (see ``rsna_pkg.dicom.inflate``)."""
    from pydicom.errors import InvalidDicomError

    from rsna_pkg.dicom.inflate import HEADER_INFLATE_LIMIT, open_dataset

    path = Path(path)
    if not path.is_file():
        raise DicomError(path, "file not found")
    if path.stat().st_size == 0:
        raise DicomError(path, "zero-byte file")
    try:
        ds, fp = open_dataset(path, HEADER_INFLATE_LIMIT, list(HEADER_TAGS))
        fp.close()
        return ds
    except InvalidDicomError as exc:
        raise DicomError(path, f"not a DICOM file ({exc})") from exc
    except Exception as exc:  # truncated or garbled files fail in many ways inside pydicom
        raise DicomError(path, f"unreadable DICOM ({describe(exc)})") from exc


def read_header(path: str | Path) -> DicomHeader:
    """The header of one file, without reading its pixel data."""
    ds = read_dataset(path)
    try:
        return header_from_dataset(ds, path)
    except DicomError:
        raise
    except Exception as exc:  # a present but malformed value (e.g. Rows = "abc")
        raise DicomError(path, f"malformed header ({describe(exc)})") from exc
