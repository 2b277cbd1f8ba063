"""End-to-end ``rsna infer`` on the synthetic DICOM test set with real (tiny, random-init)
checkpoints built through the training package, the real decoder and preprocessing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from rsna_pkg.data.metadata_encoder import fit_metadata_encoder
from rsna_pkg.infer.command import main as infer_main
from rsna_pkg.models.checkpoint import build_model, load_checkpoint, save_checkpoint
from rsna_pkg.models.config import ModelConfig
from rsna_pkg.preprocess import PreprocessConfig


def make_checkpoint(
    path: Path, train_csv: Path, size: tuple[int, int], seed: int, reduce: bool = True
) -> Path:
    """resnet18 at a tiny size, random init, with a metadata-only fallback model."""
    encoder = fit_metadata_encoder(pd.read_csv(train_csv))
    rng = np.random.default_rng(seed)
    config = ModelConfig(
        backbone="resnet18",
        preprocess=PreprocessConfig(height=size[0], width=size[1], reduce=reduce),
        metadata=encoder,
        threshold=0.4 + 0.1 * seed,
        prevalence=0.02,
        fallback_coef=tuple(rng.normal(0, 0.5, encoder.width).tolist()),
        fallback_intercept=-1.0,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_model(config).eval()
    save_checkpoint(path, model, config)
    return path


@pytest.fixture(scope="session")
def checkpoints(synth_data: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("infer_ckpt")
    return [
        make_checkpoint(out / "a.pt", synth_data / "train.csv", (64, 32), seed=0),
        make_checkpoint(out / "b.pt", synth_data / "train.csv", (96, 48), seed=1),
    ]


@pytest.fixture()
def broken_data(synth_data: Path, tmp_path: Path) -> tuple[Path, dict[int, str]]:
    """A copy of the test set with a corrupt, a zero-byte and a missing image, and one
    breast (the first) whose images are all unusable."""
    data = tmp_path / "data"
    data.mkdir()
    for name in ("test.csv", "sample_submission.csv"):
        shutil.copy(synth_data / name, data / name)
    shutil.copytree(synth_data / "test_images", data / "test_images")
    test = pd.read_csv(data / "test.csv")
    first = test[test.prediction_id == test.prediction_id.iloc[0]]
    other = test[test.prediction_id != test.prediction_id.iloc[0]]

    def path(row: pd.Series) -> Path:
        return data / "test_images" / str(row.patient_id) / f"{row.image_id}.dcm"

    broken = {}
    for i, (_, row) in enumerate(first.iterrows()):
        path(row).write_bytes(b"DICM garbage" * 10 if i == 0 else b"")
        broken[int(row.image_id)] = "corrupt" if i == 0 else "zero"
    victim = other.iloc[0]
    path(victim).unlink()
    broken[int(victim.image_id)] = "missing"
    return data, broken


def run_infer(data: Path, models: list[Path], out: Path, *extra: str) -> dict:
    report = out.with_suffix(".json")
    argv = ["--data", str(data), "--model", *map(str, models), "--out", str(out)]
    rc = infer_main([*argv, "--report", str(report), "--device", "cpu", "--threads", "1", *extra])
    assert rc == 0
    return json.loads(report.read_text())


def read_sub(path: Path) -> pd.Series:
    frame = pd.read_csv(path, dtype={"prediction_id": str})
    assert frame.columns.tolist() == ["prediction_id", "cancer"]
    return frame.set_index("prediction_id")["cancer"]


def test_broken_files_still_give_complete_submission(broken_data, checkpoints, tmp_path) -> None:
    data, broken = broken_data
    out = tmp_path / "sub.csv"
    report = run_infer(data, checkpoints[:1], out, "--threshold", "none", "--workers", "2")
    sub = read_sub(out)
    sample = pd.read_csv(data / "sample_submission.csv", dtype={"prediction_id": str})
    assert sub.index.tolist() == sample.prediction_id.tolist()
    assert np.isfinite(sub).all() and sub.between(0, 1).all()
    failed = {f["image_id"]: f["reason"] for f in report["failures"]}
    assert set(failed) == set(broken)
    for iid, kind in broken.items():
        assert failed[iid], iid
        if kind in ("zero", "missing"):
            assert kind in failed[iid]
    test = pd.read_csv(data / "test.csv", dtype={"prediction_id": str})
    dead = test.prediction_id.iloc[0]
    assert report["breasts_without_image"] == [dead]
    loaded = load_checkpoint(checkpoints[0])
    rows = test[test.prediction_id == dead]
    assert sub[dead] == pytest.approx(float(np.mean(loaded.metadata_only_proba(rows))), abs=1e-5)
    assert report["images"] == len(test) and report["images_failed"] == len(broken)
    assert report["images_per_s"] > 0 and report["projected_seconds_35000_images"] > 0
    assert set(report["seconds"]) >= {"read_csv", "load_models", "stream", "model", "total"}


def test_ensemble_mean_of_members_and_deterministic(synth_data, checkpoints, tmp_path) -> None:
    single = []
    for k, ckpt in enumerate(checkpoints):
        run_infer(synth_data, [ckpt], tmp_path / f"s{k}.csv", "--threshold", "none")
        single.append(read_sub(tmp_path / f"s{k}.csv"))
    assert not np.allclose(single[0], single[1])  # two configs, two different models
    both = tmp_path / "both.csv"
    report = run_infer(synth_data, checkpoints, both, "--threshold", "none", "--workers", "2")
    ens = read_sub(both)
    np.testing.assert_allclose(ens, (single[0] + single[1]) / 2, atol=2e-5)
    again = tmp_path / "again.csv"
    run_infer(synth_data, checkpoints, again, "--threshold", "none", "--workers", "0")
    assert again.read_bytes() == both.read_bytes()
    assert report["settings"]["models"] == [str(c) for c in checkpoints]


def test_stored_threshold_max_and_hflip(synth_data, checkpoints, tmp_path) -> None:
    probs_path, bin_path = tmp_path / "p.csv", tmp_path / "b.csv"
    common = ("--tta", "hflip", "--agg", "max")
    run_infer(synth_data, checkpoints[:1], probs_path, "--threshold", "none", *common)
    report = run_infer(synth_data, checkpoints[:1], bin_path, *common)  # stored threshold
    assert report["threshold"] == pytest.approx(0.4)
    binary = read_sub(bin_path).astype(float)
    assert set(binary.unique()) <= {0.0, 1.0}
    expected = (read_sub(probs_path) >= 0.4).astype(float)
    pd.testing.assert_series_equal(binary, expected, check_names=False)
    plain = tmp_path / "plain.csv"
    run_infer(synth_data, checkpoints[:1], plain, "--threshold", "none", "--agg", "max")
    assert not np.allclose(read_sub(plain), read_sub(probs_path))  # the flip changed scores


GUARD = """
import sys

