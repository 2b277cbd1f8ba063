"""``run_eda``: metadata statistics, header survey, galleries and figures of one
competition-layout folder, written as report.md / report.html / summary.json."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rsna_pkg.config_fields import check_fields, option
from rsna_pkg.data.schema import image_path, read_table
from rsna_pkg.eda import figures as fg
from rsna_pkg.eda import galleries, headers, metadata, sections
from rsna_pkg.eda.report import write_outputs
from rsna_pkg.errors import InputError

FIGURE_DIR = "figures"


@dataclass(frozen=True)
class EdaConfig:
    """``sample``: images per gallery group. ``max_headers``: cap on headers surveyed
    (a seeded random subset; 0 = all). ``workers``: processes for headers and galleries.
    Fields made with ``option`` (not ``cli=False``) are `rsna eda`'s options too."""

    data_dir: Path
    out_dir: Path
    sample: int = option(4, help="images per gallery group", bounds=(1, 1000))
    max_headers: int = option(0, help="survey at most M headers (0 = all)", bounds=(0, 10**8))
    workers: int = option(1, cli=False, help="worker processes", bounds=(1, 1_000_000))
    seed: int = option(0, help="seed for sampling", bounds=(0, 2**32 - 1))
    progress: bool = option(True, cli=False, help="draw progress bars")

    def __post_init__(self) -> None:
        check_fields(self)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["data_dir"], d["out_dir"] = str(self.data_dir), str(self.out_dir)
        return d


@dataclass(frozen=True)
class EdaResult:
    summary: dict[str, Any]
    paths: dict[str, Path]


def load_tables(data_dir: Path) -> dict[str, pd.DataFrame]:
    """train.csv (required) and test.csv (when present), schema-checked."""
    if not data_dir.is_dir():
        raise InputError(f"{data_dir}: data folder not found")
    tables = {"train": read_table(data_dir / "train.csv", "train")}
    if (data_dir / "test.csv").is_file():
        tables["test"] = read_table(data_dir / "test.csv", "test")
    return tables


def existing_items(tables: dict[str, pd.DataFrame], data_dir: Path) -> list[headers.SurveyItem]:
    """One survey item per CSV row whose DICOM exists, train then test."""
    return [
        it for split, df in tables.items() for it in headers.items_from_table(df, data_dir, split)
    ]


def cap_items(
    items: list[headers.SurveyItem], cap: int, rng: np.random.Generator
) -> list[headers.SurveyItem]:
    """A seeded random subset of ``cap`` items (in their original order); all when cap <= 0."""
    if 0 < cap < len(items):
        keep = np.sort(rng.choice(len(items), size=cap, replace=False))
        return [items[i] for i in keep]
    return items


