"""``rsna preprocess``: a dataset folder -> OUT/<patient_id>/<image_id>.png + manifest.

A process pool runs :func:`preprocess_file` per image. Runs are resumable (a PNG of the
right size is kept and not redone) and every file is written to a temporary name and
renamed, so an interrupted run never leaves a half-written PNG or manifest. Each finished
image is also appended to a journal beside the manifest (``.manifest.csv.journal``, one
JSON line per image), so a run killed before it could write its manifest (SIGKILL, power)
loses none of its rows: the rerun takes them back. A file that fails becomes a manifest
row with status "error" and the reason; the run goes on. An output that cannot be written
(disk full) stops the run with one OutputError: nothing half-written is left.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import time
from collections.abc import Generator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from rsna_pkg.config_fields import FieldError
from rsna_pkg.data.schema import TEST_TIME_COLUMNS, TRAIN_COLUMNS, image_path, read_table
from rsna_pkg.errors import DicomError, InputError, OutputError, describe
from rsna_pkg.options import capped_workers
from rsna_pkg.outputs import (
    MANIFEST_COLUMNS,
    MANIFEST_NAME,
    PREPROCESS_CONFIG_NAME,
    atomic_write_bytes,
    atomic_write_text,
    remove_stale_temporaries,
    write_failure,
)
from rsna_pkg.preprocess.config import PreprocessConfig
from rsna_pkg.preprocess.selection import subsample_negatives, take_shard

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    patient_id: int
    image_id: int
    laterality: str
    view: str
    dicom: Path
    png: str  # relative to the output folder


@dataclass
class Summary:
    rows: pd.DataFrame
    seconds: float
    skipped: int
    manifest: Path
    errors: int = field(init=False)

    def __post_init__(self) -> None:
        self.errors = int((self.rows["status"] == "error").sum()) if len(self.rows) else 0


def encode_png(image: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def atomic_write_png(path: Path, image: np.ndarray) -> None:
    atomic_write_bytes(path, encode_png(image))


def png_is_valid(path: Path, cfg: PreprocessConfig) -> bool:
    """A finished output: readable PNG header with the configured size and bit depth."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            mode_ok = im.mode == "L" if cfg.bits == 8 else im.mode.startswith("I;16")
            return im.size == (cfg.width, cfg.height) and mode_ok
    except (OSError, ValueError):
        return False


def make_jobs(table: pd.DataFrame, data_dir: Path, split: str) -> list[Job]:
    return [
        Job(
            int(r.patient_id),
            int(r.image_id),
            str(r.laterality),
            str(r.view),
            image_path(data_dir, split, int(r.patient_id), int(r.image_id)),
            f"{int(r.patient_id)}/{int(r.image_id)}.png",
        )  # fmt: skip
        for r in table.itertuples(index=False)
    ]


def base_row(job: Job) -> dict[str, Any]:
    row: dict[str, Any] = {c: "" for c in MANIFEST_COLUMNS}
    row.update(patient_id=job.patient_id, image_id=job.image_id, laterality=job.laterality,
               view=job.view, png=job.png)  # fmt: skip
    return row


def process_job(job: Job, cfg: PreprocessConfig, out_dir: Path) -> dict[str, Any]:
    """One image; never raises for a bad file (the reason goes in the row)."""
    from rsna_pkg.preprocess.pipeline import preprocess_file

    row = base_row(job)
    start = time.perf_counter()
    try:
        res = preprocess_file(job.dicom, cfg)
        png = encode_png(res.image)
    except DicomError as exc:
        row.update(status="error", reason=exc.reason, png="")
    except Exception as exc:  # noqa: BLE001 - any library may fail on a hostile file
        row.update(status="error", reason=describe(exc), png="")
    else:
        atomic_write_bytes(out_dir / job.png, png)  # OutputError (disk full) stops the run
        y0, x0, y1, x1 = res.box
        row.update(status="ok", syntax=res.header.transfer_syntax_uid, box_y0=y0, box_x0=x0,
                   box_y1=y1, box_x1=x1, reduce=res.reduce, native_reduce=res.native_reduce,
                   flipped=res.flipped, backend=res.backend,
                   decode_seconds=round(res.decode_seconds, 4))  # fmt: skip
    row["seconds"] = round(time.perf_counter() - start, 4)
    return row


