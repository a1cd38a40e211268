"""presets/<dataset>.json: what Table 3 of the paper varies per dataset and match mode (rounds, lr, num_epoch),
read and checked whole, as train.py checks its flags (a preset of one's own may be hand-written)."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from utils.errors import InputError
from utils.files import read_json
from utils.project import PROJECT_ROOT
from utils.scorer import MODES

PRESETS_DIR = PROJECT_ROOT / "presets"


def preset_datasets() -> list[str]:
    """The datasets with a preset: those the runner (reproduce.py) can plan."""
    return sorted(path.stem for path in PRESETS_DIR.glob("*.json"))


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
    if path.is_symlink() and not path.exists():
        raise InputError(f"{path}: a link to {os.readlink(path)}, which does not exist")
    if not path.exists():
        return {}
    content = read_json(path, keys_once=True)
    settings = '{"rounds": 2, "lr": 0.0005, "num_epoch": 150}'  # an example of one mode's settings
    if not isinstance(content, dict):
        raise InputError(f"{path}: a JSON {type(content).__name__}, not an object of match modes such as "
                         f'{{"partial": {settings}, "exact": {{...}}}}')
    for mode, values in content.items():
        if mode.startswith("_"):
            continue
        if mode not in MODES:
            raise InputError(f"{path}: {mode!r} is no match mode ({' or '.join(MODES)}); comments go under keys "
                             "starting with '_'")
        if not isinstance(values, dict):
            raise InputError(f"{path}: {mode} is {json.dumps(values)[:40]}, not an object such as {settings}")
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
        raise InputError(f'{path}: no settings for {match} match (an object such as {{"{match}": {settings}}})')
    return values
