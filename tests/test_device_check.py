"""scripts/device_check.sh --dry-run (the GPU check's code, tiny, on the CPU) and the
slimming of the wheels that carry it to the GPU machine."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from base64 import urlsafe_b64encode
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def load_script(name: str):  # noqa: ANN201 - a module
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("device_check")
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable}
    done = subprocess.run(["bash", "scripts/device_check.sh", "--dry-run"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (out / "device_check.log").is_file()
    return json.loads((out / "gpu_report.json").read_text()), done.stdout


def test_dry_run_report_keys_and_values(dry_run: tuple[dict, str]) -> None:
    report, printed = dry_run
    assert report["errors"] == {}
    for key in ("config", "environment", "dataset", "decode", "voi", "preprocess", "train",
                "infer", "projection", "seconds"):  # fmt: skip
        assert report[key], key
    assert report["config"]["dry_run"] and report["environment"]["device"] == "cpu"
    dec = report["decode"]
    assert dec["files"] == report["dataset"]["files"] == report["config"]["files"]
    assert dec["bit_exact"] == dec["files"]  # nvImageCodec or its fallback: always exact
    assert {"jp2", "j2k", "ljpeg"} <= set(dec["by_codec"])  # the few files cover each codec
    assert 0 < dec["decoded_by_nvimgcodec"] <= dec["files"]
    for row in dec["per_file"]:
        assert row["source"] == "nvimgcodec" or row["source"].startswith("fallback:")
    assert 0 <= report["voi"]["max_abs_diff"] < 1e-5
    for h, w in report["config"]["sizes"]:
        p = report["preprocess"][f"{h}x{w}"]
        assert p["gpu_route_images_per_s"] > 0 and p["cpu_path_images_per_s"] > 0
        assert p["gpu_failed"] == p["cpu_failed"] == 0
        n = report["config"]["files"]
        assert p["gpu_route_equals_cpu_full_resolution"] == f"{n}/{n}"
    for backbone in report["config"]["backbones"]:
        (step,) = report["train"][backbone].values()  # one dtype on the CPU: float32
        assert step["images_per_s"] > 0 and step["loss_finite"]
    inf = report["infer"]
    assert inf["model_only_images_per_s"] > 0
    for route in ("e2e_nvimgcodec_decode", "e2e_cpu_decode"):
        assert inf[route]["images_per_s"] > 0 and inf[route]["failed"] == 0
    proj = report["projection"]
    assert proj["images"] == 35_000 and proj["here_seconds"] > 0
    assert "assumed" in proj["scaled_from"]  # a CPU run scales as if it were an H200
    for gpu in ("T4", "P100"):
        g = proj[gpu]
        assert 0 < g["fp16_factor_vs_here"] < 1
        assert g["overlapped_seconds"] <= g["sequential_seconds"]
        assert g["model_seconds"] > proj["model_only_seconds_here"]
    assert "35,000 images on T4" in printed and "decode bit-exact vs pydicom" in printed


def fake_wheel(path: Path, files: dict[str, bytes]) -> Path:
    dist = "demo-1.0.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr(f"{dist}/METADATA", "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")
        zf.writestr(
            f"{dist}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        zf.writestr(f"{dist}/RECORD", "stale,,\n")
    return path


def test_slim_wheel_rewrites_record_and_installs(tmp_path: Path) -> None:
    fetch = load_script("fetch_device_wheels")
    src = fake_wheel(tmp_path / "demo-1.0-py3-none-any.whl",
                     {"demo/__init__.py": b"X = 1\n", "demo/big.bin": b"0" * 1000})  # fmt: skip
    out = tmp_path / "slim" / src.name
    out.parent.mkdir()
    dropped = fetch.slim_wheel(src, out, lambda n: n.endswith(".bin"))
    assert dropped == ["demo/big.bin"]
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        record = zf.read("demo-1.0.dist-info/RECORD").decode().splitlines()
        data = zf.read("demo/__init__.py")
    assert "demo/big.bin" not in names and "demo/__init__.py" in names
    digest = urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    assert f"demo/__init__.py,sha256={digest},{len(data)}" in record
    assert {r.split(",")[0] for r in record} == names
    target = tmp_path / "site"
    fetch.install([out], target)
    assert (target / "demo" / "__init__.py").read_bytes() == data
    assert not (target / "demo" / "big.bin").exists()


def test_slimming_rules_keep_what_rsna_pkg_calls() -> None:
    fetch = load_script("fetch_device_wheels")
    keep_codecs = ["imagecodecs/_jpeg2k.abi3.so", "imagecodecs/_ljpeg.abi3.so",
                   "imagecodecs/_imcd.abi3.so", "imagecodecs/__init__.py",
                   "imagecodecs.libs/libopenjp2-7e27257a.so.2.5.4",
                   "imagecodecs.libs/libjpeg-f212e7a6.so.8.3.2"]  # fmt: skip
    drop_codecs = ["imagecodecs/_avif.abi3.so", "imagecodecs.libs/libjpegxr-d64fea28.so.1.2",
                   "imagecodecs.libs/libaom-391a2213.so.3.13.1"]  # fmt: skip
    assert not any(fetch.drop_imagecodecs(n) for n in keep_codecs)
    assert all(fetch.drop_imagecodecs(n) for n in drop_codecs)
    base = "nvidia/nvimgcodec/"
    keep_nv = [f"{base}nvimgcodec_impl.cpython-312-x86_64-linux-gnu.so", f"{base}__init__.py",
               f"{base}extensions/libnvjpeg2k_ext.so.0.9.0", f"{base}extensions/libopencv_ext.so.0.9.0",
               f"{base}libnvimgcodec.so.0"]  # fmt: skip
    drop_nv = [f"{base}nvimgcodec_impl.cpython-311-x86_64-linux-gnu.so",
               f"{base}nvimgcodec_impl.cpython-313t-x86_64-linux-gnu.so",
               f"{base}extensions/libnvtiff_ext.so.0.9.0", f"{base}extensions/libtiff_ext.so.0.9.0"]  # fmt: skip
    assert not any(fetch.drop_nvimgcodec(n) for n in keep_nv)
    assert all(fetch.drop_nvimgcodec(n) for n in drop_nv)
    assert set(fetch.WHEELS) >= {"pydicom", "dicomsdl", "pylibjpeg-openjpeg", "imagecodecs",
                                 "nvidia-nvimgcodec-cu12", "nvidia-nvjpeg2k-cu12"}  # fmt: skip
