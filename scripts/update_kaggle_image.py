"""Rewrite the pins of rsna_pkg/kaggle/kaggle_image.txt from a Kaggle base image's pip freeze.

Kaggle's Python image (github.com/Kaggle/docker-python, Dockerfile.tmpl) is built FROM a Colab
runtime release; the packages the kernels rely on come from that base, and Colab publishes its
``pip freeze`` in github.com/googlecolab/backend-info (pip-freeze.gpu.txt). This script takes
that freeze, resolves the closure of the roots below with pip (metadata only, for the image's
Python and platform, the freeze as constraints) and writes one ``name==version`` per line with
the version as the freeze spells it. The header fields (release, python, platform, source)
are kept from the current manifest unless given.

    python scripts/update_kaggle_image.py pip-freeze.gpu.txt --source "backend-info@0f0755b"

Needs the registry (pip reads the packages' metadata); writes nothing else.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

MANIFEST = Path(__file__).resolve().parents[1] / "rsna_pkg" / "kaggle" / "kaggle_image.txt"
ROOTS = [
    "torch",
    "torchvision",
    "numpy",
    "pandas",
    "scipy",
    "scikit-learn",
    "matplotlib",
    "pillow",
    "tqdm",
    "packaging",
    "pip",
    "setuptools",
    "timm",  # the optional timm backbones: Colab's base ships it
    "nvidia-nvimgcodec-cu12",  # the base's GPU decoder, which rsna_pkg's extras upgrade
    "pydicom",  # not in the base: Kaggle installs it on top (pass --add pydicom==VERSION)
]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_freeze(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        name, sep, version = line.strip().partition("==")
        if sep and " @ " not in line:
            pins[canonical(name)] = version
    return pins


def resolve(freeze: dict[str, str], python: str, platform: str) -> list[str]:
    """Canonical names of the roots' closure on the image, as pip resolves it."""
    with tempfile.TemporaryDirectory() as tmp:
        cons = Path(tmp, "constraints.txt")
        # local labels (+cu128) are not on the registry; the public release has the same deps
        cons.write_text("".join(f"{n}=={v.split('+')[0]}\n" for n, v in freeze.items()))
        report = Path(tmp, "report.json")
        glibc = int(platform.split("_")[2])
        plats = [f"manylinux_2_{m}_x86_64" for m in range(glibc, 16, -1)] + ["manylinux2014_x86_64"]
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q",
               "--only-binary=:all:", "--python-version", python, "--target", str(Path(tmp, "t")),
               "--report", str(report), "-c", str(cons),
               *[a for p in plats for a in ("--platform", p)], *ROOTS]  # fmt: skip
        subprocess.run(cmd, check=True)
        installed = json.loads(report.read_text())["install"]
    return sorted(canonical(item["metadata"]["name"]) for item in installed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("freeze", type=Path, help="the base image's pip freeze")
    parser.add_argument("--source", help="where the freeze was read (repository@commit:file)")
    parser.add_argument("--release", help="the Kaggle image release this describes")
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    parser.add_argument(
        "--add", action="append", default=[], metavar="NAME==VERSION",
        help="a package Kaggle's Dockerfile installs on top of the base (e.g. pydicom==3.0.2)",
    )  # fmt: skip
    args = parser.parse_args()
    header, fields = [], {}
    for line in args.manifest.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            continue
        header.append(line)
        key, sep, value = line.partition(":")
        if sep and not line.startswith("#"):
            fields[key.strip()] = value.strip()
    for key in ("source", "release"):
        if getattr(args, key):
            header = [
                f"{key}: {getattr(args, key)}" if line.startswith(f"{key}:") else line
                for line in header
            ]
    freeze = read_freeze(args.freeze)
    for added in args.add:
        name, sep, version = added.partition("==")
        if not sep:
            raise SystemExit(f"--add {added!r}: expected NAME==VERSION")
        freeze[canonical(name)] = version
    names = resolve(freeze, fields["python"].rsplit(".", 1)[0], fields["platform"])
    missing = [n for n in names if n not in freeze]
    if missing:
        raise SystemExit(f"not in the freeze, so not in the image: {', '.join(missing)}")
    body = [f"{n}=={freeze[n]}" for n in names]
    args.manifest.write_text("\n".join([*header, *body]) + "\n")
    print(f"wrote {len(body)} pins to {args.manifest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
