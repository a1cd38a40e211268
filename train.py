"""Train RIN on a prepared dataset; every run lives in saved_models/<run_id>/.

    python train.py --dataset webnlg --match partial
    python train.py --resume saved_models/<run_id>

Settings come from the defaults in model/training.py (TrainConfig) and
model/rin.py (RINConfig), then presets/<dataset>.json (Table 3 of the paper:
rounds, lr and epochs per match mode), then the command line. The resolved
settings are saved to config.json, so a run folder is enough to re-create the
run. Every flag is checked before anything is written; a run folder is locked
while a train.py works in it.
"""
from __future__ import annotations

import utils.interrupt  # noqa: F401  first, before torch loads: a Ctrl-C meanwhile is one line

# isort: split
import argparse
import dataclasses
import json
import logging
import math
import os
import pickle
import shutil
import sys
import time
import typing
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np
import torch

from data.convert import prepare_hint
from data.loader import MENTION_READING, UNKNOWN_RELATION, Example, load_split, part_size
from experiments.plan import run_name
from model import RIN, RUN_FORMAT, RINConfig, speed
from model.inference import evaluate
from model.pair_kernels import configure_speed, describe
from model.run import RunError, load_weights, save_weights
from model.training import (
    TRAIN_VALUES,
    TrainConfig,
    activation_bytes,
    largest_step,
    load_training_state,
    make_optimizer,
    pair_values_per_cell,
    save_training_state,
    train_epoch,
)
from utils.helpers import (
    DATASETS_DIR,
    PROJECT_ROOT,
    RUN_DATA_FILES,
    ArgumentParser,
    InputError,
    Terminated,
    atomic_write_bytes,
    available_memory,
    check_folder_path,
    configure_threads,
    data_fingerprint,
    device_name,
    dropout_rate,
    field_defaults,
    file_sha256,
    folder_name,
    hold_lock,
    interruption,
    non_negative_float,
    non_negative_int,
    one_line_errors,
    pick_device,
    positive_float,
    positive_int,
    preset,
    preset_file,
    project_relative,
    read_json,
    resolve_project_path,
    seed_value,
    set_seed,
    setup_logging,
    write_json,
)
from utils.scorer import CONVENTIONS, MODES, score_all
from utils.vocab import Labels, Vocab

