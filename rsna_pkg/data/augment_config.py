"""What training augmentation does (``AugmentConfig``), apart from how (``data/augment.py``,
torchvision): light, so ``TrainConfig`` holds a typed augmentation config without importing
torch."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from rsna_pkg.dataclass_io import PlainDict


def _switch(default: float, off: float) -> Any:
    """A field that turns a step on: ``off`` is its value in ``AugmentConfig.off()``."""
    return field(default=default, metadata={"off": off})


@dataclass(frozen=True)
class AugmentConfig(PlainDict):
    """Each step's switch (a probability or strength, declared with its off value) and the
    plain parameters it uses when on; a new step's switch must say how it turns off."""

    WHAT = "augment config"

    vflip: float = _switch(0.5, off=0.0)
    hflip: float = _switch(0.0, off=0.0)
    affine_p: float = _switch(0.5, off=0.0)
    degrees: float = 10.0
    translate: float = 0.05
    scale_min: float = 0.9
    scale_max: float = 1.1
    brightness: float = _switch(0.15, off=0.0)
    contrast: float = _switch(0.15, off=0.0)
    gamma_min: float = _switch(0.8, off=1.0)
    gamma_max: float = _switch(1.25, off=1.0)
    crop_p: float = _switch(0.2, off=0.0)
    crop_scale_min: float = 0.75
    erase_p: float = _switch(0.1, off=0.0)

    @classmethod
    def off(cls) -> AugmentConfig:
        """No augmentation (``--no-augment``): every switch at its off value."""
        switches = {f.name: f.metadata["off"] for f in fields(cls) if "off" in f.metadata}
        return replace(cls(), **switches)
