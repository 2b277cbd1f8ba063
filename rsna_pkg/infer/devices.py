"""Where inference runs: the device for the models and the decoding path feeding them.

``cpu`` decoding: DataLoader workers call ``preprocess_file`` (reduced-resolution decode
with the best CPU backend, as configured in the checkpoint). ``dali`` and ``nvimgcodec``
decoding: see ``rsna_pkg.infer.gpu``; DALI needs CUDA, nvImageCodec runs on the GPU or,
with ``--device cpu``, through the CPU codecs its wheel ships. ``auto`` picks a GPU
decoder only with CUDA, DALI when installed, else nvImageCodec when installed.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsna_pkg.dicom.batch import cuda_available
from rsna_pkg.errors import InputError
from rsna_pkg.infer.stream import Batch, iterate_batches

BACKENDS: tuple[str, ...] = ("auto", "cpu", "dali", "nvimgcodec")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")


def dali_available() -> bool:
    return importlib.util.find_spec("nvidia.dali") is not None


def nvimgcodec_available() -> bool:
    from rsna_pkg.dicom.nvimgcodec_backend import nvimgcodec_importable

    return nvimgcodec_importable()


def gpu_decoder() -> str | None:
    """The batch GPU decoder ``auto`` would use: DALI, else nvImageCodec, else None."""
    if dali_available():
        return "dali"
    return "nvimgcodec" if nvimgcodec_available() else None


def default_workers() -> int:
    """Half the cores decode (at most 8): at competition sizes the CPU model costs about
    as much per image as the reduced-resolution decode."""
    return max(1, min(8, (os.cpu_count() or 2) // 2))


def default_threads(workers: int) -> int:
    """Model threads = the cores the decode workers leave free: oversubscribed OpenMP
    threads spin against the workers (measured 5x slower on 2 busy cores)."""
    return max(1, (os.cpu_count() or 2) - workers)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Set torch's intra-op thread count for the block (None: leave it), then restore it."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class Runtime:
    """Resolved ``--device`` and ``--backend`` ("auto" until the checkpoints are known)."""

    device: str  # "cpu" | "cuda"
    backend: str  # "cpu" | "dali" | "nvimgcodec" | "auto"
    why: str = ""

    def describe(self) -> str:
        where = "GPU" if self.device == "cuda" else "CPU"
        decode = {
            "dali": "DALI decode on GPU",
            "nvimgcodec": f"nvImageCodec decode on {where}",
            "cpu": "CPU decode in workers",
        }.get(self.backend, "decode path chosen after loading the checkpoints")
        return f"device {self.device}, {decode}" + (f" ({self.why})" if self.why else "")

    def batches(
        self, paths: Sequence[Path], config: Any, batch_size: int, workers: int, prefetch: int
    ) -> Iterator[Batch]:
        if self.backend == "dali":
            from rsna_pkg.infer.gpu import iterate_dali_batches

            return iterate_dali_batches(paths, config, batch_size, workers, prefetch)
        if self.backend == "nvimgcodec":
            from rsna_pkg.infer.gpu import iterate_nvimgcodec_batches

            return iterate_nvimgcodec_batches(
                paths, config, batch_size, workers, prefetch, device=self.device
            )
        return iterate_batches(paths, config, batch_size, workers, prefetch)


def resolve_runtime(device: str = "auto", backend: str = "auto") -> Runtime:
    """Turn the CLI choices into a Runtime; InputError when a forced choice is unavailable."""
    if device not in DEVICES:
        raise InputError(f"--device must be one of {DEVICES}, got {device!r}")
    if backend not in BACKENDS:
        raise InputError(f"--backend must be one of {BACKENDS}, got {backend!r}")
    has_cuda = cuda_available()
    if device == "cuda" and not has_cuda:
        raise InputError("--device cuda: CUDA is not available on this machine")
    dev = device if device != "auto" else ("cuda" if has_cuda else "cpu")
    if backend == "dali":
        if dev != "cuda":
            raise InputError("--backend dali needs --device cuda (a usable GPU)")
        if not dali_available():
            raise InputError("--backend dali: nvidia-dali is not installed")
    if backend == "nvimgcodec" and not nvimgcodec_available():
        raise InputError("--backend nvimgcodec: nvidia-nvimgcodec is not installed")
    if backend == "auto" and not (dev == "cuda" and gpu_decoder()):
        why = "no GPU" if dev != "cuda" else "neither DALI nor nvImageCodec installed"
        return Runtime(device=dev, backend="cpu", why=why)
    return Runtime(device=dev, backend=backend)


def settle_backend(runtime: Runtime, preprocess_configs: Sequence[Any]) -> Runtime:
    """Resolve ``auto`` once the checkpoints are known: the GPU decoders (DALI, else
    nvImageCodec) decode full resolution only, so one is chosen only when no checkpoint was
    trained on reduced-resolution J2K decodes (``reduce=True``); otherwise the CPU path
    reproduces training exactly."""
    if runtime.backend != "auto":
        return runtime
    decoder = gpu_decoder()
    name = {"dali": "DALI", "nvimgcodec": "nvImageCodec"}.get(decoder or "", "a GPU decoder")
    if any(getattr(c, "reduce", False) for c in preprocess_configs):
        why = f"checkpoint preprocess uses reduced J2K decoding, which {name} cannot reproduce"
        return Runtime(runtime.device, "cpu", why)
    if decoder is None:
        return Runtime(runtime.device, "cpu", "neither DALI nor nvImageCodec installed")
    return Runtime(runtime.device, decoder, f"GPU and {name} available")