log = logging.getLogger("train")
SELECT_ON = ("dev", "test")  # the splits that may pick best.pt (test: as the official code)
PRESET_KEYS = ("rounds", "lr", "num_epoch")  # what Table 3 varies per dataset and match mode
MODEL_KEYS = ("rounds", "pos_dim", "rnn_hidden", "pair_hidden", "input_dropout", "word_dropout")  # RINConfig's
# how, not what, a run computes (the same model up to float rounding): free to change on resume
RESUME_FREE = ("device", "threads", "pair_kernel", "thread_policy", "eval_batch_size", "compile", "deterministic")
# settings of train.py's own beside TrainConfig's and RINConfig's: their types and defaults
EXTRA_SETTINGS = {"emb_dim": (int | None, None), "no_er_feedback": (bool, False), "no_rc_feedback": (bool, False)}
TRAIN, NET = TrainConfig(), field_defaults(RINConfig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Every flag defaults to None (unset), so a preset can fill it and --resume can tell which were given."""
    parser = ArgumentParser(prog="train.py", description=__doc__)
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", type=folder_name, help="dataset name: reads dataset/<name>/ and "
                      f"presets/<name>.json (default: {TRAIN.dataset})")
    data.add_argument("--data_dir", help="folder with train/dev/test.json, vocab.json, embedding.npy, labels.json "
                      "(default: dataset/<dataset>)")
    data.add_argument("--match", choices=MODES,
                      help="match mode: picks the preset (K, lr, epochs) and the F1 that selects the checkpoint "
                      f"(default: {TRAIN.match})")
    net = parser.add_argument_group("model (default: the preset, else model/rin.py's RINConfig)")
    net.add_argument("--rounds", type=non_negative_int, help=f"interaction layers K; 0 = RIN w/o interaction "
                     f"(preset; default {NET['rounds']})")
    net.add_argument("--emb_dim", type=positive_int, help="word vector size; must match embedding.npy (default: "
                     "embedding.npy's)")
    net.add_argument("--pos_dim", type=non_negative_int, help=f"POS embedding size; 0 = RIN w/o POS "
                     f"(default {NET['pos_dim']})")
    net.add_argument("--rnn_hidden", type=positive_int, help=f"BiLSTM units per direction "
                     f"(default {NET['rnn_hidden']})")
    net.add_argument("--pair_hidden", type=positive_int, help=f"size of m_ij = relu(Wm[h_i;h_j]) "
                     f"(default {NET['pair_hidden']})")
    net.add_argument("--input_dropout", type=dropout_rate, help=f"dropout on the word+POS input "
                     f"(default {NET['input_dropout']})")
    net.add_argument("--word_dropout", type=dropout_rate, help=f"probability that a training token becomes UNK "
                     f"(default {NET['word_dropout']}, as the official code)")
    net.add_argument("--no_er_feedback", action="store_true", default=None,
                     help="ablation w/o ER: He left out of H's update")
    net.add_argument("--no_rc_feedback", action="store_true", default=None,
                     help="ablation w/o RC: Hr left out of H's update")
    opt = parser.add_argument_group("optimisation (default: the preset, else model/training.py's TrainConfig)")
    opt.add_argument("--lr", type=positive_float, help=f"Adam learning rate (preset; default {TRAIN.lr})")
    opt.add_argument("--num_epoch", type=positive_int, help=f"epochs (preset; default {TRAIN.num_epoch})")
    opt.add_argument("--batch_size", type=positive_int, help=f"sentences per batch (default {TRAIN.batch_size})")
    opt.add_argument("--max_grad_norm", type=non_negative_float,
                     help=f"gradient-norm clip, 0 = off (default {TRAIN.max_grad_norm})")
    opt.add_argument("--early_stop", type=non_negative_int,
                     help=f"stop after this many epochs without a better selection F1; 0 = never "
                     f"(default {TRAIN.early_stop})")
    opt.add_argument("--seed", type=seed_value,
                     help=f"random seed; CPU runs repeat bit for bit with --thread_policy fixed (default {TRAIN.seed})")
    run = parser.add_argument_group("run")
    run.add_argument("--select_on", choices=SELECT_ON,
                     help="split whose F1 picks best.pt; 'test' mimics the official code and is labelled so "
                     f"(default {TRAIN.select_on})")
    run.add_argument("--save_dir", help=f"where run folders go (default: {TRAIN.save_dir}/ in the project)")
    run.add_argument("--run_id", type=folder_name,
                     help="run folder name, a plain name inside --save_dir (default: made from the settings)")
    run.add_argument("--resume", metavar="RUN_DIR",
                     help="continue the run in RUN_DIR from its last epoch, with its own settings; other flags "
                     f"must match them, except {', '.join('--' + k for k in RESUME_FREE)}")
    run.add_argument("--device", type=device_name, help="cpu, cuda or cuda:N (default: cuda when available)")
    run.add_argument("--threads", type=positive_int, help="CPU threads (default: every core this process may use: "
                     "its affinity mask, capped by a cgroup CPU quota such as docker --cpus)")
    run.add_argument("--eval_batch_size", type=positive_int,
                     help=f"sentences per evaluation batch (default {TRAIN.eval_batch_size})")
    speed.add_arguments(run, defaults=False)
    run.add_argument("--compile", action="store_true", default=None,
                     help="torch.compile the network's forward; compiles again for new batch shapes; check bench.py "
                     "on your machine before using it for training")
    run.add_argument("--deterministic", action="store_true", default=None,
                     help="PyTorch's deterministic algorithms (CUDA: repeatable runs and resumes, at some speed); "
                     "implies --thread_policy fixed, which is all a CPU run needs to repeat")
    run.add_argument("--debug", action="store_true", help="show a full traceback on errors")
    return parser.parse_args(argv)


def given_flags(args: argparse.Namespace) -> dict:
    """The settings flags given on the command line (every flag defaults to None)."""
    return {k: v for k, v in vars(args).items() if v is not None and k not in ("resume", "debug")}


def lacks_pos_tags(data_dir: Path) -> bool:
    """Whether the prepared data's labels.json holds no POS tag besides padding and unknown (a missing or damaged
    file is reported with its name when the data is loaded)."""
    try:
        return len(Labels.load(data_dir / "labels.json").pos) <= 2
    except (OSError, InputError, ValueError, KeyError, TypeError):
        return False


def resolve_settings(args: argparse.Namespace) -> dict:
    """Defaults (TrainConfig, RINConfig), then presets/<dataset>.json for the match mode, then the flags."""
    now = speed.current()  # the speed defaults: model/speed.py's, or the environment's
    settings = dataclasses.asdict(TRAIN) | {key: NET[key] for key in MODEL_KEYS} | {
        key: default for key, (_, default) in EXTRA_SETTINGS.items()} | {
        "pair_kernel": now.kernel, "precision": now.precision, "thread_policy": now.threads}
    given = given_flags(args)
    if "data_dir" in given and "dataset" not in given:
        raise InputError(f"--data_dir {args.data_dir}: give --dataset NAME too; it names the run and picks "
                         f"presets/NAME.json (without it the run would be named and set up as {TRAIN.dataset})")
    settings |= {k: v for k, v in given.items() if k in ("dataset", "match")}
    preset_path = preset_file(settings["dataset"])
    if preset_path.exists():
        values = preset(settings["dataset"], settings["match"])
        taken = {key: values[key] for key in PRESET_KEYS if key in values and key not in given}
        settings |= taken
        if taken:  # said: a folder of one's own under a release's name gets the release's settings
            log.info("%s (%s match): %s", project_relative(preset_path), settings["match"],
                     ", ".join(f"{key} {value}" for key, value in taken.items()))
    elif unset := [f"--{key}" for key in PRESET_KEYS if key not in given]:
        log.warning("no preset %s: built-in defaults for %s", preset_path, ", ".join(unset))
    settings |= given
    settings["save_dir"] = os.path.abspath(args.save_dir) if args.save_dir else str(PROJECT_ROOT / TRAIN.save_dir)
    settings["data_dir"] = project_relative(settings["data_dir"] or DATASETS_DIR / settings["dataset"])
    if settings["pos_dim"] > 0 and lacks_pos_tags(resolve_project_path(settings["data_dir"])):
        if "pos_dim" in given:  # asked for (the runner's table runs ask): not a run to rename w/o POS silently
            raise InputError(f"--pos_dim {settings['pos_dim']}: {settings['data_dir']} has no POS tags (its "
                             "labels.json); prepare the data with a tagger, or leave --pos_dim out to train RIN w/o "
                             "POS")
        log.warning("the data has no POS tags: training with --pos_dim 0 (RIN w/o POS)")
        settings["pos_dim"] = 0  # before the run is named, so its name and config.json say so
    if not settings["run_id"]:
        settings["run_id"] = run_name(settings["dataset"], settings["match"], settings["rounds"], settings["seed"],
                                      no_er_feedback=settings["no_er_feedback"],
                                      no_rc_feedback=settings["no_rc_feedback"], pos_dim=settings["pos_dim"],
                                      select_on=settings["select_on"])
    return settings


def has_checkpoint(run_dir: Path) -> bool:
    return any((run_dir / name).exists() for name in ("last.pt", "last_prev.pt"))


def check_resumable(run_dir: Path) -> None:
    """A run with trained epochs continues from its last.pt (or last_prev.pt); without them it would start over
    and overwrite its best.pt and results, so it is refused. (A run that died before its first epoch restarts.)"""
    if has_checkpoint(run_dir):
        return
    metrics = run_dir / "metrics.jsonl"
    if (run_dir / "results.json").exists() or (metrics.exists() and metrics.read_text(encoding="utf-8").strip()):
        raise InputError(f"--resume {run_dir}: it has trained epochs but no last.pt or last_prev.pt to continue "
                         "from (deleted?); starting over would overwrite its best.pt and results: start a new run")


def check_settings(settings: dict, where: Path) -> None:
    """A damaged or hand-edited config.json stops here, naming the setting, instead of failing mid-run: every
    training setting and the network's sizes must be there (older runs' model sizes may not: the defaults then
    apply), each of its type."""
    kinds = typing.get_type_hints(TrainConfig) | {key: typing.get_type_hints(RINConfig)[key] for key in MODEL_KEYS}
    kinds |= {key: kind for key, (kind, _) in EXTRA_SETTINGS.items()}
    for key, kind in kinds.items():
        if key not in settings:
            if key in MODEL_KEYS:
                continue
            raise InputError(f"{where}: the settings lack {key!r}; restore the file, or start a new run")
        value = settings[key]
        allowed = (int, float) if kind is float else kind  # an int where a float goes: a hand-edited 1 for 1.0
        if not isinstance(value, allowed) or isinstance(value, bool) and kind in (int, float, int | None):
            raise InputError(f"{where}: settings {key!r} is {json.dumps(value)}, not of type "
                             f"{getattr(kind, '__name__', kind)}; restore the file, or start a new run")
    for key, choices in (("precision", speed.PRECISIONS), ("pair_kernel", speed.KERNELS),
                         ("thread_policy", speed.THREAD_POLICIES), ("match", MODES), ("select_on", SELECT_ON)):
        if settings[key] not in choices:
            raise InputError(f"{where}: settings {key!r} is {json.dumps(settings[key])}, none of "
                             f"{', '.join(choices)}; restore the file, or start a new run")


def resume_settings(args: argparse.Namespace, run_dir: Path) -> dict:
    """A run's own settings; flags that would change what it computes are refused, listed."""
    if not (run_dir / "config.json").is_file():
        saved = PROJECT_ROOT / TRAIN.save_dir / run_dir  # --resume takes a path; a run name is easy to give instead
        hint = (f"; did you mean --resume {project_relative(saved)}?"
                if not run_dir.is_absolute() and (saved / "config.json").is_file() else "")
        raise InputError(f"--resume {run_dir}: not a run folder (no config.json){hint}")
    config = read_json(run_dir / "config.json")
    if not isinstance(config, dict):
        raise InputError(f"{run_dir / 'config.json'}: a JSON {type(config).__name__}, not a run's config object")
    if config.get("run_format") != RUN_FORMAT or not isinstance(config.get("settings"), dict):
        raise InputError(f"{run_dir / 'config.json'}: not a run of this code's format {RUN_FORMAT} (run_format "
                         f"{config.get('run_format')!r}); retrain or use the matching version of the code")
    now = speed.current()  # runs from before a speed setting existed ran with its default
    settings = {"pair_kernel": now.kernel, "precision": now.precision, "thread_policy": now.threads,
                "deterministic": TRAIN.deterministic, "compile": TRAIN.compile} | config["settings"]
    check_settings(settings, run_dir / "config.json")
    given = given_flags(args)

    def differs(key: str, value: object) -> bool:  # folders by where they are, however written or linked
        recorded = settings.get(key, NET.get(key))
        if key in ("data_dir", "save_dir") and isinstance(recorded, str):
            same = {os.path.realpath(resolve_project_path(recorded))}
            same |= {os.path.realpath(run_dir.parent)} if key == "save_dir" else set()  # a run folder moved
            return os.path.realpath(str(value)) not in same
        return recorded != value

    changed = [f"--{key} {value} (the run has {settings.get(key)})" for key, value in given.items()
               if key not in RESUME_FREE and differs(key, value)]
    if changed:
        raise InputError(f"--resume {run_dir} continues the run with its own settings; these flags differ: "
                         f"{'; '.join(changed)}. Drop them, or start a new run")
    settings |= {key: given[key] for key in RESUME_FREE if key in given}
    return settings


