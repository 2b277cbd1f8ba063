"""Turn a rendered image into a vendor-style DICOM file.

Stored values, VOI tags (PS3.3 C.11.2.1.2: WindowCenter/Width, VOILUTFunction) and the
encapsulated frame (PS3.5 A.4) follow the machine's profile. JPEG 2000 frames are
written JP2-wrapped or as a bare codestream, JPEG Lossless SV1 frames with imagecodecs'
lossless JPEG encoder (pydicom cannot encode .70).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import imagecodecs
import numpy as np
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, generate_uid

from rsna_pkg.data.synth.machines import MachineProfile

MAMMO_FOR_PRESENTATION = UID("1.2.840.10008.5.1.4.1.1.1.2")
TISSUE_BAND = (0.1, 0.9)  # t values counted as breast tissue when choosing windows


@dataclass(frozen=True)
class Voi:
    centers: tuple[float, ...]
    widths: tuple[float, ...]
    explanations: tuple[str, ...]
    function: str | None


def to_stored(t: np.ndarray, profile: MachineProfile) -> np.ndarray:
    """Map t in [0, 1] into the vendor's stored range; MONOCHROME1 stores it inverted
    (PS3.3 C.7.6.3.1.2: minimum value is white)."""
    top = (1 << profile.bits_stored) - 1
    low = 0.02 * top
    v = np.rint(low + t * (profile.tissue_top * top / 0.9)).clip(0, top)
    if profile.photometric == "MONOCHROME1":
        v = top - v
    return v.astype(np.uint16)


def voi_for(stored: np.ndarray, t: np.ndarray, profile: MachineProfile) -> Voi | None:
    """Windows chosen from the tissue values, as a vendor's processing would."""
    if profile.voi == "none":
        return None
    step = max(1, t.size // 500_000)  # percentiles of a subsample: same window, less sorting
    flat_t, flat_s = t.reshape(-1)[::step], stored.reshape(-1)[::step]
    tissue = flat_s[(flat_t > TISSUE_BAND[0]) & (flat_t < TISSUE_BAND[1])]
    lo, hi = np.percentile(tissue, [0.5, 99.5]) if tissue.size else (0.0, float(stored.max()))
    center, width = (lo + hi) / 2, max(2.0, (hi - lo) * 1.25)
    pairs = [(center, width)]
    if profile.voi == "multi":
        pairs += [(center + 0.05 * width, 0.8 * width), (center - 0.05 * width, 1.3 * width)]
        pairs = pairs[: max(2, len(profile.explanations))]
    return Voi(
        centers=tuple(round(c) for c, _ in pairs),
        widths=tuple(round(w) for _, w in pairs),
        explanations=profile.explanations[: len(pairs)],
        function=profile.voi_function,
    )


def strip_jfif(jpeg: bytes) -> bytes:
    """Drop libjpeg's JFIF APP0 segment: modality JPEG Lossless frames carry none (SOI is
    followed directly by tables/SOF3), and some decoders treat JFIF as 8-bit colour."""
    if jpeg[2:4] == b"\xff\xe0":
        return jpeg[:2] + jpeg[4 + int.from_bytes(jpeg[4:6], "big") :]
    return jpeg


def encode_frame(stored: np.ndarray, profile: MachineProfile, threads: int = 1) -> bytes:
    """Lossless codestream of one frame in the machine's format."""
    bits = profile.bits_stored
    if profile.codec == "ljpeg":
        jpeg = bytes(
            imagecodecs.jpeg8_encode(stored, lossless=True, predictor=1, bitspersample=bits)
        )
        return strip_jfif(jpeg)
    return bytes(
        imagecodecs.jpeg2k_encode(
            stored, level=0, codecformat=profile.codec, reversible=True, bitspersample=bits,
            numthreads=threads,
        )
    )  # fmt: skip


def _ds(values: tuple[float, ...]) -> list[str] | str:
    strs = [f"{v:g}" for v in values]
    return strs[0] if len(strs) == 1 else strs


@dataclass(frozen=True)
class ImageIds:
    patient_id: int
    image_id: int
    laterality: str
    view: str
    seed: int  # dataset seed, for deterministic UIDs


def build_dataset(
    stored: np.ndarray, frame: bytes, voi: Voi | None, ids: ImageIds, profile: MachineProfile
) -> Dataset:
    """A minimal but real header: what readers of the competition data rely on."""
    entropy = [str(ids.seed), str(ids.patient_id)]
    sop_uid = generate_uid(entropy_srcs=entropy + [str(ids.image_id), "sop"])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MAMMO_FOR_PRESENTATION
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = UID(profile.transfer_syntax)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MAMMO_FOR_PRESENTATION
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = generate_uid(entropy_srcs=entropy + ["study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=entropy + [ids.laterality, ids.view, "series"])
    ds.PatientID = str(ids.patient_id)
    ds.Modality = "MG"
    ds.BodyPartExamined = "BREAST"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ImageLaterality = ids.laterality
    ds.ViewPosition = ids.view
    ds.InstanceNumber = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = profile.photometric
    ds.Rows, ds.Columns = stored.shape
    ds.PixelSpacing = [f"{profile.pixel_spacing_mm:g}"] * 2
    ds.BitsAllocated = 16
    ds.BitsStored = profile.bits_stored
    ds.HighBit = profile.bits_stored - 1
    ds.PixelRepresentation = 0
    if profile.sets_rescale:
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "US"
    if voi is not None:
        ds.WindowCenter = _ds(voi.centers)
        ds.WindowWidth = _ds(voi.widths)
        if voi.explanations:
            ds.WindowCenterWidthExplanation = (
                list(voi.explanations) if len(voi.explanations) > 1 else voi.explanations[0]
            )
        if voi.function is not None:
            ds.VOILUTFunction = voi.function
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    return ds


def write_dicom(path: Path, ds: Dataset) -> int:
    """Write with a proper preamble and file meta; returns the file size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path.stat().st_size
