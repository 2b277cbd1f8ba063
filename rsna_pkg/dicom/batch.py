"""What the batch decoders (DALI, nvImageCodec) share: one file's frame and header, the kind
of codestream it holds, the one probe of known values that checks a decoder per kind, the
header's rules (signedness, container dtype) applied to a decoder's raw output, and the
adapter (:class:`BatchBackend`) that makes a batch decoder one more ``Decoder`` of the
registry.

These decoders ignore the DICOM header, so nothing they return is trusted until the probe
for that (codec, precision, signed) kind came back exact, possibly after one constant
scale (DALI stretches p-bit samples to the full UINT16 range); the header's
PixelRepresentation then wins over the codestream's signedness, as in ``to_stored``.
A new batch decoder implements ``syntaxes``, ``_run`` (one batch call of its library) and,
where its library refuses a kind by design, ``_refuses``.
"""

from __future__ import annotations

import logging
import struct
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rsna_pkg.dicom.backend import Capabilities, Decoded
from rsna_pkg.dicom.frames import j2k_info, jpeg_precision, sniff_codec
from rsna_pkg.dicom.header import DicomHeader, read_header
from rsna_pkg.dicom.pixeldata import read_frame
from rsna_pkg.dicom.pixels import stored_dtype

PROBE_SHAPE = (8, 16)
log = logging.getLogger(__name__)
_WARNED: set[tuple[str, str, tuple[Any, ...]]] = set()  # (decoder, device, kind) logged once

Kind = tuple[str, int, bool]  # (codec "j2k" | "jpeg", precision in bits, signed codestream)


@dataclass
class Item:
    """One file of a batch: its header, the bytes of frame 0 and the codestream's kind."""

    path: Path
    header: DicomHeader | None = None
    frame: bytes = b""
    kind: tuple[Any, ...] = ()


def read_item(path: str | Path) -> Item:
    """Header and frame 0 of one file, both checked before any decoder trusts them
    (DicomError when unreadable, or when header and codestream disagree)."""
    from rsna_pkg.dicom.decode import check_decodable, check_frame

    item = Item(Path(path))
    item.header = read_header(item.path)
    check_decodable(item.header)  # before any PixelData byte is read
    item.frame = read_frame(item.path, item.header)
    check_frame(item.header, item.frame)
    return item


def frame_kind(frame: bytes) -> Kind | str:
    """The frame's (codec, precision, signed), or why no batch decoder takes it by design."""
    codec = sniff_codec(frame)
    if codec in ("jp2", "j2k"):
        info = j2k_info(frame)
        if info.components != 1 or info.precision > 16:
            return f"{info.components}-component, {info.precision}-bit codestream"
        return ("j2k", info.precision, info.signed)
    if codec == "jpeg":
        return ("jpeg", jpeg_precision(frame), False)
    return f"unknown codestream (starts {frame[:8].hex()})"


def probe_frame(codec: str, precision: int, signed: bool = False) -> tuple[bytes, np.ndarray]:
    """A tiny lossless codestream holding every extreme of the range (0 .. 2**p - 1, or
    -2**(p-1) .. 2**(p-1) - 1 when signed) and a ramp between."""
    import imagecodecs

    n = PROBE_SHAPE[0] * PROBE_SHAPE[1]
    lo = -(1 << (precision - 1)) if signed else 0
    values = np.linspace(lo, lo + (1 << precision) - 1, num=n).round()
    dtype = (np.int16 if precision > 8 else np.int8) if signed else (
        np.uint16 if precision > 8 else np.uint8)  # fmt: skip
    img = values.astype(dtype).reshape(PROBE_SHAPE)
    if codec == "jpeg":
        if signed:
            raise ValueError("lossless JPEG has no signed samples")
        return bytes(imagecodecs.ljpeg_encode(img, bitspersample=precision)), img
    frame = imagecodecs.jpeg2k_encode(img, level=0, codecformat="J2K", reversible=True,
                                      bitspersample=precision)  # fmt: skip
    return bytes(frame), img


def probe_scale(got: np.ndarray, truth: np.ndarray) -> float | None:
    """The constant ``got / truth`` if dividing by it gives ``truth`` back exactly, else None."""
    got = np.asarray(got, dtype=np.float64).reshape(truth.shape)
    top = float(np.abs(truth).max())
    scale = float(np.abs(got).max()) / top if top > 0 and np.abs(got).max() > 0 else 1.0
    exact = np.array_equal(np.rint(got / scale), truth.astype(np.float64))
    return scale if exact else None