def prepare_vocab_command(dataset: str, data_dir: Path) -> str:
    """The prepare_vocab.py command that rebuilds ``data_dir``'s vocabulary, embedding and labels."""
    own_folder = "" if data_dir == DATASETS_DIR / dataset else f" --data_dir {data_dir}"
    return f"python prepare_vocab.py --dataset {dataset}{own_folder}"


def check_data_files(data_dir: Path, dataset: str) -> None:
    missing = [name for name in RUN_DATA_FILES if not (data_dir / name).is_file()]
    if not missing:
        return
    if data_dir.is_file():
        raise InputError(f"{data_dir}: a file, not a data folder (the folder that holds train.json, dev.json, ...)")
    if not data_dir.is_dir():
        known = sorted(p.name for p in DATASETS_DIR.glob("*") if p.is_dir())
        raise InputError(f"{data_dir} does not exist: {prepare_hint(dataset, data_dir)} (prepared datasets here: "
                         f"{', '.join(known) or 'none'})")
    splits = [name for name in missing if name[:-5] in ("train", "dev", "test")]
    report = data_dir / "prepare_report.json"
    lacked = [m["file"] for m in read_json(report).get("missing", [])] if report.is_file() else []
    if splits and lacked:  # prepare_data.py again with the same source would build the same splits
        raise InputError(f"{data_dir}: no {', '.join(splits)}: prepare_data.py could not build them without "
                         f"{', '.join(lacked)} (URLs in {report}); save those under --source DIR or the download "
                         f"cache and run python prepare_data.py --dataset {dataset} again")
    step = prepare_hint(dataset, data_dir) if splits else f"run {prepare_vocab_command(dataset, data_dir)}"
    raise InputError(f"{data_dir}: missing {', '.join(missing)}: {step}")


