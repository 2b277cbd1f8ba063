"""Shared fixtures. ``synth_data`` is the one small competition-shaped dataset every
area's tests run on, generated once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rsna_pkg.data.synth import SynthConfig, generate

SYNTH_CONFIG = SynthConfig(
    patients=40, seed=0, scale="small", cancer_rate=None, workers=1, test_frac=0.1
)


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a ``rsna synth --patients 40 --seed 0 --scale small`` dataset (read-only by
    convention: copy it before modifying anything)."""
    out = tmp_path_factory.mktemp("synth") / "rsna"
    workers = min(2, os.cpu_count() or 1)
    generate(out, SynthConfig(**{**SYNTH_CONFIG.__dict__, "workers": workers}))
    return out
