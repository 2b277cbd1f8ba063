"""Prove, without installing, that a wheel dataset installs on the pinned Kaggle image.

Two rules, both read from the wheels themselves:
- every wheel's tags must include one the image's interpreter accepts (its Python and
  platform, from the manifest);
- every ``Requires-Dist`` that applies on the image (markers evaluated for its Python and the
  extras asked for) must be met by the image's pins or by a bundled wheel, and a pinned
  package must be met by the pin itself: pip would otherwise replace the image's copy.
A problem names the wheel and the requirement, e.g.
``pylibjpeg_openjpeg-2.6.0: numpy>=2 but the image has numpy 1.26.4``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from rsna_pkg.kaggle.build import (
    DALI_EXTRA,
    NVIMGCODEC_EXTRA,
    Target,
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
    stem: str
    version: str
    tags: frozenset[str]
    requires: tuple[str, ...]


def _read(folder: Path) -> tuple[dict[str, _Wheel], list[BundleProblem]]:
    wheels: dict[str, _Wheel] = {}
    problems: list[BundleProblem] = []
    for path in sorted(folder.glob("*.whl")):
        try:
            name, version, _, tags = parse_wheel_filename(path.name)
            meta = wheel_metadata(path)
        except (InvalidWheelFilename, OSError, KeyError, StopIteration, ValueError) as exc:
            problems.append(BundleProblem(path.name, f"not a readable wheel ({exc})"))
            continue
        stem = f"{path.name.split('-')[0]}-{version}"
        if canonical(name) in wheels:
            problems.append(BundleProblem(stem, f"a second wheel of {name} in the bundle"))
        wheels[canonical(name)] = _Wheel(
            stem, str(version), frozenset(map(str, tags)), tuple(meta["requires"])
        )
    return wheels, problems


def bundled_extras(names: Iterable[str]) -> tuple[str, ...]:
    """The rsna_pkg extra a kernel installs from these wheels, as bootstrap.install does:
    dali when DALI is bundled, else nvimgcodec when nvImageCodec is."""
    names = list(names)
    if any(n.startswith("nvidia-dali") for n in names):
        return (DALI_EXTRA,)
    return (NVIMGCODEC_EXTRA,) if any(n.startswith("nvidia-nvimgcodec") for n in names) else ()


def check_bundle(folder: Path, image: ImageManifest, target: Target) -> list[BundleProblem]:
    """Every reason the wheel dataset in ``folder`` would not install on ``image``."""
    wheels, problems = _read(folder)
    if OWN not in wheels:
        return [*problems, BundleProblem(folder.name, "no rsna_pkg wheel in the bundle")]
    accepted = target.tags()
    for wheel in wheels.values():
        if not wheel.tags & accepted:
            problems.append(
                BundleProblem(
                    wheel.stem,
                    f"built for {', '.join(sorted(wheel.tags))}; the image runs "
                    f"{target.describe()}",
                )
            )
    env = marker_env(target.python)
    root_extras = bundled_extras(wheels)
    extras: dict[str, set[str]] = {OWN: set(root_extras)}
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
            problems += _met(wheels[name], found, dep, image, wheels)
            if dep in wheels:
                if found.extras - extras.get(dep, set()):
                    extras.setdefault(dep, set()).update(found.extras)
                todo.append(dep)
    for name in sorted(set(wheels) - {n for n, _ in seen}):  # bundled, not reached: base needs
        for line in wheels[name].requires:
            found = _requirement(wheels[name], line, set(), env, problems)
            if found is not None:
                problems += _met(wheels[name], found, canonical(found.name), image, wheels)
    return problems


def _requirement(
    wheel: _Wheel, line: str, extras: set[str], env: dict[str, str], problems: list[BundleProblem]
) -> Requirement | None:
    """The requirement if it applies on the image with these extras, else None."""
    try:
        req = Requirement(line)
    except InvalidRequirement as exc:
        problems.append(BundleProblem(wheel.stem, f"unreadable Requires-Dist {line!r}: {exc}"))
        return None
    if req.marker and not any(req.marker.evaluate({**env, "extra": e}) for e in ("", *extras)):
        return None
    return req


def _met(
    wheel: _Wheel, req: Requirement, dep: str, image: ImageManifest, wheels: dict[str, _Wheel]
) -> list[BundleProblem]:
    if dep in image.pins:
        if req.specifier.contains(image.pins[dep], prereleases=True):
            return []
        return [BundleProblem(wheel.stem, f"{req} but the image has {dep} {image.pins[dep]}")]
    if dep in wheels:
        if req.specifier.contains(wheels[dep].version, prereleases=True):
            return []
        return [BundleProblem(wheel.stem, f"{req} but the bundle has {wheels[dep].stem}")]
    return [BundleProblem(wheel.stem, f"{req}: neither the image nor the bundle provides {dep}")]