def check_same_data(recorded: dict | None, current: dict, data_dir: Path) -> None:
    """Refuse to resume on data prepared differently from the data the run started on."""
    if recorded is None:
        log.warning("this run's config.json records no data checksums (older run): cannot check %s", data_dir)
        return
    changed = sorted(name for name in recorded.keys() | current.keys() if recorded.get(name) != current.get(name))
    if changed:
        raise InputError(f"{data_dir}: {', '.join(changed)} {'differs' if len(changed) == 1 else 'differ'} from the "
                         "files this run started on (config.json 'data_sha256'); prepare the data as the run did, or "
                         "start a new run")


@contextmanager
def locked_run_folder(run_dir: Path, fresh: bool) -> Iterator[None]:
    """Hold an exclusive lock on ``run_dir`` (flock on run_dir/train.lock) while training, so two train.py never
    write one run. With ``fresh`` the folder must not hold a run yet, and is removed again if the run fails
    before its first epoch is saved (nothing to resume: the same command can run again), with the folders above
    it that it made and that stayed empty."""
    made = [folder for folder in (run_dir, *run_dir.parents) if not folder.exists()]
    created = bool(made)
    run_dir.mkdir(parents=True, exist_ok=True)
    # its holder's identity is read by model.run.in_training: a reused pid is not the holder
    handle = hold_lock(run_dir / "train.lock", lambda holder: f"{run_dir} is in use by another train.py (pid {holder})")
    try:
        if fresh and (run_dir / "config.json").exists():
            raise InputError(f"{run_dir} exists: continue it with --resume {run_dir} or pick another --run_id")
        try:
            yield
        except BaseException:
            if fresh and created and not has_checkpoint(run_dir):
                logging.shutdown()
                shutil.rmtree(run_dir, ignore_errors=True)
                for folder in made[1:]:  # another run may be starting in one: removed only if empty
                    with suppress(OSError):
                        folder.rmdir()
            raise
    finally:  # ended: no holder named (a process that trains and then evaluates it is not 'still training')
        with suppress(OSError):
            handle.seek(0)
            handle.truncate()
        handle.close()


def build_model(settings: dict, vocab: Vocab, labels: Labels, embedding: np.ndarray, device: torch.device,
                train_examples: Sequence[Example]) -> tuple[RIN, dict]:
    """The run's model, once it and the activations of its largest step on ``train_examples`` fit in memory
    (check_memory)."""
    sizes = {key: settings[key] for key in MODEL_KEYS}
    if sizes["pos_dim"] > 0 and len(labels.pos) <= 2:  # a run resumed from before resolve_settings decided this
        log.warning("the data has no POS tags: training with --pos_dim 0 (RIN w/o POS)")
        sizes["pos_dim"] = 0
    if settings["emb_dim"] not in (None, embedding.shape[1]):
        raise InputError(f"--emb_dim {settings['emb_dim']} but embedding.npy holds {embedding.shape[1]}-d vectors")
    if embedding.shape[0] != len(vocab):
        data_dir = resolve_project_path(settings["data_dir"])
        raise InputError(f"{data_dir / 'embedding.npy'} has {embedding.shape[0]} rows for {len(vocab)} words in "
                         f"vocab.json: run {prepare_vocab_command(settings['dataset'], data_dir)} again")
    try:
        config = RINConfig(vocab_size=len(vocab), num_pos=len(labels.pos), num_tags=len(labels.tags),
                           num_relations=len(labels.relations), emb_dim=embedding.shape[1],
                           er_feedback=not settings["no_er_feedback"], rc_feedback=not settings["no_rc_feedback"],
                           **sizes)
    except ValueError as error:  # flags are checked by argparse: a hand-edited config.json of a resumed run
        raise InputError(f"the run's settings (config.json): {error}") from None
    check_memory(config, device, largest_step(train_examples, settings["batch_size"], config))
    return RIN(config, embedding), config.to_dict()


