"""A local stand-in for the Kaggle image: a clean venv that sees only the image's packages.

``python -m venv`` without system site-packages, plus a ``.pth`` line adding a symlink farm
(image.build_farm) of the kaggle_image.txt closure from the current environment, so torch is
linked, not reinstalled. rsna_pkg, pydicom, dicomsdl, pylibjpeg*, imagecodecs and DALI are
not there: a kernel gets them only from the wheel dataset, so a missing wheel fails.

Internet off is simulated by ``sitecustomize.py`` in a folder put first on PYTHONPATH: it
makes every IPv4/IPv6 ``socket.connect`` raise (Unix sockets still work). It covers Python
code (pip, urllib, requests, torch hub), not C libraries that open sockets themselves.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from rsna_pkg.kaggle.image import build_farm, closure, image_packages

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


def site_packages(venv: Path) -> Path:
    return (
        venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    )


def python(venv: Path) -> Path:
    return venv / "bin" / "python"


def make_image_env(root: Path) -> Path:
    """Build ROOT/venv (with pip) exposing only the Kaggle image's packages; returns the venv."""
    farm, venv = root / "kaggle_image", root / "venv"
    for old in (farm, venv):
        if old.exists():
            shutil.rmtree(old)
    build_farm(farm, closure(image_packages()))
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=clean_env())
    # ensurepip's old setuptools would shadow the image's (torch needs a recent one).
    pip = [str(python(venv)), "-m", "pip", "uninstall", "-y", "-q", "setuptools"]
    subprocess.run(pip, check=True, env=clean_env())
    (site_packages(venv) / "kaggle_image.pth").write_text(f"{farm.resolve()}\n")
    netblock = root / "netblock"
    netblock.mkdir(exist_ok=True)
    (netblock / "sitecustomize.py").write_text(NETBLOCK_SOURCE)
    return venv


def fresh_copy(venv: Path, dest: Path) -> Path:
    """A fresh copy of the image venv: every kernel starts from an untouched image."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(venv, dest, symlinks=True)
    return dest


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
