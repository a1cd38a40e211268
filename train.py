"""Train RIN on a prepared dataset; every run lives in saved_models/<run_id>/.

    python train.py --dataset webnlg --match partial
    python train.py --resume saved_models/<run_id>

Settings come from the defaults in model/training.py (TrainConfig) and
model/rin.py (RINConfig), then presets/<dataset>.json (Table 3 of the paper:
rounds, lr and epochs per match mode), then the command line
(experiments/settings.py). The resolved settings are saved to config.json, so
a run folder is enough to re-create the run. Every flag is checked before
anything is written; a run folder is locked while a train.py works in it.
"""
from __future__ import annotations

import utils.interrupt  # noqa: F401  first, before torch loads: a Ctrl-C meanwhile is one line

# isort: split
import argparse
import json
import logging
import math
import os
import pickle
import shutil
import sys
import time
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np
import torch

from data.loader import EARLIER_READING, MENTION_READING, UNKNOWN_RELATION, Example, load_split, part_size
from experiments.settings import (
    MODEL_KEYS,
    RESUME_FREE,
    SWITCHES,
    check_data_files,
    check_resumable,
    parse_args,
    prepare_vocab_command,
    recorded_setting,
    resolve_settings,
    resume_settings,
)
from model import RIN, RUN_FORMAT, RINConfig, speed
from model.inference import evaluate
from model.run import CHECKPOINTS, RunError, has_checkpoint, load_weights, save_weights
from model.training import (
    TRAIN_VALUES,
    activation_bytes,
    largest_step,
    load_training_state,
    make_optimizer,
    pair_values_per_cell,
    save_training_state,
    train_epoch,
)
from utils.cli import setup_logging
from utils.cpu import available_memory
from utils.errors import InputError, one_line_errors
from utils.files import atomic_write_bytes, check_folder_path, file_sha256, read_json, write_json
from utils.interrupt import ignore_from_now_on
from utils.locks import hold_lock
from utils.machine import configure_threads, pick_device, set_seed
from utils.project import data_fingerprint, resolve_project_path
from utils.scorer import CONVENTIONS, rates, score_all
from utils.vocab import Labels, Vocab

