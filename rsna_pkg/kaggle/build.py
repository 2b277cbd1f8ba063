"""Build the offline wheel dataset: our wheel plus every wheel the Kaggle image lacks.

pip's resolver picks the versions (metadata only) for each Python the manifest names (the
image's and the ones it moves to), with the image's pins as constraints: a pinned requirement
is left to the image, except the pins the manifest lets rsna_pkg's extras upgrade; anything
else is fetched with ``pip download --only-binary=:all: --no-deps`` for that Python and the
manifest's platform, whatever Python runs the build. A pure-Python wheel serves every Python
and is stored once. Downloads are cached, so a second build makes no network request.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.parser import Parser
from pathlib import Path
from typing import Any

from rsna_pkg.errors import InputError
from rsna_pkg.kaggle.manifest import ImageManifest, canonical, expand_platforms, load_manifest
from rsna_pkg.kaggle.paths import DATASET_METADATA, KaggleConfig

DALI_EXTRA = "dali"
NVIMGCODEC_EXTRA = "nvimgcodec"
# --decoder (rsna_pkg.dicom.backend's vocabulary): the batch GPU decoder the bundle carries,
# or "cpu" for the CPU decoders alone (always bundled).
BUNDLE_DECODERS: dict[str, tuple[str, ...]] = {
    "dali": (DALI_EXTRA,),  # ~500 MiB of wheels; brings nvImageCodec too
    "nvimgcodec": (NVIMGCODEC_EXTRA,),  # ~45 MiB
    "cpu": (),
}


def add_decoder_argument(parser: Any) -> None:
    """``--decoder`` of the bundle builders; ``--gpu-decoder NAME`` and ``--no-dali`` (the
    earlier flags) still work as deprecated spellings of ``--decoder NAME`` / ``--decoder cpu``."""
    parser.add_argument(
        "--decoder", "--gpu-decoder", dest="decoder", default="dali",
        choices=(*BUNDLE_DECODERS, "none"),
        help="decoder bundled beyond the CPU ones: dali (~500 MiB of wheels), nvimgcodec "
             "(~45 MiB) or cpu (none; 'none' and --no-dali are deprecated spellings)",
    )  # fmt: skip
    parser.add_argument("--no-dali", dest="decoder", action="store_const", const="cpu",
                        help="deprecated: --decoder cpu")  # fmt: skip


@dataclass(frozen=True)
class Target:
    """The interpreter wheels are chosen for: CPython X.Y on these platform tags."""

    python: str  # "3.12"
    platforms: tuple[str, ...]  # every tag accepted, newest first

    def tags(self) -> set[str]:
        """Wheel tags the interpreter accepts (``py3-none-any`` ... ``cp312-cp312-manylinux_*``)."""
        from packaging import tags

        major, minor = (int(x) for x in self.python.split(".")[:2])
        found = list(tags.cpython_tags((major, minor), platforms=self.platforms))
        found += list(tags.compatible_tags((major, minor), f"cp{major}{minor}", self.platforms))
        return {str(t) for t in found}

    def describe(self) -> str:
        return f"CPython {self.python} on {self.platforms[0]}"


@dataclass(frozen=True)
class BuildOptions:
    python: str | None = None  # None: the manifest's (the Kaggle image's)
    platforms: tuple[str, ...] | None = None  # None: the manifest's
    decoder: str = "dali"  # a BUNDLE_DECODERS name ("none" is read as "cpu")
    cache: Path | None = None  # default ~/.cache/rsna_pkg/wheels
    manifest: Path | None = None  # default: the packaged kaggle_image.txt

    def __post_init__(self) -> None:
        if self.decoder == "none":
            object.__setattr__(self, "decoder", "cpu")
        if self.decoder not in BUNDLE_DECODERS:
            raise InputError(f"bundle decoder {self.decoder!r} unknown; known: "
                             f"{', '.join(BUNDLE_DECODERS)}")  # fmt: skip

    def image(self) -> ImageManifest:
        return load_manifest(self.manifest)

    def extras(self) -> tuple[str, ...]:
        """The rsna_pkg extras bundled: DALI (which brings nvImageCodec), nvImageCodec or none."""
        return BUNDLE_DECODERS[self.decoder]

    def targets(self, image: ImageManifest | None = None) -> tuple[Target, ...]:
        """The interpreters the wheels are for: ``python`` alone when given (the replay's),
        else every Python of the manifest (the image's first)."""
        image = image or self.image()
        pythons = (self.python,) if self.python else image.pythons()
        plats = expand_platforms(self.platforms) if self.platforms else image.platforms()
        return tuple(Target(".".join(py.split(".")[:2]), plats) for py in pythons)

    def target(self, image: ImageManifest | None = None) -> Target:
        """The first of ``targets``: the image's own Python unless ``python`` is given."""
        return self.targets(image)[0]


@dataclass
class BuildResult:
    out: Path
    own_wheel: Path
    bundled: list[Path] = field(default_factory=list)
    provided: list[str] = field(default_factory=list)  # requirements left to the Kaggle image
    target: str = ""  # the interpreters the wheels are for
    upgraded: list[str] = field(default_factory=list)  # pins the extras replace: "name pin -> v"

    def summary(self) -> str:
        size = sum(p.stat().st_size for p in [self.own_wheel, *self.bundled]) / 2**20
        lines = [f"wheel dataset {self.out}: {1 + len(self.bundled)} wheels, {size:.0f} MiB"]
        lines[0] += f" for {self.target}" if self.target else ""
        lines += [f"  {p.name}" for p in [self.own_wheel, *self.bundled]]
        lines.append(f"  left to the Kaggle image: {', '.join(sorted(self.provided))}")
        lines += [f"  upgrades the image's {u} (extras-upgrade)" for u in self.upgraded]
        return "\n".join(lines)


def cache_dir(opts: BuildOptions) -> Path:
    base = opts.cache or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rsna_pkg"
    return base / "wheels"


def wheel_metadata(wheel: Path) -> dict[str, list[str] | str]:
    """Name, Version and Requires-Dist of a wheel, read from its METADATA."""
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        msg = Parser().parsestr(zf.read(name).decode("utf-8"))
    return {
        "name": msg["Name"],
        "version": msg["Version"],
        "requires": msg.get_all("Requires-Dist") or [],
    }


WHEEL_SOURCES = ("setup.py", "pyproject.toml", "README.md", "rsna_pkg")


def build_own_wheel(project: Path, dest: Path) -> Path:
    """``pip wheel --no-deps`` of a clean copy of what the wheel is made from (no build
    isolation: no download). The copy matters: setuptools reuses a stale build/lib, which
    would ship modules long deleted from the tree."""
    if not (project / "setup.py").is_file() and not (project / "pyproject.toml").is_file():
        raise InputError(f"{project}: not a source tree (no setup.py / pyproject.toml)")
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in WHEEL_SOURCES:
            if (project / name).is_dir():
                shutil.copytree(project / name, src / name, ignore=junk)
            elif (project / name).is_file():
                shutil.copy2(project / name, src / name)
        _pip("wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp, str(src))
        (built,) = Path(tmp).glob("rsna_pkg-*.whl")
        dest.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(built, dest / built.name))


def build_dataset(
    out: Path, cfg: KaggleConfig, opts: BuildOptions, repo: Path, project: Path | None = None
) -> BuildResult:
    """Write the flat wheel dataset folder ``out`` (wheels + dataset-metadata.json)."""
    from rsna_pkg.kaggle.render import dataset_metadata, dumps

    image = opts.image()
    targets = opts.targets(image)
    _prepare_out(out)
    own = build_own_wheel(project or repo, out)
    own_name = canonical(str(wheel_metadata(own)["name"]))
    extras = opts.extras()
    pythons = " and ".join(t.python for t in targets)
    result = BuildResult(out=out, own_wheel=own, target=f"CPython {pythons} on "
                         f"{targets[0].platforms[0]}")  # fmt: skip
    for target in targets:
        for name, version in sorted(resolve(own, extras, image, target, opts).items()):
            if name == own_name:
                continue
            if image.pins.get(name, "").split("+")[0] == version:
                result.provided.append(name)
                continue
            if name in image.pins:  # an extras-upgrade pin the extras need newer
                result.upgraded.append(f"{name} {image.pins[name]} -> {version}")
            wheel = fetch(name, f"=={version}", target, opts)
            if not (out / wheel.name).exists():  # a pure-Python wheel: once for every Python
                result.bundled.append(_place(wheel, out))
    result.provided = sorted(set(result.provided))
    result.upgraded = list(dict.fromkeys(result.upgraded))
    (out / DATASET_METADATA).write_text(dumps(dataset_metadata(cfg, "wheels")))
    return result


def stub_wheel(
    folder: Path, name: str, version: str, requires: Sequence[str] = (), tag: str = "py3-none-any"
) -> Path:
    """A metadata-only wheel: all pip's resolver reads of a package (tags, Requires-Dist)."""
    folder.mkdir(parents=True, exist_ok=True)
    base = f"{canonical(name).replace('-', '_')}-{version}"
    path = folder / f"{base}-{tag}.whl"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    meta += "".join(f"Requires-Dist: {r}\n" for r in requires)
    wheel = f"Wheel-Version: 1.0\nGenerator: rsna_pkg\nRoot-Is-Purelib: true\nTag: {tag}\n"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{base}.dist-info/METADATA", meta)
        zf.writestr(f"{base}.dist-info/WHEEL", wheel)
        zf.writestr(f"{base}.dist-info/RECORD", "")
    return path


def image_stubs(image: ImageManifest, folder: Path) -> Path:
    """A stub wheel per pin (local labels dropped): the image's packages as pip sees them,
    for any Python, even one the pinned release has no wheel for (numpy 2.0.2 on 3.13)."""
    for name, version in image.pins.items():
        stub_wheel(folder, name, version.split("+")[0])
    return folder


def resolve(
    own: Path, extras: tuple[str, ...], image: ImageManifest, target: Target, opts: BuildOptions
) -> dict[str, str]:
    """Name -> version of everything ``own[extras]`` needs on the image, as pip's resolver picks
    it with the image's pins as constraints, for the target's Python and platform.

    Metadata only (``pip install --dry-run --report``): nothing is downloaded or installed.
    The answer is cached by requirements, pins and target, so a rebuild asks nothing.
    """
    requires = sorted(map(str, wheel_metadata(own)["requires"]))
    key = json.dumps([requires, extras, sorted(image.pins.items()), target.python,
                      target.platforms[0], image.extras_upgrade, "stubs"])  # fmt: skip
    memo = (
        cache_dir(opts).parent
        / "resolved"
        / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
    )
    if memo.is_file():
        return dict(json.loads(memo.read_text()))
    with tempfile.TemporaryDirectory() as tmp:
        constraints = Path(tmp, "image.txt")
        # a local label (+cu128) names a build the registry does not hold; same requirements.
        # An extras-upgrade pin is left free when extras are asked: they may need it newer.
        fixed = {n: v for n, v in image.pins.items() if not (extras and n in image.extras_upgrade)}
        constraints.write_text("".join(f"{n}=={v.split('+')[0]}\n" for n, v in fixed.items()))
        report = Path(tmp, "report.json")
        platforms = [arg for p in target.platforms for arg in ("--platform", p)]
        wanted = f"{own}[{','.join(extras)}]" if extras else str(own)
        stubs = image_stubs(image, Path(tmp, "image"))
        _pip(
            "install", "--dry-run", "--ignore-installed", "-q", "--only-binary=:all:",
            "--python-version", target.python, *platforms, "--target", str(Path(tmp, "t")),
            "--report", str(report), "-c", str(constraints), "--find-links", str(stubs), wanted,
        )  # fmt: skip
        picked = {
            canonical(item["metadata"]["name"]): str(item["metadata"]["version"])
            for item in json.loads(report.read_text())["install"]
        }
    memo.parent.mkdir(parents=True, exist_ok=True)
    memo.write_text(json.dumps(picked, indent=1, sort_keys=True))
    return picked


def marker_env(python: str) -> dict[str, str]:
    """PEP 508 marker values of the Kaggle image (Linux x86_64 CPython)."""
    return {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }


def fetch(name: str, specifier: str, target: Target, opts: BuildOptions) -> Path:
    """A cached wheel of ``name`` matching ``specifier`` and the target's tags, else pip download."""
    cached = _cached(name, specifier, target, opts)
    if cached is not None:
        return cached
    cache = cache_dir(opts)
    cache.mkdir(parents=True, exist_ok=True)
    # pip matches each --platform exactly, so every accepted tag is named
    platforms = [arg for p in target.platforms for arg in ("--platform", p)]
    _pip(
        "download", "-q", "--only-binary=:all:", "--no-deps", "--python-version", target.python,
        *platforms, "-d", str(cache), f"{name}{specifier}",
    )  # fmt: skip
    cached = _cached(name, specifier, target, opts)
    if cached is None:
        raise InputError(f"pip download {name}{specifier} produced no usable wheel in {cache}")
    return cached


def _cached(name: str, specifier: str, target: Target, opts: BuildOptions) -> Path | None:
    from packaging.specifiers import SpecifierSet
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    wanted, spec, best = target.tags(), SpecifierSet(specifier), None
    for path in cache_dir(opts).glob("*.whl"):
        try:
            wname, version, _, wtags = parse_wheel_filename(path.name)
        except InvalidWheelFilename:
            continue
        ok = canonical(wname) == name and spec.contains(version, prereleases=True)
        if ok and {str(t) for t in wtags} & wanted and (best is None or version > best[0]):
            best = (version, path)
    return best[1] if best else None


def _prepare_out(out: Path) -> None:
    """``out`` may be new or a previous build (wheels + metadata only); old wheels go."""

    out.mkdir(parents=True, exist_ok=True)
    strangers = [p.name for p in out.iterdir() if p.suffix != ".whl" and p.name != DATASET_METADATA]
    if strangers:
        raise InputError(f"{out}: not a wheel dataset folder (holds {', '.join(strangers[:3])})")
    for old in out.glob("*.whl"):
        old.unlink()


def _place(wheel: Path, out: Path) -> Path:
    """Hard-link from the cache when possible (DALI is 400 MB), else copy."""
    dest = out / wheel.name
    try:
        os.link(wheel, dest)
    except OSError:
        shutil.copy2(wheel, dest)
    return dest


def _pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        tail = [line for line in said if not line.startswith("WARNING: Location")][-8:]
        raise InputError(f"{' '.join(cmd[2:5])} ... failed:\n" + "\n".join(tail))