def check_memory(config: RINConfig, device: torch.device, step_tokens: int) -> None:
    """Refuse a run whose float32 weights, gradients and Adam's two moments, with the activations a step over
    ``step_tokens`` tokens keeps for its backward pass (at least: activation_bytes), exceed the free memory of
    ``device``: counted without allocating, so a size typed with three zeros too many is one line, not the
    out-of-memory killer (which may pick another process)."""
    with torch.device("meta"):
        parameters = sum(weight.numel() for weight in RIN(config).parameters())
    weights = 16 * parameters
    activations = step_tokens * config.rounds * activation_bytes(config)
    free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else available_memory()
    if free is None or weights + activations <= free:
        return
    gib = 2**30
    smaller = ("--rounds, --batch_size or --rnn_hidden, or shorter sentences" if activations > weights else
               "--rnn_hidden, --pair_hidden, --pos_dim or word vectors")
    steps = (f", and the activations a step over {step_tokens:,} tokens (sentences x their longest) keeps for its "
             f"{config.rounds} round{'s' * (config.rounds != 1)} {activations / gib:.1f} GiB at least"
             if activations else "")
    raise InputError(f"training needs at least {(weights + activations) / gib:.1f} GiB and {device} has "
                     f"{free / gib:.1f} GiB "
                     f"free: the model's {parameters:,} parameters take {weights / gib:.1f} GiB (weights, gradients, "
                     f"Adam's moments){steps}; choose smaller {smaller}")


def configure_determinism(device: torch.device) -> None:
    """PyTorch's deterministic algorithms (index_add, used by the PyTorch pair scorer's backward, then runs
    deterministically on CUDA too)."""
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True)


def only_prf(scores: dict) -> dict:
    return {mode: {k: s[k] for k in ("precision", "recall", "f1")} for mode, s in scores.items()}


def run_identity(settings: dict) -> dict:
    """What makes a checkpoint this run's: its settings, less how it computes (free on resume) and where its
    folders are (a run folder may move)."""
    return {key: value for key, value in settings.items() if key not in (*RESUME_FREE, "save_dir", "data_dir")}


def load_state(run_dir: Path, model: RIN, optimizer: torch.optim.Optimizer, generator: torch.Generator,
               scaler: torch.amp.GradScaler, run: dict) -> tuple[dict, str]:
    """The progress in last.pt, or in the previous epoch's last_prev.pt when last.pt is missing or unreadable (a
    crash while writing it), and the name of the file read."""
    for name in ("last.pt", "last_prev.pt"):
        if not (run_dir / name).exists():
            if name == "last.pt":
                log.warning("%s is missing: trying the previous checkpoint", run_dir / name)
            continue
        try:
            return load_training_state(run_dir / name, model, optimizer, generator, scaler, run), name
        except (RuntimeError, OSError, EOFError, KeyError, pickle.UnpicklingError, zipfile.BadZipFile) as error:
            log.warning("%s is unreadable (%s): trying the previous checkpoint", run_dir / name,
                        str(error).splitlines()[0] if str(error) else type(error).__name__)
    raise InputError(f"{run_dir}: no readable last.pt or last_prev.pt to resume from")


def save_best_again(run_dir: Path, model: RIN, progress: dict) -> None:
    """best.pt is written after last.pt: a run killed between the two resumes from a last.pt whose epoch was
    the best, and best.pt still holds an earlier one. Those weights are the ones just loaded: write them. A
    best.pt of an earlier epoch that is gone or unreadable cannot be rebuilt: refused before any epoch is
    trained."""
    best = run_dir / "best.pt"
    if progress["epoch"] and progress["best_epoch"] == progress["epoch"]:
        save_weights(model, best)
    elif progress["epoch"]:
        lost = f"the weights of the run's best epoch ({progress['best_epoch']}) are lost, so it cannot finish " \
               "as it should; start a new run"
        if not best.is_file():
            raise InputError(f"{best} is missing: {lost}")
        try:
            with torch.random.fork_rng(devices=[]):  # a copy (the model holds last.pt's weights), built without
                load_weights(RIN(model.config), best)  # drawing from the run's random stream
        except RunError as error:
            raise InputError(f"{error}: {lost}") from None


def kept_metrics(metrics_file: Path, progress: dict) -> list[str]:
    """metrics.jsonl's lines for the epochs in last.pt. last.pt keeps the records: a damaged or missing file is
    written again from them, with a warning, and the last epoch's line completed (a run stopped between last.pt
    and the line). A checkpoint from before the records were kept needs the file's first records intact."""
    epochs = progress["epoch"]
    lines = metrics_file.read_text(encoding="utf-8", errors="replace").splitlines()[:epochs] \
        if metrics_file.exists() else []
    if "records" in progress:
        kept = [json.dumps(record) for record in progress["records"]]
        if lines == kept[:-1]:  # stopped between last.pt and the line (train_in writes them in that order)
            log.info("%s: epoch %d's record completed from last.pt", metrics_file, epochs)
        elif lines != kept:
            log.warning("%s is damaged or missing epochs of last.pt: written again from last.pt's records",
                        metrics_file)
        return kept
    for number, line in enumerate(lines, start=1):
        try:
            epoch = json.loads(line).get("epoch")
        except (json.JSONDecodeError, AttributeError):
            epoch = None
        if epoch != number:
            raise InputError(f"{metrics_file}:{number}: not the record of epoch {number} (damaged?); restore the "
                             "file, or start a new run")
    if len(lines) < epochs:
        raise InputError(f"{metrics_file}: {len(lines)} epoch records for the {epochs} epochs in last.pt; restore "
                         "the file, or start a new run")
    return lines


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    setup_logging()
    with one_line_errors("train.py", args.debug):
        return train(args, argv)