log = logging.getLogger("train")


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
def locked_run_folder(run_dir: Path, fresh: bool, settings: dict | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``run_dir`` (flock on run_dir/train.lock) while training, so two train.py never
    write one run. With ``fresh`` the folder must not hold a run yet (one with other ``settings`` than this
    start's is named so: --resume would not take them), and is removed again if the run fails before its first
    epoch is saved (nothing to resume: the same command can run again), with the folders above it that it made
    and that stayed empty."""
    made = [folder for folder in (run_dir, *run_dir.parents) if not folder.exists()]
    created = bool(made)
    run_dir.mkdir(parents=True, exist_ok=True)
    # its holder's identity is read by model.run.in_training: a reused pid is not the holder
    handle = hold_lock(run_dir / "train.lock", lambda holder: f"{run_dir} is in use by another train.py (pid {holder})")
    try:
        if fresh and (run_dir / "config.json").exists():
            if differ := other_settings(run_dir, settings or {}):
                raise InputError(f"{run_dir} exists, a run with other settings ({differ}): pick another --run_id "
                                 f"(or continue that run as it was: --resume {run_dir})")
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


def other_settings(run_dir: Path, settings: dict) -> str:
    """How the run in ``run_dir`` was set up otherwise than ``settings`` (``lr 0.001 there, 0.005 here``; folders
    and how it computes aside, see run_identity); empty where alike, or where its config.json cannot say."""
    try:
        config = read_json(run_dir / "config.json")
    except InputError:
        return ""
    if not (isinstance(config, dict) and isinstance(config.get("settings"), dict)):
        return ""
    there = config["settings"]  # as recorded, or as the model was built (emb_dim None: embedding.npy's size)
    return ", ".join(f"{key} {recorded_setting(config, key)} there, {value} here"
                     for key, value in run_identity(settings).items()
                     if key in there and value not in (there[key], recorded_setting(config, key)))


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
                           **{field: not settings[flag] for field, flag in SWITCHES.items()}, **sizes)
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
    return {mode: rates(mode_scores) for mode, mode_scores in scores.items()}


def run_identity(settings: dict) -> dict:
    """What makes a checkpoint this run's: its settings, less how it computes (free on resume) and where its
    folders are (a run folder may move)."""
    return {key: value for key, value in settings.items() if key not in (*RESUME_FREE, "save_dir", "data_dir")}


def load_state(run_dir: Path, model: RIN, optimizer: torch.optim.Optimizer, generator: torch.Generator,
               scaler: torch.amp.GradScaler, run: dict) -> tuple[dict, str]:
    """The progress in last.pt, or in the previous epoch's last_prev.pt when last.pt is missing or unreadable (a
    crash while writing it), and the name of the file read."""
    for name in CHECKPOINTS:
        if not (run_dir / name).is_file():
            if name == "last.pt":
                log.warning("%s is missing: trying the previous checkpoint", run_dir / name)
            continue
        try:
            return load_training_state(run_dir / name, model, optimizer, generator, scaler, run), name
        except (RuntimeError, OSError, EOFError, KeyError, pickle.UnpicklingError, zipfile.BadZipFile) as error:
            log.warning("%s is unreadable (%s): trying the previous checkpoint", run_dir / name,
                        str(error).splitlines()[0] if str(error) else type(error).__name__)
    raise InputError(f"{run_dir}: no readable last.pt or last_prev.pt to resume from")


def save_best_again(run_dir: Path, model: RIN, progress: dict, fingerprint: dict[str, str]) -> None:
    """best.pt is written after last.pt: a run killed between the two resumes from a last.pt whose epoch was
    the best, and best.pt still holds an earlier one. Those weights are the ones just loaded: write them. A
    best.pt of an earlier epoch that is gone or unreadable cannot be rebuilt: refused before any epoch is
    trained."""
    best = run_dir / "best.pt"
    if progress["epoch"] and progress["best_epoch"] == progress["epoch"]:
        save_weights(model, best, fingerprint)
    elif progress["epoch"]:
        lost = f"the weights of the run's best epoch ({progress['best_epoch']}) are lost, so it cannot finish " \
               "as it should; start a new run"
        if not best.is_file():
            raise InputError(f"{best} is missing: {lost}")
        try:
            with torch.random.fork_rng(devices=[]):  # a copy (the model holds last.pt's weights), built without
                load_weights(RIN(model.config), best, fingerprint)  # drawing from the run's random stream
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
    args = parse_args(argv, __doc__)
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
    speed.configure_for(device, settings["pair_kernel"], settings["precision"], settings["thread_policy"])
    try:
        with locked_run_folder(run_dir, fresh=not args.resume, settings=settings):
            return train_in(run_dir, settings, device, data_dir, args, argv)
    except KeyboardInterrupt as stop:
        ignore_from_now_on()  # the run is ending: a second press would lose the advice below
        if has_checkpoint(run_dir):
            what = f"its finished epochs are saved: continue with python train.py --resume {run_dir}"
        elif (run_dir / "config.json").exists():
            what = f"before its first epoch was saved: start it again with python train.py --resume {run_dir}"
        else:
            what = "before its first epoch was saved; nothing kept: run the same command again"
        stop.__notes__ = [*getattr(stop, "__notes__", []), what]  # one_line_errors prints it (add_note: 3.11+)
        raise


def load_data(data_dir: Path, settings: dict) -> tuple[Vocab, Labels, np.ndarray, dict]:
    """The prepared folder's vocabulary, labels, word vectors and splits, each checked: a file that does not fit
    the others is one line naming the step that rebuilds it."""
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
                         f"{rows[0]}, word {word!r}); run {prepare_vocab_command(settings['dataset'], data_dir)} again")
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
    prepared = data_dir / "prepare_report.json"
    if prepared.exists() and not (prepared.is_file() and isinstance(read_json(prepared), dict)):
        raise InputError(f"{prepared}: not the JSON object prepare_data.py writes; in a folder of your own data, "
                         'make it one such as {"spacy_model": "NAME"} (the tagger of your POS tags), or remove it')
    check_splits(splits, labels, data_dir, settings["select_on"], uses_pos=settings["pos_dim"] > 0)
    return vocab, labels, embedding, splits


def check_splits(splits: dict, labels: Labels, data_dir: Path, select_on: str, uses_pos: bool) -> None:
    """Refuse splits that would make a run's numbers mean something else (dev that is test, nothing to select
    on); say what only weakens them (sentences shared with train, a test split the model cannot score on, dev
    or test sentences without the POS tags the model reads)."""
    for name in ("dev", "test") if uses_pos and len(labels.pos) > 2 else ():
        if untagged := sum(sentence.pos is None for sentence in splits[name].sentences):
            log.warning("%s: %d of its %d sentences have no POS tags: this run scores them on <UNK> tags, where "
                        "evaluate.py tags them with spaCy first, so its scores will differ from results.json; tag "
                        "them as train.json was (dataset/README.md, 'Your own data')", data_dir / f"{name}.json",
                        untagged, len(splits[name].sentences))
    in_train = {tuple(s.tokens) for s in splits["train"].sentences}
    for name in ("dev", "test"):  # said, not refused: a release may repeat a sentence or two (WebNLG* dev: 1)
        if repeated := sum(tuple(s.tokens) in in_train for s in splits[name].sentences):
            log.warning("%s: %d of its %d sentences are also in train.json: their scores are partly on training "
                        "data", data_dir / f"{name}.json", repeated, len(splits[name].sentences))
    in_test, dev = {tuple(s.tokens) for s in splits["test"].sentences}, splits["dev"].sentences
    if select_on == "dev" and (shared := sum(tuple(s.tokens) in in_test for s in dev)):
        if shared == len(dev):
            raise InputError(f"{data_dir / 'dev.json'}: every sentence of it is in test.json: the best epoch would "
                             "be chosen on test while the run says dev; hold out a dev set, or pass --select_on test "
                             "(named so)")
        log.warning("%s: %d of its %d sentences are also in test.json: the best epoch is partly chosen on test",
                    data_dir / "dev.json", shared, len(dev))
    if not splits[select_on].examples:
        raise InputError(f"{data_dir / (select_on + '.json')}: no sentences to choose the best epoch on")
    known = set(labels.relations)
    if not any(relation in known for gold in splits[select_on].gold for _, relation, _ in gold):
        raise InputError(f"{data_dir / (select_on + '.json')}: no triple of a relation type train.json "
                         "has: its F1 would be 0 at every epoch, and the best epoch always the first; give it "
                         "sentences with such triples")
    if not splits["test"].examples:  # results.json would say the run scored 0 on it
        raise InputError(f"{data_dir / 'test.json'}: no sentences to score the chosen epoch on; give it sentences "
                         "(results.json reports dev and test)")
    if not any(relation in known for gold in splits["test"].gold for _, relation, _ in gold):
        log.warning("%s: no triple of a relation type train.json has: test scores will be 0", data_dir / "test.json")


def train_in(run_dir: Path, settings: dict, device: torch.device, data_dir: Path, args: argparse.Namespace,
             argv: list[str] | None) -> dict:
    """The run in its locked folder: data, model, a fresh start or the resumed state, then the epochs, each saved
    (last.pt, then its metrics.jsonl line, then best.pt) before the next begins."""
    setup_logging(run_dir / "train.log")
    threads = configure_threads(settings["threads"])
    log.info("run %s on %s (%d CPU threads)%s", run_dir, device, threads, " [resumed]" if args.resume else "")
    fingerprint = data_fingerprint(data_dir)
    if args.resume:
        check_same_data(read_json(run_dir / "config.json").get("data_sha256"), fingerprint, data_dir)
    vocab, labels, embedding, splits = load_data(data_dir, settings)

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
    scorer = speed.describe(device)
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
        if (began := started.get("mention_reading", EARLIER_READING)) != MENTION_READING:
            reading = f"{began} then {MENTION_READING}"  # what results.json, and so the report, will say
            log.warning("this run began with the loader's mention reading %s and goes on with %d (data/loader.py "
                        "MENTION_READING): its earlier epochs' dev scores, which choose the best epoch, were "
                        "counted the other way (results/NOTES-2026-12-07.md)", began, MENTION_READING)
        log.info("resuming after epoch %d (best %s F1 %.4f at epoch %d)", progress["epoch"],
                 settings["select_on"], progress["best_score"], progress["best_epoch"])
        save_best_again(run_dir, model, progress, fingerprint)
    elif not args.resume:
        # before config.json (a folder with one is a complete run); predict.py reads the run's spaCy model from
        # its copy of prepare_report.json, where the data has one
        for name in ("vocab.json", "labels.json", "prepare_report.json"):
            if (data_dir / name).is_file():
                shutil.copy(data_dir / name, run_dir / name)
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
        progress["records"].append(record)
        save_training_state(run_dir / "last.pt", model, optimizer, generator, progress, scaler,
                            run_identity(settings))
        with metrics_file.open("a", encoding="utf-8") as handle:  # after last.pt, which holds it too: a run stopped
            handle.write(json.dumps(record) + "\n")              # between the two resumes, never the reverse
        if progress["best_epoch"] == epoch:  # after last.pt, whose weights these are: see save_best_again
            save_weights(model, run_dir / "best.pt", fingerprint)
        log.info("epoch %d: loss ER %.4f RC %.4f | dev partial F1 %.4f exact F1 %.4f | %.1fs train%s",
                 epoch, losses["er_loss"], losses["rc_loss"], record["dev"]["partial"]["f1"],
                 record["dev"]["exact"]["f1"], losses["train_seconds"],
                 " | best" if progress["best_epoch"] == epoch else "")
        if progress["finished"]:
            log.info("early stop: %d epoch%s without a better %s F1", progress["bad_epochs"],
                     "s" * (progress["bad_epochs"] != 1), select_on)

    return final_results(model, run_dir, splits, labels, device, settings, progress, reading)


def final_results(model: RIN, run_dir: Path, splits: dict, labels: Labels, device: torch.device, settings: dict,
                  progress: dict, reading: int | str) -> dict:
    """best.pt's scores on dev and test in every counting (results.json), with how the run got there."""
    select_on = settings["select_on"]
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
