"""Build the offline wheel dataset: our wheel plus every wheel the Kaggle image lacks.

The requirement graph is walked by hand: a requirement the image provides (the closure of
kaggle_image.txt) is left to the image; anything else is fetched with ``pip download
--only-binary=:all: --no-deps`` for Kaggle's Python and platform, and its own requirements
are walked in turn. Downloads are cached, so a second build makes no network request.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from email.parser import Parser
from pathlib import Path

from rsna_pkg.errors import InputError
from rsna_pkg.kaggle.paths import DATASET_METADATA, KaggleConfig

DEFAULT_PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64")
DALI_EXTRA = "dali"


@dataclass(frozen=True)
class BuildOptions:
    python: str = "3.11"
    platforms: tuple[str, ...] = DEFAULT_PLATFORMS
    dali: bool = True
    cache: Path | None = None  # default ~/.cache/rsna_pkg/wheels


@dataclass
class BuildResult:
    out: Path
    own_wheel: Path
    bundled: list[Path] = field(default_factory=list)
    provided: list[str] = field(default_factory=list)  # requirements left to the Kaggle image

    def summary(self) -> str:
        size = sum(p.stat().st_size for p in [self.own_wheel, *self.bundled]) / 2**20
        lines = [f"wheel dataset {self.out}: {1 + len(self.bundled)} wheels, {size:.0f} MiB"]
        lines += [f"  {p.name}" for p in [self.own_wheel, *self.bundled]]
        lines.append(f"  left to the Kaggle image: {', '.join(sorted(self.provided))}")
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


def build_own_wheel(project: Path, dest: Path) -> Path:
    """``pip wheel . --no-deps`` of the source tree (no build isolation: no download)."""
    if not (project / "setup.py").is_file() and not (project / "pyproject.toml").is_file():
        raise InputError(f"{project}: not a source tree (no setup.py / pyproject.toml)")
    with tempfile.TemporaryDirectory() as tmp:
        _pip("wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp, str(project))
        (built,) = Path(tmp).glob("rsna_pkg-*.whl")
        dest.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(built, dest / built.name))


def target_tags(opts: BuildOptions) -> set[str]:
    """Wheel tags Kaggle's interpreter accepts (``py3-none-any`` ... ``cp311-cp311-manylinux_*``)."""
    from packaging import tags

    major, minor = (int(x) for x in opts.python.split(".")[:2])
    platforms = _expand_platforms(opts.platforms)
    found = list(tags.cpython_tags((major, minor), platforms=platforms))
    found += list(tags.compatible_tags((major, minor), f"cp{major}{minor}", platforms))
    return {str(t) for t in found}


def _expand_platforms(platforms: tuple[str, ...]) -> list[str]:
    """Every manylinux tag a glibc platform accepts, newest first (as pip does)."""
    legacy = {"manylinux1": 5, "manylinux2010": 12, "manylinux2014": 17}
    out: list[str] = []
    arch = "x86_64"
    for plat in platforms:
        head = plat.removesuffix(f"_{arch}")
        glibc = legacy.get(head)
        if glibc is None and head.startswith("manylinux_2_"):
            glibc = int(head.rsplit("_", 1)[1])
        if glibc is None:
            out.append(plat)
            continue
        for minor in range(glibc, 4, -1):
            out.append(f"manylinux_2_{minor}_{arch}")
            out += [f"{k}_{arch}" for k, v in legacy.items() if v == minor]
    return list(dict.fromkeys(out))


def build_dataset(
    out: Path, cfg: KaggleConfig, opts: BuildOptions, repo: Path, project: Path | None = None
) -> BuildResult:
    """Write the flat wheel dataset folder ``out`` (wheels + dataset-metadata.json)."""
    from rsna_pkg.kaggle.image import closure, image_packages
    from rsna_pkg.kaggle.render import dataset_metadata, dumps

    _prepare_out(out)
    own = build_own_wheel(project or repo, out)
    provided = {name: dist.version for name, dist in closure(image_packages()).items()}
    meta = wheel_metadata(own)
    extras = (DALI_EXTRA,) if opts.dali else ()
    result = BuildResult(out=out, own_wheel=own)
    for wheel in resolve(list(meta["requires"]), extras, provided, opts, result.provided):
        result.bundled.append(_place(wheel, out))
    (out / DATASET_METADATA).write_text(dumps(dataset_metadata(cfg, "wheels")))
    return result


def resolve(
    requires: list[str],
    extras: tuple[str, ...],
    provided: dict[str, str],
    opts: BuildOptions,
    left_to_image: list[str],
) -> list[Path]:
    """Wheels (in the cache) for every requirement the image does not provide, recursively."""
    from packaging.requirements import Requirement

    from rsna_pkg.kaggle.image import canonical

    env = _marker_env(opts.python)
    todo = [(Requirement(r), extras) for r in requires]
    chosen: dict[str, tuple[Path, str]] = {}
    while todo:
        req, active = todo.pop(0)
        if req.marker and not any(req.marker.evaluate({**env, "extra": e}) for e in ("", *active)):
            continue
        name = canonical(req.name)
        if name in provided:
            if not req.specifier.contains(provided[name], prereleases=True):
                raise InputError(
                    f"{req} is required but the Kaggle image list provides {name} "
                    f"{provided[name]}; drop {name} from kaggle_image.txt to bundle it"
                )
            if name not in left_to_image:
                left_to_image.append(name)
            continue
        if name in chosen:
            if not req.specifier.contains(chosen[name][1], prereleases=True):
                raise InputError(f"{req} conflicts with the bundled {chosen[name][0].name}")
            if not req.extras:
                continue
        wheel = fetch(name, str(req.specifier), opts)
        meta = wheel_metadata(wheel)
        chosen[name] = (wheel, str(meta["version"]))
        todo += [(Requirement(r), tuple(req.extras)) for r in meta["requires"]]
    return [wheel for wheel, _ in chosen.values()]


def _marker_env(python: str) -> dict[str, str]:
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


def fetch(name: str, specifier: str, opts: BuildOptions) -> Path:
    """A cached wheel of ``name`` matching ``specifier`` and Kaggle's tags, else pip download."""
    cached = _cached(name, specifier, opts)
    if cached is not None:
        return cached
    cache = cache_dir(opts)
    cache.mkdir(parents=True, exist_ok=True)
    platforms = [arg for p in opts.platforms for arg in ("--platform", p)]
    _pip(
        "download", "-q", "--only-binary=:all:", "--no-deps", "--python-version", opts.python,
        *platforms, "-d", str(cache), f"{name}{specifier}",
    )  # fmt: skip
    cached = _cached(name, specifier, opts)
    if cached is None:
        raise InputError(f"pip download {name}{specifier} produced no usable wheel in {cache}")
    return cached


def _cached(name: str, specifier: str, opts: BuildOptions) -> Path | None:
    from packaging.specifiers import SpecifierSet
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    from rsna_pkg.kaggle.image import canonical

    wanted, spec, best = target_tags(opts), SpecifierSet(specifier), None
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
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise InputError(f"{' '.join(cmd[2:5])} ... failed:\n" + "\n".join(tail))