def _run_one(args: tuple[Job, PreprocessConfig, Path]) -> dict[str, Any]:
    return process_job(*args)


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # missing: fails fast in its worker and is reported there


def largest_first(jobs: list[Job]) -> list[Job]:
    """Longest decodes first, so the run does not end on one big file while other workers idle
    (size is a good proxy for decode time within a codec)."""
    return sorted(jobs, key=lambda job: -file_size(job.dicom))


def _ignore_sigint() -> None:
    """Pool workers leave Ctrl-C to the main process, which stops the run cleanly (a
    worker's KeyboardInterrupt would print a traceback per process)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_jobs(jobs: list[Job], cfg: PreprocessConfig, out_dir: Path, workers: int,
             progress: bool = True) -> Generator[dict[str, Any], None, None]:  # fmt: skip
    """Rows as they finish (inline when workers <= 1). Closing the iterator early (an
    interrupt, a full disk) cancels the jobs not yet started."""
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), unit="img", disable=not progress, desc="preprocess")
    args = [(job, cfg, out_dir) for job in jobs]
    try:
        if workers <= 1:
            for a in args:
                yield _run_one(a)
                bar.update()
        else:
            pool = ProcessPoolExecutor(max_workers=workers, initializer=_ignore_sigint)
            try:
                for row in pool.map(_run_one, args, chunksize=2):
                    yield row
                    bar.update()
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
    finally:
        bar.close()


def check_config(out_dir: Path, cfg: PreprocessConfig) -> None:
    """Refuse to mix outputs of two configs in one folder, naming the fields that differ;
    write the config otherwise. The saved one is read as a config, so a folder made before
    a field existed resumes with that field's old value (``PreprocessConfig.from_dict``)."""
    path = out_dir / PREPROCESS_CONFIG_NAME
    if path.is_file():
        try:
            old = PreprocessConfig.from_dict(json.loads(path.read_text()))
        except (json.JSONDecodeError, InputError, TypeError) as exc:  # TypeError: not an object
            raise InputError(f"{path}: unreadable ({exc})") from exc
        if old != cfg:
            new = cfg.to_dict()
            changed = ", ".join(f"{k}={v!r} (this run: {new[k]!r})"
                                for k, v in old.to_dict().items() if new[k] != v)  # fmt: skip
            raise InputError(f"{path}: {out_dir} holds images made with another config "
                             f"({changed}); use a new --out or those options")  # fmt: skip
    atomic_write_text(path, json.dumps(cfg.to_dict(), indent=2) + "\n")


def manifest_name(shard: tuple[int, int] | None) -> str:
    return MANIFEST_NAME if shard is None else f"manifest.shard-{shard[0]}-of-{shard[1]}.csv"


def journal_path(manifest: Path) -> Path:
    return manifest.with_name(f".{manifest.name}.journal")


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Rows appended by earlier runs; a line cut short by a kill is ignored."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            row = json.loads(line)
            if isinstance(row, dict) and "image_id" in row:
                rows.append(row)
    return rows


def previous_rows(path: Path) -> dict[int, dict[str, Any]]:
    """The ok rows of the last manifest, updated by the journal of runs cut short since."""
    rows: list[dict[str, Any]] = []
    if path.is_file():
        try:
            rows = pd.read_csv(path, keep_default_na=False).to_dict("records")
        except (pd.errors.EmptyDataError, pd.errors.ParserError):
            rows = []  # rebuilt from the PNGs and the journal
    rows += read_journal(journal_path(path))
    out = {}
    for r in rows:
        with contextlib.suppress(TypeError, ValueError):
            if r.get("status") == "ok":
                out[int(r["image_id"])] = r
    return out


