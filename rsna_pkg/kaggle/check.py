"""Validate every kernel and dataset metadata file offline, with the kaggle CLI's own code.

``kaggle kernels push`` and ``kaggle datasets create/version`` validate before their first
network call. We run those very methods (public ones only, present in every kaggle release
setup.py allows) on a ``KaggleApi`` that never authenticates: the
kernel push gets a fake client that records the save request, the dataset calls stop at
their first network step. Fake credentials and a temporary KAGGLE_CONFIG_DIR keep
``~/.kaggle`` untouched. On top come checks Kaggle leaves to the server or to luck: sources
that name nothing in this repo, internet left on for inference, duplicate ids, titles that
do not resolve to their slug, and files out of sync with kaggle.toml.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from rsna_pkg.errors import InputError
from rsna_pkg.kaggle.paths import (
    DATASET_METADATA,
    DATASETS_DIR,
    KERNEL_METADATA,
    KERNELS_DIR,
    KaggleConfig,
)
from rsna_pkg.kaggle.render import out_of_sync

KERNEL_BOOLS = ("is_private", "enable_gpu", "enable_tpu", "enable_internet")
OFFLINE_KERNELS = ("inference",)  # code-competition submissions: internet must be off


@dataclass(frozen=True)
class Problem:
    path: Path
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.field}: {self.message}"


class _Reached(Exception):
    """Raised by our stand-ins where the kaggle CLI would first touch the network."""


@contextlib.contextmanager
def offline_api() -> Iterator[Any]:
    """A KaggleApi with fake credentials and a throw-away config dir; never authenticates."""
    keys = ("KAGGLE_CONFIG_DIR", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN")
    saved = {k: os.environ.get(k) for k in keys}
    with tempfile.TemporaryDirectory() as config_dir:
        os.environ.pop("KAGGLE_API_TOKEN", None)
        os.environ.update(
            KAGGLE_CONFIG_DIR=config_dir, KAGGLE_USERNAME="offline-check", KAGGLE_KEY="0" * 32
        )
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    from kaggle.api.kaggle_api_extended import KaggleApi
                except ImportError as exc:
                    raise InputError(f"the check needs the kaggle CLI package: {exc}") from exc

                api = KaggleApi()
                # what authenticate() would read from the environment, set without it
                api.config_values = {api.CONFIG_NAME_USER: "offline-check",
                                     api.CONFIG_NAME_KEY: "0" * 32}  # fmt: skip
            yield api
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _recording_client() -> tuple[Callable[[], Any], list[Any]]:
    requests: list[Any] = []
    client = SimpleNamespace(
        kernels=SimpleNamespace(kernels_api_client=SimpleNamespace(save_kernel=requests.append))
    )

    @contextlib.contextmanager
    def build() -> Iterator[Any]:
        yield client

    return build, requests


def _reach(*_: Any, **__: Any) -> Any:
    raise _Reached


def _call(fn: Callable[[], Any]) -> tuple[str | None, str]:
    """Run ``fn``; returns (error message or None, what it printed or warned)."""
    out = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out):
        warnings.simplefilter("always")
        try:
            fn()
        except _Reached:
            pass
        except (ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
            return f"{type(exc).__name__}: {exc}", out.getvalue()
    said = out.getvalue() + "".join(str(w.message) for w in caught)
    return None, said.strip()


def check_kernel(api: Any, folder: Path, meta: dict[str, Any]) -> tuple[list[Problem], Any]:
    """Field-by-field with Kaggle's validators, then the whole ``kernels_push``.

    Returns the problems and the save request Kaggle would have sent (None on failure)."""
    path = folder / KERNEL_METADATA
    probs: list[Problem] = []

    def field(name: str, fn: Callable[[], Any]) -> None:
        error, _ = _call(fn)
        if error:
            probs.append(Problem(path, name, error))

    field("id", partial(api.validate_kernel_string, meta.get("id")))
    field("id", partial(slug_syntax, str(meta.get("id"))))
    if len(str(meta.get("title", ""))) < 5:
        probs.append(Problem(path, "title", "must be at least five characters"))
    code = meta.get("code_file")
    if not code or not (folder / str(code)).is_file():
        probs.append(Problem(path, "code_file", f"{code!r} not found in {folder}"))
    if meta.get("language") not in api.valid_push_language_types:
        probs.append(Problem(path, "language", f"must be one of {api.valid_push_language_types}"))
    if meta.get("kernel_type") not in api.valid_push_kernel_types:
        probs.append(Problem(path, "kernel_type", f"must be one of {api.valid_push_kernel_types}"))
    for i, src in enumerate(meta.get("dataset_sources", [])):
        field(f"dataset_sources[{i}]", partial(api.validate_dataset_string, src))
    for i, src in enumerate(meta.get("kernel_sources", [])):
        field(f"kernel_sources[{i}]", partial(api.validate_kernel_string, src))
    for i, src in enumerate(meta.get("model_sources", [])):
        field(f"model_sources[{i}]", partial(api.validate_model_instance_version_string, src))
    for key in KERNEL_BOOLS:
        if key not in meta:
            probs.append(Problem(path, key, "missing: the Kaggle CLI then picks a default"))
        field(key, partial(api.get_bool, meta, key, False))
    build, requests = _recording_client()
    api.build_kaggle_client = build
    error, said = _call(lambda: api.kernels_push(str(folder)))
    if error and not probs:
        probs.append(Problem(path, "kernels push", error))
    if said and "does not resolve to the specified id" not in said:  # that one: _title_matches
        probs.append(Problem(path, "kernels push", f"warns: {said[:200]}"))
    return probs, (requests[0] if requests and not error else None)


def check_dataset(api: Any, folder: Path, meta: dict[str, Any]) -> list[Problem]:
    """The checks of ``kaggle datasets create`` and ``version``, stopped before the network."""
    path = folder / DATASET_METADATA
    probs: list[Problem] = []
    ref = str(meta.get("id", ""))
    error, _ = _call(lambda: api.validate_dataset_string(ref))
    if error or ref.count("/") != 1:
        probs.append(Problem(path, "id", error or f"{ref!r} is not 'owner/slug'"))
    else:
        error, _ = _call(partial(slug_syntax, ref))
        if error:
            probs.append(Problem(path, "id", error))
        if not 6 <= len(ref.split("/")[1]) <= 50:
            probs.append(Problem(path, "id", "the dataset slug must be 6-50 characters"))
    if not 6 <= len(str(meta.get("title", ""))) <= 50:
        probs.append(Problem(path, "title", "must be 6-50 characters"))
    if len(meta.get("licenses", [])) != 1:
        probs.append(Problem(path, "licenses", "exactly one license is required"))
    api.dataset_status = _reach
    api.build_kaggle_client = _reach
    for what, fn in (
        ("datasets create", lambda: api.dataset_create_new(str(folder))),
        ("datasets version", lambda: api.dataset_create_version(str(folder), "check")),
    ):
        error, _ = _call(fn)
        if error and not probs:
            probs.append(Problem(path, what, error))
    return probs


# Kaggle's slug rule, as kaggle 2.2.5 enforces it: lowercase letters and digits, single
# separators inside (hyphens; owners may also use underscores). Written out here because
# older CLIs lack the method (the private _validate_slug_syntax is absent from 2.2.3).
OWNER_SLUG = re.compile(r"[a-z0-9]+(?:[_-][a-z0-9]+)*")
SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def slug_syntax(ref: str) -> None:
    """Raise ValueError unless ``ref`` is ``owner/slug`` with both parts in Kaggle's syntax."""
    parts = ref.split("/")
    if len(parts) != 2:
        raise ValueError(f"{ref!r} is not 'owner/slug'")
    owner, slug = parts
    if not OWNER_SLUG.fullmatch(owner):
        raise ValueError(f"invalid owner slug {owner!r}: lowercase letters, digits and single "
                         "inner hyphens or underscores")  # fmt: skip
    if not SLUG.fullmatch(slug):
        raise ValueError(f"invalid slug {slug!r}: lowercase letters, digits and single inner "
                         "hyphens")  # fmt: skip


