"""Train RIN on a prepared dataset; every run lives in saved_models/<run_id>/.

    python train.py --dataset webnlg --match partial
    python train.py --resume saved_models/<run_id>

Settings come from argparse defaults, then presets/<dataset>.json (Table 3 of
the paper, per match mode), then the command line. The resolved settings are
saved to config.json, so a run folder is enough to re-create the run.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from data.loader import load_split
from experiments.plan import run_name
from model import RIN, RUN_FORMAT, RINConfig, speed
from model.inference import evaluate
from model.training import load_training_state, make_optimizer, save_training_state, train_epoch
from utils.helpers import (
    PROJECT_ROOT,
    atomic_torch_save,
    configure_threads,
    data_fingerprint,
    pick_device,
    project_relative,
    read_json,
    resolve_project_path,
    set_seed,
    setup_logging,
    write_json,
)
from utils.scorer import score_all
from utils.vocab import Labels, Vocab

log = logging.getLogger("train")
PRESET_KEYS = ("rounds", "lr", "num_epoch", "batch_size", "input_dropout", "max_grad_norm")
BUILTIN = {"rounds": 4, "lr": 1e-3, "num_epoch": 100, "batch_size": 50, "input_dropout": 0.1,
           "max_grad_norm": 5.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", default="webnlg",
                      help="dataset name: reads dataset/<name>/ and presets/<name>.json (default: webnlg)")
    data.add_argument("--data_dir", help="folder with train/dev/test.json, vocab.json, embedding.npy, "
                      "labels.json (default: dataset/<dataset>)")
    data.add_argument("--match", choices=("partial", "exact"), default="partial",
                      help="match mode: picks the preset (K, lr, epochs) and the F1 used to select the checkpoint")
    net = parser.add_argument_group("model (None = from the preset or the built-in default)")
    net.add_argument("--rounds", type=int, help="interaction layers K; 0 = RIN w/o interaction")
    net.add_argument("--emb_dim", type=int, help="word vector size; must match embedding.npy")
    net.add_argument("--pos_dim", type=int, default=10, help="POS embedding size; 0 = RIN w/o POS (default 10)")
    net.add_argument("--rnn_hidden", type=int, default=50, help="BiLSTM units per direction (default 50)")
    net.add_argument("--pair_hidden", type=int, default=100, help="size of m_ij = relu(Wm[h_i;h_j]) (default 100)")
    net.add_argument("--input_dropout", type=float, help="dropout on the word+POS input (preset: 0.1)")
    net.add_argument("--word_dropout", type=float, default=0.04,
                     help="probability that a training token becomes UNK (default 0.04, as the official code)")
    net.add_argument("--no_er_feedback", action="store_true", help="ablation w/o ER: He left out of H's update")
    net.add_argument("--no_rc_feedback", action="store_true", help="ablation w/o RC: Hr left out of H's update")
    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--lr", type=float, help="Adam learning rate (preset)")
    opt.add_argument("--num_epoch", type=int, help="epochs (preset)")
    opt.add_argument("--batch_size", type=int, help="sentences per batch (preset: 50)")
    opt.add_argument("--max_grad_norm", type=float, help="gradient-norm clip, 0 = off (preset: 5)")
    opt.add_argument("--early_stop", type=int, default=0,
                     help="stop after this many epochs without a better selection F1; 0 = never (default)")
    opt.add_argument("--seed", type=int, default=1, help="random seed; CPU runs are repeatable (default 1)")
    run = parser.add_argument_group("run")
    run.add_argument("--select_on", choices=("dev", "test"), default="dev",
                     help="split whose F1 picks best.pt; 'test' mimics the official code and is labelled so")
    run.add_argument("--save_dir", default=str(PROJECT_ROOT / "saved_models"), help="where run folders go")
    run.add_argument("--run_id", help="run folder name (default: made from the settings)")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last epoch")
    run.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    run.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    run.add_argument("--eval_batch_size", type=int, default=100, help="sentences per evaluation batch")
    speed.add_arguments(run)
    run.add_argument("--compile", action="store_true",
                     help="torch.compile the network's forward (model.compile(dynamic=True)); compiles again for "
                     "new batch shapes; slower on the 2-core CPU we measured, so check bench.py on your machine")
    return parser.parse_args(argv)


def resolve_settings(args: argparse.Namespace) -> dict:
    """Fill unset flags from presets/<dataset>.json, then from the built-in defaults."""
    settings = vars(args).copy()
    preset_file = PROJECT_ROOT / "presets" / f"{args.dataset}.json"
    preset = read_json(preset_file) if preset_file.exists() else {}
    if not preset:
        log.warning("no preset %s: using built-in defaults for unset flags", preset_file)
    for key in PRESET_KEYS:
        if settings.get(key) is None:
            settings[key] = preset.get(args.match, {}).get(key, preset.get(key, BUILTIN[key]))
    settings["data_dir"] = project_relative(settings["data_dir"] or PROJECT_ROOT / "dataset" / args.dataset)
    if not settings["run_id"]:
        settings["run_id"] = run_name(args.dataset, args.match, settings["rounds"], settings["seed"],
                                      no_er_feedback=settings["no_er_feedback"],
                                      no_rc_feedback=settings["no_rc_feedback"], pos_dim=settings["pos_dim"],
                                      select_on=settings["select_on"])
    return settings


def build_model(settings: dict, vocab: Vocab, labels: Labels, embedding: np.ndarray) -> tuple[RIN, dict]:
    pos_dim = settings["pos_dim"]
    if pos_dim > 0 and len(labels.pos) <= 2:
        log.warning("the data has no POS tags: training with --pos_dim 0 (RIN w/o POS)")
        pos_dim = 0
    if settings["emb_dim"] not in (None, embedding.shape[1]):
        raise SystemExit(f"--emb_dim {settings['emb_dim']} but embedding.npy holds {embedding.shape[1]}-d vectors")
    config = RINConfig(vocab_size=len(vocab), num_pos=len(labels.pos), num_tags=len(labels.tags),
                       num_relations=len(labels.relations), emb_dim=embedding.shape[1], pos_dim=pos_dim,
                       rnn_hidden=settings["rnn_hidden"], pair_hidden=settings["pair_hidden"],
                       rounds=settings["rounds"], input_dropout=settings["input_dropout"],
                       word_dropout=settings["word_dropout"], er_feedback=not settings["no_er_feedback"],
                       rc_feedback=not settings["no_rc_feedback"])
    return RIN(config, embedding), config.to_dict()


def only_prf(scores: dict) -> dict:
    return {mode: {k: s[k] for k in ("precision", "recall", "f1")} for mode, s in scores.items()}


def check_same_data(recorded: dict | None, current: dict, data_dir: Path) -> None:
    """Refuse to resume on data prepared differently from the data the run started on."""
    if recorded is None:
        log.warning("this run's config.json records no data checksums (older run): cannot check %s", data_dir)
        return
    changed = sorted(name for name in recorded.keys() | current.keys() if recorded.get(name) != current.get(name))
    if changed:
        raise SystemExit(f"{data_dir}: {', '.join(changed)} differ from the files this run started on "
                         "(config.json 'data_sha256'); prepare the data as the run did, or start a new run")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.resume:
        run_dir = Path(args.resume)
        settings = read_json(run_dir / "config.json")["settings"]
        settings["device"], settings["threads"] = args.device or settings["device"], args.threads
        settings["pair_kernel"] = args.pair_kernel  # how, not what, it computes: free to change on resume
    else:
        settings = resolve_settings(args)
        run_dir = Path(settings["save_dir"]) / settings["run_id"]
        if (run_dir / "config.json").exists():
            raise SystemExit(f"{run_dir} exists: continue it with --resume {run_dir} or pick another --run_id")
        run_dir.mkdir(parents=True, exist_ok=True)
    setup_logging(run_dir / "train.log")
    device = pick_device(settings["device"])
    threads = configure_threads(settings["threads"])
    speed.configure(kernel=settings["pair_kernel"], precision=settings.get("precision", "fp32"))
    log.info("run %s on %s (%d CPU threads)%s", run_dir, device, threads, " [resumed]" if args.resume else "")

    data_dir = resolve_project_path(settings["data_dir"])
    for name in ("vocab.json", "labels.json", "embedding.npy"):
        if not (data_dir / name).exists():
            raise SystemExit(f"{data_dir / name} is missing: run "
                             f"python prepare_vocab.py --dataset {settings['dataset']}")
    fingerprint = data_fingerprint(data_dir)
    if args.resume:
        check_same_data(read_json(run_dir / "config.json").get("data_sha256"), fingerprint, data_dir)
    vocab, labels = Vocab.load(data_dir / "vocab.json"), Labels.load(data_dir / "labels.json")
    embedding = np.load(data_dir / "embedding.npy")
    splits = {name: load_split(data_dir / f"{name}.json", vocab, labels) for name in ("train", "dev", "test")}
    for name, split in splits.items():
        log.info("%s: %d sentences, %d triples", name, len(split.sentences), sum(len(g) for g in split.gold))

    set_seed(settings["seed"])
    model, model_config = build_model(settings, vocab, labels, embedding)
    model.to(device)
    if settings.get("compile"):
        model.compile(dynamic=True)  # in place: parameter names, so checkpoints, stay the same
    optimizer = make_optimizer(model, settings["lr"])
    generator = torch.Generator().manual_seed(settings["seed"])
    progress = {"epoch": 0, "best_score": -1.0, "best_epoch": 0, "bad_epochs": 0, "finished": False,
                "train_seconds": 0.0}
    if args.resume and (run_dir / "last.pt").exists():
        progress = load_training_state(run_dir / "last.pt", model, optimizer, generator)
        log.info("resuming after epoch %d (best %s F1 %.4f at epoch %d)", progress["epoch"],
                 settings["select_on"], progress["best_score"], progress["best_epoch"])
    else:
        write_json(run_dir / "config.json", {
            "run_format": RUN_FORMAT, "settings": settings, "model": model_config,
            "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
            "torch": torch.__version__, "data_sha256": fingerprint,
            "data_reports": {n: s.report.as_dict() for n, s in splits.items()}})
        for name in ("vocab.json", "labels.json"):
            shutil.copy(data_dir / name, run_dir / name)
        prepared = data_dir / "prepare_report.json"
        if prepared.exists():
            shutil.copy(prepared, run_dir / "prepare_report.json")

    metrics_file = run_dir / "metrics.jsonl"
    kept = metrics_file.read_text().splitlines()[: progress["epoch"]] if metrics_file.exists() else []
    metrics_file.write_text("".join(line + "\n" for line in kept))

    match, select_on = settings["match"], settings["select_on"]
    for epoch in range(progress["epoch"] + 1, settings["num_epoch"] + 1):
        if progress["finished"]:
            break
        losses = train_epoch(model, optimizer, splits["train"].examples, settings["batch_size"], generator, device,
                             settings["max_grad_norm"], desc=f"epoch {epoch}")
        start = time.perf_counter()
        record = {"epoch": epoch, **losses}
        for name in dict.fromkeys(("dev", select_on)):
            scores, _ = evaluate(model, splits[name], labels, device, settings["eval_batch_size"])
            record[name] = only_prf(scores)
        record["eval_seconds"] = time.perf_counter() - start
        score = record[select_on][match]["f1"]
        if score > progress["best_score"]:
            progress.update(best_score=score, best_epoch=epoch, bad_epochs=0)
            atomic_torch_save(model.state_dict(), run_dir / "best.pt")
        else:
            progress["bad_epochs"] += 1
        progress["epoch"] = epoch
        progress["train_seconds"] += losses["train_seconds"]
        if settings["early_stop"] and progress["bad_epochs"] >= settings["early_stop"]:
            progress["finished"] = True
            log.info("early stop: %d epochs without a better %s F1", progress["bad_epochs"], select_on)
        with metrics_file.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        save_training_state(run_dir / "last.pt", model, optimizer, generator, progress)
        log.info("epoch %d: loss ER %.4f RC %.4f | dev partial F1 %.4f exact F1 %.4f | %.1fs train%s",
                 epoch, losses["er_loss"], losses["rc_loss"], record["dev"]["partial"]["f1"],
                 record["dev"]["exact"]["f1"], losses["train_seconds"],
                 " | best" if progress["best_epoch"] == epoch else "")

    model.load_state_dict(torch.load(run_dir / "best.pt", map_location=device, weights_only=True))
    results: dict = {}
    for name in ("dev", "test"):
        ours, extractions = evaluate(model, splits[name], labels, device, settings["eval_batch_size"])
        results[name] = only_prf(ours)
        results.setdefault("official_scorer", {})[name] = only_prf(
            score_all(extractions, splits[name].gold, scorer="official"))
    results.update(best_epoch=progress["best_epoch"], selected_on=select_on, epochs_run=progress["epoch"],
                   train_seconds=progress["train_seconds"])
    write_json(run_dir / "results.json", results)
    log.info("best epoch %d (selected on %s) | test partial P/R/F1 %.4f/%.4f/%.4f | exact %.4f/%.4f/%.4f",
             progress["best_epoch"], select_on, *results["test"]["partial"].values(),
             *results["test"]["exact"].values())
    return results


if __name__ == "__main__":
    main()
