"""InferOptions: what ``rsna infer`` was asked to do. Light (no numpy, no torch), so
``rsna infer --help`` builds its options from these fields without loading a model stack.

The aggregation and threshold vocabularies are repeated here, not imported from
``metrics`` / ``submission`` (which import numpy and pandas); a test checks they agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from rsna_pkg.config_fields import check_fields, option

Tta = Literal["none", "vflip", "hflip"]


@dataclass(frozen=True)
class InferOptions:
    """Fields made with ``option`` (not ``cli=False``) are `rsna infer`'s options too
    (``cli_options``); validated on construction."""

    WHAT: ClassVar[str] = "infer options"

    data: Path
    models: tuple[Path, ...]
    out: Path
    split: Literal["test", "train"] = option("test", help="which CSV and image folder to score")
    agg: Literal["mean", "max"] = option("mean", help="a breast's score from its images'")
    # "stored", "none" or a number in [0, 1] (submission.parse_threshold reads --threshold)
    threshold: str | float = option("stored", cli=False, help="decision threshold")
    tta: Tta = option(
        "none",
        help="average with a flipped view: vflip is the flip training augments with; hflip "
        "mirrors the breast to the side preprocessing never puts it. Default none: on the "
        "realistic set both moved breast AUC by under 0.003, far inside its noise, for twice "
        "the model time (rsna bench tta; docs/SYNTH_DIFFICULTY.md)",
    )
    batch_size: int = option(8, help="images per model call", bounds=(1, 4096))
    workers: int = option(0, cli=False, help="decoding processes", bounds=(0, 1_000_000))
    prefetch: int = option(2, cli=False, help="batches decoded ahead", bounds=(1, 1024))

    def __post_init__(self) -> None:
        check_fields(self)
