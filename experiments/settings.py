"""A run's settings: train.py's flags, the defaults and presets they override, and a run folder's own settings
when it resumes. Here, not in train.py, so that reproduce.py plans and checks runs with the same rules.

Settings come from the defaults in model/training.py (TrainConfig) and model/rin.py (RINConfig), then
presets/<dataset>.json (Table 3 of the paper: rounds, lr and epochs per match mode), then the command line.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import typing
from pathlib import Path

from data.convert import prepare_hint
from experiments.plan import run_name
from experiments.presets import PRESET_SETTINGS, preset, preset_file
from model import RUN_FORMAT, RINConfig, speed
from model.run import has_checkpoint
from model.training import TrainConfig
from utils.cli import (
    ArgumentParser,
    add_machine_arguments,
    dropout_rate,
    folder_name,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    seed_value,
)
from utils.errors import InputError
from utils.files import read_json
from utils.project import (
    DATASETS_DIR,
    PROJECT_ROOT,
    RUN_DATA_FILES,
    expected_type,
    field_defaults,
    fits_type,
    project_relative,
    resolve_project_path,
)
from utils.scorer import MODES
from utils.vocab import Labels

log = logging.getLogger(__name__)
SELECT_ON = ("dev", "test")  # the splits that may pick best.pt (test: as the official code)
# RINConfig's fields that are not settings: the data's sizes (emb_dim: train.py's --emb_dim, else embedding.npy's)
# and the ablation switches, set by train.py's negated flags (EXTRA_SETTINGS)
DATA_SIZES = ("vocab_size", "num_pos", "num_tags", "num_relations", "emb_dim")
SWITCHES = {"er_feedback": "no_er_feedback", "rc_feedback": "no_rc_feedback"}
# every other field of RINConfig is a setting with a train.py flag of its name (a test checks the flags), so a
# field added to the network is recorded, resumed, named in the report and guarded by the runner like these
MODEL_KEYS = tuple(field.name for field in dataclasses.fields(RINConfig) if field.name not in (*DATA_SIZES, *SWITCHES))
NAMED = ("dataset", "match", "rounds", "pos_dim", "seed", "select_on", *SWITCHES.values())  # in a run's name
# A run's settings that change what it computes beyond what its name says: a table's runs keep Table 3's and the
# defaults, and the report lists any other
HYPERPARAMETERS = ("lr", "num_epoch", "batch_size", "max_grad_norm", "emb_dim",
                   *(key for key in MODEL_KEYS if key not in NAMED))
# everything that defines what a run computes (early_stop only ends it sooner; the rest is how it runs)
RUN_DEFINING = ("dataset", "data_dir", *NAMED[1:], *HYPERPARAMETERS)
# how, not what, a run computes (the same model up to float rounding): free to change on resume
RESUME_FREE = ("device", "threads", "pair_kernel", "thread_policy", "eval_batch_size", "compile", "deterministic")
# settings of train.py's own beside TrainConfig's and RINConfig's: their types and defaults
EXTRA_SETTINGS = {"emb_dim": (int | None, None), "no_er_feedback": (bool, False), "no_rc_feedback": (bool, False)}
TRAIN, NET = TrainConfig(), field_defaults(RINConfig)


def parse_args(argv: list[str] | None = None, description: str = "") -> argparse.Namespace:
    """train.py's flags. Every flag defaults to None (unset), so a preset can fill it and --resume can tell which
    were given."""
    parser = ArgumentParser(prog="train.py", description=description)
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
    add_machine_arguments(run)
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


def default_settings() -> dict:
    """Every setting of a run, at its default: TrainConfig's, RINConfig's, train.py's own and model/speed.py's
    (or the environment's)."""
    return dataclasses.asdict(TRAIN) | {key: NET[key] for key in MODEL_KEYS} | {
        key: default for key, (_, default) in EXTRA_SETTINGS.items()} | {
        "pair_kernel": speed.DEFAULTS.kernel, "precision": speed.DEFAULTS.precision,
        "thread_policy": speed.DEFAULTS.thread_policy}


RETIRED_SETTINGS = ("resume",)  # recorded by runs started before 2026-12-03, read by nothing


def resolve_settings(args: argparse.Namespace) -> dict:
    """Defaults (TrainConfig, RINConfig), then presets/<dataset>.json for the match mode, then the flags."""
    settings = default_settings()
    given = given_flags(args)
    if "data_dir" in given and "dataset" not in given:
        raise InputError(f"--data_dir {args.data_dir}: give --dataset NAME too; it names the run and picks "
                         f"presets/NAME.json (without it the run would be named and set up as {TRAIN.dataset})")
    settings |= {k: v for k, v in given.items() if k in ("dataset", "match")}
    preset_path, values = preset_file(settings["dataset"]), preset(settings["dataset"], settings["match"])
    taken = {key: values[key] for key in PRESET_SETTINGS if key in values and key not in given}
    settings |= taken
    if taken:  # said: a folder of one's own under a release's name gets the release's settings
        log.info("%s (%s match): %s", project_relative(preset_path), settings["match"],
                 ", ".join(f"{key} {value}" for key, value in taken.items()))
    if unset := [key for key in PRESET_SETTINGS if key not in values and key not in given]:
        where = (f"{project_relative(preset_path)} ({settings['match']} match) sets no {', '.join(unset)}"
                 if preset_path.exists() else f"no preset {project_relative(preset_path)}")
        log.warning("%s: built-in defaults %s", where, ", ".join(f"--{key} {settings[key]}" for key in unset))
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


def check_resumable(run_dir: Path) -> None:
    """A run with trained epochs continues from its last.pt (or last_prev.pt); without them it would start over
    and overwrite its best.pt and results, so it is refused. (A run that died before its first epoch restarts.)"""
    if has_checkpoint(run_dir):
        return
    metrics = run_dir / "metrics.jsonl"
    if any((run_dir / name).exists() for name in ("results.json", "best.pt")) or (
            metrics.exists() and metrics.read_text(encoding="utf-8").strip()):
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
        if not fits_type(settings[key], kind):
            raise InputError(f"{where}: settings {key!r} is {json.dumps(settings[key])}, not "
                             f"{expected_type(kind)}; restore the file, or start a new run")
    for key, choices in (("precision", speed.PRECISIONS), ("pair_kernel", speed.KERNELS),
                         ("thread_policy", speed.THREAD_POLICIES), ("match", MODES), ("select_on", SELECT_ON)):
        if settings[key] not in choices:
            raise InputError(f"{where}: settings {key!r} is {json.dumps(settings[key])}, none of "
                             f"{', '.join(choices)}; restore the file, or start a new run")


def recorded_setting(config: dict, key: str, settings: dict | None = None) -> object:
    """A run's setting ``key`` as it trained: its config.json's (or ``settings``, those with defaults filled in),
    the network's default where none is recorded, the size the model was built with where the data chose it
    (``emb_dim`` None: embedding.npy's)."""
    settings = config.get("settings", {}) if settings is None else settings
    recorded = settings.get(key, NET.get(key))
    model = config.get("model") if isinstance(config.get("model"), dict) else {}
    return model.get(key) if recorded is None and key in model else recorded


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
    known = set(default_settings()) | set(RETIRED_SETTINGS)
    if unknown := sorted(set(config["settings"]) - known):  # a setting dropped here would train another run
        raise InputError(f"{run_dir / 'config.json'}: settings this code does not have: {', '.join(unknown)} "
                         "(written by other code: another branch or version?); resume it with the code that "
                         "trained it")
    built_in = speed.Speed()  # runs from before a speed setting existed ran with its built-in default
    settings = {"pair_kernel": built_in.kernel, "precision": built_in.precision,
                "thread_policy": built_in.thread_policy, "deterministic": TRAIN.deterministic,
                "compile": TRAIN.compile} | config["settings"]
    check_settings(settings, run_dir / "config.json")
    model = config.get("model") if isinstance(config.get("model"), dict) else {}
    try:
        RINConfig.check_known(model)
    except ValueError as error:
        raise InputError(f"{run_dir / 'config.json'}: {error}") from None
    # a model setting the run's settings lack: as its network was built, else (added since) the default, which
    # a setting added to the network keeps meaning "as before" (as load_run reads such runs too)
    if missing := [key for key in MODEL_KEYS if key not in settings and key not in model]:
        log.warning("%s records no %s (the run is older than %s): resuming with the default%s %s",
                    run_dir / "config.json", ", ".join(missing), "these settings" if len(missing) > 1 else "it",
                    "s" * (len(missing) > 1), ", ".join(f"{key}={NET[key]}" for key in missing))
    settings |= {key: model.get(key, NET[key]) for key in MODEL_KEYS if key not in settings}
    given = given_flags(args)

    def differs(key: str, value: object) -> bool:  # folders by where they are, however written or linked
        recorded = recorded_setting(config, key, settings)
        if key in ("data_dir", "save_dir") and isinstance(recorded, str):
            same = {os.path.realpath(resolve_project_path(recorded))}
            same |= {os.path.realpath(run_dir.parent)} if key == "save_dir" else set()  # a run folder moved
            return os.path.realpath(str(value)) not in same
        return recorded != value

    changed = [f"--{key} {value} (the run has {recorded_setting(config, key, settings)})"
               for key, value in given.items()
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