def _guard(event, args):
    if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.bind"):
        raise RuntimeError(f"NETWORK USED: {event} {args!r}")
    if event == "socket.__new__" and args[1] not in (1,):  # only AF_UNIX (1) allowed
        raise RuntimeError(f"NETWORK SOCKET: family {args[1]!r}")
    if event == "open" and isinstance(args[0], (str, bytes)):
        p = args[0].decode() if isinstance(args[0], bytes) else args[0]
        if any(s in p for s in ("kaggle.json", ".netrc", ".git-credentials", "/.aws/")):
            raise RuntimeError(f"CREDENTIALS READ: {p}")

sys.addaudithook(_guard)
"""


def test_subprocess_opens_no_socket_and_reads_no_credentials(synth_data, checkpoints, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(textwrap.dedent(GUARD))
    home = tmp_path / "home"
    (home / ".kaggle").mkdir(parents=True)
    (home / ".kaggle" / "kaggle.json").write_text('{"username": "x", "key": "y"}')
    env = {**os.environ, "PYTHONPATH": str(site), "HOME": str(home)}
    out = tmp_path / "sub.csv"
    cmd = [sys.executable, "-m", "rsna_pkg.infer.command", "--data", str(synth_data),
           "--model", str(checkpoints[0]), "--out", str(out), "--workers", "2", "--device", "cpu"]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "NETWORK" not in done.stderr and "CREDENTIALS" not in done.stderr
    assert len(read_sub(out)) == pd.read_csv(synth_data / "test.csv").prediction_id.nunique()


@pytest.mark.parametrize("bad", ["no_column", "empty"])
def test_bad_test_csv_exits_2_before_loading(synth_data, tmp_path, capsys, bad) -> None:
    data = tmp_path / "d"
    data.mkdir()
    if bad == "no_column":
        pd.read_csv(synth_data / "test.csv").drop(columns=["laterality"]).to_csv(
            data / "test.csv", index=False
        )
    else:
        (data / "test.csv").write_text("")
    rc = infer_main(["--data", str(data), "--model", str(tmp_path / "none.pt"), "--out",
                     str(tmp_path / "o.csv"), "--device", "cpu"])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err
    assert "test.csv" in err and "checkpoint" not in err
    assert not (tmp_path / "o.csv").exists()


def assert_batches_match_cpu_path(data: Path, broken: Any, batches: Any) -> list[Path]:
    """``batches(paths, cfg)`` (a GPU decoder's route, run on the CPU) gives the CPU path's
    images, indices and failures for a full-resolution config; returns the paths."""
    from rsna_pkg.data.schema import image_path
    from rsna_pkg.infer.stream import iterate_batches

    test = pd.read_csv(data / "test.csv")
    paths = [
        image_path(data, "test", p, i) for p, i in zip(test.patient_id, test.image_id, strict=True)
    ]
    cfg = PreprocessConfig(height=64, width=32, reduce=False)
    got = list(batches(paths, cfg))
    cpu = list(iterate_batches(paths, cfg, 8, 0))
    assert len(got) == len(cpu) == -(-len(paths) // 8)
    for d, c in zip(got, cpu, strict=True):
        np.testing.assert_array_equal(d.indices, c.indices)
        np.testing.assert_array_equal(d.images, c.images)
        assert [i for i, _ in d.failures] == [i for i, _ in c.failures]
    failed = {int(test.image_id[i]) for b in got for i, _ in b.failures}
    assert failed == set(broken)
    return paths


def test_dali_route_on_cpu_matches_preprocess_file(broken_data) -> None:
    """The GPU path's code (DALI decode + preprocess's CPU steps), run with DALI on the CPU:
    identical images to preprocess_file for a full-resolution config, same failures."""
    pytest.importorskip("nvidia.dali")
    from rsna_pkg.infer.gpu import iterate_gpu_batches

    assert_batches_match_cpu_path(
        *broken_data, lambda paths, cfg: iterate_gpu_batches(paths, cfg, 8, 2, 2, "dali", "cpu")
    )


def test_nvimgcodec_route_on_cpu_matches_preprocess_file(synth_data, broken_data, tmp_path) -> None:
    """The GPU path with nvImageCodec, run through its CPU codecs (and their per-file
    fallback for the .70 files they cannot decode): identical images to preprocess_file for
    a full-resolution config, same failures; and ``rsna infer --decoder nvimgcodec``
    writes the same submission as the CPU decode path."""
    pytest.importorskip("nvidia.nvimgcodec")
    from rsna_pkg.infer.gpu import iterate_gpu_batches

    data, broken = broken_data
    assert_batches_match_cpu_path(
        data, broken,
        lambda paths, cfg: iterate_gpu_batches(paths, cfg, 8, 2, 2, "nvimgcodec", "cpu"),
    )  # fmt: skip
    ckpt = make_checkpoint(tmp_path / "full.pt", synth_data / "train.csv", (64, 32), 0,
                           reduce=False)  # fmt: skip
    runs = {}
    for backend in ("cpu", "nvimgcodec"):
        out = tmp_path / f"{backend}.csv"
        report = run_infer(data, [ckpt], out, "--decoder", backend, "--threshold", "none")
        assert report["settings"]["backend"] == backend
        runs[backend] = (read_sub(out), sorted(f["image_id"] for f in report["failures"]))
    np.testing.assert_allclose(runs["nvimgcodec"][0], runs["cpu"][0], atol=1e-6)
    assert runs["nvimgcodec"][1] == runs["cpu"][1] == sorted(broken)


def preprocessed(runtime: Any, paths: list[Path], config: PreprocessConfig) -> dict[int, Any]:
    """Row -> the preprocessed image (or the failure reason) a runtime's decode path gives."""
    out: dict[int, Any] = {}
    for batch in runtime.batches(paths, config, 4, 0, 2):
        out.update({int(i): image for i, image in zip(batch.indices, batch.images, strict=True)})
        out.update({int(i): reason for i, reason in batch.failures})
    return out


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_paths_match_cpu(synth_data, tmp_path) -> None:
    """Each GPU decode path gives the CPU path's preprocessed images exactly, and the model on
    CUDA with AMP gives the CPU's logits on them within a small share of their spread (the
    probabilities of a random-init model span only about 0.03, so comparing them within 0.02
    would pass on wrong pixels)."""
    from rsna_pkg.infer.devices import Runtime, dali_available, nvimgcodec_available

    ckpt = make_checkpoint(
        tmp_path / "full.pt", synth_data / "train.csv", (64, 32), 0, reduce=False
    )
    test = pd.read_csv(synth_data / "test.csv")
    paths = [synth_data / "test_images" / str(r.patient_id) / f"{r.image_id}.dcm"
             for r in test.itertuples()]  # fmt: skip
    config = load_checkpoint(ckpt).config.preprocess
    cpu_images = preprocessed(Runtime(device="cpu", backend="cpu"), paths, config)
    assert len(cpu_images) == len(paths)
    assert all(isinstance(v, np.ndarray) for v in cpu_images.values())
    gpu_backends = ["cpu"] + [name for name, ok in (("dali", dali_available()),
                                                    ("nvimgcodec", nvimgcodec_available())) if ok]  # fmt: skip
    for backend in gpu_backends:
        images = preprocessed(Runtime(device="cuda", backend=backend), paths, config)
        assert images.keys() == cpu_images.keys(), backend
        for row, image in images.items():
            assert isinstance(image, np.ndarray), (backend, row, image)
            np.testing.assert_array_equal(image, cpu_images[row], err_msg=f"{backend} row {row}")

    stack = np.stack([cpu_images[i] for i in range(len(paths))])
    logits = {}
    for device in ("cpu", "cuda"):
        loaded = load_checkpoint(ckpt, device=device)
        x = torch.stack([loaded.image_tensor(im) for im in stack])
        meta = loaded.encode_metadata(test)
        with torch.inference_mode():
            logits[device] = loaded.forward(x, meta).float().cpu().numpy().reshape(-1)
    spread = logits["cpu"].max() - logits["cpu"].min()
    assert spread > 0
    np.testing.assert_allclose(logits["cuda"], logits["cpu"], rtol=0, atol=0.05 * spread)

    # end to end: the submission of each GPU route is the CPU one's, within that logit error
    runs = {}
    for name, extra in {
        "cpu": ("--device", "cpu"),
        "cuda_cpu_decode": ("--device", "cuda", "--decoder", "cpu"),
        "cuda_dali": ("--device", "cuda", "--decoder", "dali"),
        "cuda_nvimgcodec": ("--device", "cuda", "--decoder", "nvimgcodec"),
        "cuda_auto": ("--device", "cuda"),
    }.items():
        out = tmp_path / f"{name}.csv"
        rc = infer_main(["--data", str(synth_data), "--model", str(ckpt), "--out", str(out),
                         "--threshold", "none", "--report", str(out.with_suffix(".json")), *extra])  # fmt: skip
        assert rc == 0
        runs[name] = read_sub(out)
    # a probability moves by at most a quarter of its logit's error (sigmoid' <= 1/4)
    tolerance = 0.25 * 0.05 * spread
    for name in ("cuda_cpu_decode", "cuda_dali", "cuda_nvimgcodec", "cuda_auto"):
        np.testing.assert_allclose(runs[name], runs["cpu"], rtol=0, atol=tolerance, err_msg=name)
    auto = json.loads((tmp_path / "cuda_auto.json").read_text())
    assert auto["settings"]["backend"] == "dali"  # reduce=False: DALI reproduces training