class Journal:
    """Append-only record of finished rows (JSON lines, flushed one by one)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._file: IO[str] | None = open(path, "a")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise write_failure(path, exc) from exc

    def add(self, row: dict[str, Any]) -> None:
        assert self._file is not None
        try:
            self._file.write(json.dumps(row, default=str) + "\n")
            self._file.flush()
        except OSError as exc:
            raise write_failure(self.path, exc) from exc

    def close(self, remove: bool = False) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        if remove:
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)


def write_manifest(path: Path, rows: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS)).sort_values(["patient_id", "image_id"])
    atomic_write_bytes(path, df.to_csv(index=False).encode())
    return df


def select(table: pd.DataFrame, split: str, neg_ratio: float | None, seed: int,
           shard: tuple[int, int] | None, limit: int | None) -> pd.DataFrame:  # fmt: skip
    if neg_ratio is not None:
        table = subsample_negatives(table, neg_ratio, np.random.default_rng(seed))
    if shard is not None:
        table = take_shard(table, *shard)
    table = table.sort_values(["patient_id", "image_id"], kind="stable")
    return table.head(limit) if limit is not None else table


def optional_columns(split: str, neg_ratio: float | None) -> tuple[str, ...]:
    """Columns preprocessing can do without (read as unknown when missing): all but the
    keys of an image, and ``cancer`` unless --neg-ratio needs it."""
    needed = {"patient_id", "image_id", "laterality"} | ({"cancer"} if neg_ratio is not None
                                                          else set())  # fmt: skip
    return tuple(c for c in (TRAIN_COLUMNS if split == "train" else TEST_TIME_COLUMNS)
                 if c not in needed)  # fmt: skip


def run_preprocess(data_dir: str | Path, split: str, out_dir: str | Path, cfg: PreprocessConfig,
                   workers: int = 1, neg_ratio: float | None = None, seed: int = 0,
                   limit: int | None = None, shard: tuple[int, int] | None = None,
                   progress: bool = True) -> Summary:  # fmt: skip
    """Preprocess one split; returns the manifest rows (also written to OUT)."""
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if split not in ("train", "test"):
        raise FieldError("split", f"must be train or test, got {split!r}")
    if neg_ratio is not None and split != "train":
        raise FieldError("neg_ratio", "applies to the train split only")
    table = select(read_table(data_dir / f"{split}.csv", split,
                              optional=optional_columns(split, neg_ratio)),
                   split, neg_ratio, seed, shard, limit)  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_dir)  # left by a run killed mid-write
    check_config(out_dir, cfg)
    manifest = out_dir / manifest_name(shard)
    before = previous_rows(manifest)
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    todo: list[Job] = []
    for job in make_jobs(table, data_dir, split):
        if png_is_valid(out_dir / job.png, cfg):
            old = before.get(job.image_id)
            rows.append(old if old is not None else {**base_row(job), "status": "ok",
                                                     "reason": "resumed"})  # fmt: skip
        else:
            todo.append(job)
    skipped = len(rows)
    workers, capped = capped_workers("--workers", workers, len(todo), "images to do")
    if capped and todo:
        log.warning(capped)
    journal = Journal(journal_path(manifest))
    try:
        with contextlib.closing(run_jobs(largest_first(todo), cfg, out_dir, workers,
                                         progress)) as finished:  # fmt: skip
            for row in finished:
                journal.add(row)
                rows.append(row)
    except KeyboardInterrupt:
        journal.close()
        log.warning(f"interrupted after {len(rows) - skipped} of {len(todo)} images; rerun the "
                    "same command to resume")  # fmt: skip
        raise
    except OutputError:
        journal.close()
        raise
    df = write_manifest(manifest, rows)
    journal.close(remove=True)
    return Summary(df, time.perf_counter() - start, skipped, manifest)


def merge_manifests(out_dir: str | Path) -> pd.DataFrame:
    """Concatenate OUT/manifest.shard-*-of-N.csv into OUT/manifest.csv (one row per image;
    a later shard file does not override an ok row with an error)."""
    out_dir = Path(out_dir)
    parts = sorted(out_dir.glob("manifest.shard-*-of-*.csv"))
    if not parts:
        raise InputError(f"{out_dir}: no manifest.shard-*-of-*.csv to merge")
    df = pd.concat([pd.read_csv(p, keep_default_na=False) for p in parts], ignore_index=True)
    df["_ok"] = df["status"] == "ok"
    df = df.sort_values(["image_id", "_ok"]).drop_duplicates("image_id", keep="last")
    df = df.drop(columns="_ok").sort_values(["patient_id", "image_id"])
    atomic_write_text(out_dir / MANIFEST_NAME, df.to_csv(index=False))
    return df
