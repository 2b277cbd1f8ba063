"""The report as a list of blocks, rendered twice: Markdown (figures linked as
files beside it) and a self-contained HTML page (figures embedded as base64, so
it reads offline and as a single Kaggle output file)."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Image:
    """A figure file, relative to the report's folder."""

    path: str
    caption: str


Block = Heading | Text | Bullets | Table | Image


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    """A Table from any cell values (formatted with :func:`cell`)."""
    return Table(tuple(header), tuple(tuple(cell(v) for v in r) for r in rows))


def cell(value: Any) -> str:
    """Cells: rates as percentages with 2 decimals, floats with 3 significant digits."""
    if isinstance(value, (float, np.floating)):
        return f"{value:.3g}"
    return str(value)


def pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(title: str, blocks: Sequence[Block]) -> str:
    lines = [f"# {title}", ""]
    for b in blocks:
        if isinstance(b, Heading):
            lines += [f"{'#' * b.level} {b.text}", ""]
        elif isinstance(b, Text):
            lines += [b.text, ""]
        elif isinstance(b, Bullets):
            lines += [f"- {item}" for item in b.items] + [""]
        elif isinstance(b, Table):
            lines.append("| " + " | ".join(_md_escape(h) for h in b.header) + " |")
            lines.append("|" + " --- |" * len(b.header))
            lines += ["| " + " | ".join(_md_escape(c) for c in r) + " |" for r in b.rows]
            lines.append("")
        elif isinstance(b, Image):
            lines += [f"![{b.caption}]({b.path})", "", f"*{b.caption}*", ""]
    return "\n".join(lines)


_CSS = (
    "body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
    "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #bbb;padding:2px 8px;"
    "text-align:right}th{background:#eee}img{max-width:100%}figcaption{font-style:italic}"
)


def to_html(title: str, blocks: Sequence[Block], base_dir: Path) -> str:
    """HTML page; every Image is read from ``base_dir`` and embedded as a data URI."""
    e = html.escape
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(title)}</title>",
        f"<style>{_CSS}</style></head><body><h1>{e(title)}</h1>",
    ]
    for b in blocks:
        if isinstance(b, Heading):
            parts.append(f"<h{b.level}>{e(b.text)}</h{b.level}>")
        elif isinstance(b, Text):
            parts.append(f"<p>{e(b.text)}</p>")
        elif isinstance(b, Bullets):
            parts.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{e(h)}</th>" for h in b.header)
            body = "".join(
                "<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in b.rows
            )
            parts.append(f"<table><tr>{head}</tr>{body}</table>")
        elif isinstance(b, Image):
            data = base64.b64encode((base_dir / b.path).read_bytes()).decode("ascii")
            parts.append(
                f"<figure><img alt='{e(b.caption)}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{e(b.caption)}</figcaption></figure>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)


def jsonable(obj: Any) -> Any:
    """Plain-JSON copy of nested dicts/lists holding numpy scalars or NaN (-> null)."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if np.isnan(obj) else float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def write_outputs(
    out_dir: Path, title: str, blocks: Sequence[Block], summary: Mapping[str, Any]
) -> dict[str, Path]:
    """Write report.md, report.html and summary.json into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "markdown": out_dir / "report.md",
        "html": out_dir / "report.html",
        "summary": out_dir / "summary.json",
    }
    paths["markdown"].write_text(to_markdown(title, blocks), encoding="utf-8")
    paths["html"].write_text(to_html(title, blocks, out_dir), encoding="utf-8")
    paths["summary"].write_text(json.dumps(jsonable(summary), indent=1), encoding="utf-8")
    return paths
