"""The README's main command, taken from README.md and run as written in a fresh clone, from
its root, in a fresh venv (scaled down with --patients 12 --decoder cpu so CI can afford it).
A README whose main command breaks fails this test, so it fails CI."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pandas as pd
import pytest

from rsna_pkg.kaggle.paths import find_repo
from rsna_pkg.kaggle.replay import make_writable

REPO = find_repo(Path(__file__).parent)
SCALE_DOWN = "--patients 12 --decoder cpu"


def readme_commands() -> list[str]:
    """The bash blocks of the README's "The two commands" section, in order."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## The two commands", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)]


def test_readme_has_the_two_commands_and_ci_runs_the_second() -> None:
    main_command, test_command = readme_commands()
    assert "rsna replicate" in main_command
    assert test_command in (REPO / ".ci" / "run").read_text()


def clone_working_tree(dest: Path) -> None:
    """A fresh clone of what a commit of the working tree would hold now (tracked and
    untracked-not-ignored files): in CI that is the submitted commit itself."""
    env = {**os.environ, "GIT_INDEX_FILE": str(dest.parent / f"index-{uuid.uuid4().hex}")}
    git = ["git", "-C", str(REPO)]
    subprocess.run([*git, "add", "-A"], env=env, check=True)
    tree = subprocess.run([*git, "write-tree"], env=env, check=True, capture_output=True,
                          text=True).stdout.strip()  # fmt: skip
    ident = {**env, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
             "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    commit = subprocess.run([*git, "commit-tree", tree, "-m", "readme test"], env=ident,
                            check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    ref = f"refs/readme-test/{uuid.uuid4().hex}"
    subprocess.run([*git, "update-ref", ref, commit], check=True)
    try:
        subprocess.run(["git", "clone", "-q", "--no-checkout", str(REPO), str(dest)], check=True)
        subprocess.run(["git", "-C", str(dest), "fetch", "-q", "origin", ref], check=True)
        subprocess.run(["git", "-C", str(dest), "checkout", "-q", "FETCH_HEAD"], check=True)
    finally:
        subprocess.run([*git, "update-ref", "-d", ref], check=True)


@pytest.mark.slow
def test_main_command_passes_as_written_in_a_fresh_clone(tmp_path: Path) -> None:
    clone = tmp_path / "fresh clone"  # a space in the path, as a user's folder may have
    clone_working_tree(clone)
    command = f"{readme_commands()[0]} {SCALE_DOWN}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(REPO))
    )  # the clone's own .venv, never this checkout's
    try:
        done = subprocess.run(["bash", "-c", command], cwd=clone, env=env, capture_output=True,
                              text=True, timeout=2400)  # fmt: skip
        said = (done.stdout + done.stderr).splitlines()
        tail = "\n".join(line for line in said if not line.startswith("WARNING: Location"))
        assert done.returncode == 0, f"{command!r} failed in {clone}:\n{tail[-4000:]}"
        assert "submission OK" in done.stdout, tail[-2000:]
        work = clone / "runs" / "replicate"
        sub = pd.read_csv(work / "kernels" / "inference" / "kaggle" / "working" / "submission.csv")
        test = pd.read_csv(work / "competition" / "test.csv")
        assert list(sub["prediction_id"]) == list(dict.fromkeys(test["prediction_id"]))
        assert sub["cancer"].between(0, 1).all()
        assert (clone / ".venv" / "bin" / "rsna").is_file()
    finally:
        if clone.exists():
            make_writable(clone)
            shutil.rmtree(clone, ignore_errors=True)
