"""`rsna kaggle check`: passes on the repository, fails naming file and field on broken copies."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from rsna_pkg.kaggle.check import check_kernel, check_repo, offline_api
from rsna_pkg.kaggle.paths import CONFIG_NAME, DATASETS_DIR, KERNELS_DIR, find_repo, load_config
from rsna_pkg.kaggle.render import render

REPO = find_repo(Path(__file__).parent)


@pytest.fixture()
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the repository's Kaggle files that a test may break."""
    monkeypatch.delenv("RSNA_KAGGLE_OWNER", raising=False)
    for name in (KERNELS_DIR, DATASETS_DIR):
        shutil.copytree(REPO / name, tmp_path / name)
    shutil.copy(REPO / CONFIG_NAME, tmp_path / CONFIG_NAME)
    return tmp_path


def problems(repo: Path) -> list[str]:
    return [str(p) for p in check_repo(repo, load_config(repo))]


def edit(path: Path, **changes: object) -> None:
    meta = json.loads(path.read_text())
    meta.update(changes)
    path.write_text(json.dumps(meta))


def test_repository_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RSNA_KAGGLE_OWNER", raising=False)
    assert problems(REPO) == []


def test_kaggle_push_request_is_what_we_meant() -> None:
    """The request kernels_push would send: internet off, sources as rendered."""
    meta = json.loads((REPO / KERNELS_DIR / "inference" / "kernel-metadata.json").read_text())
    with offline_api() as api:
        probs, request = check_kernel(api, REPO / KERNELS_DIR / "inference", meta)
    assert probs == []
    assert request.enable_internet is False
    assert request.competition_data_sources == ["rsna-breast-cancer-detection"]
    assert request.kernel_data_sources == [meta["kernel_sources"][0]]
    assert "find_input" in request.text  # the script body that would be pushed


def test_internet_on_for_inference_fails(repo: Path) -> None:
    edit(repo / KERNELS_DIR / "inference" / "kernel-metadata.json", enable_internet=True)
    found = problems(repo)
    assert any("inference/kernel-metadata.json: enable_internet" in p for p in found), found


def test_omitted_internet_flag_fails(repo: Path) -> None:
    path = repo / KERNELS_DIR / "inference" / "kernel-metadata.json"
    meta = json.loads(path.read_text())
    del meta["enable_internet"]
    path.write_text(json.dumps(meta))
    found = problems(repo)
    assert any("inference/kernel-metadata.json: enable_internet: must be false" in p for p in found)


def test_missing_code_file_fails(repo: Path) -> None:
    (repo / KERNELS_DIR / "train" / "kernel.py").unlink()
    found = problems(repo)
    assert any("train/kernel-metadata.json: code_file" in p for p in found), found


def test_bad_slug_fails(repo: Path) -> None:
    edit(repo / KERNELS_DIR / "eda" / "kernel-metadata.json", id="rsna-pkg/Bad_Slug")
    edit(repo / DATASETS_DIR / "model" / "dataset-metadata.json", id="rsna-pkg/short")
    found = problems(repo)
    assert any("eda/kernel-metadata.json: id: " in p and "Bad_Slug" in p for p in found), found
    assert any("model/dataset-metadata.json: id: " in p for p in found), found


def test_missing_dataset_source_fails(repo: Path) -> None:
    edit(repo / KERNELS_DIR / "train" / "kernel-metadata.json",
         dataset_sources=["rsna-pkg/no-such-dataset"])  # fmt: skip
    found = problems(repo)
    assert any("train/kernel-metadata.json: dataset_sources[0]" in p for p in found), found


def test_kaggle_validator_catches_malformed_source(repo: Path) -> None:
    edit(repo / KERNELS_DIR / "train" / "kernel-metadata.json", kernel_sources=["no-owner-slug"])
    edit(repo / KERNELS_DIR / "eda" / "kernel-metadata.json", enable_gpu="yes")
    found = problems(repo)
    assert any("train/kernel-metadata.json: kernel_sources[0]: ValueError" in p for p in found)
    assert any("eda/kernel-metadata.json: enable_gpu: ValueError" in p for p in found), found


def test_dataset_title_and_license_checked(repo: Path) -> None:
    edit(repo / DATASETS_DIR / "wheels" / "dataset-metadata.json", title="abc", licenses=[])
    found = problems(repo)
    assert any("wheels/dataset-metadata.json: title" in p for p in found), found
    assert any("wheels/dataset-metadata.json: licenses" in p for p in found), found


def test_out_of_sync_with_config_fails_until_rendered(repo: Path) -> None:
    toml = repo / CONFIG_NAME
    toml.write_text(toml.read_text().replace('owner = "rsna-pkg"', 'owner = "someone-else"'))
    found = problems(repo)
    assert any("kernel-metadata.json: (content): differs from kaggle.toml" in p for p in found)
    render(repo, load_config(repo))
    assert problems(repo) == []
    meta = json.loads((repo / KERNELS_DIR / "train" / "kernel-metadata.json").read_text())
    assert meta["kernel_sources"] == ["someone-else/rsna-pkg-preprocess"]


