"""DICOM header survey: read every header (no pixels) in a process pool and
summarise per machine_id which transfer syntax, photometric interpretation, bit
depth, size and VOI settings the images carry.

Headers are read with :func:`rsna_pkg.dicom.read_header` only; a file that
cannot be read becomes a row with ``error`` set, so the survey always finishes
and the report can list it.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from rsna_pkg.dicom import DicomHeader

# One row of the survey; ``error`` is empty for a readable file.
SURVEY_COLUMNS: tuple[str, ...] = (
    "path", "split", "patient_id", "image_id", "machine_id", "transfer_syntax_uid",
    "photometric", "bits_stored", "rows", "columns", "voi_lut_function", "n_windows",
    "has_voi_lut_sequence", "error",
)  # fmt: skip
# Files per pool task: big enough to hide task overhead, small enough for a live progress bar.
CHUNK = 256
# Below this many files a pool is slower than one process: spawning a worker and importing
# pydicom costs ~1-2 s, a header ~1-2 ms (measured on the synthetic set, 2 cores).
POOL_MIN_FILES = 2000
TRANSFER_SYNTAX_NAMES = {
    "1.2.840.10008.1.2.4.90": "J2K lossless (.90)",
    "1.2.840.10008.1.2.4.91": "J2K (.91)",
    "1.2.840.10008.1.2.4.70": "JPEG lossless SV1 (.70)",
    "1.2.840.10008.1.2.4.57": "JPEG lossless (.57)",
    "1.2.840.10008.1.2.1": "explicit VR LE",
    "1.2.840.10008.1.2": "implicit VR LE",
    "1.2.840.10008.1.2.5": "RLE lossless",
}


@dataclass(frozen=True)
class SurveyItem:
    """One file to survey, with the CSV fields the header does not hold reliably."""

    path: str
    split: str
    patient_id: int
    image_id: int
    machine_id: int


@dataclass(frozen=True)
class Survey:
    """The survey table and how long reading it took (wall seconds)."""

    table: pd.DataFrame
    seconds: float
    workers: int

    @property
    def seconds_per_1000(self) -> float:
        n = len(self.table)
        return 1000.0 * self.seconds / n if n else 0.0


def header_row(item: SurveyItem) -> dict[str, object]:
    """Read one header into a survey row; any failure is recorded, not raised."""
    from rsna_pkg.dicom import read_header

    row: dict[str, object] = {
        "path": item.path,
        "split": item.split,
        "patient_id": item.patient_id,
        "image_id": item.image_id,
        "machine_id": item.machine_id,
        "error": "",
    }
    try:
        h = read_header(item.path)
    except Exception as exc:  # noqa: BLE001 - a survey must finish; the reason is reported
        row["error"] = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        return row
    row.update(
        transfer_syntax_uid=str(h.transfer_syntax_uid),
        photometric=str(h.photometric),
        bits_stored=int(h.bits_stored),
        rows=int(h.rows),
        columns=int(h.columns),
        voi_lut_function=voi_label(h),
        n_windows=len(h.window_centers or ()),
        has_voi_lut_sequence=bool(h.has_voi_lut_sequence),
    )
    return row


def voi_label(h: DicomHeader) -> str:
    """VOILUTFunction as applied: LINEAR when the tag is absent but a window is there;
    "none (percentile fallback)" when the file has no window and no VOI LUT."""
    if not (h.window_centers and h.window_widths) and not h.has_voi_lut_sequence:
        return "none (percentile fallback)"
    return str(h.voi_lut_function or "LINEAR")


def _read_chunk(items: Sequence[SurveyItem]) -> list[dict[str, object]]:
    return [header_row(it) for it in items]


def _chunks(items: Sequence[SurveyItem], size: int) -> Iterator[Sequence[SurveyItem]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def survey_headers(
    items: Sequence[SurveyItem],
    workers: int = 1,
    progress: bool = True,
    pool_min_files: int = POOL_MIN_FILES,
) -> Survey:
    """Read all headers: in ``workers`` spawned processes (chunked) when ``workers`` > 1
    and there are at least ``pool_min_files`` files, else in this process."""
    from tqdm.auto import tqdm

    start = time.perf_counter()
    rows: list[dict[str, object]] = []
    bar = tqdm(total=len(items), desc="headers", unit="file", disable=not progress)
    if workers <= 1 or len(items) < max(pool_min_files, 2):
        for chunk in _chunks(items, CHUNK):
            rows.extend(_read_chunk(chunk))
            bar.update(len(chunk))
        workers = 1
    else:
        # spawn: no inherited threads or locks from the parent (tqdm, BLAS).
        ctx = multiprocessing.get_context("spawn")
        size = max(16, min(CHUNK, len(items) // (workers * 4) or 1))
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = [pool.submit(_read_chunk, c) for c in _chunks(items, size)]
            for fut in as_completed(futures):
                part = fut.result()
                rows.extend(part)
                bar.update(len(part))
    bar.close()
    seconds = time.perf_counter() - start
    table = pd.DataFrame(rows, columns=list(SURVEY_COLUMNS))
    table = table.sort_values(["split", "image_id"], kind="stable").reset_index(drop=True)
    return Survey(table=table, seconds=seconds, workers=workers)


def _counts(series: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in series.value_counts().sort_index().items()}


def ts_name(uid: str) -> str:
    """Short readable name of a transfer syntax UID (the UID itself if unknown)."""
    return TRANSFER_SYNTAX_NAMES.get(uid, uid)


def by_machine(table: pd.DataFrame) -> dict[str, dict[str, object]]:
    """Per machine_id: value counts of every surveyed field over readable files."""
    ok = table[table["error"] == ""]
    out: dict[str, dict[str, object]] = {}
    for machine, g in ok.groupby("machine_id", sort=True):
        sizes = g["rows"].astype(int).astype(str) + "x" + g["columns"].astype(int).astype(str)
        out[str(machine)] = {
            "files": int(len(g)),
            "transfer_syntax": _counts(g["transfer_syntax_uid"].map(ts_name)),
            "photometric": _counts(g["photometric"]),
            "bits_stored": _counts(g["bits_stored"].astype(int)),
            "sizes": _counts(sizes),
            "voi_lut_function": _counts(g["voi_lut_function"]),
            "windows": _counts(g["n_windows"].astype(int)),
            "voi_lut_sequence": int(g["has_voi_lut_sequence"].astype(bool).sum()),
        }
    return out


def flags(table: pd.DataFrame) -> dict[str, dict[str, object]]:
    """Images needing special handling, counted per machine and listed by image id."""
    ok = table[table["error"] == ""]
    masks = {
        "monochrome1": ok["photometric"] == "MONOCHROME1",
        "sigmoid": ok["voi_lut_function"].str.upper() == "SIGMOID",
        "multiple_windows": ok["n_windows"] > 1,
        "no_window": ok["n_windows"] == 0,
    }
    out: dict[str, dict[str, object]] = {}
    for name, mask in masks.items():
        hit = ok[mask.astype(bool)]
        out[name] = {
            "count": int(len(hit)),
            "by_machine": _counts(hit["machine_id"]),
            "image_ids": [int(i) for i in hit["image_id"].head(200)],
        }
    return out


def errors(table: pd.DataFrame) -> list[dict[str, object]]:
    """Unreadable files: path, image id and the reason."""
    bad = table[table["error"] != ""]
    return [
        {"path": str(p), "image_id": int(i), "error": str(e)}
        for p, i, e in zip(bad["path"], bad["image_id"], bad["error"], strict=True)
    ]


def survey_summary(survey: Survey) -> dict[str, object]:
    """Everything the report and summary.json need from a survey."""
    table = survey.table
    return {
        "files": int(len(table)),
        "readable": int((table["error"] == "").sum()),
        "unreadable": errors(table),
        "seconds": round(survey.seconds, 3),
        "seconds_per_1000_files": round(survey.seconds_per_1000, 3),
        "workers": survey.workers,
        "by_machine": by_machine(table),
        "flags": flags(table),
    }


def items_from_table(df: pd.DataFrame, data_dir: Path, split: str) -> list[SurveyItem]:
    """Survey items for the rows of one split whose file exists."""
    from rsna_pkg.data.schema import image_path

    items = []
    for p, i, m in zip(df["patient_id"], df["image_id"], df["machine_id"], strict=True):
        path = image_path(data_dir, split, int(p), int(i))
        if path.is_file():
            items.append(SurveyItem(str(path), split, int(p), int(i), int(m)))
    return items
