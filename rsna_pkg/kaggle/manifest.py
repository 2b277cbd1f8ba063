"""The Kaggle image manifest (``kaggle_image.txt``): one pinned Kaggle Python image release.

Its Python version, its platform tag and ``name==version`` for every package the kernels
rely on plus that closure's own needs. The wheel dataset, ``rsna kaggle check`` and the local
replay all read this file, never the environment that happens to run them.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

from rsna_pkg.errors import InputError

IMAGE_MANIFEST = Path(__file__).with_name("kaggle_image.txt")
FIELDS = (
    "release",
    "python",
    "platform",
    "source",
    "replay-local",
    "also-python",
    "extras-upgrade",
)
LEGACY_MANYLINUX = {"manylinux1": 5, "manylinux2010": 12, "manylinux2014": 17}


def canonical(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class ImageManifest:
    path: Path
    release: str
    python: str  # full version, e.g. "3.12.13"
    platform: str  # the newest wheel platform tag the image accepts, e.g. manylinux_2_35_x86_64
    source: str
    pins: dict[str, str]  # canonical name -> version, as the image's freeze spells it
    replay_local: tuple[str, ...] = ()  # fnmatch patterns: linked, not installed, by the replay
    also_python: tuple[str, ...] = ()  # "3.13": the bundle carries wheels for these too
    extras_upgrade: tuple[str, ...] = ()  # pins rsna_pkg's extras may replace (canonical names)

    def __post_init__(self) -> None:
        for field, value in (
            ("python", self.python),
            *(("also-python", v) for v in self.also_python),
        ):
            if not re.fullmatch(r"3\.\d+(\.\d+)?", value):
                raise InputError(f"{self.path}: {field}: {value!r} is not a 3.X[.Y] version")
        unpinned = [n for n in self.extras_upgrade if n not in self.pins]
        if unpinned:
            raise InputError(f"{self.path}: extras-upgrade: {', '.join(unpinned)} not pinned")
        if not self.platform.endswith("_x86_64"):
            raise InputError(f"{self.path}: platform: {self.platform!r} is not an x86_64 tag")

    @property
    def python_minor(self) -> str:
        """``3.12`` of ``3.12.13``: what wheel tags and pip's --python-version speak."""
        return ".".join(self.python.split(".")[:2])

    def pythons(self) -> tuple[str, ...]:
        """Every Python X.Y the wheel dataset serves: the image's, then the ones it moves to."""
        minors = [".".join(p.split(".")[:2]) for p in (self.python, *self.also_python)]
        return tuple(dict.fromkeys(minors))

    def platforms(self) -> tuple[str, ...]:
        """Every platform tag the image accepts, newest first (glibc is backward compatible)."""
        return expand_platforms((self.platform,))

    def is_replay_local(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(canonical(name), pat) for pat in self.replay_local)


def expand_platforms(platforms: tuple[str, ...]) -> tuple[str, ...]:
    """Every manylinux tag the given glibc platforms accept, newest first (as pip does)."""
    out: list[str] = []
    arch = "x86_64"
    for plat in platforms:
        head = plat.removesuffix(f"_{arch}")
        glibc = LEGACY_MANYLINUX.get(head)
        if glibc is None and head.startswith("manylinux_2_"):
            glibc = int(head.rsplit("_", 1)[1])
        if glibc is None:
            out.append(plat)
            continue
        for minor in range(glibc, 4, -1):
            out.append(f"manylinux_2_{minor}_{arch}")
            out += [f"{k}_{arch}" for k, v in LEGACY_MANYLINUX.items() if v == minor]
    return tuple(dict.fromkeys(out))


def load_manifest(path: Path | None = None) -> ImageManifest:
    """Parse a manifest: ``key: value`` fields, ``name==version`` pins, ``#`` comments."""
    path = path or IMAGE_MANIFEST
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the Kaggle image manifest: {exc}") from exc
    fields: dict[str, str] = {}
    pins: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if sep:
            if not name.strip() or not version.strip() or canonical(name) in pins:
                raise InputError(f"{path}:{number}: {raw.strip()!r}: bad or repeated pin")
            pins[canonical(name)] = version.strip()
            continue
        key, sep, value = line.partition(":")
        if not sep or key.strip() not in FIELDS:
            raise InputError(
                f"{path}:{number}: {raw.strip()!r}: expected name==version or one of "
                f"{', '.join(f + ':' for f in FIELDS)}"
            )
        fields[key.strip()] = value.strip()
    missing = [f for f in ("release", "python", "platform") if f not in fields]
    if missing:
        raise InputError(f"{path}: missing field(s) {', '.join(missing)}")
    return ImageManifest(
        path=path,
        release=fields["release"],
        python=fields["python"],
        platform=fields["platform"],
        source=fields.get("source", ""),
        pins=pins,
        replay_local=tuple(fields.get("replay-local", "").split()),
        also_python=tuple(fields.get("also-python", "").split()),
        extras_upgrade=tuple(canonical(n) for n in fields.get("extras-upgrade", "").split()),
    )
