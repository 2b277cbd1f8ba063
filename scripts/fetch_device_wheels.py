"""Fill .whl/ (git-ignored) with the wheels the lent GPU machine lacks, for its Python 3.12
x86_64, slimmed so that they and the working tree fit the 64 MiB one device call carries.

    python scripts/fetch_device_wheels.py [--dest .whl]

The versions are the ones ``rsna kaggle build-dataset`` bundles for the Kaggle image, so the
device runs what Kaggle would. Two wheels are too large as published (imagecodecs 26 MB,
nvImageCodec 32 MB; all nine are 82 MB) and are repacked with a new RECORD:
imagecodecs keeps the codecs rsna_pkg calls (JPEG 2000, lossless JPEG, JPEG 8) and their
libraries; nvImageCodec keeps the CPython 3.12 module only (it ships one per Python,
3.9 to 3.14t) and drops its TIFF codecs. Each slimmed wheel is installed into a scratch
folder and exercised here before it is kept (nvImageCodec with the running Python's module
added for that test). scripts/device_check.sh installs .whl/*.whl on the device.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEVICE_PYTHON = "3.12"
PLATFORMS = ("manylinux_2_34_x86_64", "manylinux_2_31_x86_64", "manylinux_2_28_x86_64",
             "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")  # fmt: skip
WHEELS = {
    "pydicom": "3.0.2",
    "dicomsdl": "0.109.4",
    "pylibjpeg": "2.1.0",
    "pylibjpeg-openjpeg": "2.6.0",
    "pylibjpeg-libjpeg": "2.5.0",
    "imagecodecs": "2026.3.6",
    "nvidia-nvimgcodec-cu12": "0.9.0.20",
    "nvidia-nvjpeg2k-cu12": "0.11.0.51",
    "nvidia-nvjpeg-cu12": "12.4.0.76",
}
BUDGET_MIB = 56  # the wheels' share of the 64 MiB: the working tree and headroom get the rest

IMAGECODECS_MODULES = {"shared", "shared_cython", "imcd", "jpeg2k", "ljpeg", "jpeg8"}
IMAGECODECS_LIBS = ("libopenjp2-", "liblcms2-", "libjpeg-")  # what those modules link


def drop_imagecodecs(name: str) -> bool:
    mod = re.fullmatch(r"imagecodecs/_(\w+)\.abi3\.so", name)
    if mod:
        return mod.group(1) not in IMAGECODECS_MODULES
    if name.startswith("imagecodecs.libs/"):
        return not name.split("/", 1)[1].startswith(IMAGECODECS_LIBS)
    return False


def drop_nvimgcodec(name: str, keep_tags: tuple[str, ...] = ("cpython-312-",)) -> bool:
    if re.fullmatch(r"nvidia/nvimgcodec/nvimgcodec_impl\.cpython-[^/]+\.so", name):
        return not any(tag in name for tag in keep_tags)
    return bool(re.fullmatch(r"nvidia/nvimgcodec/extensions/lib(nv)?tiff_ext\.so[.\d]*", name))


SLIM: dict[str, Callable[[str], bool]] = {
    "imagecodecs": drop_imagecodecs,
    "nvidia_nvimgcodec_cu12": drop_nvimgcodec,
}


def record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def slim_wheel(src: Path, dest: Path, drop: Callable[[str], bool]) -> list[str]:
    """Copy wheel ``src`` to ``dest`` without the members ``drop`` names, with a RECORD
    (PEP 376/427: path, sha256, size) rewritten for what is kept. Returns the dropped."""
    dropped: list[str] = []
    rows: list[str] = []
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zout:
        record = next(n for n in zin.namelist() if n.endswith(".dist-info/RECORD"))
        for info in zin.infolist():
            if info.filename == record:
                continue
            if drop(info.filename):
                dropped.append(info.filename)
                continue
            data = zin.read(info)
            zout.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
            if not info.is_dir():
                rows.append(f"{info.filename},{record_hash(data)},{len(data)}")
        rows.append(f"{record},,")
        zout.writestr(record, "\n".join(rows) + "\n")
    return dropped


def download(name: str, version: str, dest: Path) -> Path:
    plats = [arg for p in PLATFORMS for arg in ("--platform", p)]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
           "--no-deps", "--only-binary=:all:", "--python-version", DEVICE_PYTHON,
           "--implementation", "cp", *plats, "-d", str(dest), f"{name}=={version}"]  # fmt: skip
    subprocess.run(cmd, check=True)
    stem = name.replace("-", "_").lower()
    (found,) = [p for p in dest.glob("*.whl") if p.name.lower().startswith(f"{stem}-{version}-")]
    return found


def install(wheels: list[Path], target: Path) -> None:
    """One pip call, as on the device: wheels sharing a top-level folder (nvidia/) merge."""
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "--no-index", "--no-deps", "--no-compile", "--upgrade", "--target",
                    str(target), *map(str, wheels)], check=True)  # fmt: skip


IMAGECODECS_CHECK = """
import numpy as np, imagecodecs
a = (np.arange(64 * 48).reshape(64, 48) % 4096).astype(np.uint16)
assert imagecodecs.JPEG2K.available
for fmt in ("J2K", "JP2"):
    f = imagecodecs.jpeg2k_encode(a, level=0, codecformat=fmt, reversible=True, bitspersample=12)
    assert (imagecodecs.jpeg2k_decode(f) == a).all()
