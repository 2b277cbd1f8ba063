"""NVIDIA DALI decoding, batched: frame bytes -> ``fn.decoders.image`` on "mixed" (GPU) or
"cpu" -> stored values, windowed on the same device.

DALI ignores the DICOM header and has traps (dicom.md): it may scale a p-bit codestream to
the full UINT16 range, it cannot hold UINT16 in a torch tensor, and it fails on signed
codestreams. So: the pipeline casts to INT32 on the device (no int16 wrap); the scale DALI
applies to each (codec, precision) is measured once on a tiny probe image with known values
and undone, and verified exact on the probe (else that kind goes to the fallback);
signedness and MONOCHROME1 come from the header; files DALI cannot take by design
(signed codestreams, JPEG lossless on "cpu") and batches DALI fails on go to a CPU backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from rsna_pkg.dicom.backend import Decoded
from rsna_pkg.dicom.batch import BatchDecoder, Item, pick_device, probe_frame, to_header_values
from rsna_pkg.dicom.frames import (
    J2K_SYNTAXES,
    JPEG_LOSSLESS_SYNTAXES,
    j2k_info,
    jpeg_precision,
    sniff_codec,
)
from rsna_pkg.dicom.header import DicomHeader
from rsna_pkg.dicom.pixels import stored_dtype

__all__ = ["DaliDecoder", "Item", "dali_importable", "probe_frame"]


def dali_importable() -> bool:
    try:
        import nvidia.dali  # noqa: F401
    except ImportError:
        return False
    return True


class DaliDecoder(BatchDecoder):
    """``decode_batch(paths)`` -> stored values per file (np.ndarray on "cpu", int32-safe
    torch CUDA tensors in the header's dtype on "mixed"); ``decode_windowed(paths)`` ->
    float32 [0, 1] tensors on that device. ``last_sources[i]`` says who decoded file i
    ("dali" or "fallback:<backend>: reason"). Raises DicomError for files no backend can read.
    """

    source, label = "dali", "DALI"

    def __init__(self, batch_size: int = 8, device: str = "auto", device_id: int | None = None,
                 num_threads: int = 2, fallback: str = "dicomsdl") -> None:  # fmt: skip
        self.device = device = pick_device(device, "mixed")
        self.device_id = (device_id or 0) if device == "mixed" else None
        self.batch_size = batch_size
        self.num_threads = num_threads
        self.fallback = fallback
        self.last_sources: list[str] = []
        self._pipe: Any = None
        self._scales: dict[tuple[str, int], float | None] = {}

    # -- what DALI takes by design -------------------------------------------------------
    def syntaxes(self) -> frozenset[str]:
        # CPU DALI has no lossless-JPEG decoder; nvJPEG on the GPU has (DALI >= 1.24).
        return J2K_SYNTAXES | (JPEG_LOSSLESS_SYNTAXES if self.device == "mixed" else frozenset())

    def _unsupported(self, item: Item) -> str:
        header = item.header
        assert header is not None
        if header.transfer_syntax_uid not in self.syntaxes():
            return f"syntax {header.transfer_syntax_uid} not decoded by DALI on {self.device}"
        codec = sniff_codec(item.frame)
        if codec in ("jp2", "j2k"):
            info = j2k_info(item.frame)
            if info.signed or info.components != 1 or info.precision > 16:
                return "signed, multi-component or >16-bit codestream"
            item.kind = ("j2k", info.precision)
        elif codec == "jpeg":
            item.kind = ("jpeg", jpeg_precision(item.frame))
        else:
            return f"unknown codestream (starts {item.frame[:8].hex()})"
        if self._scale(item.kind) is None:
            return f"DALI output for {item.kind} failed the probe check"
        return ""

    # -- pipeline ------------------------------------------------------------------------
    def _build(self) -> Any:
        import importlib

        fn: Any = importlib.import_module("nvidia.dali.fn")
        types: Any = importlib.import_module("nvidia.dali.types")
        pipeline_def: Any = importlib.import_module("nvidia.dali").pipeline_def

        @pipeline_def(batch_size=self.batch_size, num_threads=self.num_threads,
                      device_id=self.device_id, prefetch_queue_depth=1, exec_dynamic=True)  # fmt: skip
        def pipe() -> Any:
            raw = fn.external_source(name="raw", dtype=types.UINT8, ndim=1)
            img = fn.decoders.image(raw, device=self.device, output_type=types.ANY_DATA,
                                    dtype=types.UINT16)  # fmt: skip
            return fn.cast(img, dtype=types.INT32)

        p = pipe()
        p.build()
        return p

    def _run(self, frames: Sequence[bytes]) -> list[Any]:
        """Decoded (H, W) int32 per frame: numpy on cpu, torch CUDA tensors on mixed."""
        if self._pipe is None:
            self._pipe = self._build()
        self._pipe.feed_input("raw", [np.frombuffer(f, dtype=np.uint8) for f in frames])
        try:
            (out,) = self._pipe.run()
        except Exception:
            self._pipe = None  # a failed DALI pipeline cannot be reused
            raise
        if self.device == "cpu":
            return [np.array(out[i])[..., 0] for i in range(len(frames))]
        import torch
        from nvidia.dali.plugin.pytorch import feed_ndarray

        tensors = []
        for i in range(len(frames)):
            t = out[i]
            dst = torch.empty(tuple(t.shape()), dtype=torch.int32, device=f"cuda:{self.device_id}")
            feed_ndarray(t, dst, cuda_stream=torch.cuda.current_stream(self.device_id))
            tensors.append(dst[..., 0])
        return tensors

    def _scale(self, kind: tuple[str, int]) -> float | None:
        """DALI's output / true value for this (codec, precision); None if not exactly
        invertible on the probe image."""
        if kind not in self._scales:
            frame, truth = probe_frame(*kind)
            try:
                got = np.asarray(self._to_numpy(self._run([frame])[0]), dtype=np.float64)
            except Exception:
                self._scales[kind] = None
                return None
            top = float((1 << kind[1]) - 1)
            scale = float(got.max()) / top if got.max() > 0 else 1.0
            ok = np.array_equal(np.rint(got / scale), truth.astype(np.float64))
            self._scales[kind] = scale if ok else None
        return self._scales[kind]

    @staticmethod
    def _to_numpy(x: Any) -> np.ndarray:
        return x if isinstance(x, np.ndarray) else x.cpu().numpy()

    def _finish(self, raw: Any, item: Item) -> Any:
        """Undo DALI's scaling, apply the header's signedness, cast to the header dtype."""
        assert item.header is not None
        return to_header_values(raw, item.header, self._scales[item.kind] or 1.0)


@cache
def _single_decoder() -> DaliDecoder:
    return DaliDecoder(batch_size=1)


class DaliBackend:
    """``decode(path, backend="dali")``: one file through a cached batch-1 DaliDecoder."""

    name = "dali"

    def available(self) -> bool:
        return dali_importable()

    def syntaxes(self) -> frozenset[str]:
        # With its CPU fallback the decoder returns every J2K / JPEG lossless file.
        return J2K_SYNTAXES | JPEG_LOSSLESS_SYNTAXES

    def decode(self, path: Path, header: DicomHeader, reduce: int) -> Decoded:
        arr = _single_decoder().decode_batch([path])[0]
        arr = arr if isinstance(arr, np.ndarray) else arr.cpu().numpy()
        source = _single_decoder().last_sources[0]
        return Decoded(arr.astype(stored_dtype(header)), reduced=False,
                       note="" if source == DaliDecoder.source else source)  # fmt: skip


BACKEND = DaliBackend()