def _subfolders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def _load(path: Path) -> tuple[dict[str, Any] | None, Problem | None]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, Problem(path, "(file)", "missing")
    except json.JSONDecodeError as exc:
        return None, Problem(path, "(file)", f"not valid JSON: {exc}")
    if not isinstance(data, dict):
        return None, Problem(path, "(file)", "must hold a JSON object")
    return data, None


def check_repo(repo: Path, cfg: KaggleConfig) -> list[Problem]:
    """Every check on every kernel and dataset metadata file of the repository."""
    probs: list[Problem] = []
    kernels: dict[str, dict[str, Any]] = {}
    datasets: dict[str, dict[str, Any]] = {}
    with offline_api() as api:
        for folder in _subfolders(repo / DATASETS_DIR):
            meta, prob = _load(folder / DATASET_METADATA)
            if meta is None:
                probs.append(prob)  # type: ignore[arg-type]
                continue
            datasets[folder.name] = meta
            probs += check_dataset(api, folder, meta)
        for folder in _subfolders(repo / KERNELS_DIR):
            meta, prob = _load(folder / KERNEL_METADATA)
            if meta is None:
                probs.append(prob)  # type: ignore[arg-type]
                continue
            kernels[folder.name] = meta
            found, request = check_kernel(api, folder, meta)
            probs += found
            if request is not None and folder.name in OFFLINE_KERNELS and request.enable_internet:
                where = folder / KERNEL_METADATA
                probs.append(Problem(where, "enable_internet", "must be false for submission"))
    probs += cross_check(repo, cfg, kernels, datasets)
    return probs