def test_drifted_bootstrap_copy_fails(repo: Path) -> None:
    code = repo / KERNELS_DIR / "eda" / "kernel.py"
    code.write_text(code.read_text().replace('"/kaggle"', '"/kaggle/"'))
    found = problems(repo)
    assert any("eda/kernel.py: (content)" in p for p in found), found


def test_title_must_resolve_to_slug(repo: Path) -> None:
    edit(repo / KERNELS_DIR / "eda" / "kernel-metadata.json", title="Some other title")
    found = problems(repo)
    assert any("eda/kernel-metadata.json: title: slugifies to" in p for p in found), found


def test_push_dry_run_prints_the_commands_in_chain_order(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from rsna_pkg.kaggle import push as push_mod
    from rsna_pkg.kaggle.build import BuildOptions

    def no_cli(*args: object, **kwargs: object) -> int:
        raise AssertionError("a dry run must not call the kaggle CLI")

    monkeypatch.setattr(push_mod, "_run", no_cli)
    model = tmp_path / "model.pt"
    model.write_bytes(b"weights")
    opts = BuildOptions(python=f"{sys.version_info.major}.{sys.version_info.minor}", decoder="cpu")
    code = push_mod.push(REPO, load_config(REPO), opts, tmp_path / "stage", True, None, model, "v1")
    out = capsys.readouterr().out
    assert code == 0
    order = [out.index(f"kaggle kernels push -p {REPO / KERNELS_DIR / k}")
             for k in ("eda", "preprocess", "train", "inference")]  # fmt: skip
    assert order == sorted(order)
    assert "kaggle datasets create -p" in out and "rsna-pkg-wheels" in out
    assert (tmp_path / "stage" / "rsna-pkg-model" / "model.pt").read_bytes() == b"weights"


FAKE_KAGGLE = """#!{python}
# A stand-in for the kaggle CLI: records each call; `datasets status REF` first says the
# dataset does not exist, then $STATUS (a processing step) until the STATUS_AFTER-th call
# for that REF, then "ready".
import json, os, sys
from pathlib import Path

log = Path(os.environ["FAKE_KAGGLE_LOG"])
calls = json.loads(log.read_text()) if log.exists() else []
calls.append(sys.argv[1:])
log.write_text(json.dumps(calls))
if sys.argv[1:3] == ["datasets", "status"]:
    n = sum(c == sys.argv[1:] for c in calls)  # per dataset: the wheels, the weights
    if n == 1:
        print("404 - Not Found")
        sys.exit(1)
    print(os.environ.get("STATUS", "blobs_received") if n < int(os.environ["STATUS_AFTER"])
          else "ready")
elif sys.argv[1:3] == ["kernels", "push"]:
    print(os.environ.get("PUSH_SAYS", "Kernel version 1 successfully pushed."))
elif sys.argv[1:3] == ["kernels", "status"]:
    print('rsna-pkg/x has status "KernelWorkerStatus.COMPLETE"')
else:
    print("Dataset is being created.")
"""


@pytest.fixture()
def fake_kaggle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fake `kaggle` first on PATH, a push that builds no real wheels, no sleeping."""
    import sys

    from rsna_pkg.kaggle import push as push_mod
    from rsna_pkg.kaggle.render import dataset_metadata, dumps

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "kaggle"
    exe.write_text(FAKE_KAGGLE.format(python=sys.executable))
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_KAGGLE_LOG", str(tmp_path / "calls.json"))
    monkeypatch.setenv("STATUS_AFTER", "4")
    monkeypatch.setenv("STATUS", "processing")
    monkeypatch.delenv("RSNA_KAGGLE_OWNER", raising=False)

    def fake_build(out: Path, cfg, opts, repo):
        out.mkdir(parents=True, exist_ok=True)
        (out / "rsna_pkg-0.1.0-py3-none-any.whl").write_bytes(b"")
        (out / "dataset-metadata.json").write_text(dumps(dataset_metadata(cfg, "wheels")))
        return SimpleNamespace(summary=lambda: "fake wheel dataset")

    def fake_weights(out: Path, cfg):
        out.mkdir(parents=True, exist_ok=True)
        (out / "weights.json").write_text("{}")
        (out / "dataset-metadata.json").write_text(dumps(dataset_metadata(cfg, "weights")))
        return SimpleNamespace(summary=lambda: "fake weights dataset")

    monkeypatch.setattr(push_mod, "build_dataset", fake_build)
    monkeypatch.setattr(push_mod, "build_weights", fake_weights)
    monkeypatch.setattr(push_mod, "DATASET_POLL_SECONDS", 0)
    monkeypatch.setattr(push_mod, "POLL_SECONDS", 0)

    def calls() -> list[list[str]]:
        return json.loads((tmp_path / "calls.json").read_text())

    return push_mod, calls


def test_push_waits_until_the_dataset_is_ready(fake_kaggle, tmp_path: Path) -> None:
    from rsna_pkg.kaggle.build import BuildOptions

    push_mod, calls = fake_kaggle
    cfg = load_config(REPO)
    assert push_mod.push(REPO, cfg, BuildOptions(), tmp_path / "st", False, None, None, "v") == 0
    said = [" ".join(c[:2]) for c in calls()]
    first_kernel = said.index("kernels push")
    # each dataset: exists? (no) -> create -> processing -> processing -> ready; only then
    # the kernels
    one = ["datasets status", "datasets create", "datasets status", "datasets status",
           "datasets status"]  # fmt: skip
    assert said[:first_kernel] == one + one
    refs = [c[2] for c in calls()[:first_kernel] if c[:2] == ["datasets", "status"]]
    assert [r.split("/")[-1] for r in refs] == ["rsna-pkg-wheels"] * 4 + ["rsna-pkg-weights"] * 4
    assert said.count("kernels push") == 4


def test_push_stops_when_the_dataset_never_gets_ready(
    fake_kaggle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rsna_pkg.errors import RsnaError
    from rsna_pkg.kaggle.build import BuildOptions

    push_mod, calls = fake_kaggle
    monkeypatch.setenv("STATUS_AFTER", "1000")
    with pytest.raises(RsnaError, match="rsna-pkg/rsna-pkg-wheels: still 'processing' after 0 s"):
        push_mod.push(REPO, load_config(REPO), BuildOptions(), tmp_path / "st", False, None,
                      None, "v", dataset_timeout=0)  # fmt: skip
    monkeypatch.setenv("STATUS", "failed")  # Kaggle gave up processing it: no point waiting
    with pytest.raises(RsnaError, match="kaggle datasets status says 'failed'"):
        push_mod.push(REPO, load_config(REPO), BuildOptions(), tmp_path / "st", False, None,
                      None, "v")  # fmt: skip
    assert not any(c[:2] == ["kernels", "push"] for c in calls())


def test_push_fails_on_invalid_dataset_sources(
    fake_kaggle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`kaggle kernels push` prints this and exits 0: the kernel would run without its wheels."""
    from rsna_pkg.errors import RsnaError
    from rsna_pkg.kaggle.build import BuildOptions

    push_mod, calls = fake_kaggle
    monkeypatch.setenv(
        "PUSH_SAYS",
        "Kernel version 3 successfully pushed.\n"
        "The following are not valid dataset sources: rsna-pkg/rsna-pkg-wheels",
    )
    with pytest.raises(RsnaError, match="eda: The following are not valid dataset sources"):
        push_mod.push(REPO, load_config(REPO), BuildOptions(), tmp_path / "st", False, None,
                      None, "v")  # fmt: skip
    assert sum(c[:2] == ["kernels", "push"] for c in calls()) == 1  # eda only, then stop


OLDEST_CHECK = """
import json, sys
from pathlib import Path
from rsna_pkg.kaggle.check import check_kernel, check_repo, offline_api
from rsna_pkg.kaggle.paths import load_config

repo, broken = Path(sys.argv[1]), Path(sys.argv[2])
assert check_repo(repo, load_config(repo)) == [], check_repo(repo, load_config(repo))
import kaggle  # only now: importing it authenticates, which offline_api's credentials allow

print("kaggle from", kaggle.__file__)
meta = json.loads((repo / "kaggle_kernels/inference/kernel-metadata.json").read_text())
with offline_api() as api:
    probs, request = check_kernel(api, repo / "kaggle_kernels/inference", meta)
assert probs == [] and request.enable_internet is False, (probs, request)
print("\\n".join(map(str, check_repo(broken, load_config(broken)))))
"""


@pytest.mark.slow
def test_check_runs_on_the_oldest_kaggle_cli_setup_py_allows(repo: Path) -> None:
    """The oldest kaggle release setup.py allows, fetched once (--no-deps, 170 KB) into the
    cache: the check calls only methods it has, and still catches what 2.2.5 catches."""
    import re
    import subprocess
    import sys

    oldest = re.search(r'"kaggle>=([0-9.]+),', (REPO / "setup.py").read_text())
    assert oldest, "setup.py: the dev extra must bound kaggle from below"
    version = oldest.group(1)
    target = Path.home() / ".cache" / "rsna_pkg" / "kaggle-cli" / version
    if not (target / "kaggle" / "__init__.py").is_file():
        pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, "--no-deps", "--target", str(target), f"kaggle=={version}"],
                       check=True)  # fmt: skip
    edit(repo / KERNELS_DIR / "eda" / "kernel-metadata.json", id="rsna-pkg/Bad_Slug")
    edit(repo / KERNELS_DIR / "train" / "kernel-metadata.json", kernel_sources=["no-owner"])
    env = {**os.environ, "PYTHONPATH": f"{target}{os.pathsep}{REPO}"}
    done = subprocess.run([sys.executable, "-c", OLDEST_CHECK, str(REPO), str(repo)],
                          capture_output=True, text=True, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"kaggle from {target}" in done.stdout
    assert "eda/kernel-metadata.json: id: " in done.stdout and "Bad_Slug" in done.stdout
    assert "train/kernel-metadata.json: kernel_sources[0]: ValueError" in done.stdout
