"""OpenJPEG's decode window, on frame bytes in memory, through ctypes.

``opj_set_decode_area`` makes OpenJPEG decode only the code-blocks a window of a resolution
level needs, and the inverse wavelet transform only around it; the result is the window of
the whole level, to the bit (the reversible 5/3 lifting is integer arithmetic, ISO 15444-1
F.3.8, and OpenJPEG extends the window by the filter's support). On the synthetic full-size
machines the crop's window at the level the crop needs costs 53-100 % of the whole level's
decode, 76 % over 29 files.

Neither Pillow nor imagecodecs exposes the window; glymur does, but reads files only, which
would cost one more copy of a 5-12 MB frame per image. This binds the dozen calls a windowed
decode needs, reading the codestream straight from the frame's bytes, to the libopenjp2 that
Pillow's JPEG 2000 plugin has loaded (so the same library as the whole-level route), or else
the one ctypes finds. Layouts follow openjpeg.h of OpenJPEG 2.x (opj_image_t,
opj_image_comp_t); the decoder parameters stay opaque.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from pathlib import Path

import numpy as np


class OpenjpegError(RuntimeError):
    """OpenJPEG refused the codestream or the window (its own messages attached)."""


class _ImageComp(ctypes.Structure):
    _fields_ = [
        ("dx", ctypes.c_uint32),
        ("dy", ctypes.c_uint32),
        ("w", ctypes.c_uint32),
        ("h", ctypes.c_uint32),
        ("x0", ctypes.c_uint32),
        ("y0", ctypes.c_uint32),
        ("prec", ctypes.c_uint32),
        ("bpp", ctypes.c_uint32),
        ("sgnd", ctypes.c_uint32),
        ("resno_decoded", ctypes.c_uint32),
        ("factor", ctypes.c_uint32),
        ("data", ctypes.POINTER(ctypes.c_int32)),
        ("alpha", ctypes.c_uint16),
    ]


class _Image(ctypes.Structure):
    _fields_ = [
        ("x0", ctypes.c_uint32),
        ("y0", ctypes.c_uint32),
        ("x1", ctypes.c_uint32),
        ("y1", ctypes.c_uint32),
        ("numcomps", ctypes.c_uint32),
        ("color_space", ctypes.c_int),
        ("comps", ctypes.POINTER(_ImageComp)),
        ("icc_profile_buf", ctypes.c_void_p),
        ("icc_profile_len", ctypes.c_uint32),
    ]


_READ = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
_SKIP = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p)
_SEEK = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_int64, ctypes.c_void_p)
_MESSAGE = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_void_p)
_END_OF_STREAM = ctypes.c_size_t(-1).value
_PARAMS_BYTES = 1 << 14  # opj_dparameters_t is about 8.3 KB (two 4096-byte paths)
_CODEC_J2K = 0
_P = ctypes.c_void_p
_SIGNATURES = {  # name: (restype, argtypes)
    "opj_version": (ctypes.c_char_p, []),
    "opj_create_decompress": (_P, [ctypes.c_int]),
    "opj_set_default_decoder_parameters": (None, [_P]),
    "opj_setup_decoder": (ctypes.c_int32, [_P, _P]),
    "opj_set_error_handler": (ctypes.c_int32, [_P, _MESSAGE, _P]),
    "opj_stream_create": (_P, [ctypes.c_size_t, ctypes.c_int32]),
    "opj_stream_set_read_function": (None, [_P, _READ]),
    "opj_stream_set_skip_function": (None, [_P, _SKIP]),
    "opj_stream_set_seek_function": (None, [_P, _SEEK]),
    "opj_stream_set_user_data_length": (None, [_P, ctypes.c_uint64]),
    "opj_read_header": (ctypes.c_int32, [_P, _P, ctypes.POINTER(ctypes.POINTER(_Image))]),
    "opj_set_decoded_resolution_factor": (ctypes.c_int32, [_P, ctypes.c_uint32]),
    "opj_set_decode_area": (ctypes.c_int32, [_P, ctypes.POINTER(_Image)] + [ctypes.c_int32] * 4),
    "opj_decode": (ctypes.c_int32, [_P, _P, ctypes.POINTER(_Image)]),
    "opj_end_decompress": (ctypes.c_int32, [_P, _P]),
    "opj_image_destroy": (None, [ctypes.POINTER(_Image)]),
    "opj_stream_destroy": (None, [_P]),
    "opj_destroy_codec": (None, [_P]),
}


def _pillow_openjp2() -> str | None:
    """The libopenjp2 Pillow's C core has loaded into this process (Linux: /proc/self/maps),
    e.g. ``pillow.libs/libopenjp2-<hash>.so.2.5.4`` of a wheel; None elsewhere."""
    try:
        from PIL import Image  # noqa: F401 - loads _imaging and the libraries it links

        maps = Path("/proc/self/maps").read_text()
    except (ImportError, OSError):
        return None
    for line in maps.splitlines():
        path = line.split(maxsplit=5)[-1] if line.count(" ") >= 5 else ""
        if "libopenjp2" in Path(path).name:
            return path
    return None


@functools.cache
def load_library() -> tuple[ctypes.CDLL | None, str]:
    """(libopenjp2 with the signatures set, '') or (None, why not)."""
    candidates = [p for p in (_pillow_openjp2(), ctypes.util.find_library("openjp2")) if p]
    if not candidates:
        return None, "no libopenjp2 in this process (Pillow's) or on the library path"
    try:
        lib = ctypes.CDLL(candidates[0])
        for name, (restype, argtypes) in _SIGNATURES.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes
    except (OSError, AttributeError) as exc:
        return None, f"{candidates[0]}: {exc}"
    major, minor = (int(v) for v in lib.opj_version().decode().split(".")[:2])
    if (major, minor) < (2, 3):  # decode windows at reduced levels are exact from 2.3 on
        return None, f"OpenJPEG {major}.{minor} is older than 2.3"
    return lib, ""


def version() -> str:
    lib, why = load_library()
    return lib.opj_version().decode() if lib is not None else f"none ({why})"


class _MemoryStream:
    """OpenJPEG input stream over ``data[offset:]`` without copying it (the callbacks copy
    each chunk OpenJPEG asks for, as its file stream would)."""

    def __init__(self, lib: ctypes.CDLL, data: bytes, offset: int) -> None:
        self._data = data  # kept alive: the callbacks read its buffer
        self._base = ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value or 0
        self._base += offset
        self._size = len(data) - offset
        self._pos = 0
        self._callbacks = (_READ(self._read), _SKIP(self._skip), _SEEK(self._seek))
        self.handle = lib.opj_stream_create(1 << 20, 1)
        if not self.handle:
            raise OpenjpegError("opj_stream_create failed")
        lib.opj_stream_set_read_function(self.handle, self._callbacks[0])
        lib.opj_stream_set_skip_function(self.handle, self._callbacks[1])
        lib.opj_stream_set_seek_function(self.handle, self._callbacks[2])
        lib.opj_stream_set_user_data_length(self.handle, self._size)

    def _read(self, buffer: int, nbytes: int, _user: int) -> int:
        n = min(nbytes, self._size - self._pos)
        if n <= 0:
            return _END_OF_STREAM
        ctypes.memmove(buffer, self._base + self._pos, n)
        self._pos += n
        return n

    def _skip(self, nbytes: int, _user: int) -> int:
        step = max(-self._pos, min(nbytes, self._size - self._pos))
        self._pos += step
        return step

    def _seek(self, position: int, _user: int) -> int:
        if not 0 <= position <= self._size:
            return 0
        self._pos = position
        return 1


def decode_window(data: bytes, offset: int, reduce: int,
                  area: tuple[int, int, int, int]) -> np.ndarray:  # fmt: skip
    """Component 0 of the J2K codestream at ``data[offset:]``, resolution level ``reduce``,
    only the full-resolution window ``area`` = (y0, x0, y1, x1) on the reference grid: an
    int32 array of ``ceil(y1 / 2**r) - ceil(y0 / 2**r)`` rows (likewise columns), the values
    OpenJPEG outputs (DC level shift undone, clamped to the component's precision). Raises
    OpenjpegError."""
    lib, why = load_library()
    if lib is None:
        raise OpenjpegError(why)
    messages: list[str] = []
    on_error = _MESSAGE(lambda msg, _user: messages.append(msg.decode(errors="replace").strip()))

    def check(ok: int, call: str) -> None:
        if not ok:
            raise OpenjpegError(f"{call} failed: {'; '.join(messages) or 'no message'}")

    codec = lib.opj_create_decompress(_CODEC_J2K)
    if not codec:
        raise OpenjpegError("opj_create_decompress failed")
    stream: _MemoryStream | None = None
    image = ctypes.POINTER(_Image)()
    try:
        lib.opj_set_error_handler(codec, on_error, None)
        params = ctypes.create_string_buffer(_PARAMS_BYTES)
        lib.opj_set_default_decoder_parameters(params)
        check(lib.opj_setup_decoder(codec, params), "opj_setup_decoder")
        stream = _MemoryStream(lib, data, offset)
        check(lib.opj_read_header(stream.handle, codec, ctypes.byref(image)), "opj_read_header")
        check(lib.opj_set_decoded_resolution_factor(codec, reduce), f"reduce {reduce}")
        y0, x0, y1, x1 = area
        check(lib.opj_set_decode_area(codec, image, x0, y0, x1, y1), f"decode area {area}")
        check(lib.opj_decode(codec, stream.handle, image), "opj_decode")
        check(lib.opj_end_decompress(codec, stream.handle), "opj_end_decompress")
        comp = image.contents.comps[0]
        if not comp.data:
            raise OpenjpegError("OpenJPEG decoded no samples")
        return np.ctypeslib.as_array(comp.data, shape=(comp.h, comp.w)).copy()
    finally:
        if image:
            lib.opj_image_destroy(image)
        if stream is not None:
            lib.opj_stream_destroy(stream.handle)
        lib.opj_destroy_codec(codec)
