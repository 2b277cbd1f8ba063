"""CPU training settings: applied inside the block, undone after it."""

from __future__ import annotations

import sys

import pytest
import torch

from rsna_pkg.train.cpu_tuning import cpu_training_settings, glibc, keep_freed_memory

DENORMAL = 1e-39  # below float32's smallest normal number (1.2e-38)


def _denormal_survives() -> bool:
    x = torch.tensor([DENORMAL], dtype=torch.float32)
    return bool((x * 1.0).item() != 0.0)


def test_denormals_flushed_only_inside_the_block() -> None:
    assert _denormal_survives()
    with cpu_training_settings(True):
        assert not _denormal_survives()
    assert _denormal_survives()
    with cpu_training_settings(False):
        assert _denormal_survives()


def test_settings_are_undone_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError), cpu_training_settings(True):
        raise RuntimeError("boom")
    assert _denormal_survives()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_malloc_switch_accepted_by_glibc() -> None:
    libc = glibc()
    if libc is None:
        pytest.skip("not glibc")
    assert keep_freed_memory(libc, True)
    assert keep_freed_memory(libc, False)
