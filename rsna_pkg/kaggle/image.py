"""The simulated Kaggle image: which distributions it provides, and a folder exposing only them.

``kaggle_image.txt`` (package data) is the one list. Its requirement closure, resolved in the
current environment, is what the wheel dataset may rely on (build.py bundles the rest) and
what the replay's clean environment can see (``build_farm`` symlinks exactly those files).
"""

from __future__ import annotations

import importlib.metadata as md
import re
from collections.abc import Iterable
from pathlib import Path

from packaging.requirements import Requirement

from rsna_pkg.errors import InputError

IMAGE_LIST = Path(__file__).with_name("kaggle_image.txt")


def canonical(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def image_packages(path: Path = IMAGE_LIST) -> list[str]:
    """The names in kaggle_image.txt (comments and blank lines ignored)."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [canonical(line) for line in lines if line]


def _installed() -> dict[str, md.Distribution]:
    """Installed distributions by canonical name; the first on sys.path wins, as for import."""
    found: dict[str, md.Distribution] = {}
    for dist in md.distributions():
        found.setdefault(canonical(dist.metadata["Name"]), dist)
    return found


def requirements(dist: md.Distribution, extras: Iterable[str] = ()) -> list[Requirement]:
    """Requirements of ``dist`` that apply here with the given extras."""
    out = []
    for line in dist.requires or []:
        req = Requirement(line)
        wanted = [""] + list(extras)
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in wanted):
            out.append(req)
    return out


def closure(names: Iterable[str]) -> dict[str, md.Distribution]:
    """``names`` plus everything they require, resolved among installed distributions."""
    installed = _installed()
    todo: list[tuple[str, tuple[str, ...]]] = [(canonical(n), ()) for n in names]
    done: dict[str, md.Distribution] = {}
    extras_seen: dict[str, set[str]] = {}
    while todo:
        name, extras = todo.pop()
        if name not in installed:
            raise InputError(f"{IMAGE_LIST.name}: {name} (or a requirement of it) is not installed")
        new: set[str] = set(extras) - extras_seen.get(name, set())
        if name in done and not new:
            continue
        done[name] = installed[name]
        extras_seen.setdefault(name, set()).update(extras)
        for req in requirements(installed[name], extras_seen[name]):
            todo.append((canonical(req.name), tuple(req.extras)))
    return done


def _files(dist: md.Distribution) -> list[str]:
    if dist.files is None:
        raise InputError(f"{dist.metadata['Name']}: no RECORD, cannot tell which files it owns")
    return [p.as_posix() for p in dist.files if not p.as_posix().startswith("..")]


def build_farm(dest: Path, dists: dict[str, md.Distribution]) -> int:
    """Symlink the files of ``dists`` (and nothing else) into ``dest``.

    A top-level folder shared with a distribution outside the set (``nvidia/`` holds both
    torch's CUDA libraries and DALI) becomes a real folder, recursed into, so the excluded
    distribution stays invisible. Returns the number of links made.
    """
    keep = set(dists)
    tree: dict[str, dict] = {}
    roots: dict[str, Path] = {}
    for dist in dists.values():
        root = Path(str(dist.locate_file("")))
        for rel in _files(dist):
            node = tree
            for part in rel.split("/"):
                node = node.setdefault(part, {})
            roots.setdefault(rel.split("/", 1)[0], root)
    blocked: set[str] = set()  # folders (as "a/b") holding files of excluded distributions
    for name, dist in _installed().items():
        if name in keep or dist.files is None:
            continue
        for rel in _files(dist):
            parts = rel.split("/")
            blocked.update("/".join(parts[:i]) for i in range(1, len(parts)))
    dest.mkdir(parents=True, exist_ok=True)
    return _link(tree, dest, roots, blocked, "")


def _link(node: dict, dest: Path, roots: dict[str, Path], blocked: set[str], prefix: str) -> int:
    made = 0
    for part, children in node.items():
        rel = f"{prefix}{part}"
        source = roots[rel.split("/", 1)[0]] / rel
        if not source.exists():
            continue  # RECORD lists a file that was since removed (e.g. a .pyc)
        if children and rel in blocked:
            (dest / rel).mkdir(exist_ok=True)
            made += _link(children, dest, roots, blocked, rel + "/")
        elif not (dest / rel).exists():
            (dest / rel).symlink_to(source, target_is_directory=source.is_dir())
            made += 1
    return made
