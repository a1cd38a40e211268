"""Where the project keeps things (its root, prepared datasets, presets), what a run reads and records (its data
files and their checksums, settings defaults and differences), and the commit of the code."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

from utils.errors import InputError
from utils.files import file_sha256, read_json
from utils.scorer import MODES

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
PRESETS_DIR = PROJECT_ROOT / "presets"


def preset_file(dataset: str) -> Path:
    """presets/<dataset>.json: what Table 3 of the paper varies per match mode (rounds, lr, num_epoch)."""
    return PRESETS_DIR / f"{dataset}.json"


# what a preset may set for each match mode (what Table 3 varies per dataset), and the least value of each
# (lr must exceed its)
PRESET_SETTINGS = {"rounds": 0, "lr": 0.0, "num_epoch": 1}


def preset(dataset: str, match: str) -> dict:
    """The settings presets/<dataset>.json gives ``match`` ({} where the dataset has no preset). The whole file is
    checked as train.py checks its flags (a preset of one's own may be hand-written): InputError naming the file,
    the match mode and the setting otherwise; keys starting with '_' are comments."""
    path = preset_file(dataset)
    if not path.exists():
        return {}
    content = read_json(path)
    example = '{"partial": {"rounds": 2, "lr": 0.0005, "num_epoch": 150}, "exact": {...}}'
    if not isinstance(content, dict):
        raise InputError(f"{path}: a JSON {type(content).__name__}, not an object of match modes such as {example}")
    for mode, values in content.items():
        if mode.startswith("_"):
            continue
        if mode not in MODES:
            raise InputError(f"{path}: {mode!r} is no match mode ({' or '.join(MODES)}); comments go under keys "
                             "starting with '_'")
        if not isinstance(values, dict):
            raise InputError(f"{path}: {mode} is {json.dumps(values)[:40]}, not an object such as {{\"rounds\": 2, "
                             "\"lr\": 0.0005, \"num_epoch\": 150}")
        for key, value in values.items():
            if key.startswith("_"):
                continue
            least = PRESET_SETTINGS.get(key)
            if least is None:
                raise InputError(f"{path}: {mode}.{key} is no preset setting (a preset sets "
                                 f"{', '.join(PRESET_SETTINGS)}; give others as train.py flags)")
            lr = key == "lr"
            number = not isinstance(value, bool) and isinstance(value, (int, float) if lr else int)
            if (not number or isinstance(value, float) and not math.isfinite(value) or value < least
                    or lr and value <= least):
                wanted = "a number > 0" if lr else f"an integer >= {least}"
                raise InputError(f"{path}: {mode}.{key} is {json.dumps(value)[:40]}, not {wanted}")
    values = content.get(match)
    if values is None:
        raise InputError(f"{path}: no settings for {match} match (an object such as {{\"{match}\": {{\"rounds\": 2, "
                         "\"lr\": 0.0005, \"num_epoch\": 150}})")
    return values


RUN_DATA_FILES = ("train.json", "dev.json", "test.json", "vocab.json", "labels.json", "embedding.npy")


def data_fingerprint(data_dir: Path) -> dict[str, str]:
    """SHA-256 of every prepared file a training run reads, so a resumed run (or a report) can tell
    when the data under it was prepared again differently."""
    return {name: file_sha256(data_dir / name) for name in RUN_DATA_FILES if (data_dir / name).exists()}


def field_defaults(settings_class: type) -> dict[str, object]:
    """The defaults a settings dataclass declares (fields without one left out): where every default lives."""
    return {f.name: f.default for f in dataclasses.fields(settings_class) if f.default is not dataclasses.MISSING}


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
