"""Where the project keeps things (its root, prepared datasets), what a run reads and records (its data
files and their checksums, settings defaults and differences), and the commit of the code."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import types
import typing
from collections.abc import Iterable
from pathlib import Path

from utils.files import file_sha256

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def project_relative(path: str | Path) -> str:
    """``path`` relative to the project root when it lies inside it, else absolute, for run configs that
    stay valid in another clone or checkout. Symlinks are kept, not followed."""
    absolute = Path(os.path.abspath(path))
    try:
        return str(absolute.relative_to(PROJECT_ROOT))
    except ValueError:
        return str(absolute)


def resolve_project_path(path: str | Path) -> Path:
    """The inverse of :func:`project_relative`: relative paths are taken from the project root."""
    path = Path(path)
    return path if path.is_absolute() else PROJECT_ROOT / path


DATASETS_DIR = PROJECT_ROOT / "dataset"  # prepared datasets, one folder each (dataset/<name>/)
RUN_DATA_FILES = ("train.json", "dev.json", "test.json", "vocab.json", "labels.json", "embedding.npy")


def data_fingerprint(data_dir: Path) -> dict[str, str]:
    """SHA-256 of every prepared file a training run reads, so a resumed run (or a report) can tell
    when the data under it was prepared again differently."""
    return {name: file_sha256(data_dir / name) for name in RUN_DATA_FILES if (data_dir / name).exists()}


def field_defaults(settings_class: type) -> dict[str, object]:
    """The defaults a settings dataclass declares (fields without one left out): where every default lives."""
    return {f.name: f.default for f in dataclasses.fields(settings_class) if f.default is not dataclasses.MISSING}


def fits_type(value: object, kind: object) -> bool:
    """Whether a recorded setting ``value`` (read from JSON) is of a settings field's annotated ``kind``: an int
    where a float goes (a hand-edited 1 for 1.0), never a bool for a number; unions and Literal choices by their
    members (an extension's ``Literal["max", "mean"]``)."""
    origin = typing.get_origin(kind)
    if origin is typing.Literal:
        return any(value == choice and type(value) is type(choice) for choice in typing.get_args(kind))
    if origin in (typing.Union, types.UnionType):
        return any(fits_type(value, member) for member in typing.get_args(kind))
    if kind in (int, float) and isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, int | float)
    return value is None if kind is type(None) else isinstance(value, origin or kind)


def expected_type(kind: object) -> str:
    """What a settings field of annotated ``kind`` wants, as a message says it: "of type int", "of type int |
    None", "one of 'max', 'mean'"."""
    if typing.get_origin(kind) is typing.Literal:
        return "one of " + ", ".join(repr(choice) for choice in typing.get_args(kind))
    return "of type " + getattr(kind, "__name__", str(kind).replace("typing.", "").replace("NoneType", "None"))


def settings_differences(saved: dict, current: dict, keys: Iterable[str]) -> str:
    """``key=saved (config.json: current)`` for each of ``keys`` whose values differ, joined by '; ' (empty when
    none): what a checkpoint recorded against what a run folder's config.json says now."""
    return "; ".join(f"{key}={saved.get(key)!r} (config.json: {current.get(key)!r})" for key in sorted(keys)
                     if saved.get(key) != current.get(key))


def code_commit() -> str:
    """The checked-out commit (short), with ``+changes`` when tracked files other than results and markdown
    differ from it (a benchmark writing into results/ leaves the code as committed); ``unknown`` outside a git
    clone. Recorded beside measured figures, so each can be traced to the code that gave it."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                                  timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "unknown"
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude,glob)results/**",
                  ":(exclude,glob)**/*.md")
    return commit + ("+changes" if changed else "")
