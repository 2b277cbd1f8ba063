"""``decode(path, backend, reduce)``: stored values of frame 0, any backend, one shape rule."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rsna_pkg.dicom.backend import (
    AUTO,
    CPU,
    Declined,
    Decoded,
    Decoder,
    FrameDecoder,
    candidates,
    get_decoder,
)
from rsna_pkg.dicom.frames import NATIVE_SYNTAXES, frame_mismatch
from rsna_pkg.dicom.header import DicomHeader, read_header
from rsna_pkg.dicom.pixeldata import read_frame
from rsna_pkg.dicom.pixels import area_downsample, reduced_shape
from rsna_pkg.errors import DicomError, describe


@dataclass
class DecodeResult:
    array: np.ndarray  # (ceil(rows / 2**r), ceil(columns / 2**r)) stored values
    header: DicomHeader
    backend: str
    reduce: int
    native_reduce: bool  # came straight from J2K resolution levels
    note: str
    seconds: float


def resolve_decoders(header: DicomHeader, backend: str, reduce: int) -> list[Decoder]:
    """The decoders to try for a name, in order: "auto" (or "cpu") = every available
    per-file decoder of the syntax, cheapest first; a name = that decoder alone."""
    if backend in (AUTO, CPU):
        found = candidates(header, reduce)
        if not found:
            raise DicomError(
                header.path, f"unsupported transfer syntax {header.transfer_syntax_uid}"
            )
        return found
    try:
        chosen = get_decoder(backend)
    except ValueError as exc:
        raise DicomError(header.path, str(exc)) from exc
    if not chosen.available():
        raise DicomError(header.path, f"decoder {backend!r} is not installed")
    if header.transfer_syntax_uid not in chosen.capabilities().syntaxes:
        raise DicomError(
            header.path,
            f"transfer syntax {header.transfer_syntax_uid} not supported by decoder {backend!r}",
        )
    return [chosen]


def resolve_backend(header: DicomHeader, backend: str, reduce: int) -> Decoder:
    """The decoder a name stands for ("auto": the cheapest for the syntax)."""
    return resolve_decoders(header, backend, reduce)[0]


# The largest image decoded. The biggest RSNA mammograms are 5355 x 4915 (26 Mpx); a
# header claiming more than 2**26 pixels (or a side over 16384) is refused before any
# decoder sizes a buffer from it (a 60000 x 60000 header asks for 13 GiB).
MAX_SIDE = 16384
MAX_PIXELS = 2**26
BITS_ALLOCATED = (8, 16, 32)


def header_problem(header: DicomHeader) -> str:
    """Why the header does not describe an image this package decodes ('' when it does):
    one grayscale frame (PS3.3 C.7.6.3.1: MONOCHROME1/2, SamplesPerPixel 1) of a sane size,
    with 1 <= BitsStored <= BitsAllocated in (8, 16, 32) and PixelRepresentation 0 or 1.

    Multi-frame images (NumberOfFrames > 1, e.g. breast tomosynthesis) are refused, not cut
    to their first frame: frame 0 of a DBT stack is one thin slice, not a mammogram."""
    rows, cols = header.rows, header.columns
    if header.number_of_frames != 1:
        return (f"NumberOfFrames={header.number_of_frames}: multi-frame images (e.g. "
                "tomosynthesis) are not decoded, expected 1")  # fmt: skip
    if header.samples_per_pixel != 1:
        return (f"SamplesPerPixel={header.samples_per_pixel} (photometric "
                f"{header.photometric}): not a grayscale image, expected 1")  # fmt: skip
    if header.photometric not in ("MONOCHROME1", "MONOCHROME2"):
        return f"photometric {header.photometric} is not grayscale (MONOCHROME1/2 expected)"
    if rows < 1 or cols < 1:
        return f"Rows x Columns = {rows}x{cols}: empty image"
    if max(rows, cols) > MAX_SIDE or rows * cols > MAX_PIXELS:
        return (f"Rows x Columns = {rows}x{cols} exceeds the {MAX_SIDE} px side / "
                f"{MAX_PIXELS} px limit (refused before decoding)")  # fmt: skip
    if header.bits_allocated not in BITS_ALLOCATED:
        return f"BitsAllocated={header.bits_allocated}, expected 8, 16 or 32"
    if not 1 <= header.bits_stored <= header.bits_allocated:
        return (f"BitsStored={header.bits_stored} outside 1..BitsAllocated="
                f"{header.bits_allocated}")  # fmt: skip
    if header.pixel_representation not in (0, 1):
        return f"PixelRepresentation={header.pixel_representation}, expected 0 or 1"
    return ""


def check_decodable(header: DicomHeader) -> None:
    """Raise DicomError(path, reason) unless :func:`header_problem` finds nothing."""
    problem = header_problem(header)
    if problem:
        raise DicomError(header.path, problem)


def check_frame(header: DicomHeader, frame: bytes) -> None:
    """Raise DicomError when the codestream's own header contradicts the DICOM header."""
    problem = frame_mismatch(frame, header)
    if problem:
        raise DicomError(header.path, problem)


def check_file_frame(path: Path, header: DicomHeader) -> bytes | None:
    """For an encapsulated (compressed) file: read frame 0 and :func:`check_frame` it
    before a decoder that trusts the header (dicomsdl, DALI) decodes it; the frame (None for
    native PixelData), so a decoder of frame bytes need not read the file again."""
    if header.transfer_syntax_uid in NATIVE_SYNTAXES:
        return None  # native: read_pixel_dataset bounds the PixelData length by the header
    frame = read_frame(path, header)
    check_frame(header, frame)
    return frame


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
    decoders = resolve_decoders(header, backend, reduce)
    frame = check_file_frame(path, header)
    declined = []
    for chosen in decoders:
        try:
            if frame is not None and isinstance(chosen, FrameDecoder):
                out = chosen.decode_frame(frame, header, reduce)
            else:
                out = chosen.decode(path, header, reduce)
        except Declined as exc:  # outside what it takes by design: the next one, if any
            declined.append(f"{chosen.name}: {exc}")
            continue
        except DicomError:
            raise
        except Exception as exc:  # a corrupt codestream fails differently in every library
            raise DicomError(path, f"{chosen.name} decode failed ({describe(exc)})") from exc
        break
    else:
        raise DicomError(path, f"declined by {'; '.join(declined)}")
    if declined:
        out.note = "; ".join(n for n in (*declined, out.note) if n)
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
