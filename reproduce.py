"""Re-run the paper's tables: plan every training a table needs, run what is missing, report.

    python reproduce.py --table 1 --dataset webnlg --jobs 2     # Table 1 (WebNLG columns)
    python reproduce.py --table all --dataset webnlg             # Tables 1, 5 and Figure 3
    python reproduce.py --table 1 --seeds 2 --only '*_K0_*'      # only some of a table's runs
    python reproduce.py --table fig3 --seeds 1 --hours 2.5       # only runs sure to end within 2.5 h
    python reproduce.py --report                                 # rewrite results/README.md only
    python reproduce.py --compare_test       # test POS tags and entity spans: official vs ours

Which runs each table needs and how they are named is data in experiments/plan.py;
the report is rendered by experiments/report.py. A run whose results.json exists (in
saved_models/<run_id>/ or in its committed summary results/runs/<run_id>/, so a
fresh clone does not redo finished work) is skipped, an unfinished one is resumed
(train.py --resume), so the runner can be stopped and started again at any time.
After each run its small summary (config.json, metrics.jsonl, results.json,
runner.json) is copied to results/runs/<run_id>/; checkpoints stay in saved_models/.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from fnmatch import fnmatchcase
from pathlib import Path

from data.loader import read_json_records
from experiments.plan import PAPER_SEEDS, Plan, Run, plan_runs
from experiments.report import write_report
from utils.helpers import PROJECT_ROOT, project_relative, read_json, resolve_project_path, setup_logging, write_json

log = logging.getLogger("reproduce")
SUMMARY_FILES = ("config.json", "metrics.jsonl", "results.json", "prepare_report.json")


def is_finished(run: Run, save_dir: Path, results_dir: Path) -> bool:
    return any((folder / run.name / "results.json").exists() for folder in (save_dir, results_dir / "runs"))


def epoch_seconds(dataset: str, results_dir: Path) -> Callable[[int], float] | None:
    """Seconds one epoch (training + evaluation) of a ``dataset`` run with K = rounds takes: the median over
    the dataset's finished runs with that K; for a K with no finished run, a straight line in K through those
    medians. None before any run has finished."""
    seconds: dict[int, list[float]] = {}
    for folder in (results_dir / "runs").glob(f"{dataset}_*"):
        files = [folder / name for name in ("results.json", "config.json", "metrics.jsonl")]
        if all(f.exists() for f in files):
            rounds = read_json(files[1])["settings"]["rounds"]
            for line in files[2].read_text().splitlines():
                epoch = json.loads(line)
                seconds.setdefault(rounds, []).append(epoch["train_seconds"] + epoch.get("eval_seconds", 0))
    if not seconds:
        return None
    medians = {rounds: statistics.median(values) for rounds, values in seconds.items()}
    if len(medians) > 1:
        slope, intercept = statistics.linear_regression(list(medians), list(medians.values()))
    else:
        slope, intercept = 0.0, next(iter(medians.values()))
    return lambda rounds: medians.get(rounds, intercept + slope * rounds)


def remaining_seconds(run: Run, save_dir: Path, per_epoch: Callable[[int], float]) -> float:
    """Seconds ``run`` still needs at worst: every preset epoch not yet in its metrics.jsonl (early stopping
    ends many sooner)."""
    epochs = read_json(PROJECT_ROOT / "presets" / f"{run.dataset}.json")[run.match]["num_epoch"]
    metrics = save_dir / run.name / "metrics.jsonl"
    done = len(metrics.read_text().splitlines()) if metrics.exists() else 0
    return max(0, epochs - done) * per_epoch(run.rounds)


def estimated_core_hours(todo: list[Run], dataset: str, save_dir: Path, results_dir: Path) -> float | None:
    """Core-hours the runs ``todo`` take at worst (see remaining_seconds); None before any run has finished."""
    per_epoch = epoch_seconds(dataset, results_dir)
    return None if per_epoch is None else sum(remaining_seconds(run, save_dir, per_epoch) for run in todo) / 3600


def over_time(run: Run, args: argparse.Namespace) -> str | None:
    """Why ``run`` must not start under --hours (it could, at worst, run past the runner's deadline), else
    None. Without finished runs to time against, every run may start."""
    if args.deadline is None:
        return None
    per_epoch = epoch_seconds(args.dataset, Path(args.results_dir))
    if per_epoch is None:
        return None
    needed, left = remaining_seconds(run, Path(args.save_dir), per_epoch), args.deadline - time.time()
    return f"needs up to {needed / 3600:.1f} h, {left / 3600:.1f} h left of --hours" if needed > left else None


def copy_summary(run_dir: Path, results_dir: Path) -> None:
    target = results_dir / "runs" / run_dir.name
    target.mkdir(parents=True, exist_ok=True)
    for name in SUMMARY_FILES:
        if (run_dir / name).exists():
            shutil.copy(run_dir / name, target / name)


def claim(run_dir: Path) -> bool:
    """Take ``run_dir/runner.lock`` for this process, so two runners never train one run at once; a lock
    left by a process that is gone (a runner killed with its session) is taken over."""
    lock = run_dir / "runner.lock"
    try:
        descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            os.kill(int(lock.read_text().strip() or 0), 0)
            return False  # its owner is alive
        except (ProcessLookupError, ValueError):
            lock.unlink(missing_ok=True)
            return claim(run_dir)
        except PermissionError:
            return False  # alive, owned by another user
    os.write(descriptor, str(os.getpid()).encode())
    os.close(descriptor)
    return True


def execute(run: Run, args: argparse.Namespace, threads: int) -> str:
    """Train (or resume) one run in a subprocess; returns what happened."""
    if reason := over_time(run, args):
        log.info("%s: not started, it %s", run.name, reason)
        return f"skipped: {reason}"
    run_dir = Path(args.save_dir) / run.name
    run_dir.mkdir(parents=True, exist_ok=True)
    if not claim(run_dir):
        log.info("%s: skipped, another runner is training it (%s)", run.name, run_dir / "runner.lock")
        return "skipped: another runner holds it"
    try:
        if is_finished(run, Path(args.save_dir), Path(args.results_dir)):
            return "skipped: finished by another runner"
        return train_run(run, run_dir, args, threads)
    finally:
        (run_dir / "runner.lock").unlink(missing_ok=True)


def train_run(run: Run, run_dir: Path, args: argparse.Namespace, threads: int) -> str:
    """train.py in a subprocess (a fresh start or --resume); records wall time and copies the summary."""
    results_dir = Path(args.results_dir)
    resume = (run_dir / "config.json").exists()
    command = [sys.executable, str(PROJECT_ROOT / "train.py")]
    command += (["--resume", str(run_dir)] if resume else
                [*run.train_args(), "--run_id", run.name, "--save_dir", args.save_dir,
                 "--early_stop", str(args.early_stop), *(["--data_dir", args.data_dir] if args.data_dir else []),
                 *shlex.split(args.train_args)])
    command += ["--threads", str(threads)]
    log.info("%s %s", "resume" if resume else "start", run.name)
    start = time.time()
    with open(run_dir / "stdout.log", "a") as out:
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT).returncode
    wall = time.time() - start
    runner_file = results_dir / "runs" / run.name / "runner.json"
    runner_file.parent.mkdir(parents=True, exist_ok=True)
    history = read_json(runner_file) if runner_file.exists() else {"invocations": []}
    history["invocations"].append({"resumed": resume, "wall_seconds": round(wall, 1), "exit_code": code,
                                   "threads": threads, "ended": time.strftime("%Y-%m-%dT%H:%M:%S")})
    history["wall_seconds_total"] = round(sum(i["wall_seconds"] for i in history["invocations"]), 1)
    write_json(runner_file, history)
    copy_summary(run_dir, results_dir)
    if args.commit:
        commit_summary(results_dir / "runs" / run.name, run.name)
    status = "finished" if code == 0 else f"stopped (exit {code}; see {run_dir / 'stdout.log'})"
    log.info("%s: %s after %.0fs", run.name, status, wall)
    return status


def commit_summary(folder: Path, name: str) -> None:
    """Commit ``folder`` in the repository that holds it, which need not be the one this script runs
    from (a runner started from a scratch worktree with ``--results_dir`` in the main checkout)."""
    for _ in range(5):  # another commit may hold the index lock for a moment
        added = subprocess.run(["git", "add", "."], cwd=folder, capture_output=True)
        done = subprocess.run(["git", "commit", "-q", "-m", f"results: {name}", "--", "."],
                              cwd=folder, capture_output=True)
        if added.returncode == 0 and done.returncode in (0, 1):
            return
        time.sleep(2)
    log.warning("could not commit %s: %s", folder, done.stderr.decode().strip())


def same_input_sentences(first: Path, second: Path) -> tuple[int, int]:
    """How many sentences two RIN-format files give the model identically (text and POS tags, in order),
    and how many ``second`` holds."""
    records = [record for _, record in read_json_records(second)]
    pairs = zip((record for _, record in read_json_records(first)), records, strict=False)
    return sum(a["sentText"] == b["sentText"] and a.get("pos") == b.get("pos") for a, b in pairs), len(records)


def compare_test_files(dataset: str, save_dir: Path, results_dir: Path, retagged: Path, rebuilt: Path) -> dict:
    """Score every finished run (with POS features and a checkpoint) on three copies of the test sentences:
    the official file; ``retagged``, its POS tags replaced by our tagger's (as in train/dev); ``rebuilt``,
    built from WebNLG* like train/dev, so with our POS tags and our recovered entity spans. Official vs.
    retagged measures the tagger; retagged vs. rebuilt the span annotation alone, since both give the
    model the same input (counted in ``same_input_sentences``) and differ only in the gold spans.
    Merged into results/test_comparison.json, so runs whose checkpoints are gone keep their entry."""
    from data.loader import load_split
    from model import load_run
    from model.inference import extract
    from utils.helpers import pick_device
    from utils.scorer import score_all

    path = results_dir / "test_comparison.json"
    found = read_json(path) if path.exists() else {"runs": {}}
    same, sentences = same_input_sentences(retagged, rebuilt)
    found |= {"retagged_test": project_relative(retagged), "rebuilt_test": project_relative(rebuilt),
              "same_input_sentences": same, "sentences": sentences}
    device = pick_device(None)
    for run_dir in sorted(save_dir.glob(f"{dataset}_*")):
        if not (run_dir / "results.json").exists() or not (run_dir / "best.pt").exists():
            continue
        model, vocab, labels, config = load_run(run_dir, device)
        if config["model"]["pos_dim"] == 0 or config["settings"]["dataset"] != dataset:
            continue
        entry = {}
        official = resolve_project_path(config["settings"]["data_dir"]) / "test.json"
        for name, test_file in (("official", official), ("retagged", retagged), ("rebuilt", rebuilt)):
            split = load_split(test_file, vocab, labels, f"test ({name})")
            scores = score_all(extract(model, split.examples, labels, device), split.gold, "ours")
            entry[name] = {mode: round(scores[mode]["f1"], 6) for mode in ("partial", "exact")}
        found["runs"][run_dir.name] = entry
        log.info("%s: test F1 %s", run_dir.name, entry)
    write_json(path, found)
    return found


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", choices=("1", "5", "fig3", "all"), help="which table's runs to do")
    parser.add_argument("--dataset", default="webnlg", help="dataset (default webnlg)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(PAPER_SEEDS),
                        help="seeds to run (default 1 2 3 4 5); the report always covers seeds 1-5 and every seed "
                        "with a finished run")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once; CPU threads are split between them")
    parser.add_argument("--only", nargs="+", metavar="PATTERN",
                        help="do only the planned runs whose name matches one of these shell patterns, e.g. "
                        "'*_K0_*' (short runs first, to finish before a machine is handed back)")
    parser.add_argument("--max_runs", type=int, help="stop after starting this many runs (for piecewise progress)")
    parser.add_argument("--hours", type=float,
                        help="start a run only if it would end within this many hours of the runner's start even "
                        "if it went all its preset epochs (at the epoch times of finished runs with its K); "
                        "for a machine lent for a known time, where an unfinished run would be lost")
    parser.add_argument("--early_stop", type=int, default=30,
                        help="patience passed to train.py for new runs (default 30 epochs; 0 = full preset epochs)")
    parser.add_argument("--train_args", default="", help="extra flags for train.py, e.g. '--precision bf16'")
    parser.add_argument("--data_dir", help="passed to train.py (default: dataset/<dataset>)")
    parser.add_argument("--save_dir", default=str(PROJECT_ROOT / "saved_models"), help="run folders (checkpoints)")
    parser.add_argument("--results_dir", default=str(PROJECT_ROOT / "results"), help="summaries, report and figure")
    parser.add_argument("--commit", action="store_true", help="git-commit each run's summary when it ends")
    parser.add_argument("--dry_run", action="store_true", help="print the plan and what is done, run nothing")
    parser.add_argument("--report", action="store_true", help="only rewrite results/README.md")
    parser.add_argument("--compare_test", action="store_true",
                        help="score finished runs on the official test, on its retagged copy (our POS tags) and on "
                        "the rebuilt test (our POS tags and entity spans), then report")
    parser.add_argument("--retagged_test", default=str(PROJECT_ROOT / "dataset" / "retagged" / "webnlg" / "test.json"),
                        help="the retagged test file (built with prepare_data.py --retag_test when missing)")
    parser.add_argument("--rebuilt_test", default=str(PROJECT_ROOT / "dataset" / "rebuilt" / "webnlg" / "test.json"),
                        help="the rebuilt test file (built with prepare_data.py --rebuild_test when missing)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> Plan | None:
    args = parse_args(argv)
    args.deadline = None if args.hours is None else time.time() + args.hours * 3600
    setup_logging()
    results_dir = Path(args.results_dir)
    if args.compare_test:
        retagged, rebuilt = Path(args.retagged_test), Path(args.rebuilt_test)
        for test_file, flag in ((retagged, "--retag_test"), (rebuilt, "--rebuild_test")):
            if not test_file.exists():
                import prepare_data

                prepare_data.main(["--dataset", args.dataset, flag, "--out", str(test_file.parent.parent)])
        compare_test_files(args.dataset, Path(args.save_dir), results_dir, retagged, rebuilt)
    if args.report or args.compare_test or not args.table:
        write_report(args.dataset, args.seeds, results_dir)
        return None
    plan = plan_runs(args.table, args.dataset, args.seeds)
    if args.only:
        plan.runs = [run for run in plan.runs if any(fnmatchcase(run.name, pattern) for pattern in args.only)]
        if not plan.runs:
            raise SystemExit(f"--only {' '.join(args.only)}: no planned run of table {args.table} matches")
    save_dir = Path(args.save_dir)
    todo = [r for r in plan.runs if not is_finished(r, save_dir, results_dir)]
    log.info("table %s on %s: %d runs planned, %d still to do", args.table, args.dataset, len(plan.runs), len(todo))
    hours = estimated_core_hours(todo, args.dataset, save_dir, results_dir)
    if todo and hours is not None:
        log.info("at most about %.1f core-hours if no run stops early (epoch times of the finished runs)", hours)
    if args.dry_run:
        for run in plan.runs:
            print(("todo " if run in todo else "done ") + run.name)
        return plan
    for run in plan.runs:
        if run not in todo and (save_dir / run.name).exists():
            copy_summary(save_dir / run.name, results_dir)
    todo = todo[: args.max_runs] if args.max_runs else todo
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = max(1, cores // args.jobs)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        outcomes = list(pool.map(lambda run: execute(run, args, threads), todo))
    log.info("outcomes: %s", json.dumps(dict(zip([r.name for r in todo], outcomes, strict=True)), indent=1))
    write_report(args.dataset, args.seeds, results_dir)
    return plan


if __name__ == "__main__":
    main()
