"""NVIDIA DALI decoding, batched: frame bytes -> ``fn.decoders.image`` on "mixed" (GPU) or
"cpu" -> stored values, windowed on the same device.

DALI ignores the DICOM header and has traps (dicom.md): it may scale a p-bit codestream to
the full UINT16 range, it cannot hold UINT16 in a torch tensor, and it fails on signed
codestreams. So: the pipeline casts to INT32 on the device (no int16 wrap); the scale DALI
applies to each (codec, precision, signed) kind is measured once on a tiny probe image with
known values and undone (``BatchDecoder._probe``; a kind not exact goes to the fallback);
signedness and MONOCHROME1 come from the header; files DALI cannot take by design
(signed codestreams, JPEG lossless on "cpu") and batches DALI fails on go to a CPU backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rsna_pkg.dicom.batch import BatchBackend, BatchDecoder, Item, Kind, pick_device, probe_frame
from rsna_pkg.dicom.frames import J2K_SYNTAXES, JPEG_LOSSLESS_SYNTAXES

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
                 threads: int = 2, fallback: str = "cpu") -> None:  # fmt: skip
        self.device = device = pick_device(device, "mixed")
        self.device_id = (device_id or 0) if device == "mixed" else None
        self.batch_size = batch_size
        self.threads = threads
        self.fallback = fallback
        self.last_sources: list[str] = []
        self.probes: dict[Kind, str] = {}
        self._scales: dict[Kind, float | None] = {}
        self._pipe: Any = None

    # -- what DALI takes by design -------------------------------------------------------
    def syntaxes(self) -> frozenset[str]:
        # CPU DALI has no lossless-JPEG decoder; nvJPEG on the GPU has (DALI >= 1.24).
        return J2K_SYNTAXES | (JPEG_LOSSLESS_SYNTAXES if self.device == "mixed" else frozenset())

    def _refuses(self, kind: Kind) -> str:
        return "DALI fails on signed codestreams" if kind[2] else ""

    # -- pipeline ------------------------------------------------------------------------
    def _build(self) -> Any:
        import importlib

        fn: Any = importlib.import_module("nvidia.dali.fn")
        types: Any = importlib.import_module("nvidia.dali.types")
        pipeline_def: Any = importlib.import_module("nvidia.dali").pipeline_def

        @pipeline_def(batch_size=self.batch_size, num_threads=self.threads,
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


DECODER = BatchBackend("dali", DaliDecoder, dali_importable, J2K_SYNTAXES | JPEG_LOSSLESS_SYNTAXES)
