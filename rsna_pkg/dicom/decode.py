"""``decode(path, backend, reduce)``: stored values of frame 0, any backend, one shape rule."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rsna_pkg.dicom.backend import Backend, Decoded, choose_backend, get_backend
from rsna_pkg.dicom.header import DicomHeader, read_header
from rsna_pkg.dicom.pixels import area_downsample, reduced_shape
from rsna_pkg.errors import DicomError


@dataclass
class DecodeResult:
    array: np.ndarray  # (ceil(rows / 2**r), ceil(columns / 2**r)) stored values
    header: DicomHeader
    backend: str
    reduce: int
    native_reduce: bool  # came straight from J2K resolution levels
    note: str
    seconds: float


def resolve_backend(header: DicomHeader, backend: str, reduce: int) -> Backend:
    """The backend object for a name ("auto" = fastest supporting the syntax)."""
    if backend == "auto":
        chosen = choose_backend(header, reduce)
        if chosen is None:
            raise DicomError(
                header.path, f"unsupported transfer syntax {header.transfer_syntax_uid}"
            )
        return chosen
    try:
        chosen = get_backend(backend)
    except ValueError as exc:
        raise DicomError(header.path, str(exc)) from exc
    if not chosen.available():
        raise DicomError(header.path, f"decode backend {backend!r} is not installed")
    if header.transfer_syntax_uid not in chosen.syntaxes():
        raise DicomError(
            header.path,
            f"transfer syntax {header.transfer_syntax_uid} not supported by backend {backend!r}",
        )
    return chosen


def check_decodable(header: DicomHeader) -> None:
    """Grayscale single-frame images only: all a mammogram is."""
    if header.samples_per_pixel != 1:
        raise DicomError(header.path, f"SamplesPerPixel={header.samples_per_pixel}, expected 1")
    if header.number_of_frames != 1:
        raise DicomError(header.path, f"NumberOfFrames={header.number_of_frames}, expected 1")
    if header.photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise DicomError(header.path, f"photometric {header.photometric} is not grayscale")


def finish(out: Decoded, header: DicomHeader, reduce: int) -> np.ndarray:
    """Check a backend's shape and bring a full-resolution output to ``reduce``."""
    arr = out.array
    if not out.reduced:
        if arr.shape != (header.rows, header.columns):
            raise DicomError(
                header.path, f"decoded shape {arr.shape} != header {(header.rows, header.columns)}"
            )
        return area_downsample(arr, reduce)
    if arr.shape != reduced_shape(header.rows, header.columns, reduce):
        raise DicomError(header.path, f"reduced shape {arr.shape} is off the ceil rule")
    return arr


def decode_file(
    path: str | Path, backend: str = "auto", reduce: int = 0, header: DicomHeader | None = None
) -> DecodeResult:
    """Decode with details (which backend, native or area reduce, time)."""
    if reduce < 0:
        raise ValueError(f"reduce must be >= 0, got {reduce}")
    path = Path(path)
    start = time.perf_counter()
    header = header or read_header(path)
    check_decodable(header)
    chosen = resolve_backend(header, backend, reduce)
    try:
        out = chosen.decode(path, header, reduce)
    except DicomError:
        raise
    except Exception as exc:  # a corrupt codestream fails differently in every library
        raise DicomError(
            path, f"{chosen.name} decode failed ({type(exc).__name__}: {exc})"
        ) from exc
    arr = finish(out, header, reduce)
    return DecodeResult(
        array=arr,
        header=header,
        backend=chosen.name,
        reduce=reduce,
        native_reduce=out.reduced and reduce > 0,
        note=out.note,
        seconds=time.perf_counter() - start,
    )


def decode(path: str | Path, backend: str = "auto", reduce: int = 0) -> np.ndarray:
    """Stored values of frame 0: dtype from BitsAllocated, signed when PixelRepresentation=1
    (the header wins over the codestream). ``reduce=r`` shrinks each side to
    ``ceil(n / 2**r)``: J2K resolution levels where the backend can, else an area mean.
    Raises DicomError(path, reason) for any unreadable or undecodable file."""
    return decode_file(path, backend, reduce).array