assert (imagecodecs.ljpeg_decode(imagecodecs.ljpeg_encode(a, bitspersample=12)) == a).all()
imagecodecs.jpeg8_encode(a, lossless=True, predictor=1, bitspersample=12)
"""

NVIMGCODEC_CHECK = """
import os, numpy as np, imagecodecs
from nvidia import nvimgcodec as nv
a = (np.arange(64 * 48).reshape(64, 48) % 4096).astype(np.uint16)
f = bytes(imagecodecs.jpeg2k_encode(a, level=0, codecformat="JP2", reversible=True, bitspersample=12))
d = nv.Decoder(device_id=nv.NVIMGCODEC_DEVICE_CPU_ONLY, backends=[nv.Backend(nv.BackendKind.CPU_ONLY)])
p = nv.DecodeParams(allow_any_depth=True, color_spec=nv.ColorSpec.UNCHANGED)
(img,) = d.decode([nv.CodeStream(f)], params=p)
assert (np.asarray(img.cpu())[..., 0] == a).all()
ext = os.listdir(os.path.join(os.path.dirname(nv.__file__), "extensions"))
assert not any("tiff" in e for e in ext), ext
"""


def exercise(wheel: Path, code: str, extra: list[Path]) -> str:
    """Install ``wheel`` (and ``extra``) into a scratch folder, run ``code`` against it and
    return what it printed."""
    with tempfile.TemporaryDirectory() as tmp:
        install([wheel, *extra], Path(tmp))
        # the scratch folder first: what runs is the slimmed copy, never an installed one
        first = f"import sys; sys.path.insert(0, {tmp!r})\n"
        last = "\nfor m in list(sys.modules.values()):\n    f = getattr(m, '__file__', '') or ''\n"
        last += "    assert not any(k in f for k in ('imagecodecs', 'nvimgcodec')) or "
        last += f"f.startswith({tmp!r}), f\n"
        env = {"PATH": "/usr/bin:/bin", "OPENCV_LOG_LEVEL": "ERROR"}
        done = subprocess.run([sys.executable, "-c", first + code + last], env=env, cwd=tmp,
                              capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"{wheel.name} failed its check:\n{done.stderr[-3000:]}")
        return done.stdout + done.stderr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=REPO / ".whl")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache/rsna_pkg/device-wheels",
                        help="the published wheels (outside .whl/, which travels whole)")  # fmt: skip
    args = parser.parse_args(argv)
    raw = args.cache
    raw.mkdir(parents=True, exist_ok=True)
    args.dest.mkdir(parents=True, exist_ok=True)
    for old in args.dest.glob("*.whl"):
        old.unlink()
    kept: list[Path] = []
    for name, version in WHEELS.items():
        wheel = download(name, version, raw)
        dist = wheel.name.split("-")[0].lower()
        dest = args.dest / wheel.name
        if dist in SLIM:
            dropped = slim_wheel(wheel, dest, SLIM[dist])
            print(f"{wheel.name}: {wheel.stat().st_size / 2**20:.1f} -> "
                  f"{dest.stat().st_size / 2**20:.1f} MiB ({len(dropped)} files dropped)")  # fmt: skip
        else:
            shutil.copy2(wheel, dest)
        kept.append(dest)
    codecs = next(p for p in kept if p.name.startswith("imagecodecs-"))
    exercise(codecs, IMAGECODECS_CHECK, [])
    here = f"cpython-{sys.version_info.major}{sys.version_info.minor}-"
    nvimg_src = next(p for p in raw.glob("nvidia_nvimgcodec_cu12-*.whl"))
    with tempfile.TemporaryDirectory() as tmp:  # the same slimming, plus this Python's module
        test_wheel = Path(tmp) / nvimg_src.name
        slim_wheel(nvimg_src, test_wheel, lambda n: drop_nvimgcodec(n, ("cpython-312-", here)))
        libs = [p for p in kept if p.name.startswith(("nvidia_nvjpeg2k", "nvidia_nvjpeg_"))]
        said = exercise(test_wheel, NVIMGCODEC_CHECK, [codecs, *libs])
        if "Failed to load" in said:  # nvJPEG / nvJPEG2000 not found where the wheels put them
            print(said, file=sys.stderr)
            return 1
    total = sum(p.stat().st_size for p in kept) / 2**20
    print(f"{args.dest}: {len(kept)} wheels, {total:.1f} MiB (budget {BUDGET_MIB} MiB)")
    if total > BUDGET_MIB:
        print("too large for one device call", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