def train(args: argparse.Namespace, argv: list[str] | None) -> dict:
    if args.resume:
        run_dir = Path(args.resume)
        settings = resume_settings(args, run_dir)
        check_resumable(run_dir)
    else:
        settings = resolve_settings(args)
        check_folder_path(settings["save_dir"], "--save_dir")
        run_dir = Path(settings["save_dir"]) / settings["run_id"]
    if settings.get("deterministic"):  # a thread count that follows the load would change float sums
        if args.thread_policy == "adaptive":
            raise InputError("--deterministic needs --thread_policy fixed (the default with it)")
        settings["thread_policy"] = "fixed"
    device = pick_device(settings["device"])
    data_dir = resolve_project_path(settings["data_dir"])
    if args.resume and not data_dir.is_dir():
        state = "is a file now" if data_dir.exists() else "is gone"
        raise InputError(f"{data_dir}, the data folder this run trains on (its config.json), {state}: move it back "
                         f"to resume {run_dir}")
    check_data_files(data_dir, settings["dataset"])  # before the kernels build: seconds on a first use
    try:  # so are the sizes, on the least the data could ask for (one word, tag, relation); build_model counts
        least = RINConfig(vocab_size=1, num_pos=1, num_tags=1, num_relations=1, emb_dim=settings["emb_dim"] or 1,
                          **{key: settings[key] for key in MODEL_KEYS})
    except ValueError:  # a hand-edited config.json: build_model names what it got wrong
        least = None
    if least is not None:
        check_memory(least, device, step_tokens=0)  # the data is not read yet
    configure_speed(device, settings["pair_kernel"], settings["precision"], settings["thread_policy"])
    try:
        with locked_run_folder(run_dir, fresh=not args.resume):
            return train_in(run_dir, settings, device, data_dir, args, argv)
    except KeyboardInterrupt as stop:
        if has_checkpoint(run_dir):
            what = f"its finished epochs are saved: continue with python train.py --resume {run_dir}"
        elif (run_dir / "config.json").exists():
            what = f"before its first epoch was saved: start it again with python train.py --resume {run_dir}"
        else:
            what = "before its first epoch was saved; nothing kept: run the same command again"
        print(f"train.py: {interruption(stop)}; {what}", file=sys.stderr)
        raise SystemExit(143 if isinstance(stop, Terminated) else 130) from None


