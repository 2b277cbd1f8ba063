"""Prove, without installing, that a wheel dataset installs on the pinned Kaggle image, for
every Python the dataset serves (the image's and the ones it moves to).

Read from the wheels themselves (``inspect_bundle``):
- every wheel's tags must include one that a target interpreter accepts (its Python and the
  manifest's platform);
- for each target, every ``Requires-Dist`` that applies (markers evaluated for its Python and
  the extras asked for) must be met by the image's pins or by a bundled wheel for that
  target, and a pinned package must be met by the pin itself: pip would otherwise replace the
  image's copy. The one exception is a pin the manifest lists under ``extras-upgrade``, needed
  newer only through an rsna_pkg extra: that upgrade is reported, not refused.
A problem names the wheel and the requirement, e.g.
``pylibjpeg_openjpeg-2.6.0: numpy<3.0,>=2.0 but the image has numpy 1.26.4``.

Then pip's own resolver (``pip_proof``), offline: ``pip install --dry-run --no-index`` of
rsna_pkg with the extras a kernel installs, from the bundle and a metadata-only stand-in per
pin, with ``--python-version`` and ``--platform`` of each target.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import Version

from rsna_pkg.kaggle.build import (
    DALI_EXTRA,
    NVIMGCODEC_EXTRA,
    Target,
    image_stubs,
    marker_env,
    wheel_metadata,
)
from rsna_pkg.kaggle.manifest import ImageManifest, canonical

OWN = "rsna-pkg"


@dataclass(frozen=True)
class BundleProblem:
    wheel: str  # file stem, e.g. pylibjpeg_openjpeg-2.6.0
    message: str

    def __str__(self) -> str:
        return f"{self.wheel}: {self.message}"


@dataclass(frozen=True)
class _Wheel:
    name: str  # canonical
    stem: str
    version: str
    tags: frozenset[str]
    requires: tuple[str, ...]


@dataclass
class BundleReport:
    problems: list[BundleProblem] = field(default_factory=list)
    upgrades: list[str] = field(default_factory=list)  # pins the extras replace, as sentences


def _read(folder: Path) -> tuple[list[_Wheel], list[BundleProblem]]:
    wheels: list[_Wheel] = []
    problems: list[BundleProblem] = []
    for path in sorted(folder.glob("*.whl")):
        try:
            name, version, _, tags = parse_wheel_filename(path.name)
            meta = wheel_metadata(path)
        except (InvalidWheelFilename, OSError, KeyError, StopIteration, ValueError) as exc:
            problems.append(BundleProblem(path.name, f"not a readable wheel ({exc})"))
            continue
        wheels.append(_Wheel(canonical(name), f"{path.name.split('-')[0]}-{version}",
                             str(version), frozenset(map(str, tags)),
                             tuple(meta["requires"])))  # fmt: skip
    return wheels, problems


def for_target(wheels: Iterable[_Wheel], target: Target) -> dict[str, _Wheel]:
    """The wheel pip would take of each project for this interpreter: the newest that fits."""
    accepted = target.tags()
    chosen: dict[str, _Wheel] = {}
    for wheel in wheels:
        best = chosen.get(wheel.name)
        if wheel.tags & accepted and (
            best is None or Version(wheel.version) > Version(best.version)
        ):
            chosen[wheel.name] = wheel
    return chosen


def bundled_extras(names: Iterable[str]) -> tuple[str, ...]:
    """The rsna_pkg extra a kernel installs from these wheels, as bootstrap.install does:
    dali when DALI is bundled, else nvimgcodec when nvImageCodec is."""
    names = list(names)
    if any(n.startswith("nvidia-dali") for n in names):
        return (DALI_EXTRA,)
    return (NVIMGCODEC_EXTRA,) if any(n.startswith("nvidia-nvimgcodec") for n in names) else ()


def describe(targets: Sequence[Target]) -> str:
    """``CPython 3.12 on manylinux_2_35_x86_64`` or ``CPython 3.12 or 3.13 on ...``."""
    return f"CPython {' or '.join(t.python for t in targets)} on {targets[0].platforms[0]}"


def check_bundle(
    folder: Path, image: ImageManifest, targets: Target | Sequence[Target]
) -> list[BundleProblem]:
    """Every reason the wheel dataset in ``folder`` would not install on ``image``."""
    return inspect_bundle(folder, image, targets).problems


def inspect_bundle(
    folder: Path, image: ImageManifest, targets: Target | Sequence[Target]
) -> BundleReport:
    """The problems of the wheel dataset in ``folder`` for each target, and the image's
    packages its extras upgrade. With several targets a problem says which it concerns."""
    targets = (targets,) if isinstance(targets, Target) else tuple(targets)
    wheels, problems = _read(folder)
    if not any(w.name == OWN for w in wheels):
        return BundleReport(
            [*problems, BundleProblem(folder.name, "no rsna_pkg wheel in the bundle")]
        )
    accepted = [t.tags() for t in targets]
    for wheel in wheels:
        if not any(wheel.tags & tags for tags in accepted):
            problems.append(
                BundleProblem(
                    wheel.stem,
                    f"built for {', '.join(sorted(wheel.tags))}; the image runs {describe(targets)}",
                )
            )
    report = BundleReport(problems)
    found: dict[BundleProblem, list[str]] = {}
    for target in targets:
        unmet, upgrades = _walk(for_target(wheels, target), image, target)
        for problem in unmet:
            found.setdefault(problem, []).append(target.python)
        report.upgrades += [u for u in upgrades if u not in report.upgrades]
    for problem, pythons in found.items():
        if len(targets) > 1:  # say which Python, or that it is all of them
            problem = BundleProblem(
                problem.wheel, f"{problem.message} (CPython {', '.join(pythons)})"
            )
        report.problems.append(problem)
    return report


def _walk(
    wheels: dict[str, _Wheel], image: ImageManifest, target: Target
) -> tuple[list[BundleProblem], list[str]]:
    """Unmet requirements and upgrades, following rsna_pkg's extras actually installed."""
    if OWN not in wheels:
        return [BundleProblem(OWN, f"no rsna_pkg wheel for {target.describe()}")], []
    problems: list[BundleProblem] = []
    upgrades: list[str] = []
    env = marker_env(target.python)
    root_extras = bundled_extras(wheels)
    extras: dict[str, set[str]] = {OWN: set(root_extras)}
    optional = {OWN: False}  # reached only through an rsna_pkg extra: may upgrade a pin
    todo = [OWN]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:  # follow the extras actually asked for; base requirements of every wheel
        name = todo.pop()
        key = (name, frozenset(extras.get(name, ())))
        if key in seen or name not in wheels:
            continue
        seen.add(key)
        for line in wheels[name].requires:
            found = _requirement(wheels[name], line, extras.get(name, set()), env, problems)
            if found is None:
                continue
            dep = canonical(found.name)
            via_extra = optional[name] or (name == OWN and not _applies(found, env, set()))
            met = _met(wheels[name], found, dep, image, wheels, via_extra)
            if met is None:
                upgrades.append(
                    f"rsna_pkg[{','.join(root_extras)}] upgrades the image's {dep} "
                    f"{image.pins[dep]} to {wheels[dep].version} ({wheels[name].stem} needs {found})"
                )
            else:
                problems += met
            if dep in wheels:
                optional[dep] = optional.get(dep, True) and via_extra
                if found.extras - extras.get(dep, set()):
                    extras.setdefault(dep, set()).update(found.extras)
                todo.append(dep)
    for name in sorted(set(wheels) - {n for n, _ in seen}):  # bundled, not reached: base needs
        for line in wheels[name].requires:
            found = _requirement(wheels[name], line, set(), env, problems)
            if found is not None:
                problems += _met(wheels[name], found, canonical(found.name), image, wheels) or []
    return problems, upgrades


