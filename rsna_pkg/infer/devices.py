"""Where inference runs: the device for the models and the decoding path feeding them.

``--decoder`` speaks rsna_pkg.dicom.backend's vocabulary. ``cpu``: DataLoader workers call
``preprocess_file`` (reduced-resolution decode with the cheapest exact CPU decoders, as
configured in the checkpoint). A batch decoder of the registry (``dali``, ``nvimgcodec``):
see ``rsna_pkg.infer.gpu``; DALI needs CUDA, nvImageCodec runs on the GPU or, with
``--device cpu``, through the CPU codecs its wheel ships. ``auto`` picks a batch decoder
only with CUDA: the first installed one in the registry's order (DALI, else nvImageCodec).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsna_pkg.config_fields import FieldError
from rsna_pkg.dicom.batch import cuda_available
from rsna_pkg.infer.stream import Batch, iterate_batches

# The registry's batch decoders, in its order (rsna_pkg.dicom.backend.DECODERS); a test
# checks the two agree.
BATCH_DECODERS: tuple[str, ...] = ("dali", "nvimgcodec")
BACKENDS: tuple[str, ...] = ("auto", "cpu", *BATCH_DECODERS)  # --decoder at inference
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
LABELS = {"dali": "DALI", "nvimgcodec": "nvImageCodec"}


def decoder_available(name: str) -> bool:
    """The batch decoder's library is installed (found, not imported)."""
    from rsna_pkg.dicom.backend import get_decoder

    return get_decoder(name).available()


def gpu_decoder() -> str | None:
    """The batch GPU decoder ``auto`` would use: the first installed, else None."""
    return next((name for name in BATCH_DECODERS if decoder_available(name)), None)


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
    backend: str  # "cpu" | a batch decoder | "auto"
    why: str = ""

    def describe(self) -> str:
        where = "GPU" if self.device == "cuda" else "CPU"
        if self.backend in LABELS:
            decode = f"{LABELS[self.backend]} decode on {where}"
        elif self.backend == "cpu":
            decode = "CPU decode in workers"
        else:
            decode = "decode path chosen after loading the checkpoints"
        return f"device {self.device}, {decode}" + (f" ({self.why})" if self.why else "")

    def batches(
        self, paths: Sequence[Path], config: Any, batch_size: int, workers: int, prefetch: int
    ) -> Iterator[Batch]:
        if self.backend in BATCH_DECODERS:
            from rsna_pkg.infer.gpu import iterate_gpu_batches

            device = "auto" if self.device == "cuda" else "cpu"
            return iterate_gpu_batches(
                paths, config, batch_size, workers, prefetch, self.backend, device
            )
        return iterate_batches(paths, config, batch_size, workers, prefetch)


def resolve_runtime(device: str = "auto", backend: str = "auto") -> Runtime:
    """Turn the CLI choices into a Runtime; InputError when a forced choice is unavailable."""
    if device not in DEVICES:
        raise FieldError("device", f"must be one of {DEVICES}, got {device!r}")
    if backend not in BACKENDS:
        raise FieldError("decoder", f"must be one of {BACKENDS}, got {backend!r}")
    has_cuda = cuda_available()
    if device == "cuda" and not has_cuda:
        raise FieldError("device", "CUDA is not available on this machine", value="cuda")
    dev = device if device != "auto" else ("cuda" if has_cuda else "cpu")
    if backend == "dali" and dev != "cuda":
        raise FieldError("decoder", "needs a CUDA device (a usable GPU)", value="dali")
    if backend in BATCH_DECODERS and not decoder_available(backend):
        raise FieldError("decoder", "its library is not installed", value=backend)
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
    name = LABELS.get(decoder or "", "a GPU decoder")
    if any(getattr(c, "reduce", False) for c in preprocess_configs):
        why = f"checkpoint preprocess uses reduced J2K decoding, which {name} cannot reproduce"
        return Runtime(runtime.device, "cpu", why)
    if decoder is None:
        return Runtime(runtime.device, "cpu", "neither DALI nor nvImageCodec installed")
    return Runtime(runtime.device, decoder, f"GPU and {name} available")
