"""A run folder: its files, its checkpoints (written whole, on the CPU), and loading a trained run from the folder
alone, with every file checked against the others."""
from __future__ import annotations

import io
import logging
import os
import pickle
import zipfile
from pathlib import Path

import torch

from data.loader import read_json_records
from model.rin import RIN, RINConfig
from utils.errors import InputError
from utils.files import atomic_write_bytes, check_file_path, file_sha256, read_json
from utils.locks import holder_alive
from utils.project import RUN_DATA_FILES, field_defaults, resolve_project_path, settings_differences
from utils.vocab import Labels, Vocab

log = logging.getLogger(__name__)

RUN_FORMAT = 1  # bumped when a run folder's layout changes incompatibly
# What train.py (and the runner: its log and lock) keeps in a run folder: evaluate.py and predict.py never write
# over them
RUN_FILES = ("config.json", "vocab.json", "labels.json", "prepare_report.json", "metrics.jsonl", "results.json",
             "best.pt", "last.pt", "last_prev.pt", "last.pt.unreadable", "train.log", "train.lock", "stdout.log",
             "runner.lock")
CHECKPOINTS = ("last.pt", "last_prev.pt")  # the training state after the last epoch, and after the one before
# a data folder's files (prepare_data.py's, prepare_vocab.py's): never written over either
DATA_FOLDER_FILES = (*RUN_DATA_FILES, "prepare_report.json", "vocab_report.json")


class RunError(InputError):
    """A run folder that cannot be used: the message names the file and the reason."""


def has_checkpoint(run_dir: Path) -> bool:
    """Whether a run folder holds a training state to continue from (train.py --resume)."""
    return any((Path(run_dir) / name).is_file() for name in CHECKPOINTS)


def recorded_sha256(config: dict, name: str) -> str | None:
    """The SHA-256 a run's config.json records of its data file ``name`` ('data_sha256'; None where none is)."""
    digests = config.get("data_sha256")
    return digests.get(name) if isinstance(digests, dict) else None


def read_results(path: Path, advice: str = "") -> dict:
    """A run's results.json, with every score a report reads a number in [0, 1]: a RunError naming the file and
    the field otherwise (a damaged summary), ending in ``advice`` where one is given."""
    tail = f"; {advice}" if advice else ""
    try:
        result = _read(Path(path), read_json)
    except RunError as error:
        raise RunError(f"{error}{tail}") from None
    if not isinstance(result, dict):
        raise RunError(f"{path}: a JSON {type(result).__name__}, not a run summary{tail}")
    if type(result.get("best_epoch")) is not int:
        raise RunError(f"{path}: best_epoch is {result.get('best_epoch')!r}, not an epoch{tail}")
    for split in ("dev", "test"):
        for mode in ("partial", "exact"):
            scores = result.get(split, {}).get(mode) if isinstance(result.get(split), dict) else None
            for key in ("precision", "recall", "f1"):
                value = scores.get(key) if isinstance(scores, dict) else None
                if not (type(value) in (int, float) and 0 <= value <= 1):
                    raise RunError(f"{path}: {split}.{mode}.{key} is {value!r}, not a score in [0, 1]{tail}")
    return result


def results_problem(path: Path) -> str | None:
    """Why the results.json at ``path`` is no run summary (:func:`read_results`), or None when it is one."""
    try:
        read_results(path)
    except InputError as error:
        return str(error)
    return None


