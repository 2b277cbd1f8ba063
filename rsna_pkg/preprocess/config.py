"""PreprocessConfig: everything that decides what a preprocessed image looks like.

It is saved beside every output (``preprocess_config.json``) and inside every checkpoint,
so inference rebuilds exactly the training-time preprocessing from it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from rsna_pkg.config_fields import check_fields, option
from rsna_pkg.dataclass_io import from_plain
from rsna_pkg.dicom import DECODER_CHOICES

Roi = Literal["segment", "threshold"]  # rsna_pkg.preprocess.roi: breast_mask, threshold_mask
# Output sides in pixels. Models here take at most 2048 x 1024 (a mammogram is at most
# 5355 x 4915): 4096 leaves room, while a stored or typed 100000 (a 40 GB float resize
# per image) is refused before any image is read.
MIN_SIZE, MAX_SIZE = 8, 4096
# Decoder names: the registry's own list ("auto", "cpu" and every registered decoder), so
# a new decoder is a choice of --decoder with no edit here.
BACKENDS: tuple[str, ...] = DECODER_CHOICES


@dataclass(frozen=True)
class PreprocessConfig:
    """Fields made with ``option`` and ``cli`` are `rsna preprocess`'s options too
    (``cli_options``); the size is its ``--size H W``."""

    WHAT: ClassVar[str] = "preprocess"

    height: int = option(1024, cli=False, help="output height", bounds=(MIN_SIZE, MAX_SIZE))
    width: int = option(512, cli=False, help="output width", bounds=(MIN_SIZE, MAX_SIZE))
    bits: Literal[8, 16] = option(8, help="PNG depth: 8 (uint8) or 16 (uint16)")
    backend: str = option(
        "auto", flag=("--decoder", "--backend"), choices=DECODER_CHOICES,
        help="decoder (rsna_pkg.dicom.backend): auto / cpu = the cheapest exact one per "
        "syntax, or one by name (--backend: deprecated spelling)",
    )  # fmt: skip
    voi_index: int = option(0, help="which WindowCenter/Width pair (or VOI LUT)",
                            bounds=(0, 1000))  # fmt: skip
    reduce: bool = option(True, help="crop every file at full resolution (no J2K resolution "
                          "levels, no block means)")  # fmt: skip
    crop: bool = option(True, help="keep the whole image (no crop to the breast's box)")
    margin: float = option(0.005, help="box margin, a fraction of the image's longer side",
                           bounds=(0, 0.5), hi_open=True)  # fmt: skip
    roi: Roi = option("segment", help="breast box: segment (breast_mask) or threshold (the "
                      "earlier crop)")  # fmt: skip
    probe_size: int = option(256, help="long side of the low-resolution decode that finds "
                             "the box", bounds=(32, MAX_SIZE))  # fmt: skip
    # A J2K level holds a quarter of the pixels of the one above it: where the crop at the
    # deeper level is at most 10 % short of the output, decoding it and enlarging costs a
    # quarter as much for at most a 10 % loss of linear detail (43-48 dB PSNR against the
    # level above on the full-size files of `rsna bench decode`, which prints it).
    max_upscale: float = option(1.1, help="how much the final resize may enlarge the crop "
                                "where that lets a J2K file decode one resolution level "
                                "deeper (1.0: never)", bounds=(1.0, 2.0))  # fmt: skip

    # Files without codestream levels (JPEG Lossless, RLE, native) are decoded in full; their
    # crop is then taken as block means at the level the same rule picks, so window and
    # resize see as few pixels as for J2K, and every syntax reaches the model the same way.
    area_levels: bool = option(True, help="crop files without J2K resolution levels (JPEG "
                               "lossless, RLE, native) at full resolution, not from block "
                               "means at the level the crop allows")  # fmt: skip

    def __post_init__(self) -> None:
        check_fields(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreprocessConfig:
        """Inverse of to_dict; unknown keys are an error (a config from another version).
        A config saved before ``roi`` existed was made with the threshold crop and its own
        margin, one saved before ``max_upscale`` existed with levels that never enlarge
        (1.0), and one saved before ``area_levels`` with files without J2K levels cropped at
        full resolution; each is rebuilt that way, so old checkpoints see what they were
        trained on."""
        older = {"roi": "threshold", "max_upscale": 1.0, "area_levels": False}
        return from_plain(cls, {**older, **d}, "PreprocessConfig")

    def with_(self, **changes: Any) -> PreprocessConfig:
        return dataclasses.replace(self, **changes)
