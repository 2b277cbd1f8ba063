"""Push the wheel dataset (and optionally a model) and the kernels with the real kaggle CLI.

Order: build the wheel dataset and the ImageNet weights dataset, run every check (the repo's
files and the staged dataset folders), then ``kaggle datasets create|version -p DIR``, waiting
until Kaggle has processed each dataset version (a kernel pushed before that cannot mount it:
the CLI only prints "not valid dataset sources" and exits 0, which we treat as the error it
is), then ``kaggle kernels push -p DIR`` in chain order, waiting for each kernel to finish
before pushing the one that reads its output.
Credentials come from the user's environment or ~/.kaggle/kaggle.json, never this repo.
"""

from __future__ import annotations

import json
import logging
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rsna_pkg.config_fields import FieldError
from rsna_pkg.errors import RsnaError
from rsna_pkg.kaggle.build import BuildOptions, build_dataset
from rsna_pkg.kaggle.check import check_dataset, check_repo, offline_api
from rsna_pkg.kaggle.paths import DATASET_METADATA, KERNEL_ORDER, KaggleConfig, kernel_dir
from rsna_pkg.kaggle.render import dataset_metadata, dumps
from rsna_pkg.kaggle.weights import build_weights
from rsna_pkg.outputs import MODEL_NAME

log = logging.getLogger(__name__)

POLL_SECONDS = 60  # between two `kaggle kernels status`
DATASET_POLL_SECONDS = 15  # between two `kaggle datasets status`
DATASET_TIMEOUT = 1800.0  # a 500 MiB DALI bundle can take minutes to process
# `kaggle datasets status` prints kagglesdk's DatabundleVersionStatus in lower case: ready,
# or a processing step (blobs_received, ...), or one of these, which no wait will mend.
DATASET_FAILED = ("failed", "deleted", "error")
# What `kaggle kernels push` prints, exit code 0, when the push did not do what was asked.
PUSH_REFUSALS = ("not valid dataset sources", "not valid kernel sources",
                 "not valid competition sources", "not valid model sources", "push error")  # fmt: skip


def kaggle_cli() -> list[str]:
    exe = shutil.which("kaggle")
    return [exe] if exe else [sys.executable, "-m", "kaggle"]


def stage_model(work: Path, cfg: KaggleConfig, model: Path) -> Path:
    """A flat model dataset folder: model.pt + dataset-metadata.json."""
    if not model.is_file():
        raise FieldError("model", "no such file", value=model)
    folder = work / cfg.datasets["model"].slug
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    shutil.copy2(model, folder / MODEL_NAME)
    (folder / DATASET_METADATA).write_text(dumps(dataset_metadata(cfg, "model")))
    return folder


def dataset_commands(cfg: KaggleConfig, name: str, folder: Path, message: str) -> list[list[str]]:
    """status (exists?) then version, or create for the first release."""
    ref = cfg.ref(cfg.datasets[name].slug)
    return [
        ["datasets", "status", ref],
        ["datasets", "version", "-p", str(folder), "-m", message, "--dir-mode", "skip"],
        ["datasets", "create", "-p", str(folder), "--dir-mode", "skip"],
    ]


