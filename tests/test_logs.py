"""One progress and logging path: library modules log, the CLI picks how much shows."""

from __future__ import annotations

import logging

import pytest
from train_data import make_dataset

from rsna_pkg.cli import main
from rsna_pkg.logs import configure, progress_shown


@pytest.fixture(autouse=True)
def _restore_logging():
    logger = logging.getLogger("rsna_pkg")
    saved = (logger.level, list(logger.handlers), logger.propagate)
    yield
    logger.setLevel(saved[0])
    logger.handlers[:] = saved[1]
    logger.propagate = saved[2]


def test_verbosity_picks_what_reaches_stderr(capsys) -> None:
    log = logging.getLogger("rsna_pkg.train.loop")
    for verbosity, shown in ((-1, "W"), (0, "IW"), (1, "DIW")):
        configure(verbosity)
        log.debug("D")
        log.info("I")
        log.warning("W")
        captured = capsys.readouterr()
        assert captured.err.split() == list(shown), verbosity
        assert captured.out == ""
        assert progress_shown() is (verbosity >= 0)
    configure(0)
    configure(0)  # again: still one line per message
    log.info("once")
    assert capsys.readouterr().err == "once\n"


def test_train_quiet_shows_no_progress_and_default_shows_epochs(tmp_path, capsys) -> None:
    data, images = make_dataset(tmp_path / "d", patients=8, size=(64, 32), seed=0)
    base = ["train", "--data", str(data), "--images", str(images), "--epochs", "1",
            "--batch-size", "8", "--workers", "0", "--threads", "1"]  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "loud")]) == 0
    loud = capsys.readouterr()
    assert "epoch   1" in loud.err and "train 24 images" in loud.err
    assert "best epoch 1" in loud.out  # the command's result, not progress
    assert main([*base, "--out", str(tmp_path / "quiet"), "-q"]) == 0
    quiet = capsys.readouterr()
    assert "epoch   1" not in quiet.err and "train:" not in quiet.err, quiet.err
    assert "best epoch 1" in quiet.out