def train_in(run_dir: Path, settings: dict, device: torch.device, data_dir: Path, args: argparse.Namespace,
             argv: list[str] | None) -> dict:
    setup_logging(run_dir / "train.log")
    threads = configure_threads(settings["threads"])
    log.info("run %s on %s (%d CPU threads)%s", run_dir, device, threads, " [resumed]" if args.resume else "")
    fingerprint = data_fingerprint(data_dir)
    if args.resume:
        check_same_data(read_json(run_dir / "config.json").get("data_sha256"), fingerprint, data_dir)
    try:
        vocab, labels = Vocab.load(data_dir / "vocab.json"), Labels.load(data_dir / "labels.json")
        embedding = np.load(data_dir / "embedding.npy", allow_pickle=False)
    except (ValueError, KeyError, TypeError) as error:  # an InputError names the file and the reason already
        reason = error if isinstance(error, InputError) else (f"{data_dir}: unreadable vocab.json, labels.json or "
                                                              f"embedding.npy ({type(error).__name__}: {error})")
        raise InputError(f"{reason}; run {prepare_vocab_command(settings['dataset'], data_dir)} again") from None
    if embedding.ndim != 2 or not np.issubdtype(embedding.dtype, np.floating):
        raise InputError(f"{data_dir / 'embedding.npy'}: {embedding.dtype} values of shape {embedding.shape}, not "
                         "one float vector per word (rows, dim); run "
                         f"{prepare_vocab_command(settings['dataset'], data_dir)} again")
    if not np.isfinite(embedding).all():
        rows = np.flatnonzero(~np.isfinite(embedding).all(axis=tuple(range(1, embedding.ndim))))
        word = vocab.words[rows[0]] if rows[0] < len(vocab) else "beyond vocab.json"
        raise InputError(f"{data_dir / 'embedding.npy'}: {len(rows)} rows hold NaN or inf (the first: row "
                         f"{rows[0]}, word {word!r}); run python prepare_vocab.py again")
    splits = {name: load_split(data_dir / f"{name}.json", vocab, labels, scored=name != "train")
              for name in ("train", "dev", "test")}
    for name, split in splits.items():
        log.info("%s: %d sentences, %d triples", name, len(split.sentences), sum(len(g) for g in split.gold))
    if not splits["train"].examples:
        raise InputError(f"{data_dir / 'train.json'}: no training sentences")
    built = read_json(data_dir / "vocab_report.json") if (data_dir / "vocab_report.json").is_file() else {}
    built_from = built.get("train_sha256") if isinstance(built, dict) else None  # recorded since 2026-12-07
    if built_from and built_from != file_sha256(data_dir / "train.json"):
        raise InputError(f"{data_dir / 'train.json'} changed since vocab.json, embedding.npy and labels.json were "
                         f"built from it (vocab_report.json 'train_sha256'): its new words would be <UNK> and its "
                         f"relations those of the old file; run {prepare_vocab_command(settings['dataset'], data_dir)}"
                         " again")
    if unknown := splits["train"].report.counts[UNKNOWN_RELATION]:  # labels.json is built from train.json
        raise InputError(f"{data_dir / 'train.json'}: {unknown} triples of relation types that labels.json lacks "
                         f"(e.g. {splits['train'].report.examples[UNKNOWN_RELATION][0]}): labels.json is older than "
                         f"train.json; run {prepare_vocab_command(settings['dataset'], data_dir)} again")
    in_train = {tuple(s.tokens) for s in splits["train"].sentences}
    for name in ("dev", "test"):  # said, not refused: a release may repeat a sentence or two (WebNLG* dev: 1)
        if repeated := sum(tuple(s.tokens) in in_train for s in splits[name].sentences):
            log.warning("%s: %d of its %d sentences are also in train.json: their scores are partly on training "
                        "data", data_dir / f"{name}.json", repeated, len(splits[name].sentences))
    in_test, dev = {tuple(s.tokens) for s in splits["test"].sentences}, splits["dev"].sentences
    if settings["select_on"] == "dev" and (shared := sum(tuple(s.tokens) in in_test for s in dev)):
        if shared == len(dev):
            raise InputError(f"{data_dir / 'dev.json'}: every sentence of it is in test.json: the best epoch would "
                             "be chosen on test while the run says dev; hold out a dev set, or pass --select_on test "
                             "(named so)")
        log.warning("%s: %d of its %d sentences are also in test.json: the best epoch is partly chosen on test",
                    data_dir / "dev.json", shared, len(dev))
    prepared = data_dir / "prepare_report.json"  # copied into the run, where predict.py reads its spaCy model
    if prepared.exists() and not (prepared.is_file() and isinstance(read_json(prepared), dict)):
        raise InputError(f"{prepared}: not the JSON object prepare_data.py writes; in a folder of your own data, "
                         'make it one such as {"spacy_model": "NAME"} (the tagger of your POS tags), or remove it')
    if not splits[settings["select_on"]].examples:
        raise InputError(f"{data_dir / (settings['select_on'] + '.json')}: no sentences to choose the best epoch on")
    known = set(labels.relations)
    if not any(relation in known for gold in splits[settings["select_on"]].gold for _, relation, _ in gold):
        raise InputError(f"{data_dir / (settings['select_on'] + '.json')}: no triple of a relation type train.json "
                         "has: its F1 would be 0 at every epoch, and the best epoch always the first; give it "
                         "sentences with such triples")
    if not splits["test"].examples:
        log.warning("%s: no sentences: test scores will be 0", data_dir / "test.json")
    elif not any(relation in known for gold in splits["test"].gold for _, relation, _ in gold):
        log.warning("%s: no triple of a relation type train.json has: test scores will be 0", data_dir / "test.json")

    set_seed(settings["seed"])
    if settings.get("deterministic"):
        configure_determinism(device)
    model, model_config = build_model(settings, vocab, labels, embedding, device, splits["train"].examples)
    model.to(device)
    longest = max(len(example.word_ids) for example in splits["train"].examples)
    values_per_cell = pair_values_per_cell(model.config)
    if (size := part_size(longest, values_per_cell, TRAIN_VALUES)) < settings["batch_size"]:
        alone = longest ** 2 * values_per_cell / TRAIN_VALUES
        log.log(logging.WARNING if alone > 1 else logging.INFO,
                "train.json's longest sentence has %d tokens: batches of the longest sentences are taken in parts "
                "of %d (the same gradient up to dropout), so that a step holds at most TRAIN_VALUES pair values "
                "(model/training.py)%s", longest, size,
                f"; this sentence alone holds {alone:.1f} times as many, and memory may not suffice: split it"
                if alone > 1 else "")
    scorer = describe(device)
    log.info("pair scorer: %s", scorer)
    if settings.get("compile"):
        model.compile(dynamic=True)  # in place: parameter names, so checkpoints, stay the same
    optimizer = make_optimizer(model, settings["lr"])
    scaler = speed.grad_scaler(device)
    generator = torch.Generator().manual_seed(settings["seed"])
    progress = {"epoch": 0, "best_score": -1.0, "best_epoch": 0, "bad_epochs": 0, "finished": False,
                "train_seconds": 0.0, "records": []}  # records: metrics.jsonl's lines, kept in last.pt too
    metrics_file, kept, resumed_from, reading = run_dir / "metrics.jsonl", [], "", MENTION_READING
    if args.resume and has_checkpoint(run_dir):
        progress, resumed_from = load_state(run_dir, model, optimizer, generator, scaler, run_identity(settings))
        kept = kept_metrics(metrics_file, progress)  # checked, as best.pt below, before any write
        progress.setdefault("records", [json.loads(line) for line in kept])  # a last.pt from before they were kept
        started = read_json(run_dir / "config.json")
        if started.get("pair_scorer") and started["pair_scorer"] != scorer:
            log.warning("this run started with the %s pair scorer and resumes with the %s one: the result will "
                        "not be bit-identical to an uninterrupted run", started["pair_scorer"], scorer)
        if (began := started.get("mention_reading", 1)) != MENTION_READING:
            reading = f"{began} then {MENTION_READING}"  # what results.json, and so the report, will say
            log.warning("this run began with the loader's mention reading %s and goes on with %d (data/loader.py "
                        "MENTION_READING): its earlier epochs' dev scores, which choose the best epoch, were "
                        "counted the other way (results/NOTES-2026-12-07.md)", began, MENTION_READING)
        log.info("resuming after epoch %d (best %s F1 %.4f at epoch %d)", progress["epoch"],
                 settings["select_on"], progress["best_score"], progress["best_epoch"])
        save_best_again(run_dir, model, progress)
    elif not args.resume:
        for name in ("vocab.json", "labels.json"):  # before config.json: a folder with one is a complete run
            shutil.copy(data_dir / name, run_dir / name)
        if prepared.exists():
            shutil.copy(prepared, run_dir / "prepare_report.json")
        write_json(run_dir / "config.json", {
            "run_format": RUN_FORMAT, "settings": settings, "model": model_config, "pair_scorer": scorer,
            "precision_used": speed.precision_for(device),  # bf16 runs float32 on CPUs without bfloat16 arithmetic
            "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
            "torch": torch.__version__, "data_sha256": fingerprint, "mention_reading": MENTION_READING,
            "data_reports": {n: s.report.as_dict() for n, s in splits.items()}})

    if args.resume:  # the run's own copies, which evaluate.py and predict.py read, restored if damaged
        for name in ("vocab.json", "labels.json"):
            if not (run_dir / name).is_file() or file_sha256(run_dir / name) != fingerprint[name]:
                shutil.copy(data_dir / name, run_dir / name)  # data_dir's match the run's checksums (above)
                log.warning("%s was missing or differed from the run's data: copied again from %s", run_dir / name,
                            data_dir)
    if resumed_from == "last_prev.pt" and (run_dir / "last.pt").exists():  # set aside, or the next save keeps
        os.replace(run_dir / "last.pt", run_dir / "last.pt.unreadable")  # the unreadable file as last_prev.pt
        log.warning("kept the unreadable last.pt as %s", run_dir / "last.pt.unreadable")
    atomic_write_bytes(metrics_file, "".join(line + "\n" for line in kept).encode("utf-8"))

    match, select_on = settings["match"], settings["select_on"]
    for epoch in range(progress["epoch"] + 1, settings["num_epoch"] + 1):
        if progress["finished"]:
            break
        losses = train_epoch(model, optimizer, splits["train"].examples, settings["batch_size"], generator, device,
                             settings["max_grad_norm"], scaler, desc=f"epoch {epoch}")
        if not (math.isfinite(losses["er_loss"]) and math.isfinite(losses["rc_loss"])):
            raise InputError(f"epoch {epoch}: the training loss is not finite (ER {losses['er_loss']}, RC "
                             f"{losses['rc_loss']}); this epoch was not saved. Check {data_dir / 'embedding.npy'} "
                             f"for NaN or inf, or train with a lower --lr or fewer --rounds (K = {settings['rounds']} "
                             "here)")
        start = time.perf_counter()
        record = {"epoch": epoch, **losses}
        for name in dict.fromkeys(("dev", select_on)):
            scores, _ = evaluate(model, splits[name], labels, device, settings["eval_batch_size"])
            record[name] = only_prf(scores)
        record["eval_seconds"] = time.perf_counter() - start
        score = record[select_on][match]["f1"]
        if score > progress["best_score"]:
            progress.update(best_score=score, best_epoch=epoch, bad_epochs=0)
        else:
            progress["bad_epochs"] += 1
        progress["epoch"] = epoch
        progress["train_seconds"] += losses["train_seconds"]
        if settings["early_stop"] and progress["bad_epochs"] >= settings["early_stop"]:
            progress["finished"] = True
            log.info("early stop: %d epochs without a better %s F1", progress["bad_epochs"], select_on)
        progress["records"].append(record)
        save_training_state(run_dir / "last.pt", model, optimizer, generator, progress, scaler,
                            run_identity(settings))
        with metrics_file.open("a", encoding="utf-8") as handle:  # after last.pt, which holds it too: a run stopped
            handle.write(json.dumps(record) + "\n")              # between the two resumes, never the reverse
        if progress["best_epoch"] == epoch:  # after last.pt, whose weights these are: see save_best_again
            save_weights(model, run_dir / "best.pt")
        log.info("epoch %d: loss ER %.4f RC %.4f | dev partial F1 %.4f exact F1 %.4f | %.1fs train%s",
                 epoch, losses["er_loss"], losses["rc_loss"], record["dev"]["partial"]["f1"],
                 record["dev"]["exact"]["f1"], losses["train_seconds"],
                 " | best" if progress["best_epoch"] == epoch else "")

    load_weights(model, run_dir / "best.pt")
    results: dict = {"conventions": {key: CONVENTIONS[key] for key in ("ours", "official", "strings")}}
    for name in ("dev", "test"):
        ours, extractions = evaluate(model, splits[name], labels, device, settings["eval_batch_size"])
        results[name] = only_prf(ours)
        results.setdefault("official_scorer", {})[name] = only_prf(
            score_all(extractions, splits[name].gold, scorer="official"))
        results.setdefault("string_sets", {})[name] = only_prf(score_all(
            extractions, splits[name].gold, "strings", [s.tokens for s in splits[name].sentences]))
    results.update(best_epoch=progress["best_epoch"], selected_on=select_on, epochs_run=progress["epoch"],
                   train_seconds=progress["train_seconds"], best_pt_sha256=file_sha256(run_dir / "best.pt"),
                   mention_reading=reading)
    write_json(run_dir / "results.json", results)
    log.info("best epoch %d (selected on %s) | test partial P/R/F1 %.4f/%.4f/%.4f | exact %.4f/%.4f/%.4f",
             progress["best_epoch"], select_on, *results["test"]["partial"].values(),
             *results["test"]["exact"].values())
    return results


if __name__ == "__main__":
    main()
