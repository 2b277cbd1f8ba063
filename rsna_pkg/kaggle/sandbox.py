"""A local stand-in for the Kaggle image, built from the manifest's pins and cached.

The image is a folder holding ``site/``, every manifest pin that is not replay-local
installed at its exact version from the registry (``pip install --target --no-deps``), and
``farm/``, symlinks to this machine's torch and CUDA libraries (image.stand_ins). A venv
made ``--without-pip`` sees both through a ``.pth`` file, and nothing else: the image's own
pip runs the kernels' installs. rsna_pkg, pydicom, dicomsdl, pylibjpeg*, imagecodecs and DALI
are not there: a kernel gets them only from the wheel dataset, so a missing wheel fails.

The image is cached under ~/.cache/rsna_pkg/kaggle-image/<key>, the key being the manifest's
text, this interpreter and the stand-ins' versions: the replay is the same on every machine
whatever the running environment holds, and a second replay builds nothing. Each kernel runs
in a hard-linked copy, so a kernel's pip can never alter the cache.

Internet off is simulated by ``sitecustomize.py`` in a folder put first on PYTHONPATH: it
makes every IPv4/IPv6 ``socket.connect`` raise (Unix sockets still work). It covers Python
code (pip, urllib, requests, torch hub), not C libraries that open sockets themselves.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from rsna_pkg.errors import InputError
from rsna_pkg.kaggle.docker_image import build_farm, stand_ins
from rsna_pkg.kaggle.manifest import ImageManifest

log = logging.getLogger(__name__)

NETBLOCK_SOURCE = '''\
"""Installed by rsna replicate: this kernel has internet off, as on Kaggle."""
import errno
import socket

_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex
_IP = (socket.AF_INET, socket.AF_INET6)


def _refuse(self, address):
    raise OSError(errno.ENETUNREACH, f"internet is off in this kernel (connect {address!r})")


def connect(self, address):
    return _refuse(self, address) if self.family in _IP else _connect(self, address)


def connect_ex(self, address):
    return _refuse(self, address) if self.family in _IP else _connect_ex(self, address)


socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
'''

# Variables that would let the kernel see this machine's packages or pip settings.
_DROP_PREFIXES = ("PIP_", "PYTHON", "VIRTUAL_ENV", "CONDA", "RSNA_", "KAGGLE_")
COMPLETE = "complete"


def site_packages(venv: Path) -> Path:
    return (
        venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    )


def python(venv: Path) -> Path:
    return venv / "bin" / "python"


def image_cache() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "rsna_pkg" / "kaggle-image"


def python_warning(manifest: ImageManifest) -> str | None:
    """One line when this interpreter is not the image's (the replay then runs on this one)."""
    here = ".".join(map(str, sys.version_info[:3]))
    if manifest.python_minor == f"{sys.version_info.major}.{sys.version_info.minor}":
        return None
    return (
        f"warning: the Kaggle image runs Python {manifest.python}, this machine cannot host it "
        f"(its torch is for Python {here}): replaying on Python {here}, the nearest available"
    )


def image_key(manifest: ImageManifest, linked: dict) -> str:
    parts = [manifest.path.read_text(), sys.version, sys.platform]
    parts += sorted(
        f"{name}=={dist.version}@{dist.locate_file('')}" for name, dist in linked.items()
    )
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def make_image_env(manifest: ImageManifest, cache: Path | None = None) -> Path:
    """The cached venv of the Kaggle image (built on first use); returns the venv."""
    linked, notes = stand_ins(manifest)
    for line in filter(None, [python_warning(manifest), *notes]):
        log.info(line)
    root = (cache or image_cache()) / image_key(manifest, linked)
    if (root / COMPLETE).is_file():
        log.info(f"Kaggle image {manifest.release}: cached in {root}")
        return root / "venv"
    building = root.with_name(f"{root.name}.building-{os.getpid()}")
    if building.exists():
        shutil.rmtree(building)
    building.mkdir(parents=True)
    pins = [
        f"{name}=={version}"
        for name, version in sorted(manifest.pins.items())
        if name not in linked and not manifest.is_replay_local(name)
    ]
    log.info(f"Kaggle image {manifest.release}: installing {len(pins)} pins into {root}")
    _install_pins(pins, building / "site")
    build_farm(building / "farm", linked)
    venv = building / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, env=clean_env()
    )
    # relative to the .pth's own folder, so hard-linked copies of the venv are self-contained
    (site_packages(venv) / "kaggle_image.pth").write_text("../../../../site\n../../../../farm\n")
    netblock = building / "netblock"
    netblock.mkdir()
    (netblock / "sitecustomize.py").write_text(NETBLOCK_SOURCE)
    (building / COMPLETE).write_text(f"{manifest.release}\n")
    if root.exists():  # an incomplete earlier build
        shutil.rmtree(root)
    building.rename(root)
    return root / "venv"


def _install_pins(pins: list[str], target: Path) -> None:
    """pip install exactly these versions (no dependency resolution: the manifest is closed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
           "--no-deps", "--no-compile", "--target", str(target), *pins]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-6:])
        raise InputError(f"installing the Kaggle image's pins failed:\n{tail}")


def fresh_copy(venv: Path, dest: Path) -> Path:
    """A hard-linked copy of the whole image (site, farm, venv) at ``dest``; returns its venv.

    Every kernel starts from an untouched image, and what its pip removes or replaces is
    unlinked in the copy only. Falls back to copying across file systems."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(venv.parent, dest, symlinks=True, copy_function=_link_or_copy)
    return dest / venv.name


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def clean_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """os.environ without Python/pip/Kaggle settings; pip reads no config file."""
    env = {
        k: v
        for k, v in (base if base is not None else os.environ).items()
        if not k.startswith(_DROP_PREFIXES)
    }
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PYTHONNOUSERSITE="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def kernel_env(venv: Path, kaggle_root: Path, internet: bool, netblock: Path) -> dict[str, str]:
    """The environment one kernel runs with."""
    env = clean_env()
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    env["KAGGLE_ROOT"] = str(kaggle_root)
    env["KAGGLE_KERNEL_RUN_TYPE"] = "Batch"
    env["MPLBACKEND"] = "Agg"
    if not internet:
        env["PYTHONPATH"] = str(netblock)
    return env