def push(
    repo: Path,
    cfg: KaggleConfig,
    opts: BuildOptions,
    work: Path,
    dry_run: bool,
    kernels: Sequence[str] | None,
    model: Path | None,
    message: str,
    dataset_timeout: float = DATASET_TIMEOUT,
) -> int:
    names = [k for k in KERNEL_ORDER if kernels is None or k in kernels]
    if kernels and set(kernels) - set(KERNEL_ORDER):
        raise FieldError("kernels", f"choose from {', '.join(KERNEL_ORDER)}")
    work = work if work.is_absolute() else repo / work
    datasets = {"wheels": work / cfg.datasets["wheels"].slug}
    log.info(build_dataset(datasets["wheels"], cfg, opts, repo=repo).summary())
    datasets["weights"] = work / cfg.datasets["weights"].slug
    log.info(build_weights(datasets["weights"], cfg).summary())
    if model is not None:
        datasets["model"] = stage_model(work, cfg, model)
    problems = check_repo(repo, cfg)
    with offline_api() as api:
        for folder in datasets.values():
            meta = json.loads((folder / DATASET_METADATA).read_text())
            problems += check_dataset(api, folder, meta)
    if problems:
        raise RsnaError("check failed:\n" + "\n".join(str(p) for p in problems))
    cli = kaggle_cli()
    for name, folder in datasets.items():
        status, version, create = dataset_commands(cfg, name, folder, message)
        if dry_run:
            print(_show(status), "# exists?", "then", _show(version), "else", _show(create),
                  "&&", "wait for", _show(status), "== ready")  # fmt: skip
            continue
        exists = _run(cli, status, check=False) == 0
        _run(cli, version if exists else create)
        wait_for_dataset(cli, status[-1], dataset_timeout)
    for name in names:
        ref = cfg.ref(cfg.kernels[name].slug)
        cmd = ["kernels", "push", "-p", str(kernel_dir(repo, name))]
        if dry_run:
            print(_show(cmd), "&&", "wait for", _show(["kernels", "status", ref]), "== complete")
            continue
        refused = push_refusal(_run_captured(cli, cmd))
        if refused:
            raise RsnaError(f"{_show(cmd)}: {refused}")
        if name != names[-1]:
            wait_for(cli, ref)
    inference = cfg.ref(cfg.kernels["inference"].slug)
    print(
        f"then submit: kaggle competitions submit {cfg.competition} -k {inference} "
        "-v <version printed by kernels push> -f submission.csv -m <message>"
    )
    return 0


def wait_for(cli: list[str], ref: str) -> None:
    """Poll ``kaggle kernels status`` until the kernel completes (later kernels read its output)."""
    while True:
        out = subprocess.run([*cli, "kernels", "status", ref], capture_output=True, text=True)
        text = (out.stdout + out.stderr).lower()
        if "complete" in text:
            return
        if out.returncode != 0 or "error" in text or "cancel" in text:
            raise RsnaError(f"kernel {ref}: {text.strip()}")
        log.info(f"waiting for {ref}: {text.strip()}")
        time.sleep(POLL_SECONDS)


def dataset_state(said: str) -> str:
    """The status word of ``kaggle datasets status`` (its last line: ready, pending, ...)."""
    lines = said.strip().lower().splitlines()
    return lines[-1].strip().strip('"') if lines else ""


def wait_for_dataset(cli: list[str], ref: str, timeout: float) -> None:
    """Poll ``kaggle datasets status`` until the dataset is ready, else fail after ``timeout``
    seconds: a kernel pushed earlier would not mount the new version."""
    deadline = time.monotonic() + timeout
    while True:
        out = subprocess.run([*cli, "datasets", "status", ref], capture_output=True, text=True)
        said = (out.stdout + out.stderr).strip()
        state = dataset_state(said)
        if out.returncode == 0 and state == "ready":
            log.info(f"dataset {ref}: ready")
            return
        if out.returncode != 0 or state in DATASET_FAILED:
            raise RsnaError(f"dataset {ref}: kaggle datasets status says {said!r}")
        if time.monotonic() >= deadline:
            raise RsnaError(
                f"dataset {ref}: still {state!r} after {timeout:.0f} s (--dataset-timeout); "
                "the kernels were not pushed"
            )
        log.info(f"waiting for dataset {ref}: {state}")
        time.sleep(DATASET_POLL_SECONDS)


def push_refusal(said: str) -> str | None:
    """The line of ``kaggle kernels push`` output that says the push failed, if any."""
    for line in said.splitlines():
        if any(words in line.lower() for words in PUSH_REFUSALS):
            return line.strip()
    return None


def _run_captured(cli: list[str], args: list[str]) -> str:
    """Run and echo; returns what it printed. A non-zero exit is an error."""
    log.info(f"+ {_show(args)}")
    done = subprocess.run([*cli, *args], capture_output=True, text=True)
    said = done.stdout + done.stderr
    log.info(said.rstrip("\n"))
    if done.returncode != 0:
        raise RsnaError(f"{_show(args)} failed (exit {done.returncode}): {said.strip()[-300:]}")
    return said


def _show(args: list[str]) -> str:
    return "kaggle " + shlex.join(args)


def _run(cli: list[str], args: list[str], check: bool = True) -> int:
    log.info(f"+ {_show(args)}")
    code = subprocess.run([*cli, *args]).returncode
    if check and code != 0:
        raise RsnaError(f"{_show(args)} failed (exit {code})")
    return code
