"""The replay's stand-ins for the image's heavy preinstalled packages, and a folder exposing them.

The manifest's ``replay-local`` pins (torch, torchvision and their CUDA libraries: several GB
that the registry would have to send again) are not installed by the replay: the running
environment's copies are linked in instead (``build_farm``), with what they need here that
the manifest does not pin. Every other pin is installed at its exact version (sandbox.py).
"""

from __future__ import annotations

import importlib.metadata as md
from collections.abc import Iterable
from pathlib import Path

from packaging.requirements import Requirement

from rsna_pkg.errors import InputError
from rsna_pkg.kaggle.manifest import ImageManifest, canonical


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


def stand_ins(manifest: ImageManifest) -> tuple[dict[str, md.Distribution], list[str]]:
    """The installed distributions that stand in for the replay-local pins, and warnings.

    A replay-local pin named exactly (torch) must be installed here; one matched only by a
    pattern (nvidia-*-cu12) may be absent, as this machine's torch has its own CUDA build.
    The walk follows what the stand-ins need here, except names the manifest pins and the
    replay installs (sympy, numpy, ...): those come from the registry at the image's version,
    unless the pin cannot serve this machine's torch (it needs setuptools>=77, the image pins
    75.2.0): then this machine's copy is linked as well, and the warning says so. The caller
    installs every pin not returned here.
    """
    installed = _installed()
    chosen: dict[str, md.Distribution] = {}
    differ, absent, forced = [], [], []
    for name, version in manifest.pins.items():
        if not manifest.is_replay_local(name):
            continue
        if name not in installed:
            if name in manifest.replay_local:
                raise InputError(
                    f"{manifest.path.name}: {name} is replay-local but not installed here"
                )
            absent.append(name)
            continue
        chosen[name] = installed[name]
        if installed[name].version != version:
            differ.append(f"{name} {installed[name].version} (image {version})")
    extras: dict[str, set[str]] = {}
    todo: list[tuple[str, tuple[str, ...]]] = [(name, ()) for name in chosen]
    while todo:  # with extras: torch needs cuda-toolkit[cublas,...], whose needs are extras
        owner, wanted = todo.pop()
        new_extras = set(wanted) - extras.get(owner, set())
        if owner in extras and not new_extras:
            continue
        extras.setdefault(owner, set()).update(wanted)
        dist = chosen[owner]
        for req in requirements(dist, extras[owner]):
            name = canonical(req.name)
            if name not in installed:
                continue
            pin = manifest.pins.get(name)
            if name not in chosen and pin is not None and not manifest.is_replay_local(name):
                if req.specifier.contains(pin, prereleases=True):
                    continue
                forced.append(f"{name} {installed[name].version} (image {pin}; {dist.name} "
                              f"needs {req.specifier})")  # fmt: skip
            chosen[name] = installed[name]
            todo.append((name, tuple(req.extras)))
    warnings = []
    if differ:
        warnings.append(
            "warning: this machine's " + ", ".join(differ) + " stand in for the image's"
        )
    if forced:
        warnings.append("warning: linked from this machine too: " + ", ".join(forced))
    if absent:
        shown = ", ".join(absent[:3]) + (f" and {len(absent) - 3} more" if len(absent) > 3 else "")
        warnings.append(f"note: not installed here, so not linked: {shown}")
    return chosen, warnings


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
