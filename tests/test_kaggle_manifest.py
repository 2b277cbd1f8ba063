"""The Kaggle image manifest and the proof that a bundle installs on it (no network: the
wheels here are tiny ones written by the test, with real names, tags and Requires-Dist)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rsna_pkg.errors import InputError
from rsna_pkg.kaggle.build import BuildOptions, Target, stub_wheel
from rsna_pkg.kaggle.bundle_check import bundled_extras, check_bundle, inspect_bundle, pip_proof
from rsna_pkg.kaggle.manifest import IMAGE_MANIFEST, expand_platforms, load_manifest

HEADER = "release: test image\npython: 3.12.13\nplatform: manylinux_2_35_x86_64\n"


def write_manifest(path: Path, pins: dict[str, str], header: str = HEADER) -> Path:
    path.write_text(header + "".join(f"{n}=={v}\n" for n, v in pins.items()))
    return path


def fake_wheel(folder: Path, name: str, version: str, tag: str, requires: list[str]) -> Path:
    """A wheel holding only its metadata: enough for tags, Requires-Dist and pip's resolver."""
    return stub_wheel(folder, name, version, requires, tag)


def test_packaged_manifest_names_one_kaggle_release() -> None:
    image = load_manifest()
    assert image.path == IMAGE_MANIFEST
    assert image.python_minor == "3.12" and image.platform == "manylinux_2_35_x86_64"
    assert "colab" in image.release and image.source
    for name in ("torch", "torchvision", "numpy", "pandas", "scikit-learn", "pip", "packaging"):
        assert name in image.pins, name
    assert image.is_replay_local("torch") and image.is_replay_local("nvidia-cublas-cu12")
    assert not image.is_replay_local("numpy")
    # the image's own DICOM and GPU-decoding packages; dicomsdl is bundled, never assumed
    assert image.pins["pydicom"] == "3.0.2" and "dicomsdl" not in image.pins
    assert image.pins["nvidia-nvimgcodec-cu12"] == "0.7.0.11"
    assert image.extras_upgrade == ("nvidia-nvimgcodec-cu12",)
    assert image.pythons() == ("3.12", "3.13")  # the image's, then the one Colab moved to
    assert image.platforms()[0] == "manylinux_2_35_x86_64"
    assert "manylinux2014_x86_64" in image.platforms()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (HEADER + "numpy=1.26\n", "expected name==version"),
        (HEADER + "numpy==1\nNumPy==2\n", "bad or repeated pin"),
        ("python: 3.12\nplatform: manylinux_2_35_x86_64\n", "missing field(s) release"),
        (HEADER.replace("3.12.13", "twelve"), "is not a 3.X"),
        (HEADER + "colour: blue\n", ":4: 'colour: blue'"),
        (HEADER + "also-python: 3.x\n", "also-python: '3.x' is not a 3.X"),
        (HEADER + "extras-upgrade: numpy\n", "extras-upgrade: numpy not pinned"),
    ],
)
def test_bad_manifest_names_file_and_line(text: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "image.txt"
    path.write_text(text)
    with pytest.raises(InputError, match="image.txt") as err:
        load_manifest(path)
    assert message in str(err.value)


def test_platform_tags() -> None:
    plats = expand_platforms(("manylinux2014_x86_64",))
    assert "manylinux_2_17_x86_64" in plats and "manylinux1_x86_64" in plats
    assert "manylinux_2_28_x86_64" not in plats
    tags = Target("3.11", expand_platforms(("manylinux_2_28_x86_64",))).tags()
    assert "cp311-cp311-manylinux_2_28_x86_64" in tags and "py3-none-any" in tags
    assert "cp312-cp312-manylinux_2_28_x86_64" not in tags
    assert "cp311-cp311-manylinux_2_35_x86_64" not in tags


def test_build_options_default_to_the_manifest(tmp_path: Path) -> None:
    target = BuildOptions().target()
    assert target.python == "3.12" and target.platforms[0] == "manylinux_2_35_x86_64"
    other = write_manifest(tmp_path / "m.txt", {}, HEADER.replace("3.12.13", "3.13.1"))
    assert BuildOptions(manifest=other).target().python == "3.13"
    assert BuildOptions(python="3.11.7").target().python == "3.11"
    assert [t.python for t in BuildOptions().targets()] == ["3.12", "3.13"]
    assert [t.python for t in BuildOptions(python="3.11").targets()] == ["3.11"]


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """rsna_pkg + two bundled wheels, as build-dataset lays them out."""
    folder = tmp_path / "wheels"
    fake_wheel(folder, "rsna_pkg", "0.1.0", "py3-none-any",
               ["numpy>=1.24", "pylibjpeg-openjpeg>=2.3", "pydicom>=3.0",
                'nvidia-dali-cuda120>=1.24; extra == "dali"'])  # fmt: skip
    fake_wheel(folder, "pylibjpeg_openjpeg", "2.6.0", "cp312-cp312-manylinux_2_17_x86_64",
               ["numpy>=2.0,<3.0", 'pytest; extra == "tests"'])  # fmt: skip
    fake_wheel(folder, "pydicom", "3.0.2", "py3-none-any", ['numpy; extra == "pixeldata"'])
    return folder


def image_target(manifest: Path) -> tuple:
    image = load_manifest(manifest)
    return image, BuildOptions(manifest=manifest).target(image)


def test_bundle_that_fits_the_image_passes(bundle: Path, tmp_path: Path) -> None:
    image, target = image_target(write_manifest(tmp_path / "m.txt", {"numpy": "2.0.2"}))
    assert check_bundle(bundle, image, target) == []


def test_old_numpy_in_the_image_names_wheel_and_requirement(bundle: Path, tmp_path: Path) -> None:
    image, target = image_target(write_manifest(tmp_path / "m.txt", {"numpy": "1.26.4"}))
    found = [str(p) for p in check_bundle(bundle, image, target)]
    assert found == ["pylibjpeg_openjpeg-2.6.0: numpy<3.0,>=2.0 but the image has numpy 1.26.4"]


def test_wheel_for_another_python_is_named(bundle: Path, tmp_path: Path) -> None:
    fake_wheel(bundle, "dicomsdl", "0.109.4", "cp311-cp311-manylinux_2_17_x86_64", [])
    image, target = image_target(write_manifest(tmp_path / "m.txt", {"numpy": "2.0.2"}))
    found = [str(p) for p in check_bundle(bundle, image, target)]
    assert len(found) == 1 and found[0].startswith("dicomsdl-0.109.4: built for cp311-cp311")
    assert "CPython 3.12" in found[0]


def test_requirement_nobody_provides_and_extras(bundle: Path, tmp_path: Path) -> None:
    (bundle / "pydicom-3.0.2-py3-none-any.whl").unlink()
    fake_wheel(bundle, "nvidia_dali_cuda120", "2.4.0", "py3-none-manylinux2014_x86_64",
               ["astunparse>=1.6.0"])  # fmt: skip
    image, target = image_target(write_manifest(tmp_path / "m.txt", {"numpy": "2.0.2"}))
    found = sorted(str(p) for p in check_bundle(bundle, image, target))
    assert found == [
        "nvidia_dali_cuda120-2.4.0: astunparse>=1.6.0: neither the image nor the bundle "
        "provides astunparse",  # the DALI wheel is bundled, so rsna_pkg[dali] is what installs
        "rsna_pkg-0.1.0: pydicom>=3.0: neither the image nor the bundle provides pydicom",
    ]


def test_nvimgcodec_bundle_installs_its_extra(tmp_path: Path) -> None:
    """A bundle with nvImageCodec but no DALI installs rsna_pkg[nvimgcodec], so the codec
    libraries its own extras name must be there too."""
    folder = tmp_path / "wheels"
    fake_wheel(folder, "rsna_pkg", "0.1.0", "py3-none-any",
               ['nvidia-dali-cuda120>=1.24; extra == "dali"',
                'nvidia-nvimgcodec-cu12[nvjpeg2k,nvjpeg]<0.10,>=0.9; extra == "nvimgcodec"'])  # fmt: skip
    fake_wheel(folder, "nvidia_nvimgcodec_cu12", "0.9.0.20", "py3-none-manylinux_2_28_x86_64",
               ['nvidia-nvjpeg-cu12; extra == "nvjpeg"', 'nvidia-nvjpeg2k-cu12; extra == "nvjpeg2k"',
                'nvidia-nvtiff-cu12>=0.8.0; extra == "nvtiff"'])  # fmt: skip
    fake_wheel(folder, "nvidia_nvjpeg_cu12", "12.4.0.76", "py3-none-manylinux2014_x86_64", [])
    assert bundled_extras(["rsna-pkg", "nvidia-nvimgcodec-cu12"]) == ("nvimgcodec",)
    assert bundled_extras(["nvidia-nvimgcodec-cu12", "nvidia-dali-cuda120"]) == ("dali",)
    assert BuildOptions(decoder="nvimgcodec").extras() == ("nvimgcodec",)
    assert BuildOptions(decoder="cpu").extras() == ()

    image, target = image_target(write_manifest(tmp_path / "m.txt", {}))
    found = [str(p) for p in check_bundle(folder, image, target)]
    assert found == ['nvidia_nvimgcodec_cu12-0.9.0.20: nvidia-nvjpeg2k-cu12; extra == "nvjpeg2k": '
                     "neither the image nor the bundle provides nvidia-nvjpeg2k-cu12"]  # fmt: skip
    fake_wheel(folder, "nvidia_nvjpeg2k_cu12", "0.11.0.51", "py3-none-manylinux2014_x86_64", [])
    assert check_bundle(folder, image, target) == []


def test_bundle_decoder_option_and_its_deprecated_spellings() -> None:
    """--decoder NAME (the registry's vocabulary); --gpu-decoder NAME, --gpu-decoder none and
    --no-dali still parse, to the same choice."""
    import argparse

    from rsna_pkg.kaggle.build import add_decoder_argument

    parser = argparse.ArgumentParser()
    add_decoder_argument(parser)
    for argv, want in [([], "dali"), (["--decoder", "nvimgcodec"], "nvimgcodec"),
                       (["--gpu-decoder", "nvimgcodec"], "nvimgcodec"), (["--no-dali"], "cpu"),
                       (["--gpu-decoder", "none"], "cpu"), (["--decoder", "cpu"], "cpu")]:  # fmt: skip
        assert BuildOptions(decoder=parser.parse_args(argv).decoder).decoder == want, argv
    with pytest.raises(InputError, match="bundle decoder 'openjpeg' unknown"):
        BuildOptions(decoder="openjpeg")


def test_bundled_copy_of_a_pinned_package_is_refused(bundle: Path, tmp_path: Path) -> None:
    """pip would replace the image's numpy with the bundled one: torch's numpy, gone."""
    fake_wheel(bundle, "numpy", "2.3.0", "cp312-cp312-manylinux_2_28_x86_64", [])
    (bundle / "pylibjpeg_openjpeg-2.6.0-cp312-cp312-manylinux_2_17_x86_64.whl").unlink()
    fake_wheel(bundle, "pylibjpeg_openjpeg", "2.7.0", "cp312-cp312-manylinux_2_17_x86_64",
               ["numpy>=2.3"])  # fmt: skip
    image, target = image_target(write_manifest(tmp_path / "m.txt", {"numpy": "2.0.2"}))
    found = [str(p) for p in check_bundle(bundle, image, target)]
    assert found == ["pylibjpeg_openjpeg-2.7.0: numpy>=2.3 but the image has numpy 2.0.2"]


TWO_PYTHONS = HEADER + "also-python: 3.13\n"


@pytest.fixture
def two_python_bundle(tmp_path: Path) -> Path:
    """A tiny wheel index as build-dataset lays it out for 3.12 and 3.13: the compiled wheel
    once per Python, the pure-Python ones once."""
    folder = tmp_path / "two"
    fake_wheel(folder, "rsna_pkg", "0.1.0", "py3-none-any",
               ["numpy>=1.24", "pydicom>=3.0", "dicomsdl>=0.109"])  # fmt: skip
    for cp in ("cp312", "cp313"):
        fake_wheel(folder, "dicomsdl", "0.109.4", f"{cp}-{cp}-manylinux_2_17_x86_64", ["numpy"])
    return folder


def test_one_bundle_installs_on_the_images_python_and_the_next(
    two_python_bundle: Path, tmp_path: Path
) -> None:
    """Both Pythons install it, by the static check and by pip's resolver (offline, with a
    metadata-only stand-in per pin); without its cp313 wheel, 3.13 alone fails."""
    manifest = write_manifest(tmp_path / "m.txt", {"numpy": "2.0.2", "pydicom": "3.0.2"},
                              TWO_PYTHONS)  # fmt: skip
    image = load_manifest(manifest)
    targets = BuildOptions(manifest=manifest).targets(image)
    assert [t.python for t in targets] == ["3.12", "3.13"]
    assert check_bundle(two_python_bundle, image, targets) == []
    assert [p for t in targets for p in pip_proof(two_python_bundle, image, t)] == []
    (two_python_bundle / "dicomsdl-0.109.4-cp313-cp313-manylinux_2_17_x86_64.whl").unlink()
    found = [str(p) for p in check_bundle(two_python_bundle, image, targets)]
    assert found == ["rsna_pkg-0.1.0: dicomsdl>=0.109: neither the image nor the bundle "
                     "provides dicomsdl (CPython 3.13)"]  # fmt: skip
    assert pip_proof(two_python_bundle, image, targets[0]) == []
    (problem,) = pip_proof(two_python_bundle, image, targets[1])
    assert str(problem).startswith("rsna_pkg: pip cannot install it on CPython 3.13")
    assert "dicomsdl" in str(problem)


def test_extras_upgrade_of_the_images_nvimgcodec_is_reported(tmp_path: Path) -> None:
    """The image ships nvImageCodec 0.7.0.11; DALI needs 0.9: pip replaces it at install.
    Listed under extras-upgrade, that is reported; otherwise it is a problem."""
    folder = tmp_path / "wheels"
    fake_wheel(folder, "rsna_pkg", "0.1.0", "py3-none-any",
               ["numpy>=1.24", 'nvidia-dali-cuda120>=1.24; extra == "dali"'])  # fmt: skip
    fake_wheel(folder, "nvidia_dali_cuda120", "2.4.0", "py3-none-manylinux2014_x86_64",
               ["numpy", "nvidia-nvimgcodec-cu12<0.10.0,>=0.9.0"])  # fmt: skip
    fake_wheel(folder, "nvidia_nvimgcodec_cu12", "0.9.0.20", "py3-none-manylinux_2_28_x86_64", [])
    pins = {"numpy": "2.0.2", "nvidia-nvimgcodec-cu12": "0.7.0.11"}
    upgrading = write_manifest(tmp_path / "u.txt", pins, HEADER + "extras-upgrade: "
                               "nvidia-nvimgcodec-cu12\n")  # fmt: skip
    image, target = image_target(upgrading)
    report = inspect_bundle(folder, image, target)
    assert report.problems == []
    assert report.upgrades == [
        "rsna_pkg[dali] upgrades the image's nvidia-nvimgcodec-cu12 0.7.0.11 to 0.9.0.20 "
        "(nvidia_dali_cuda120-2.4.0 needs nvidia-nvimgcodec-cu12<0.10.0,>=0.9.0)"
    ]
    assert pip_proof(folder, image, target) == []
    image, target = image_target(write_manifest(tmp_path / "m.txt", pins))
    found = [str(p) for p in check_bundle(folder, image, target)]
    assert found == ["nvidia_dali_cuda120-2.4.0: nvidia-nvimgcodec-cu12<0.10.0,>=0.9.0 but the "
                     "image has nvidia-nvimgcodec-cu12 0.7.0.11"]  # fmt: skip


@pytest.mark.slow
def test_kaggle_check_on_the_repo_and_on_two_broken_manifests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real bundle for the image's Python 3.12 (pip downloads once, then the cache)."""
    from rsna_pkg.cli import main

    monkeypatch.delenv("RSNA_KAGGLE_OWNER", raising=False)
    bundle = tmp_path / "wheels"
    assert main(["kaggle", "build-dataset", str(bundle), "--no-dali"]) == 0
    names = [p.name for p in bundle.glob("*.whl")]
    for cp in ("cp312", "cp313"):  # the image's Python and the next, in one dataset
        assert any(f"dicomsdl-0.109.4-{cp}" in n for n in names), names
    assert not any(n.startswith("pydicom-") for n in names)  # the image ships pydicom 3.0.2
    assert len([n for n in names if n.startswith("pylibjpeg-")]) == 1  # pure Python: once
    assert main(["kaggle", "check", "--bundle", str(bundle), "--no-dali"]) == 0
    out = capsys.readouterr().out
    assert "CPython 3.12 or 3.13 on manylinux_2_35_x86_64: 0 problem(s)" in out
    assert out.strip().endswith("all checks passed")

    old_numpy = tmp_path / "old_numpy.txt"
    old_numpy.write_text(IMAGE_MANIFEST.read_text().replace("numpy==2.0.2", "numpy==1.26.4"))
    assert main(["kaggle", "check", "--bundle", str(bundle), "--manifest", str(old_numpy)]) == 1
    out = capsys.readouterr().out
    assert "pylibjpeg_openjpeg-2.6.0: numpy<3.0,>=2.0 but the image has numpy 1.26.4" in out

    py311 = tmp_path / "py311.txt"
    py311.write_text(IMAGE_MANIFEST.read_text().replace("python: 3.12.13", "python: 3.11.9"))
    assert main(["kaggle", "check", "--bundle", str(bundle), "--manifest", str(py311)]) == 1
    out = capsys.readouterr().out
    assert "dicomsdl-0.109.4: built for cp312-cp312" in out and "CPython 3.11" in out