class FigureWriter:
    """Saves figures under OUT/figures and records the numbers behind each."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.records: dict[str, dict[str, Any]] = {}

    def add(self, name: str, title: str, fig: Any, data: Any) -> str:
        rel = f"{FIGURE_DIR}/{name}.png"
        fg.save_png(fig, self.out_dir / rel)
        return self.record(name, title, rel, data)

    def record(self, name: str, title: str, rel: str, data: Any) -> str:
        """Register a figure already written at OUT/``rel``."""
        self.records[name] = {"file": rel, "title": title, "data": data}
        return rel


def metadata_figures(fw: FigureWriter, train: dict[str, Any]) -> None:
    fw.add(
        "class_balance",
        "Class balance",
        fg.draw_class_balance(train["class_balance"]),
        train["class_balance"],
    )
    for col, records in train["rates"].items():
        fw.add(f"rate_{col}", f"Cancer rate by {col}", fg.draw_rate(records, col), records)
    rows = train["counts"]["images"]
    fw.add("missing", "Missing values", fg.draw_missing(train["missing"], rows), train["missing"])
    ipp = train["images_per_patient"]["histogram"]
    fw.add("images_per_patient", "Images per patient", fg.draw_images_per_patient(ipp), ipp)
    age = train["age_histogram"]
    fw.add("age_histogram", "Age distribution", fg.draw_age_histogram(age), age)


HEADER_FIGURES = (
    ("transfer_syntax", "Transfer syntax per machine"),
    ("photometric", "Photometric interpretation per machine"),
    ("bits_stored", "Bits stored per machine"),
    ("voi_lut_function", "VOI LUT function per machine"),
    ("windows", "Number of window center/width pairs per machine"),
    ("sizes", "Image sizes (rows x columns) per machine"),
)


def header_figures(fw: FigureWriter, hdr: dict[str, Any]) -> None:
    by_machine = hdr["by_machine"]
    if not by_machine:
        return
    for field, title in HEADER_FIGURES:
        data = {m: v[field] for m, v in by_machine.items()}
        fw.add(f"header_{field}", title, fg.draw_by_machine(by_machine, field, title), data)
    fw.add(
        "header_flags",
        "Header flags",
        fg.draw_flags(hdr["flags"], hdr["readable"]),
        {k: {"count": v["count"], "by_machine": v["by_machine"]} for k, v in hdr["flags"].items()},
    )


def gallery_figures(
    fw: FigureWriter,
    train: pd.DataFrame,
    readable: set[str],
    cfg: EdaConfig,
    rng: np.random.Generator,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Galleries per group; returns per-image facts and the groups whose worker died."""
    df = train.assign(
        path=[
            str(image_path(cfg.data_dir, "train", p, i))
            for p, i in zip(train["patient_id"], train["image_id"], strict=True)
        ]
    )
    groups = galleries.pick_groups(df, readable, cfg.sample, rng)
    tasks, rels = [], {}
    for name, g in groups.items():
        items = tuple(
            galleries.GalleryItem(
                name, str(r["path"]), int(r["image_id"]), galleries.group_label(r)
            )
            for r in g.to_dict(orient="records")
        )
        rels[name] = f"{FIGURE_DIR}/gallery_{name}.png"
        title = f"Gallery: {name.replace('_', ' ')}"
        tasks.append(galleries.GroupTask(name, title, items, str(fw.out_dir / rels[name])))
    (fw.out_dir / FIGURE_DIR).mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for task, data in zip(tasks, galleries.render_groups(tasks, cfg.workers), strict=True):
        if isinstance(data, str):
            failed[task.name] = data
            continue
        fw.record(f"gallery_{task.name}", task.title, rels[task.name], data)
        out[task.name] = data
    return out, failed


def run_eda(cfg: EdaConfig) -> EdaResult:
    """Compute every section, draw every figure, write the report."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    tables = load_tables(cfg.data_dir)
    meta = {s: metadata.table_summary(df, cfg.data_dir, s) for s, df in tables.items()}
    t_meta = time.perf_counter()
    present = existing_items(tables, cfg.data_dir)
    surveyed = cap_items(present, cfg.max_headers, rng)
    survey = headers.survey_headers(surveyed, cfg.workers, cfg.progress)
    hdr = headers.survey_summary(survey)
    fw = FigureWriter(cfg.out_dir)
    metadata_figures(fw, meta["train"])
    header_figures(fw, hdr)
    t_fig = time.perf_counter()
    # Gallery candidates: every present file except those the survey found unreadable
    # (files left out by --max-headers stay eligible).
    unreadable = set(survey.table.loc[survey.table["error"] != "", "path"])
    candidates = {it.path for it in present} - unreadable
    gal, gal_failed = gallery_figures(fw, tables["train"], candidates, cfg, rng)
    t_gal = time.perf_counter()
    summary: dict[str, Any] = {
        "config": cfg.to_dict(),
        "metadata": meta,
        "headers": hdr,
        "galleries": gal,
        "galleries_failed": gal_failed,
        "figures": fw.records,
        "timings_s": {
            "metadata": round(t_meta - t0, 3),
            "headers": round(survey.seconds, 3),
            "figures": round(t_fig - t_meta - survey.seconds, 3),
            "galleries": round(t_gal - t_fig, 3),
        },
    }
    blocks = sections.build(summary)
    summary["timings_s"]["total"] = round(time.perf_counter() - t0, 3)
    paths = write_outputs(cfg.out_dir, "RSNA screening mammography: EDA", blocks, summary)
    return EdaResult(summary=summary, paths=paths)
