"""Turn the summary dict into report blocks: one function per section, reading
only what summary.json stores, so the report never shows a number the JSON lacks."""

from __future__ import annotations

from typing import Any

from rsna_pkg.eda.report import Block, Bullets, Heading, Image, Text, pct, table

# How many ids of a listed problem the report prints (summary.json keeps more).
SHOWN_IDS = 20
# Unreadable files listed one per line in the report (summary.json lists all).
SHOWN_FILES = 200


def _figure(summary: dict[str, Any], name: str) -> list[Block]:
    rec = summary["figures"].get(name)
    return [Image(rec["file"], rec["title"])] if rec else []


def overview(summary: dict[str, Any]) -> list[Block]:
    cfg, meta = summary["config"], summary["metadata"]
    rows = [(s, *m["counts"].values()) for s, m in meta.items()]
    t = summary["timings_s"]
    return [
        Text(
            f"Data: {cfg['data_dir']}. Gallery sample per group: {cfg['sample']}; "
            f"header cap: {cfg['max_headers'] or 'all'}; workers: {cfg['workers']}; "
            f"seed: {cfg['seed']}."
        ),  # fmt: skip
        table(("split", "images", "patients", "breasts"), rows),
        Text("Seconds: " + ", ".join(f"{k} {v}" for k, v in t.items()) + "."),
        Bullets(
            (
                "breast = prediction_id (patient_id x laterality); positive if any image is",
                "rates are per image unless labelled breast; missing values form their own group",
                "--sample N: images drawn at random (seeded) per gallery group",
                "--max-headers M: headers surveyed, a seeded random subset (0 = every file)",
                "summary.json holds the numbers behind every figure under figures.<name>.data",
            )
        ),  # fmt: skip
    ]


def class_section(summary: dict[str, Any]) -> list[Block]:
    bal = summary["metadata"]["train"]["class_balance"]
    rows = [(lv, b["n"], b["positive"], b["negative"], pct(b["rate"])) for lv, b in bal.items()]
    return [
        Heading("Class balance (train)"),
        Text(
            "A breast (prediction_id) is positive when any of its images is; "
            "a patient when any breast is."
        ),  # fmt: skip
        table(("level", "n", "cancer", "negative", "rate"), rows),
        *_figure(summary, "class_balance"),
    ]


def rate_sections(summary: dict[str, Any]) -> list[Block]:
    blocks: list[Block] = [Heading("Cancer rate by attribute (train)")]
    for col, records in summary["metadata"]["train"]["rates"].items():
        rows = [
            (r["value"], r["images"], r["cancer"], pct(r["rate"]), r["breasts"],
             r["cancer_breasts"], pct(r["breast_rate"]))
            for r in records
        ]  # fmt: skip
        blocks += [
            Heading(f"By {col}", 3),
            table(
                ("value", "images", "cancer", "rate", "breasts", "cancer breasts", "breast rate"),
                rows,
            ),  # fmt: skip
            *_figure(summary, f"rate_{col}"),
        ]
    return blocks


def table_sections(summary: dict[str, Any]) -> list[Block]:
    meta = summary["metadata"]
    splits = list(meta)
    cols = list(dict.fromkeys(c for s in splits for c in meta[s]["missing"]))
    rows = [(c, *(meta[s]["missing"].get(c, "-") for s in splits)) for c in cols]
    ipp = [(s, *(meta[s]["images_per_patient"][k] for k in ("min", "median", "mean", "max")))
           for s in splits]  # fmt: skip
    return [
        Heading("Missing values"),
        table(("column", *splits), rows),
        *_figure(summary, "missing"),
        Heading("Images per patient"),
        table(("split", "min", "median", "mean", "max"), ipp),
        *_figure(summary, "images_per_patient"),
        Heading("Age"),
        *_figure(summary, "age_histogram"),
    ]


def checks_section(summary: dict[str, Any]) -> list[Block]:
    rows = []
    for split, m in summary["metadata"].items():
        for name, chk in m["checks"].items():
            ids = ", ".join(str(i) for i in chk["ids"][:SHOWN_IDS])
            more = " ..." if chk["count"] > SHOWN_IDS else ""
            rows.append((split, name, chk["count"], ids + more))
    return [
        Heading("Consistency checks"),
        Text("Rows breaking these rules are listed here and kept in every count above."),
        table(("split", "check", "count", "image ids"), rows),
    ]


def _fmt_counts(counts: dict[str, int]) -> str:
    return "; ".join(f"{k}: {v}" for k, v in counts.items())


def header_section(summary: dict[str, Any]) -> list[Block]:
    h = summary["headers"]
    blocks: list[Block] = [
        Heading("DICOM headers (no pixel decode)"),
        Text(
            f"{h['files']} files surveyed with {h['workers']} worker(s) in {h['seconds']} s "
            f"= {h['seconds_per_1000_files']} s per 1,000 files; {h['readable']} readable, "
            f"{len(h['unreadable'])} unreadable."
        ),  # fmt: skip
    ]
    fields = ("transfer_syntax", "photometric", "bits_stored", "sizes", "voi_lut_function",
              "windows")  # fmt: skip
    rows = [
        (m, v["files"], *(_fmt_counts(v[f]) for f in fields), v["voi_lut_sequence"])
        for m, v in h["by_machine"].items()
    ]
    blocks.append(
        table(
            (
                "machine_id",
                "files",
                "transfer syntax",
                "photometric",
                "bits stored",
                "sizes",
                "VOI function",
                "windows (n pairs)",
                "VOI LUT seq",
            ),
            rows,
        )  # fmt: skip
    )
    flag_rows = [(k, v["count"], _fmt_counts(v["by_machine"])) for k, v in h["flags"].items()]
    blocks += [
        Heading("Flags", 3),
        table(("flag", "files", "per machine_id"), flag_rows),
        *_figure(summary, "header_flags"),
    ]
    for name in summary["figures"]:
        if name.startswith("header_") and name != "header_flags":
            blocks += _figure(summary, name)
    bad = h["unreadable"]
    blocks.append(Heading("Unreadable files", 3))
    if bad:
        lines = [f"{b['path']}: {b['error']}" for b in bad[:SHOWN_FILES]]
        if len(bad) > SHOWN_FILES:
            lines.append(f"... and {len(bad) - SHOWN_FILES} more (summary.json lists all)")
        blocks.append(Bullets(tuple(lines)))
    else:
        blocks.append(Text("None."))
    return blocks


def gallery_section(summary: dict[str, Any]) -> list[Block]:
    blocks: list[Block] = [
        Heading("Image galleries"),
        Text(
            "Per row: stored pixel values min-max scaled (MONOCHROME1 shows inverted), the "
            "windowed image from rsna_pkg.dicom.apply_voi, and rsna_pkg.preprocess.preprocess_file "
            "output (crop, breast on the left). Decoded at reduced resolution r (2^r smaller)."
        ),  # fmt: skip
    ]
    for name, items in summary["galleries"].items():
        failed = [f"{i['image_id']}: {i['error']}" for i in items if i["error"]]
        blocks += _figure(summary, f"gallery_{name}")
        if failed:
            blocks.append(Bullets(tuple(failed)))
    for name, reason in summary.get("galleries_failed", {}).items():
        blocks.append(Text(f"Gallery {name} failed: {reason}"))
    return blocks


def build(summary: dict[str, Any]) -> list[Block]:
    return [
        *overview(summary),
        *class_section(summary),
        *rate_sections(summary),
        *table_sections(summary),
        *checks_section(summary),
        *header_section(summary),
        *gallery_section(summary),
    ]