def has_results(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a results.json that reads as a run summary."""
    return (run_dir / "results.json").exists() and results_problem(run_dir / "results.json") is None


def run_settings(config_file: Path, advice: str = "") -> dict:
    """A run's config.json settings (none recorded: empty); a RunError naming the file when they are no object,
    ending in ``advice`` where one is given."""
    config = read_json(config_file)
    if not isinstance(config, dict) or not isinstance(config.get("settings", {}), dict):
        raise RunError(f"{config_file}: not a run's config.json (its settings are no object)"
                       + (f"; {advice}" if advice else ""))
    return config.get("settings", {})


def to_cpu(value: object) -> object:
    """``value`` with every tensor in it (nested in dicts, lists and tuples) copied to the CPU."""
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, dict):
        return {key: to_cpu(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(to_cpu(item) for item in value)
    return value


def atomic_torch_save(obj: object, path: Path, keep_previous: Path | None = None) -> None:
    """torch.save through :func:`atomic_write_bytes`, with every tensor on the CPU: a GPU run's checkpoint loads
    anywhere, without map_location, as a CPU run's does."""
    buffer = io.BytesIO()
    torch.save(to_cpu(obj), buffer)
    atomic_write_bytes(path, buffer.getvalue(), keep_previous)


def check_output(out: Path, flag: str, model_dir: Path, source: tuple[str, Path] | None = None) -> None:
    """InputError when ``out`` (links followed) cannot be written or would replace what must stay: its folder
    is missing or takes no files, it is a folder, it is the input (``source``: what to call it, its path), or it
    is one of the run folder's own files or of the data the run trained on."""
    check_file_path(out, flag, probe=False)
    target = Path(os.path.realpath(out))
    if source is not None and target == Path(os.path.realpath(source[1])):
        raise InputError(f"{flag} {out} is {source[0]}: it would be overwritten")
    if target.parent == Path(os.path.realpath(model_dir)) and target.name in RUN_FILES:
        raise InputError(f"{flag} {out} is the run's own {target.name}: it would be overwritten; name another file")
    try:
        config = read_json(Path(model_dir) / "config.json")
        data_dir = recorded_data_dir(model_dir, config)
    except (OSError, InputError):  # load_run says what is wrong with the run folder
        config, data_dir = {}, None
    digest = recorded_sha256(config, target.name) if isinstance(config, dict) else None
    if target.name in DATA_FOLDER_FILES and (
            data_dir and target.parent == Path(os.path.realpath(data_dir))
            or target.is_file() and digest and file_sha256(target) == digest):  # the data, moved or copied
        raise InputError(f"{flag} {out} is the {target.name} of the data this run trained on: it would be "
                         "overwritten; name another file")
    check_file_path(out, flag)  # last: its write probe touches the folder


def recorded_data_dir(model_dir: Path, config: dict) -> Path:
    """The data folder the run trained on, as its config.json records it (InputError where it does not)."""
    settings = config.get("settings") if isinstance(config, dict) else None
    data_dir = settings.get("data_dir") if isinstance(settings, dict) else None
    if not (isinstance(data_dir, str) and data_dir):
        raise InputError(f"{model_dir / 'config.json'}: records no data folder (settings.data_dir); restore the "
                         "run's own config.json, or name the file to score with --data")
    return resolve_project_path(data_dir)


def _read(path: Path, reader):
    """``reader(path)``, with any failure to parse reported as a RunError naming ``path``."""
    try:
        return reader(path)
    except InputError as error:  # names the file and the reason already
        raise RunError(str(error)) from None
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise RunError(f"{path}: unreadable ({type(error).__name__}: {error})") from None


def check_run_folder(model_dir: Path) -> None:
    """Refuse a path that is no run folder before any slow work (the kernels build ~30 s on a first use)."""
    if not model_dir.is_dir():
        raise RunError(f"{model_dir}: no such run folder")
    missing = [name for name in ("config.json", "vocab.json", "labels.json", "best.pt")
               if not (model_dir / name).is_file()]
    if missing:
        raise RunError(f"{model_dir} is not a finished run folder: missing {', '.join(missing)}")


def load_run(model_dir: str | Path, device: torch.device | str = "cpu") -> tuple[RIN, Vocab, Labels, dict]:
    """Rebuild a trained model from its run folder (config, vocabulary, labels, best.pt's weights).

    vocab.json and labels.json must be the files the run was trained with (their SHA-256 in config.json's
    ``data_sha256``) and fit the checkpoint's sizes; anything else raises :class:`RunError`.
    """
    model_dir = Path(model_dir)
    check_run_folder(model_dir)
    config = _read(model_dir / "config.json", read_json)
    if not isinstance(config, dict):
        raise RunError(f"{model_dir / 'config.json'}: a JSON {type(config).__name__}, not the object train.py writes")
    if config.get("run_format") != RUN_FORMAT:
        raise RunError(f"{model_dir / 'config.json'}: run format {config.get('run_format')!r}, this code reads "
                       f"{RUN_FORMAT}; retrain or use the matching version of the code")
    if not isinstance(config.get("model"), dict):
        raise RunError(f"{model_dir / 'config.json'}: no 'model' object (the network's settings); restore the run's "
                       "own config.json")
    try:
        model_config = RINConfig.from_dict(config["model"])
    except (ValueError, TypeError) as error:
        raise RunError(f"{model_dir / 'config.json'}: {error}") from None
    vocab = _read(model_dir / "vocab.json", Vocab.load)
    labels = _read(model_dir / "labels.json", Labels.load)
    recorded = config.get("data_sha256") or {}
    if not isinstance(recorded, dict):
        raise RunError(f"{model_dir / 'config.json'}: data_sha256 is a {type(recorded).__name__}, not the checksums "
                       "train.py writes; restore the run's own config.json")
    for name in ("vocab.json", "labels.json"):
        if name in recorded and file_sha256(model_dir / name) != recorded[name]:
            raise RunError(f"{model_dir / name} differs from the {name} this run was trained with (SHA-256 in "
                           "config.json 'data_sha256'); copy the original back from the run's data folder")
    sizes = {"vocab_size": len(vocab), "num_pos": len(labels.pos), "num_tags": len(labels.tags),
             "num_relations": len(labels.relations)}
    for field, size in sizes.items():
        if getattr(model_config, field) != size:
            raise RunError(f"{model_dir / 'config.json'}: the model has {field}={getattr(model_config, field)} but "
                           f"the folder's vocab.json and labels.json give {size}")
    model = RIN(model_config)
    load_weights(model, model_dir / "best.pt", recorded)
    results = _read(model_dir / "results.json", read_json) if (model_dir / "results.json").is_file() else {}
    selected = results.get("best_pt_sha256") if isinstance(results, dict) else None
    if selected and file_sha256(model_dir / "best.pt") != selected:
        raise RunError(f"{model_dir / 'best.pt'} is not the checkpoint this run selected (SHA-256 in results.json "
                       "'best_pt_sha256'): a best.pt of another run? Copy the run's own back")
    if in_training(model_dir):
        log.warning("%s is still training (a train.py holds its train.lock): best.pt is the best epoch so far, and "
                    "scores of it will not be those of the finished run", model_dir)
    elif not results:
        settings = config.get("settings") if isinstance(config.get("settings"), dict) else {}
        log.warning("%s has no results.json: %s", model_dir,
                    f"its training has not finished ({epochs_done(model_dir)} of its {settings.get('num_epoch', '?')} "
                    f"epochs done), and best.pt is the best epoch so far; continue it with python train.py --resume "
                    f"{model_dir}" if has_checkpoint(model_dir)
                    else "not known to be a finished run (a copy of part of its folder?)")
    model.to(device).eval()
    return model, vocab, labels, config


def in_training(model_dir: Path) -> bool:
    """Whether the train.py that train.lock names is still running (the name is cleared when it ends, and stays
    when it is killed); read, never locked, so a train.py starting meanwhile never finds the folder in use."""
    try:
        holder = (Path(model_dir) / "train.lock").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return False
    if len(holder.split()) == 1 and Path("/proc/self/stat").exists():
        return False  # a bare pid, as train.py wrote before 2026-12-07 and never cleared: reused since, most likely
    return bool(holder) and holder_alive(holder)


WEIGHTS_DATA = ("vocab.json", "labels.json")  # what a model's ids mean: their checksums travel with its weights


def save_weights(model: RIN, path: Path, data_sha256: dict[str, str] | None = None) -> None:
    """Write ``model``'s weights with the settings that built it, so a config.json edited afterwards (``rounds``,
    ``er_feedback``: sizes that every K fits) is caught by :func:`load_weights` rather than scored silently, and
    with the checksums of the vocabulary and labels its ids index (``data_sha256``, a run's fingerprint), so a
    best.pt of another run of the same sizes is too."""
    state = {"model": model.state_dict(), "model_config": model.config.to_dict()}
    if data_sha256:
        state["data_sha256"] = {name: data_sha256[name] for name in WEIGHTS_DATA if name in data_sha256}
    atomic_torch_save(state, path)


def load_weights(model: RIN, path: Path, data_sha256: dict | None = None) -> None:
    """Load the weights in ``path`` into ``model``; RunError naming the file when it is unreadable, does not fit,
    was trained with other model settings than ``model``'s, or on another vocabulary or labels than
    ``data_sha256`` (a run's recorded checksums) name. A bare state dict (runs saved before the settings were
    recorded) is loaded as it is, and weights saved without checksums (before 2026-12-07) unchecked."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and {"model", "model_config"} <= set(state) <= {"model", "model_config",
                                                                                  "data_sha256"}:
            saved = state.get("data_sha256") if isinstance(state.get("data_sha256"), dict) else {}
            if differ := [name for name in WEIGHTS_DATA if data_sha256 and name in saved and name in data_sha256
                          and saved[name] != data_sha256[name]]:
                raise RunError(f"{path} was trained on another {' and '.join(differ)} than this run's (SHA-256 in "
                               "config.json 'data_sha256'): a best.pt of another run? Copy the run's own back")
            trained, state, built = state["model_config"], state["model"], model.config.to_dict()
            if not isinstance(trained, dict):
                raise RunError(f"{path}: unreadable or not this run's checkpoint (its model_config is a "
                               f"{type(trained).__name__}, not the settings)")
            # a setting added to RINConfig after the run was saved takes its default, as in config.json
            defaults = field_defaults(RINConfig)
            if settings := settings_differences(defaults | trained, built, built.keys()):
                raise RunError(f"{path} was trained with {settings}: config.json was edited or belongs to another "
                               "run; restore the run's own config.json")
        if not isinstance(state, dict):
            raise RunError(f"{path}: unreadable or not this run's checkpoint (it holds a {type(state).__name__}, "
                           "not weights)")
        model.load_state_dict(state)
    except (RuntimeError, OSError, EOFError, KeyError, pickle.UnpicklingError, zipfile.BadZipFile) as error:
        reason = ("not a PyTorch checkpoint file" if isinstance(error, (KeyError, pickle.UnpicklingError,
                                                                        zipfile.BadZipFile))
                  else load_problem(str(error)) if str(error) else type(error).__name__)
        raise RunError(f"{path}: unreadable or not this run's checkpoint ({reason})") from None


def load_problem(message: str) -> str:
    """torch's load_state_dict error in one line: its first line only says "Error(s) in loading state_dict for
    RIN:"; the first mismatch (a size, a missing or an unexpected key) follows on the next."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Error(s) in loading state_dict"):
        return f"{lines[1][:300]}" + (f" (and {len(lines) - 2} more)" if len(lines) > 2 else "")
    return lines[0][:300]


def epochs_done(run_dir: Path) -> int:
    """Epochs a run folder has trained: the records of its metrics.jsonl (0 where it has none)."""
    metrics = run_dir / "metrics.jsonl"
    return len(metrics.read_text().splitlines()) if metrics.exists() else 0


def epoch_records(metrics_file: Path, timings: bool = True) -> list[dict]:
    """A run's metrics.jsonl, each line an epoch's record with its seconds (without ``timings``: less them, which
    is what two runs computing the same numbers share); InputError naming the line otherwise."""
    records = []
    for number, record in read_json_records(metrics_file):
        if not (isinstance(record, dict) and all(type(record.get(key, 0)) in (int, float)
                                                 for key in ("train_seconds", "eval_seconds"))
                and "train_seconds" in record):
            raise InputError(f"{metrics_file}:{number}: not an epoch record (an object with train_seconds); "
                             "restore the file, or remove its run folder")
        records.append(record if timings else {key: value for key, value in record.items() if "seconds" not in key})
    return records