def cross_check(
    repo: Path, cfg: KaggleConfig, kernels: dict[str, dict], datasets: dict[str, dict]
) -> list[Problem]:
    """References between files, unique ids, the competition, and sync with kaggle.toml."""
    probs: list[Problem] = []
    dataset_ids = {m.get("id") for m in datasets.values()}
    kernel_ids = {m.get("id") for m in kernels.values()}
    seen: dict[str, Path] = {}
    for group, root, name in ((datasets, DATASETS_DIR, DATASET_METADATA),
                              (kernels, KERNELS_DIR, KERNEL_METADATA)):  # fmt: skip
        for folder, meta in group.items():
            path, ref = repo / root / folder / name, str(meta.get("id"))
            if ref in seen:
                probs.append(Problem(path, "id", f"{ref} is also the id of {seen[ref]}"))
            seen[ref] = path
    for folder, meta in kernels.items():
        path = repo / KERNELS_DIR / folder / KERNEL_METADATA
        for i, src in enumerate(meta.get("dataset_sources", [])):
            if src not in dataset_ids:
                probs.append(
                    Problem(path, f"dataset_sources[{i}]", f"{src} not in {DATASETS_DIR}/")
                )
        for i, src in enumerate(meta.get("kernel_sources", [])):
            if src not in kernel_ids or src == meta.get("id"):
                probs.append(
                    Problem(path, f"kernel_sources[{i}]", f"{src} not another kernel here")
                )
        if meta.get("competition_sources") != [cfg.competition]:
            probs.append(Problem(path, "competition_sources", f"must be [{cfg.competition!r}]"))
        if folder in OFFLINE_KERNELS and meta.get("enable_internet") is not False:
            probs.append(Problem(path, "enable_internet", "must be the JSON boolean false"))
        if meta.get("kernel_type") == "notebook" and meta.get("code_file"):
            _, prob = _load(repo / KERNELS_DIR / folder / str(meta["code_file"]))
            if prob:
                probs.append(Problem(path, "code_file", prob.message))
        probs += _title_matches(path, meta)
    for name in cfg.kernels:
        if name not in kernels:
            probs.append(Problem(repo / KERNELS_DIR / name, "(folder)", "in kaggle.toml, missing"))
    for stale, why in out_of_sync(repo, cfg):
        probs.append(Problem(stale.relative_to(repo), "(content)", why))
    return probs


def _title_matches(path: Path, meta: dict[str, Any]) -> list[Problem]:
    """Kaggle derives a kernel's URL from its title; a mismatch pushes to a surprising slug."""
    from slugify import slugify

    slug = str(meta.get("id", "/")).split("/")[-1]
    if slugify(str(meta.get("title", ""))) != slug:
        return [
            Problem(
                path, "title", f"slugifies to {slugify(str(meta.get('title')))!r}, not {slug!r}"
            )
        ]
    return []