def to_header_values(raw: Any, header: DicomHeader, scale: float = 1.0) -> Any:
    """A decoder's (H, W) output -> stored values as the header describes them: the probe's
    scale undone, the low BitsStored bits read as two's complement when the header says
    signed. numpy in, numpy out in the header dtype; a torch tensor stays on its device in
    the header dtype, except that unsigned 16-bit values are kept in int32."""
    dtype = stored_dtype(header)
    bits = header.bits_stored
    if isinstance(raw, np.ndarray):
        v = raw.astype(np.int64) if scale == 1.0 else np.rint(raw / scale).astype(np.int64)
        if header.signed:
            sign = 1 << (bits - 1)
            v = ((v & ((1 << bits) - 1)) ^ sign) - sign
        return v.astype(dtype)
    import torch

    t = raw.to(torch.int64) if scale == 1.0 else torch.round(raw.double() / scale).long()
    if header.signed:
        sign = 1 << (bits - 1)
        t = ((t & ((1 << bits) - 1)) ^ sign) - sign
    tdtype = {1: torch.int8, 2: torch.int16, 4: torch.int32}.get(dtype.itemsize, torch.int64)
    if dtype.kind == "u" and dtype.itemsize == 1:
        tdtype = torch.uint8
    # unsigned 16-bit values do not fit int16: keep them in int32 on the GPU.
    return t.to(torch.int32 if dtype.kind == "u" and dtype.itemsize >= 2 else tdtype)


def windowed(arrays: list[Any], items: list[Item], voi_index: int = 0) -> list[Any]:
    """float32 [0, 1] torch tensors on each array's device, windowed as apply_voi does."""
    import torch

    from rsna_pkg.dicom.voi_torch import apply_voi_torch

    out = []
    for arr, item in zip(arrays, items, strict=True):
        assert item.header is not None
        t = torch.from_numpy(arr.astype(np.int32)) if isinstance(arr, np.ndarray) else arr
        out.append(apply_voi_torch(t, item.header, voi_index))
    return out


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def pick_device(device: str, gpu: str) -> str:
    """``auto`` -> ``gpu`` (the decoder's name for it) when CUDA is usable, else ``cpu``."""
    if device == "auto":
        device = gpu if cuda_available() else "cpu"
    if device not in (gpu, "cpu"):
        raise ValueError(f"device must be '{gpu}', 'cpu' or 'auto', got {device!r}")
    return device