def _applies(req: Requirement, env: dict[str, str], extras: set[str]) -> bool:
    return req.marker is None or any(
        req.marker.evaluate({**env, "extra": e}) for e in ("", *extras)
    )


def _requirement(
    wheel: _Wheel, line: str, extras: set[str], env: dict[str, str], problems: list[BundleProblem]
) -> Requirement | None:
    """The requirement if it applies on the image with these extras, else None."""
    try:
        req = Requirement(line)
    except InvalidRequirement as exc:
        problems.append(BundleProblem(wheel.stem, f"unreadable Requires-Dist {line!r}: {exc}"))
        return None
    return req if _applies(req, env, extras) else None


def _met(
    wheel: _Wheel,
    req: Requirement,
    dep: str,
    image: ImageManifest,
    wheels: dict[str, _Wheel],
    via_extra: bool = False,
) -> list[BundleProblem] | None:
    """Problems meeting ``req``; None when it is met by upgrading an extras-upgrade pin."""
    pin = image.pins.get(dep)
    if pin is not None and req.specifier.contains(pin, prereleases=True):
        return []
    may_upgrade = via_extra and dep in image.extras_upgrade and dep in wheels
    if pin is not None and not may_upgrade:
        return [BundleProblem(wheel.stem, f"{req} but the image has {dep} {pin}")]
    if dep in wheels:
        if req.specifier.contains(wheels[dep].version, prereleases=True):
            return None if pin is not None else []
        return [BundleProblem(wheel.stem, f"{req} but the bundle has {wheels[dep].stem}")]
    return [BundleProblem(wheel.stem, f"{req}: neither the image nor the bundle provides {dep}")]


def pip_proof(folder: Path, image: ImageManifest, target: Target) -> list[BundleProblem]:
    """pip's resolver, offline, on the target's Python and platform: rsna_pkg with the extra a
    kernel installs (bootstrap.install), from the bundle plus a metadata-only wheel per pin."""
    from rsna_pkg.kaggle.sandbox import clean_env

    extras = bundled_extras(w.name for w in _read(folder)[0])
    wanted = "rsna_pkg" + (f"[{','.join(extras)}]" if extras else "")
    platforms = [arg for p in target.platforms for arg in ("--platform", p)]
    with tempfile.TemporaryDirectory() as tmp:
        stubs = image_stubs(image, Path(tmp, "image"))
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q",
               "--no-index", "--find-links", str(folder), "--find-links", str(stubs),
               "--only-binary=:all:", "--python-version", target.python, *platforms,
               "--target", str(Path(tmp, "t")), wanted]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, env=clean_env())
    if done.returncode == 0:
        return []
    said = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
    reason = said[0] if said else (done.stderr.strip().splitlines() or ["no output"])[-1]
    return [BundleProblem(wanted, f"pip cannot install it on {target.describe()}: {reason}")]
