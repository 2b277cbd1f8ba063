"""NVIDIA nvImageCodec decoding, batched: frame bytes -> ``Decoder.decode`` on the GPU
(nvJPEG2000, nvJPEG) or with the CPU codecs the wheel ships -> stored values.

What nvImageCodec 0.9 offers, checked by introspection of the installed package:
``DecodeParams(allow_any_depth=True, color_spec=ColorSpec.UNCHANGED)`` returns the native
samples (without them it scales to uint8); ``Decoder(backends=[Backend(kind)])`` restricts
decoding to the GPU kinds or to ``CPU_ONLY`` (``device_id=NVIMGCODEC_DEVICE_CPU_ONLY`` on a
machine without CUDA); a batch call returns ``None`` for a file it could not decode.
It has no reduced-resolution (wavelet level) decode: ``DecodeParams`` holds only
orientation, colour spec, depth and sample format, and ``Region`` crops at full
resolution. So this backend always decodes full resolution; ``reduce`` is an area mean.

The CPU codecs of the wheel (measured with 0.9.0): J2K / JP2 unsigned 8-16 bit through
OpenCV's OpenJPEG, bit-exact; signed J2K codestreams fail; lossless JPEG (.70) only at
8 bits (libjpeg-turbo). Each (codec, precision, signed) kind is probed once on a tiny
image of known values; a kind whose probe is not exact, and any file the batch returns
no image for, goes to a CPU backend, file by file, with the reason logged and kept in
``last_sources``. The header's signedness wins over the codestream's (``to_header_values``).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np

from rsna_pkg.dicom.batch import BatchBackend, BatchDecoder, Kind, pick_device
from rsna_pkg.dicom.frames import J2K_SYNTAXES, JPEG_LOSSLESS_SYNTAXES

SYNTAXES = J2K_SYNTAXES | JPEG_LOSSLESS_SYNTAXES
SOURCE = "nvimgcodec"


@cache
def nvimgcodec_importable() -> bool:
    """nvidia-nvimgcodec is installed (found, not imported: importing loads its codecs)."""
    import importlib.util

    try:
        return importlib.util.find_spec("nvidia.nvimgcodec") is not None
    except (ImportError, ValueError):  # no "nvidia" package at all
        return False


class _CudaView:
    """A decoded GPU image seen through ``__cuda_array_interface__`` as (H, W) samples of
    ``typestr`` (uint16 is read as int16 and masked back: torch builds lack uint16 ops)."""

    def __init__(self, image: Any, typestr: str) -> None:
        cai = dict(image.__cuda_array_interface__)
        shape = tuple(cai["shape"])
        if len(shape) == 3 and shape[2] != 1:
            raise ValueError(f"expected one component, got shape {shape}")
        cai["typestr"] = typestr
        self.__cuda_array_interface__ = cai
        self.image = image  # keeps the device buffer alive


class NvImageCodecDecoder(BatchDecoder):
    """``decode_items(paths)`` -> stored values per file (numpy in the header dtype on "cpu";
    torch CUDA tensors in the header dtype on "cuda", int32 for unsigned 16-bit) and the
    files' Items; ``decode_windowed(paths)`` -> float32 [0, 1] tensors on that device.
    ``last_sources[i]`` says who decoded file i: "nvimgcodec" or
    "fallback:<backend>: reason". Raises DicomError for files no backend can read."""

    source, label = SOURCE, "nvImageCodec"

    def __init__(self, device: str = "auto", device_id: int = 0, batch_size: int = 8,
                 threads: int = 0, fallback: str = "cpu") -> None:  # fmt: skip
        self.device = device = pick_device(device, "cuda")
        self.device_id = device_id
        self.batch_size = batch_size
        self.threads = threads  # nvImageCodec's CPU threads (0: one per core)
        self.fallback = fallback
        self.last_sources: list[str] = []
        self.probes: dict[Kind, str] = {}
        self._scales: dict[Kind, float | None] = {}
        self._codec: Any = None
        self._params: Any = None

    # -- the library -----------------------------------------------------------------------
    def _decoder(self) -> tuple[Any, Any]:
        if self._codec is None:
            import os

            # The CPU J2K codec is OpenCV's: without this it warns on every grayscale file.
            os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
            nv: Any = importlib.import_module("nvidia.nvimgcodec")

            if self.device == "cpu":
                self._codec = nv.Decoder(device_id=nv.NVIMGCODEC_DEVICE_CPU_ONLY,
                                         max_num_cpu_threads=self.threads,
                                         backends=[nv.Backend(nv.BackendKind.CPU_ONLY)])  # fmt: skip
            else:
                # GPU codecs only (nvJPEG2000, nvJPEG): a file they cannot take comes back
                # as None and goes to our logged fallback, never to a silent CPU decode.
                kinds = (nv.BackendKind.GPU_ONLY, nv.BackendKind.HYBRID_CPU_GPU)
                self._codec = nv.Decoder(device_id=self.device_id,
                                         max_num_cpu_threads=self.threads,
                                         backends=[nv.Backend(k) for k in kinds])  # fmt: skip
            self._params = nv.DecodeParams(allow_any_depth=True, color_spec=nv.ColorSpec.UNCHANGED,
                                           apply_exif_orientation=False)  # fmt: skip
        return self._codec, self._params

    def _run(self, frames: Sequence[bytes]) -> list[Any]:
        """One batch call: per frame an (H, W) numpy array ("cpu") or int32 CUDA tensor
        ("cuda"), or the reason (str) nvImageCodec gave no image."""
        nv: Any = importlib.import_module("nvidia.nvimgcodec")

        codec, params = self._decoder()
        out: list[Any] = ["nvImageCodec returned no image"] * len(frames)
        streams, where = [], []
        for i, frame in enumerate(frames):
            try:
                streams.append(nv.CodeStream(bytes(frame)))
            except RuntimeError as exc:  # "Failed to get image info": it cannot parse it
                out[i] = f"nvImageCodec cannot parse the codestream ({exc})"
            else:
                where.append(i)
        if not streams:
            return out
        if self.device == "cpu":
            images = codec.decode(streams, params=params)
            for i, im in zip(where, images, strict=True):
                if im is not None:
                    out[i] = self._host(im)
            return out
        import torch

        dev = torch.device("cuda", self.device_id)
        stream = torch.cuda.current_stream(dev)
        images = codec.decode(streams, params=params, cuda_stream=stream.cuda_stream)
        for i, im in zip(where, images, strict=True):
            if im is not None:
                out[i] = self._cuda(im, dev)
        stream.synchronize()  # the casts above read nvImageCodec's buffers: finish, then free
        return out

    @staticmethod
    def _host(image: Any) -> np.ndarray:
        arr = np.asarray(image.cpu())
        if arr.ndim == 3:
            if arr.shape[2] != 1:
                raise ValueError(f"expected one component, got shape {arr.shape}")
            arr = arr[..., 0]
        return arr

    @staticmethod
    def _cuda(image: Any, dev: Any) -> Any:
        import torch

        if image.cuda_stream is None:  # decoded into host memory after all
            host = NvImageCodecDecoder._host(image)
            wide = host.astype(np.int32) if host.dtype == np.uint16 else host
            return torch.from_numpy(np.ascontiguousarray(wide)).to(dev).to(torch.int32)
        typestr = image.__cuda_array_interface__["typestr"]
        wide = typestr.endswith("u2")
        view = _CudaView(image, typestr.replace("u2", "i2") if wide else typestr)
        t = torch.as_tensor(view, device=dev)
        t = t.reshape(t.shape[0], t.shape[1]).to(torch.int32)
        return t & 0xFFFF if wide else t

    def syntaxes(self) -> frozenset[str]:
        return SYNTAXES


DECODER = BatchBackend("nvimgcodec", NvImageCodecDecoder, nvimgcodec_importable, SYNTAXES)