class BatchDecoder(ABC):
    """What every batch decoder shares on top of its library call (``_run``): which files it
    takes (``_unsupported``: the syntax, the codestream's kind, the probe of that kind),
    stored values or windowed tensors per file, the per-file CPU fallback, host arrays moved
    to the GPU."""

    device: str  # "cpu", or the library's GPU device name
    device_id: Any  # the GPU ordinal; unused by a CPU decoder

    fallback: str  # per-file decoder for what the batch does not take ("cpu": per syntax)
    batch_size: int

    source: str  # what last_sources says for a file this decoder decoded ("dali", ...)
    label: str  # the library's name in fallback reasons
    last_sources: list[str]
    probes: dict[Kind, str]  # kind -> "exact", "probe scale x" or why not
    _scales: dict[Kind, float | None]

    @abstractmethod
    def syntaxes(self) -> frozenset[str]:
        """Transfer syntaxes it decodes by design on its device."""

    @abstractmethod
    def _run(self, frames: Sequence[bytes]) -> list[Any]:
        """Decode one batch of frames: per frame the library's (H, W) output, or a str
        saying why the library gave nothing for it (that file falls back)."""

    def _refuses(self, kind: Kind) -> str:
        """Why the library does not take this kind by design, without probing ('' when it
        may: the probe decides)."""
        return ""

    def _probe(self, kind: Kind) -> float | None:
        """The scale this device's decode applies to ``kind`` (1.0 when exact); None when the
        probe image does not come back exactly, or at all. Probed once per kind."""
        if kind not in self._scales:
            try:
                frame, truth = probe_frame(*kind)
                (got,) = self._run([frame])
            except Exception as exc:  # noqa: BLE001 - any failure means: not this kind
                got = f"failed ({type(exc).__name__}: {exc})"
            if isinstance(got, str):
                self.probes[kind] = f"probe: {got}"
                self._scales[kind] = None
            else:
                host = got if isinstance(got, np.ndarray) else got.cpu().numpy()
                scale = probe_scale(host, truth)
                self.probes[kind] = (
                    "probe values differ" if scale is None
                    else "exact" if scale == 1.0 else f"probe scale {scale:g}"
                )  # fmt: skip
                self._scales[kind] = scale
            if self._scales[kind] is None and (self.source, self.device, kind) not in _WARNED:
                _WARNED.add((self.source, self.device, kind))
                log.warning("%s on %s: %s for %s: such files use %s", self.source, self.device,
                            self.probes[kind], kind, self.fallback)  # fmt: skip
        return self._scales[kind]

    def _unsupported(self, item: Item) -> str:
        """Why this decoder does not take ``item`` ("" when it does)."""
        header = item.header
        assert header is not None
        if header.transfer_syntax_uid not in self.syntaxes():
            return (
                f"syntax {header.transfer_syntax_uid} not decoded by {self.label} on {self.device}"
            )
        try:
            kind = frame_kind(item.frame)
        except (ValueError, IndexError, struct.error) as exc:  # a mangled main header
            return f"bad codestream header ({exc})"
        if isinstance(kind, str):
            return kind
        item.kind = kind
        codec, bits, signed = kind
        what = f"{'signed ' if signed else ''}{bits}-bit {codec}"
        refused = self._refuses(kind)
        if refused:
            return f"{what}: {refused}"
        if self._probe(kind) is None:
            return f"{what} not decoded exactly on {self.device} ({self.probes[kind]})"
        return ""

    def _finish(self, raw: Any, item: Item) -> Any:
        """The library's output as the header's stored values (ValueError: shape off the
        header): the probe's scale undone, the header's signedness, the header dtype."""
        header = item.header
        assert header is not None
        if tuple(raw.shape) != (header.rows, header.columns):
            raise ValueError(f"decoded shape {tuple(raw.shape)} != header "
                             f"{(header.rows, header.columns)}")  # fmt: skip
        return to_header_values(raw, header, self._scales[item.kind] or 1.0)

    def decode_items(self, paths: Sequence[str | Path]) -> tuple[list[Any], list[Item]]:
        """(stored values per file, the files' items), each decoded in batches, or by the
        CPU fallback decoder with the reason logged and kept in ``last_sources``."""
        from rsna_pkg.dicom.decode import decode_file

        items, reasons, todo = self.plan(paths)
        results: list[Any] = [None] * len(items)
        for chunk in self.chunks(todo):
            try:
                raws = self._run([items[i].frame for i in chunk])
            except Exception as exc:  # noqa: BLE001 - the whole call failed: each file falls back
                raws = [f"{self.label} failed ({type(exc).__name__}: {str(exc)[:80]})"] * len(chunk)
            for i, raw in zip(chunk, raws, strict=True):
                if isinstance(raw, str):
                    reasons[i] = raw
                    continue
                try:
                    results[i] = self._finish(raw, items[i])
                except ValueError as exc:  # shape off the header
                    reasons[i] = str(exc) or type(exc).__name__
        sources = [self.source] * len(items)
        for i, item in enumerate(items):
            if reasons[i]:
                done = decode_file(item.path, self.fallback, 0, header=item.header)
                sources[i] = f"fallback:{done.backend}: {reasons[i]}"  # the decoder it chose
                logging.getLogger(type(self).__module__).info("%s: %s", item.path, sources[i])
                results[i] = done.array if self.device == "cpu" else self._to_device(done.array)
        self.last_sources = sources
        return results, items

    def plan(self, paths: Sequence[str | Path]) -> tuple[list[Item], list[str], list[int]]:
        """Read every file; (items, per-file fallback reason or "", indices to batch-decode)."""
        items = [read_item(p) for p in paths]
        reasons = [self._unsupported(item) for item in items]
        return items, reasons, [i for i, reason in enumerate(reasons) if not reason]

    def chunks(self, todo: list[int]) -> Iterator[list[int]]:
        for start in range(0, len(todo), self.batch_size):
            yield todo[start : start + self.batch_size]

    def _to_device(self, arr: np.ndarray) -> Any:
        import torch

        wide = arr.astype(np.int32) if arr.dtype == np.uint16 else arr
        return torch.from_numpy(np.ascontiguousarray(wide)).to(f"cuda:{self.device_id}")

    def decode_batch(self, paths: Sequence[str | Path]) -> list[Any]:
        """Stored values per file (full resolution)."""
        return self.decode_items(paths)[0]

    def decode_windowed(self, paths: Sequence[str | Path], voi_index: int = 0) -> list[Any]:
        """float32 [0, 1] torch tensors on the decode device, windowed as apply_voi does."""
        return windowed(*self.decode_items(paths), voi_index)


class BatchBackend:
    """A batch decoder as one more ``Decoder`` of the registry (``decode(path,
    backend="dali")``): one file at a time through a cached batch-1 decoder (GPU when CUDA
    is usable, else the library's CPU codecs), returned on the host. ``syntaxes`` are those
    it returns for every file, its per-file CPU fallback included."""

    def __init__(self, name: str, factory: Callable[..., BatchDecoder],
                 importable: Callable[[], bool], syntaxes: frozenset[str]) -> None:  # fmt: skip
        self.name = name
        self._factory = factory
        self._importable = importable
        self._syntaxes = syntaxes
        self._single: BatchDecoder | None = None

    def capabilities(self) -> Capabilities:
        return Capabilities(self._syntaxes, batch=True, device="gpu")

    def available(self) -> bool:
        return self._importable()

    def batch_decoder(self, **options: Any) -> BatchDecoder:
        """A fresh batch decoder (``options``: batch_size, device, ...)."""
        return self._factory(**options)

    def decode(self, path: Path, header: DicomHeader, reduce: int) -> Decoded:
        if self._single is None:
            self._single = self._factory(batch_size=1)
        decoder = self._single
        arr = decoder.decode_batch([path])[0]
        arr = arr if isinstance(arr, np.ndarray) else arr.cpu().numpy()
        source = decoder.last_sources[0]
        return Decoded(arr.astype(stored_dtype(header)), reduced=False,
                       note="" if source == decoder.source else source)  # fmt: skip
