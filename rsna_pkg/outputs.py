"""Small things every stage shares: the names of an output folder's files, and atomic writes.

An `rsna preprocess` folder holds PNGs, ``manifest.csv`` (one row per image, columns
MANIFEST_COLUMNS) and ``preprocess_config.json``; training and inference read them by these
names. Every file a run leaves is written through ``atomic_path``: a temporary sibling,
renamed over the target only once complete, so a reader (or a rerun after a kill) sees the
old file or the whole new one, never half of one. A write that fails (disk full, no
permission, read-only folder) removes its temporary file and raises :class:`OutputError`
naming the target and the reason.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rsna_pkg.errors import OutputError

MANIFEST_NAME = "manifest.csv"
PREPROCESS_CONFIG_NAME = "preprocess_config.json"
MANIFEST_COLUMNS: tuple[str, ...] = (
    "patient_id", "image_id", "laterality", "view", "status", "reason", "png", "syntax",
    "box_y0", "box_x0", "box_y1", "box_x1", "reduce", "native_reduce", "flipped", "backend",
    "seconds", "decode_seconds",
)  # fmt: skip
# What a training run needs of a manifest (older manifests may lack the timing columns).
MANIFEST_REQUIRED: tuple[str, ...] = ("patient_id", "image_id", "status", "png")


MODEL_NAME = "model.pt"  # a run's best checkpoint: what inference and the kernels load
LAST_NAME = "last.pt"  # a run's resumable state (not its best model)
FOLD_PREFIX = "fold_"  # a K-fold run's folds: fold_0/, fold_1/ ...


class _File:
    """A RunFolder attribute: the path of one file in the run folder."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, run: RunFolder, owner: type | None = None) -> Path:
        return run.root / self.name


@dataclass(frozen=True)
class RunFolder:
    """The files one `rsna train` output folder holds, named here once: train writes them,
    folds, compare, the study, inference, the kernels' push and the benchmarks read them.
    A K-fold run's folder holds ``fold(i)`` run folders and the out-of-fold ``oof``."""

    root: Path

    model = _File(MODEL_NAME)
    last = _File(LAST_NAME)
    config = _File("config.json")  # the run's TrainConfig
    metrics = _File("metrics.json")
    history = _File("history.csv")  # one row per epoch
    curves = _File("curves.png")
    split = _File("split.csv")  # the patient split, for --resume and the train-side AUC
    val_predictions = _File("val_predictions.csv")  # the best epoch's, per image
    oof = _File("oof.csv")  # K folds: every fold's val_predictions.csv together

    def fold(self, index: int) -> RunFolder:
        return RunFolder(self.root / f"{FOLD_PREFIX}{index}")


TMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(r"\..+\.(\d+)\.tmp")


def temp_sibling(path: Path) -> Path:
    """Hidden, per-process temporary name beside ``path`` (two processes never share one)."""
    return path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")


def write_failure(path: Path, exc: OSError) -> OutputError:
    reason = exc.strerror or str(exc) or type(exc).__name__
    return OutputError(f"{path}: cannot write ({reason})")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; rename it to ``path`` when the block succeeds,
    remove it when the block raises. OSError (ENOSPC, EACCES ...) becomes OutputError."""
    path = Path(path)
    tmp = temp_sibling(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise write_failure(path, exc) from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def write_bytes(file: Path, data: bytes) -> None:
    """One plain write of ``data`` to ``file`` (the step a full disk fails)."""
    with open(file, "wb") as f:
        f.write(data)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        write_bytes(tmp, data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs here. A zombie (killed, not yet reaped by its
    parent) counts as dead: it writes nothing more, yet answers signal 0 for as long as it
    waits, which after a kill of a whole process group was 1-1.5 s here, long enough for a
    rerun to keep a dead worker's temporary."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    try:  # Linux: "pid (comm) state ..."; comm may hold spaces and parentheses
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return not Path("/proc/self/stat").exists()  # reaped since; or no /proc at all
    except (OSError, IndexError):
        return True  # unreadable: the signal's answer stands
    return state not in ("Z", "X")


def remove_stale_temporaries(folder: str | Path) -> int:
    """Delete the temporary files (``temp_sibling`` names) under ``folder`` whose writing
    process no longer runs on this machine: what a kill mid-write leaves. Returns how many."""
    removed = 0
    for path in Path(folder).rglob(f".*{TMP_SUFFIX}"):
        match = _TEMP_NAME.fullmatch(path.name)
        if match and not pid_alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
    return removed
