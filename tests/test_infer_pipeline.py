"""Streaming inference with hand-checkable stand-ins for the checkpoint and the decoder.

The fake model's logit is w * (mean of the image's LEFT column - 0.5), so the
probability of every image, of its mirror (hflip TTA) and of every breast can be
computed by hand; the fake "DICOM" files hold .npy arrays read by a patched
``stream.preprocess_row`` (the real decoder is exercised in test_infer.py).
"""

from __future__ import annotations

import io
import math
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from rsna_pkg.errors import InputError
from rsna_pkg.infer import stream
from rsna_pkg.infer.devices import Runtime
from rsna_pkg.infer.inference import infer
from rsna_pkg.infer.options import InferOptions

CPU = Runtime(device="cpu", backend="cpu")


@dataclass(frozen=True)
class FakePre:
    height: int = 4
    width: int = 3
    invert: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FakeModel:
    def __init__(
        self, pre: FakePre, w: float = 4.0, threshold: float = 0.5, meta: float | None = None
    ):
        self.config = SimpleNamespace(
            preprocess=pre, threshold=threshold, prevalence=0.03, aggregation="mean"
        )
        self.w, self.meta = w, meta

    def image_tensor(self, img: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(img.astype(np.float32) / 255.0)[None]

    def encode_metadata(self, df: pd.DataFrame) -> torch.Tensor:
        return torch.zeros(len(df), 1)

    def forward(self, images: torch.Tensor, meta: torch.Tensor | None) -> torch.Tensor:
        assert meta is not None and meta.shape == (images.shape[0], 1)
        return self.w * (images[:, 0, :, 0].mean(-1) - 0.5)

    def metadata_only_proba(self, df: pd.DataFrame) -> np.ndarray | None:
        return None if self.meta is None else np.full(len(df), self.meta)


def fake_preprocess(path: Path, config: FakePre) -> np.ndarray:
    img = np.load(io.BytesIO(path.read_bytes()))
    return 255 - img if config.invert else img


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# (patient, image, laterality, left column, right column); None = broken file kind
IMAGES = [
    (1, 11, "L", 255, 0),
    (1, 12, "L", 51, 255),
    (1, 13, "R", 102, 102),
    (2, 21, "R", 204, 51),
    (2, 22, "R", "corrupt", None),
    (3, 31, "L", "zero", None),
    (3, 32, "L", "missing", None),
    (3, 33, "R", 0, 255),
]


@pytest.fixture()
def fake_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(stream, "preprocess_row", fake_preprocess)
    rows = []
    for pid, iid, lat, left, right in IMAGES:
        rows.append(
            dict(site_id=1, patient_id=pid, image_id=iid, laterality=lat, view="CC", age=60,
                 implant=0, machine_id=49, prediction_id=f"{pid}_{lat}")
        )  # fmt: skip
        f = tmp_path / "test_images" / str(pid) / f"{iid}.dcm"
        f.parent.mkdir(parents=True, exist_ok=True)
        if left == "corrupt":
            f.write_bytes(b"not an image at all")
        elif left == "zero":
            f.write_bytes(b"")
        elif isinstance(left, int):
            img = np.empty((4, 3), np.uint8)
            img[:, 0], img[:, 1:] = left, right
            buf = io.BytesIO()
            np.save(buf, img)
            f.write_bytes(buf.getvalue())
    pd.DataFrame(rows).to_csv(tmp_path / "test.csv", index=False)
    return tmp_path


def p_img(left: int, right: int, w: float = 4.0, tta: bool = False) -> float:
    p = sig(w * (left / 255 - 0.5))
    return (p + sig(w * (right / 255 - 0.5))) / 2 if tta else p


def opts(data: Path, **kw: Any) -> InferOptions:
    base: dict[str, Any] = dict(data=data, models=(), out=data / "sub.csv", threshold="none")
    return InferOptions(**{**base, **kw})


def by_id(result: Any) -> dict[str, float]:
    return dict(zip(result.submission["prediction_id"], result.submission["cancer"], strict=True))


@pytest.mark.parametrize("workers", [0, 2])
def test_mean_aggregation_failures_and_fallback(fake_data: Path, workers: int) -> None:
    res = infer(
        opts(fake_data, workers=workers, batch_size=3),
        CPU,
        [FakeModel(FakePre())],
    )
    got = by_id(res)
    assert list(got) == ["1_L", "1_R", "2_R", "3_L", "3_R"]  # test.csv order, each once
    assert got["1_L"] == pytest.approx((p_img(255, 0) + p_img(51, 255)) / 2)
    assert got["1_R"] == pytest.approx(p_img(102, 102))
    assert got["2_R"] == pytest.approx(p_img(204, 51))  # corrupt image skipped
    assert got["3_L"] == pytest.approx(0.03)  # no usable image: prevalence
    assert got["3_R"] == pytest.approx(p_img(0, 255))
    reasons = {f["image_id"]: f["reason"] for f in res.failures}
    assert set(reasons) == {22, 31, 32}
    assert reasons[31] == "zero-byte file" and reasons[32] == "missing file"
    assert reasons[22]  # the decoder's message
    assert res.fallback_breasts == ["3_L"]
    written = pd.read_csv(fake_data / "sub.csv")
    assert written["prediction_id"].tolist() == list(got)
    assert written["cancer"].to_numpy() == pytest.approx(list(got.values()), abs=1e-6)


def test_max_hflip_threshold_and_metadata_fallback(fake_data: Path) -> None:
    model = FakeModel(FakePre(), threshold=0.6, meta=0.9)
    res = infer(opts(fake_data, agg="max", tta="hflip"), CPU, [model])
    got = by_id(res)
    assert got["1_L"] == pytest.approx(max(p_img(255, 0, tta=True), p_img(51, 255, tta=True)))
    assert got["3_L"] == pytest.approx(0.9)  # metadata-only model
    res = infer(opts(fake_data, agg="max", tta="hflip", threshold="stored"), CPU, [model])
    bin_ = by_id(res)
    expect = {k: float(v >= 0.6) for k, v in got.items()}
    assert bin_ == expect and res.threshold == 0.6


def test_ensemble_averages_and_decodes_once_per_config(fake_data: Path, monkeypatch) -> None:
    calls: list[bool] = []

    def counting(path: Path, config: FakePre) -> np.ndarray:
        calls.append(config.invert)
        return fake_preprocess(path, config)

    monkeypatch.setattr(stream, "preprocess_row", counting)
    same = [FakeModel(FakePre(), w=4.0), FakeModel(FakePre(), w=2.0, threshold=0.3)]
    res = infer(opts(fake_data, threshold="stored"), CPU, same)
    assert len(calls) == 6 and res.threshold == pytest.approx(0.4)  # 6 = files that exist; one pass
    p = (p_img(204, 51, 4.0) + p_img(204, 51, 2.0)) / 2
    assert by_id(res)["2_R"] == float(p >= 0.4)
    calls.clear()
    mixed = [FakeModel(FakePre()), FakeModel(FakePre(invert=True))]
    res = infer(opts(fake_data), CPU, mixed)
    assert sorted(calls) == [False] * 6 + [True] * 6  # one pass per distinct config
    assert by_id(res)["1_R"] == pytest.approx((p_img(102, 102) + p_img(153, 153)) / 2)


class FlakyModel(FakeModel):
    """Raises on any batch holding an image whose left column is ``bad``; NaN for ``nan``."""

    def __init__(self, pre: FakePre, bad: int | None, nan: int | None = None, **kw: Any):
        super().__init__(pre, **kw)
        self.bad, self.nan = bad, nan

    def forward(self, images: torch.Tensor, meta: torch.Tensor | None) -> torch.Tensor:
        left = (images[:, 0, :, 0].mean(-1) * 255).round()
        if self.bad is not None and bool((left == self.bad).any()):
            raise RuntimeError("simulated kernel failure")
        out = super().forward(images, meta)
        return torch.where(left == self.nan, torch.nan, out) if self.nan is not None else out


def test_model_failure_costs_one_image_not_the_run(fake_data: Path) -> None:
    # 51 = image 12 of breast 1_L; 204 = image 21, the only usable image of 2_R
    model = FlakyModel(FakePre(), bad=51, nan=204, meta=0.9)
    res = infer(opts(fake_data, batch_size=8), CPU, [model])
    got = by_id(res)
    assert len(got) == 5
    assert got["1_L"] == pytest.approx(p_img(255, 0))  # batch retried per image: 11 kept
    assert got["1_R"] == pytest.approx(p_img(102, 102))
    assert got["2_R"] == pytest.approx(0.9)  # its one image gave NaN: metadata fallback
    reasons = {f["image_id"]: f["reason"] for f in res.failures}
    assert reasons[12] == "model 0 failed: RuntimeError: simulated kernel failure"
    assert reasons[21] == "model 0 gave a non-finite probability"
    assert sorted(res.fallback_breasts) == ["2_R", "3_L"]
    # in an ensemble, the healthy member still scores the image the other one fails on
    pair = [FlakyModel(FakePre(), bad=51), FakeModel(FakePre(), w=2.0)]
    res = infer(opts(fake_data, batch_size=8), CPU, pair)
    expect_12 = p_img(51, 255, w=2.0)
    expect_11 = (p_img(255, 0) + p_img(255, 0, w=2.0)) / 2
    assert by_id(res)["1_L"] == pytest.approx((expect_11 + expect_12) / 2)
    assert [f["scored_by_another_model"] for f in res.failures if f["image_id"] == 12] == [True]


def test_model_that_always_fails_still_writes_every_row(fake_data: Path) -> None:
    class OutOfMemory(FakeModel):
        def forward(self, images: torch.Tensor, meta: torch.Tensor | None) -> torch.Tensor:
            raise MemoryError("out of memory")

    model = OutOfMemory(FakePre(), meta=0.7)
    res = infer(opts(fake_data), CPU, [model])
    assert by_id(res) == pytest.approx({k: 0.7 for k in ["1_L", "1_R", "2_R", "3_L", "3_R"]})
    assert sum("out of memory" in f["reason"] for f in res.failures) == 5


def test_sample_submission_order_and_determinism(fake_data: Path) -> None:
    order = ["3_R", "9_L", "1_R", "2_R", "1_L"]
    pd.DataFrame({"prediction_id": order, "cancer": 0.5}).to_csv(
        fake_data / "sample_submission.csv", index=False
    )
    a = infer(opts(fake_data, workers=2, batch_size=2), CPU, [FakeModel(FakePre())])
    first = (fake_data / "sub.csv").read_bytes()
    b = infer(opts(fake_data, workers=0, batch_size=5), CPU, [FakeModel(FakePre())])
    # exactly the sample's ids, in its order: 3_L of test.csv is reported, not written
    assert a.submission["prediction_id"].tolist() == order
    assert a.unscored == ["3_L"]
    assert by_id(a)["9_L"] == pytest.approx(0.03)  # in sample only: prevalence
    assert (fake_data / "sub.csv").read_bytes() == first
    pd.testing.assert_frame_equal(a.submission, b.submission)


def test_internet_sockets_refused_but_inference_runs(fake_data: Path, monkeypatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("inference opened a socket")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    res = infer(opts(fake_data, workers=2), CPU, [FakeModel(FakePre())])
    assert len(res.submission) == 5


@pytest.mark.parametrize(
    ("csv", "match"),
    [("site_id,patient_id\n1,2\n", "missing required column"), ("", "not a readable CSV")],
)
def test_bad_test_csv_is_input_error_before_any_work(fake_data: Path, csv: str, match: str) -> None:
    (fake_data / "test.csv").write_text(csv)
    with pytest.raises(InputError, match=match):
        infer(opts(fake_data), CPU, [FakeModel(FakePre())])
    assert not (fake_data / "sub.csv").exists()


def test_missing_checkpoint_is_input_error(fake_data: Path) -> None:
    with pytest.raises(InputError, match="nope.pt: checkpoint not found"):
        infer(opts(fake_data, models=(fake_data / "nope.pt",)), CPU, None)
    with pytest.raises(InputError, match="at least one checkpoint"):
        infer(opts(fake_data), CPU, None)


def test_header_only_csv_is_input_error(fake_data: Path) -> None:
    pd.read_csv(fake_data / "test.csv").iloc[:0].to_csv(fake_data / "test.csv", index=False)
    with pytest.raises(InputError, match="no rows"):
        infer(opts(fake_data), CPU, [FakeModel(FakePre())])


def test_no_network_guard_blocks_internet_and_restores() -> None:
    from rsna_pkg.infer.netguard import NetworkBlocked, no_network

    original = socket.socket
    with no_network():
        with pytest.raises(NetworkBlocked):
            socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with pytest.raises(NetworkBlocked):
            socket.socket()
        with pytest.raises(OSError, match="blocked"):
            socket.create_connection(("example.org", 443), timeout=1)
        with pytest.raises(OSError, match="blocked"):
            socket.getaddrinfo("example.org", 443)
        a, b = socket.socketpair(socket.AF_UNIX)  # local IPC stays possible
        a.close(), b.close()
    assert socket.socket is original


def test_settle_backend_prefers_exact_cpu_path_for_reduced_decoding() -> None:
    from rsna_pkg.infer.devices import gpu_decoder, settle_backend

    auto = Runtime(device="cuda", backend="auto")
    reduced, full = SimpleNamespace(reduce=True), SimpleNamespace(reduce=False)
    assert settle_backend(auto, [full, reduced]).backend == "cpu"
    assert settle_backend(auto, [full]).backend == gpu_decoder()
    forced = Runtime(device="cuda", backend="dali")
    assert settle_backend(forced, [reduced]) is forced
    assert "reduced" in settle_backend(auto, [reduced]).describe()


def test_auto_prefers_dali_then_nvimgcodec(monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto`` on CUDA: DALI when installed, else nvImageCodec, else the CPU path."""
    from rsna_pkg.infer import devices

    monkeypatch.setattr(devices, "cuda_available", lambda: True)
    full = SimpleNamespace(reduce=False)
    for dali, nvimg, expected in [(True, True, "dali"), (False, True, "nvimgcodec"),
                                  (False, False, "cpu")]:  # fmt: skip
        found = {"dali": dali, "nvimgcodec": nvimg}
        monkeypatch.setattr(devices, "decoder_available", lambda name, f=found: f[name])
        runtime = devices.resolve_runtime("auto", "auto")
        assert devices.settle_backend(runtime, [full]).backend == expected
    monkeypatch.setattr(devices, "cuda_available", lambda: False)
    assert devices.resolve_runtime("auto", "auto").backend == "cpu"
    with pytest.raises(InputError, match="not installed"):
        devices.resolve_runtime("cpu", "nvimgcodec")  # not installed, as patched last
    monkeypatch.setattr(devices, "decoder_available", lambda name: True)
    cpu_nv = devices.resolve_runtime("cpu", "nvimgcodec")
    assert (cpu_nv.device, cpu_nv.backend) == ("cpu", "nvimgcodec")
    assert "nvImageCodec decode on CPU" in cpu_nv.describe()


def test_inference_decoders_are_the_registry_batch_decoders() -> None:
    """--decoder at inference: auto, cpu and exactly the registry's batch decoders, in its
    order (the command's literal choices included)."""
    import argparse

    from rsna_pkg.dicom.backend import DECODERS, get_decoder
    from rsna_pkg.infer import command, devices

    batch = tuple(n for n in DECODERS if get_decoder(n).capabilities().batch)
    assert batch == devices.BATCH_DECODERS
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    action = next(a for a in parser._actions if a.dest == "decoder")
    assert tuple(action.choices or ()) == devices.BACKENDS == ("auto", "cpu", *batch)
    argv = ["--data", "d", "--model", "m", "--out", "o", "--backend", "cpu"]
    assert parser.parse_args(argv).decoder == "cpu"  # the deprecated spelling


def test_command_import_is_light() -> None:
    """`rsna --help` imports every command module: ours must not pull torch/pandas in."""
    import subprocess
    import sys

    code = (
        "import sys, rsna_pkg.infer.command, rsna_pkg.bench_command; "
        "print(sorted(m for m in ('torch', 'pandas', 'nvidia.dali') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_bench_repeats_rows_without_copying_images(fake_data: Path, tmp_path: Path) -> None:
    from rsna_pkg.bench_command import load

    repeat_test_set = load("infer").repeat_test_set

    dest = tmp_path / "rep"
    dest.mkdir()
    repeat_test_set(fake_data, 19, dest)
    table = pd.read_csv(dest / "test.csv")
    src = pd.read_csv(fake_data / "test.csv")
    assert len(table) == 19
    assert table["image_id"].tolist() == (src["image_id"].tolist() * 3)[:19]
    assert (dest / "test_images").is_symlink()
    assert (dest / "test_images" / "1" / "11.dcm").read_bytes() == (
        fake_data / "test_images" / "1" / "11.dcm"
    ).read_bytes()
