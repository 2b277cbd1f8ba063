"""OpenJPEG's decode window through rsna_pkg.dicom.openjp2: the library it binds, the errors it
names, the frames the OpenJPEG decoder declines to window, and DicomImage's fallback to the
whole level. Exactness on every J2K case is in test_decoders.py (the windows capability)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from dicom_cases import j2k_file, phantom, real

from rsna_pkg.dicom import open_image, openjp2
from rsna_pkg.dicom.backend import Declined
from rsna_pkg.dicom.frames import codestream_offset, j2k_info
from rsna_pkg.dicom.openjpeg_backend import DECODER


def test_binds_the_library_pillow_loaded() -> None:
    lib, why = openjp2.load_library()
    assert lib is not None, why
    assert openjp2.version().startswith("2.")
    pillows = openjp2._pillow_openjp2()
    assert pillows is None or "libopenjp2" in Path(pillows).name


def test_whole_level_through_the_window_call_equals_pillows_level() -> None:
    """The window API with the whole image as its area is the level Pillow decodes."""
    from rsna_pkg.dicom.openjpeg_backend import decode_reduced

    image = open_image(real("RG1_J2KR"))
    frame, h = image.frame, image.header
    for reduce in (0, 2):
        got = openjp2.decode_window(frame, codestream_offset(frame), reduce,
                                    (0, 0, h.rows, h.columns))  # fmt: skip
        if reduce:
            np.testing.assert_array_equal(got, decode_reduced(frame, reduce))
        else:
            np.testing.assert_array_equal(got, image.decode(0).array)


def test_a_cut_codestream_raises_with_openjpegs_reason(tmp_path: Path) -> None:
    path = j2k_file(tmp_path, "cut", phantom(64, 48, bits=12), 12, fmt="J2K")
    frame = open_image(path).frame
    with pytest.raises(openjp2.OpenjpegError, match=r"opj_\w+ failed: .+"):
        openjp2.decode_window(frame[: len(frame) // 3], 0, 1, (0, 0, 64, 48))
    with pytest.raises(openjp2.OpenjpegError, match=r"decode area .* failed: .+"):
        openjp2.decode_window(frame, 0, 1, (30, 0, 10, 48))  # y1 < y0


def test_image_off_the_grid_origin_is_declined(tmp_path: Path) -> None:
    """A codestream whose image starts off the reference grid's origin (XOsiz > 0) has its
    window on other coordinates: the decoder declines, before decoding."""
    path = j2k_file(tmp_path, "origin", phantom(32, 24, bits=12), 12, fmt="J2K")
    image = open_image(path)
    frame = bytearray(image.frame)
    xsiz, ysiz, _, _ = struct.unpack_from(">IIII", frame, 8)
    struct.pack_into(">IIII", frame, 8, xsiz + 4, ysiz, 4, 0)  # same width, shifted right
    assert j2k_info(bytes(frame)).origin == (0, 4)
    with pytest.raises(Declined, match="image offset"):
        DECODER.decode_window(bytes(frame), image.header, 1, (0, 0, 4, 4))


def test_dicom_image_falls_back_to_the_whole_level(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Where OpenJPEG fails on a window, the same pixels come from the whole level, and
    ``window_note`` says why."""
    path = j2k_file(tmp_path, "fb", phantom(80, 60, bits=12, seed=4), 12)
    truth = open_image(path).decode(1).array[5:30, 7:20]

    def fail(*args: object) -> np.ndarray:
        raise openjp2.OpenjpegError("opj_decode failed: stub reason")

    monkeypatch.setattr(openjp2, "decode_window", fail)
    image = open_image(path)
    level = image.decode_window(1, (5, 7, 30, 20))
    np.testing.assert_array_equal(level.array, truth)
    assert not level.window and level.native
    reason = "OpenjpegError: opj_decode failed: stub reason"
    assert image.window_note == f"openjpeg window failed ({reason})"
