"""Re-run the paper's tables: plan every training a table needs, run what is missing, report.

    python reproduce.py --table 1 --dataset webnlg --jobs 2     # Table 1 (WebNLG columns), 2 runs at once
    python reproduce.py --table all --dataset webnlg             # Tables 1, 5 and Figure 3
    python reproduce.py --table 1 --seeds 2 --only '*_K0_*'      # only some of a table's runs
    python reproduce.py --table fig3 --seeds 1 --hours 2.5       # only runs sure to end within 2.5 h
    python reproduce.py --table all --jobs 8                     # 8 GPUs: one run per GPU
    python reproduce.py --table all --jobs 16 --runs_per_gpu 2   # two runs share each GPU
    python reproduce.py --table all --executor slurm --partition gpu --gpus_per_run 1 --time 600 --wait
    python reproduce.py --report                                 # rewrite the report only
    python reproduce.py --compare_test       # test POS tags and entity spans: official vs ours
    python reproduce.py --mention_study      # triples at repeated mentions: what --first_mentions changes

Which runs each table needs and how they are named is data in experiments/plan.py;
the report (results/README.md, and README.md's results table) is rendered by
experiments/report.py, the studies of finished checkpoints (--compare_test,
--mention_study) by experiments/studies.py; how a run is placed (this machine's
GPUs and cores, or a SLURM job array) is experiments/launch.py. A run with a readable
results.json (in saved_models/<run_id>/ or in its committed summary
results/runs/<run_id>/, so a fresh clone does not redo finished work) is skipped, an
unfinished one (or one with no readable results.json) is resumed (train.py --resume),
so the runner can be stopped and started again at any time. After each run its small
summary (config.json, metrics.jsonl, results.json, prepare_report.json) is copied to
results/runs/<run_id>/, beside runner.json (where and how long each invocation ran);
checkpoints stay in saved_models/. Exits non-zero when any run failed.
"""
from __future__ import annotations

import utils.interrupt  # noqa: F401  first, before torch loads: a Ctrl-C meanwhile is one line

# isort: split
import argparse
import contextlib
import io
import json
import logging
import os
import queue
import re
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, wait
from fnmatch import fnmatchcase
from pathlib import Path

from data.loader import read_json_records
from experiments.budget import Budget
from experiments.launch import (
    TRAIN_ERROR,
    Slot,
    SlurmResources,
    TrainJob,
    assign_slots,
    copy_summary,
    is_finished,
    stop_running,
    submit_array,
    visible_gpus,
    wait_for_array,
)
from experiments.plan import PAPER_SEEDS, Plan, Run, plan_runs
from experiments.presets import preset_datasets
from experiments.report import other_hyperparameters, write_report
from experiments.settings import (
    HYPERPARAMETERS,
    NAMED,
    RESUME_FREE,
    RUN_DEFINING,
    check_data_files,
    given_flags,
    lacks_pos_tags,
    resolve_settings,
)
from experiments.settings import log as settings_log
from experiments.settings import parse_args as train_parse_args  # train.py's flags and their checks, in one place
from experiments.studies import compare_test_files, finished_checkpoints, mention_study
from model.run import epochs_done, has_results, recorded_sha256, run_settings
from model.training import TrainConfig
from utils.cli import ArgumentParser, non_negative_int, positive_float, positive_int, seed_value, setup_logging
from utils.cpu import affinity, usable_cores
from utils.errors import InputError, one_line_errors
from utils.files import check_folder_path, file_sha256, read_json
from utils.locks import holder_alive, process_identity
from utils.project import DATASETS_DIR, PROJECT_ROOT, data_fingerprint, resolve_project_path

log = logging.getLogger("reproduce")


def budget_of(args: argparse.Namespace) -> Budget:
    """The time accounting of the runner's arguments: --num_epoch in --train_args overrides every preset's."""
    return Budget(args.dataset, Path(args.save_dir), Path(args.results_dir),
                  train_parse_args(shlex.split(args.train_args)).num_epoch, args.deadline)


def claim(run_dir: Path) -> bool:
    """Take ``run_dir/runner.lock`` for this process, so two runners on one machine never train one run at
    once; a lock left by a process that is gone (a runner killed with its session) is taken over. (Across the
    nodes of a cluster, where a pid means nothing, train.py's flock on the run folder is what guards a run.)"""
    lock, mine = run_dir / "runner.lock", run_dir / f".runner.lock.{os.getpid()}"
    mine.write_text(process_identity())
    try:
        os.link(mine, lock)  # atomic, and the lock names its holder from its first moment: never seen empty
        return True
    except FileExistsError:
        try:
            if holder_alive(lock.read_text()):
                return False
            lock.unlink(missing_ok=True)  # left by a runner that is gone
        except FileNotFoundError:
            pass  # released meanwhile
        return claim(run_dir)
    finally:
        mine.unlink(missing_ok=True)


def train_job(run: Run, args: argparse.Namespace, threads: int | None = None) -> TrainJob:
    """The TrainJob of ``run`` with this runner's settings (early stopping, data folder, extra train.py flags)."""
    extra = shlex.split(args.train_args)
    start = [*run.train_args(), "--run_id", run.name, "--save_dir", args.save_dir, "--early_stop",
             str(args.early_stop), *(["--data_dir", args.data_dir] if args.data_dir else []), *extra]
    given = vars(train_parse_args(extra))  # a resumed run keeps its settings but takes these flags of the runner's
    resume = [token for key in RESUME_FREE if given[key] not in (None, False)
              for token in ([f"--{key}"] if given[key] is True else [f"--{key}", str(given[key])])]
    return TrainJob(run.name, tuple(start), args.save_dir, args.results_dir, threads=threads,
                    executor=args.executor, commit=args.commit, resume_args=tuple(resume))


def resolve_settings_of(run: Run, args: argparse.Namespace) -> dict:
    """The settings train.py gives ``run`` when this runner starts it (preset and defaults filled in), without
    the lines train.py logs about them (said once per run there, they would be said here for every run)."""
    level = settings_log.level
    settings_log.setLevel(logging.ERROR)
    try:
        return resolve_settings(train_parse_args(list(train_job(run, args).start_args)))
    finally:
        settings_log.setLevel(level)


def same_data(config_file: Path, recorded: str, planned: str, resumed: bool) -> bool:
    """Whether a run recorded as trained on ``recorded`` trained on the data of ``planned``: the same folder, or,
    for a finished run (nothing resumes it from its folder), a folder holding the same files (moved or copied,
    by the checksums in its config.json)."""
    if resolve_project_path(recorded).resolve() == resolve_project_path(planned).resolve():
        return True
    tail = Path(planned).parts
    if (not resumed and not Path(planned).is_absolute() and not resolve_project_path(planned).exists()
            and Path(recorded).parts[-len(tail):] == tail):  # e.g. /elsewhere/clone/dataset/webnlg: until this
        return True  # clone prepares its dataset/webnlg, the name is all there is to compare (then the checksums)
    digests = read_json(config_file).get("data_sha256")
    return not resumed and bool(digests) and digests == data_fingerprint(resolve_project_path(planned))


def changed_training_file(config_file: Path, data_dir: str, digests: dict[Path, str]) -> str | None:
    """How the train.json in ``data_dir`` differs from the one the run of ``config_file`` trained on (its
    recorded SHA-256), or None: alike, not recorded, or not there to compare (another clone's data). ``digests``
    keeps each train.json's SHA-256 for the other runs of the plan, which share it."""
    recorded = recorded_sha256(read_json(config_file), "train.json")
    train_file = resolve_project_path(data_dir) / "train.json"
    if not (recorded and train_file.is_file()):
        return None
    if train_file not in digests:
        digests[train_file] = file_sha256(train_file)
    now = digests[train_file]
    return None if now == recorded else (f"train.json {recorded[:12]} (planned: {now[:12]}, in {data_dir}: the data "
                                         "was prepared otherwise since)")


def listed(hyperparameters: dict) -> str:
    """Hyperparameters other than Table 3's (report.other_hyperparameters), as a message names them."""
    return ", ".join(f"{key} {value}" for key, value in hyperparameters.items()) or "Table 3's settings"


def foreign_runs(runs: list[Run], args: argparse.Namespace) -> list[str]:
    """The planned runs whose folder in --save_dir, or whose summary in <results_dir>/runs, was made with other
    settings than this runner gives them (e.g. a quick ``train.py --num_epoch 2`` under the same name, or an
    earlier sweep with other --train_args), each with what differs: the runner would count such a run as
    finished, or resume it, as if it were the table's. An unfinished run is compared on its precision too: it
    would resume in its own, whatever --train_args asks for."""
    found, digests = [], {}
    for run in runs:
        planned = None
        for folder in (Path(args.save_dir), Path(args.results_dir) / "runs"):
            config_file = folder / run.name / "config.json"
            if not config_file.is_file():
                continue
            recorded = run_settings(config_file)
            planned = planned or resolve_settings_of(run, args)
            resumed = folder == Path(args.save_dir) and not is_finished(run.name, folder, Path(args.results_dir))
            differ = [f"{key} {recorded[key]} (planned: {planned[key]})"
                      for key in (*RUN_DEFINING, *["precision"] * resumed)
                      if key in recorded and recorded[key] != planned.get(key)
                      and not (key == "data_dir" and same_data(config_file, recorded[key], planned[key], resumed))]
            if not resumed and (changed := changed_training_file(config_file, planned["data_dir"], digests)):
                differ.append(changed)  # same folder, other data (prepared again since): not the table's either
            if differ:
                found.append(f"{config_file.parent}: {', '.join(differ)}")
    planned_names = {run.name for run in runs}
    for run in runs:  # other seeds of a planned run's cell, from earlier sweeps: the report averages them with it
        setting, planned = re.sub(r"_seed\d+$", "", run.name), None
        for summary in sorted((Path(args.results_dir) / "runs").glob(f"{setting}_seed*/config.json")):
            if summary.parent.name in planned_names or not re.fullmatch(r"seed\d+",
                                                                       summary.parent.name[len(setting) + 1:]):
                continue
            recorded = other_hyperparameters(run_settings(summary))
            if planned is None:
                planned = other_hyperparameters(resolve_settings_of(run, args))
            if recorded != planned:
                found.append(f"{summary.parent}, another seed of {setting}: {listed(recorded)} (planned: "
                             f"{listed(planned)})")
                planned_names.add(summary.parent.name)  # said once
    return found


def execute(run: Run, args: argparse.Namespace, slot: Slot) -> str:
    """Train (or resume) one run on this machine, on ``slot``'s GPU and cores; returns what happened."""
    if reason := budget_of(args).over_time(run):
        log.info("%s: not started, it %s", run.name, reason)
        return f"skipped: {reason}"
    run_dir = Path(args.save_dir) / run.name
    run_dir.mkdir(parents=True, exist_ok=True)
    if not claim(run_dir):
        log.info("%s: skipped, another runner is training it (%s)", run.name, run_dir / "runner.lock")
        return "skipped: another runner holds it"
    try:
        gpu = f"GPU {slot.gpu}, " if slot.gpu else ""
        log.info("%s %s (%scores %s)", "resume" if (run_dir / "config.json").exists() else "start", run.name, gpu,
                 ",".join(map(str, slot.cores)))
        start = time.time()
        status = train_job(run, args).run(slot)
        log.info("%s: %s after %.0fs", run.name, status, time.time() - start)
        return status
    finally:
        (run_dir / "runner.lock").unlink(missing_ok=True)


def cuda_device_count() -> int:
    """GPUs torch sees (0 without CUDA); asked only when runs are about to start here."""
    import torch

    return torch.cuda.device_count()


def local_slots(args: argparse.Namespace, runs: int) -> list[Slot]:
    """One slot per concurrent run (--jobs, or fewer when fewer ``runs`` are left, so no core stays idle): the
    runner's cores split between them, and with --device cuda or auto on a GPU machine one GPU per run (or per
    --runs_per_gpu runs)."""
    cores = affinity()[:usable_cores()]  # a cgroup CPU quota (docker --cpus) caps what the runs share
    gpus = [] if args.device == "cpu" else visible_gpus(os.environ, cuda_device_count())
    if args.device == "cuda" and not gpus:
        raise InputError("--device cuda: no GPU is visible to this process")
    jobs = min(args.jobs, max(1, runs))
    if jobs > len(cores):
        log.warning("--jobs %d on %d usable cores: the runs share cores, up to %d on each, and each runs slower "
                    "(--jobs %d gives every run a core of its own)", jobs, len(cores), -(-jobs // len(cores)),
                    len(cores))
    try:
        return assign_slots(jobs, cores, gpus, args.runs_per_gpu)
    except ValueError as error:
        raise InputError(str(error)) from None


def run_locally(todo: list[Run], args: argparse.Namespace) -> dict[str, str]:
    """Train ``todo`` here, --jobs at a time, each on a slot of its own."""
    slots = local_slots(args, len(todo))
    free: queue.Queue[Slot] = queue.Queue()
    for slot in slots:
        free.put(slot)

    def on_a_slot(run: Run) -> str:
        slot = free.get()
        try:
            return execute(run, args, slot)
        finally:
            free.put(slot)

    with ThreadPoolExecutor(max_workers=len(slots)) as pool:
        try:
            futures = {run.name: pool.submit(on_a_slot, run) for run in todo}
            # waited for a second at a time: a Ctrl-C the kernel hands to a worker thread (kill -INT of the
            # runner) is acted on by this main thread at its next wake-up, not when a run ends (hours later)
            while wait(list(futures.values()), timeout=1.0).not_done:
                pass
            return {name: future.result() for name, future in futures.items()}
        except KeyboardInterrupt:  # no run starts any more, and the running ones stop: then the pool can end
            pool.shutdown(wait=False, cancel_futures=True)
            stop_running()
            raise


def slurm_resources(args: argparse.Namespace) -> SlurmResources:
    return SlurmResources(partition=args.partition, gpus_per_run=args.gpus_per_run, cpus_per_run=args.cpus_per_run,
                          time=args.time, mem=args.mem, parallel=args.jobs)


def print_array(jobs: list[TrainJob], resources: SlurmResources) -> None:
    """The job array --executor slurm would submit: one line per array task (index, run, resources, command)."""
    print(f"# SLURM job array: {len(jobs)} task{'s' * (len(jobs) != 1)}, each {resources.describe()}"
          + (f", at most {resources.parallel} at once" if resources.parallel else ""))
    for index, job in enumerate(jobs):
        print(f"{index}\t{job.name}\t{resources.describe()}\t{shlex.join(job.command())}")


def run_on_slurm(todo: list[Run], args: argparse.Namespace) -> dict[str, str] | None:
    """Submit ``todo`` as one SLURM job array; with --wait, block until it ends and return the outcomes."""
    resources = slurm_resources(args)
    jobs = [train_job(run, args, threads=args.cpus_per_run) for run in todo]
    if args.dry_run:
        print_array(jobs, resources)
        return None
    if not jobs:
        return {}
    folder = Path(args.slurm_folder or Path(args.save_dir) / "_slurm")
    submitted = submit_array(jobs, resources, folder)
    for job, handle in zip(jobs, submitted, strict=True):
        log.info("submitted %s as SLURM job %s", job.name, handle.job_id)
    log.info("logs in %s; run names -> job ids in %s", folder, folder / "submitted.json")
    if not args.wait:
        log.info("not waiting: run 'python reproduce.py --report --dataset %s' when the array has ended; "
                 "the same command again resubmits what did not finish", args.dataset)
        return None
    return wait_for_array(jobs, submitted)


SLURM_DEFAULTS = SlurmResources()  # the one home of the per-task defaults
SLURM_ONLY = ("partition", "gpus_per_run", "cpus_per_run", "time", "mem", "slurm_folder", "wait")
LOCAL_ONLY = ("hours", "runs_per_gpu", "device")
# what only training a table reads: refused beside --report, --compare_test and --mention_study
TRAINING_ONLY = ("seeds", "only", "jobs", "max_runs", "early_stop", "train_args", "data_dir", "commit", *SLURM_ONLY,
                 *LOCAL_ONLY)
TEST_COPIES = {"retagged_test": ("retagged", "--retag_test"), "rebuilt_test": ("rebuilt", "--rebuild_test")}
EARLY_STOP = 30  # the runner's patience for new runs (train.py's own default is none)
RUNS_PER_GPU, DEVICE = 1, "auto"  # local placement: one run per GPU, on the GPUs when there are any


def joined_train_args(argv: list[str]) -> list[str]:
    """``--train_args VALUE`` as ``--train_args=VALUE``: argparse takes a value that starts with '-'
    (``--train_args "--deterministic"``) for a flag of its own and stops with 'expected one argument'."""
    joined: list[str] = []
    tokens = iter(argv)
    for token in tokens:
        if token == "--":
            joined += [token, *tokens]
        elif (len(token) >= 4 and "--train_args".startswith(token)  # argparse takes unique abbreviations: --tr
              and (value := next(tokens, None)) is not None):
            joined.append(f"--train_args={value}")
        else:
            joined.append(token)
    return joined


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(prog="reproduce.py", description=__doc__)
    parser.add_argument("--table", choices=("1", "5", "fig3", "all"), help="which table's runs to do")
    parser.add_argument("--dataset", default=TrainConfig.dataset,
                        help=f"dataset (default {TrainConfig.dataset}): one with a presets/<name>.json")
    parser.add_argument("--seeds", type=seed_value, nargs="+", action="extend",
                        help=f"seeds to run (default {' '.join(map(str, PAPER_SEEDS))}); the report always covers "
                        "those and every seed with a finished run")
    parser.add_argument("--jobs", type=positive_int,
                        help="runs at once (default 1 here; no limit on SLURM): here each gets its own cores and, "
                        "on a GPU machine, its own GPU (see --runs_per_gpu); on SLURM the array's task limit")
    parser.add_argument("--only", nargs="+", action="extend", metavar="PATTERN",
                        help="do only the planned runs whose name matches one of these shell patterns, e.g. "
                        "'*_K0_*' (short runs first, to finish before a machine is handed back)")
    parser.add_argument("--max_runs", type=positive_int, help="start at most this many runs (piecewise progress)")
    parser.add_argument("--hours", type=positive_float,
                        help="start a run only if it would end within this many hours (> 0) of the runner's start even"
                        " if it went all its epochs (the preset's, or --num_epoch in --train_args), at the epoch "
                        "times of earlier runs in <results_dir>/runs with its K (another K: a line through two or"
                        " more timed K); a run whose time cannot be estimated that way is not started either (run"
                        " some without --hours first to time epochs); for a machine lent for a known time, where "
                        "an unfinished run would be lost")
    parser.add_argument("--early_stop", type=non_negative_int,
                        help=f"patience passed to train.py for new runs (default {EARLY_STOP} epochs; 0 = full "
                        "preset epochs)")
    parser.add_argument("--train_args", help="extra flags for train.py, e.g. '--precision bf16'; "
                        "flags that change what a run computes (--lr, --num_epoch, ...) only with a --results_dir "
                        "and a --save_dir of your own, and the report lists them")
    parser.add_argument("--data_dir", help="passed to train.py (default: dataset/<dataset>); another folder only "
                        "with a --results_dir and a --save_dir of your own")
    parser.add_argument("--save_dir", help=f"run folders (checkpoints; default {TrainConfig.save_dir}/); not read by "
                        "--report")
    parser.add_argument("--results_dir", default=str(PROJECT_ROOT / "results"),
                        help="summaries (runs/), report and figures (default: results/)")
    parser.add_argument("--commit", action="store_true", help="git-commit each run's summary when it ends")
    parser.add_argument("--dry_run", action="store_true",
                        help="print each planned run as done, todo, later (beyond --max_runs) or skip (past "
                        "--hours at worst, the runs before it in its --jobs slot going all their preset epochs; or "
                        "not timed), as a real start would treat it (with --executor slurm: the job "
                        "array it would submit, one line per task); run nothing")
    parser.add_argument("--report", action="store_true",
                        help="only rewrite the report: <results_dir>/README.md, and README.md's results table when "
                        "<results_dir> is the project's results/")
    parser.add_argument("--compare_test", action="store_true",
                        help="score finished runs on the official test, on its retagged copy (our POS tags) and on "
                        "the rebuilt test (our POS tags and entity spans), then report")
    parser.add_argument("--mention_study", action="store_true",
                        help="decode finished runs' test split with and without --first_mentions, count the triples "
                        "predicted at repeated mentions and score both ways (results/mention_study.json), then "
                        "report")
    for name, (kind, flag) in TEST_COPIES.items():
        parser.add_argument(f"--{name}", help=f"--compare_test: the {kind} test file (default dataset/{kind}/webnlg/"
                            f"test.json; built with prepare_data.py {flag} when missing)")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error, not one line")
    where = parser.add_argument_group("where runs train")
    where.add_argument("--executor", choices=("local", "slurm"), default="local",
                       help="local: on this machine (default); slurm: submit the runs as a SLURM job array "
                       "(submitit); a preempted or timed-out task is requeued and resumes from its last.pt")
    where.add_argument("--device", choices=("auto", "cpu", "cuda"),
                       help="local: cuda gives each run a GPU through CUDA_VISIBLE_DEVICES; cpu hides the GPUs; "
                       f"auto uses the GPUs when there are any (default {DEVICE})")
    where.add_argument("--runs_per_gpu", type=positive_int,
                       help=f"local: runs sharing one GPU (default {RUNS_PER_GPU})")
    where.add_argument("--partition", help="slurm: partition (default: the cluster's default)")
    where.add_argument("--gpus_per_run", type=non_negative_int,
                       help=f"slurm: GPUs per task (default {SLURM_DEFAULTS.gpus_per_run})")
    where.add_argument("--cpus_per_run", type=positive_int,
                       help=f"slurm: CPUs per task, also train.py's --threads (default {SLURM_DEFAULTS.cpus_per_run})")
    where.add_argument("--time", type=positive_int,
                       help=f"slurm: time limit per task in minutes (default {SLURM_DEFAULTS.time}); a task that "
                       "reaches it is requeued and resumes")
    where.add_argument("--mem", help="slurm: memory per task as sbatch --mem takes it, e.g. 8G (default: the "
                       "partition's)")
    where.add_argument("--slurm_folder", help="slurm: submitit's files and the tasks' logs "
                       "(default <save_dir>/_slurm)")
    where.add_argument("--wait", action="store_true",
                       help="slurm: wait for the array to end, then write the report (else: reproduce.py --report "
                       "later)")
    args = parser.parse_args(joined_train_args(sys.argv[1:] if argv is None else argv))
    for name in ("save_dir", "results_dir", "data_dir", "slurm_folder"):  # train.py runs in the project root
        if getattr(args, name):
            setattr(args, name, str(Path(getattr(args, name)).absolute()))
    check_args(args, parser)
    return args


def flag_given(value: object) -> bool:
    """Whether a flag whose default is None (or False, for a switch) was given: 0 is a value (``0 == False``)."""
    return value is not None and value is not False


def committable(results_dir: Path) -> bool:
    """Whether a run summary in ``results_dir`` (made later, where it does not exist yet) could be committed: it
    lies in a git work tree, and git does not ignore it."""
    existing = results_dir
    while not existing.is_dir():
        existing = existing.parent
    summary = os.path.relpath(results_dir / "runs" / "run" / "results.json", existing)
    try:
        inside = subprocess.run(["git", "-C", str(existing), "rev-parse", "--is-inside-work-tree"],
                                capture_output=True, text=True).stdout.strip() == "true"  # "false" inside .git
        return inside and subprocess.run(["git", "-C", str(existing), "check-ignore", "-q", summary]).returncode == 1
    except OSError:
        return False


def check_args(args: argparse.Namespace, parser: ArgumentParser) -> None:
    """Refuse flags that do not apply to the chosen mode or executor, then fill in their defaults."""
    modes = [f"--{flag}" for flag in ("report", "compare_test", "mention_study") if getattr(args, flag)]
    if modes and (unused := [f"--{name}" for name in TRAINING_ONLY if flag_given(getattr(args, name))]
                  + ["--executor"] * (args.executor != "local")):
        parser.error(f"{', '.join(unused)}: only for training a --table; {' and '.join(modes)} would ignore "
                     f"{'them' if len(unused) > 1 else 'it'}")
    wrong = {name for name in (*SLURM_ONLY, *LOCAL_ONLY) if flag_given(getattr(args, name))} & set(
        LOCAL_ONLY if args.executor == "slurm" else SLURM_ONLY)
    if wrong:
        other = "local" if args.executor == "slurm" else "slurm"
        parser.error(f"{', '.join('--' + name for name in sorted(wrong))}: only with --executor {other}")
    if args.report and args.save_dir:
        parser.error("--save_dir: --report reads only the summaries in --results_dir")
    if given := [f"--{name}" for name in TEST_COPIES if getattr(args, name) and not args.compare_test]:
        parser.error(f"{', '.join(given)}: only with --compare_test")
    if args.runs_per_gpu and args.device == "cpu":
        parser.error("--runs_per_gpu: --device cpu trains on no GPU")
    if args.executor == "slurm" and not args.dry_run and not shutil.which("sbatch"):
        parser.error("--executor slurm: no sbatch here (SLURM's commands are not on the PATH); run reproduce.py on "
                     "a login node of the cluster, or add --dry_run to see the job array")
    if args.commit and not committable(Path(args.results_dir)):
        parser.error(f"--commit: {args.results_dir} is in no git work tree, or git ignores it (or git is missing): "
                     "no summary could be committed")
    defaults = {"device": DEVICE, "runs_per_gpu": RUNS_PER_GPU, "gpus_per_run": SLURM_DEFAULTS.gpus_per_run,
                "save_dir": str(PROJECT_ROOT / TrainConfig.save_dir),
                **{name: str(DATASETS_DIR / kind / "webnlg" / "test.json") for name, (kind, _) in TEST_COPIES.items()},
                "cpus_per_run": SLURM_DEFAULTS.cpus_per_run, "time": SLURM_DEFAULTS.time,
                "seeds": list(PAPER_SEEDS), "early_stop": EARLY_STOP, "train_args": ""}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if not (args.table or args.report or args.compare_test or args.mention_study):
        parser.error("nothing to do: pass --table (plan and train; with --dry_run, only plan), --report, "
                     "--compare_test or --mention_study")
    if args.report and (args.table or args.dry_run):
        parser.error("--report only rewrites the report (a --table run writes it too when it ends): drop --table "
                     "and --dry_run")
    scoring = [flag for flag in ("compare_test", "mention_study") if getattr(args, flag)]
    if scoring and (args.table or args.dry_run):
        verb = "s" * (len(scoring) == 1)
        parser.error(f"--{' and --'.join(scoring)} score{verb} finished runs and train{verb} nothing: drop --table "
                     "and --dry_run")
    if args.jobs is None and args.executor == "local":
        args.jobs = 1
    if args.time is not None and args.time < 3:  # submitit signals a task 90 s before its limit to requeue it
        parser.error(f"--time {args.time}: at least 3 minutes (a task is told to stop 90 s before its limit, and "
                     "resumes after a requeue)")
    if args.mem is not None:  # sbatch's forms: 16G, 16g, 16GB; a bare number is megabytes
        size = re.fullmatch(r"(\d+)(?:([KMGTkmgt])[Bb]?)?", args.mem)
        if not size or not size[2] and int(size[1]) < 1024:
            parser.error(f"--mem {args.mem}: a size as sbatch --mem takes it, e.g. 8G or 16000 (a bare number is "
                         "megabytes: below 1024, a unit was most likely meant)")
        args.mem = size[1] + (size[2] or "").upper()
    if args.partition is not None and not re.fullmatch(r"[\w.,-]+", args.partition):
        parser.error(f"--partition {args.partition!r}: a partition name (letters, digits, '_', '-', '.'; "
                     "several separated by ',')")
    if args.executor == "local" and args.device == "cuda" and not cuda_device_count():
        parser.error("--device cuda: this machine has no GPU that PyTorch can use")
    if args.train_args:
        check_train_args(args.train_args, parser, args.results_dir, args.save_dir)
    if (args.data_dir and Path(args.data_dir).resolve() != (DATASETS_DIR / args.dataset).resolve()
            and into_project_folders(args.results_dir, args.save_dir)):
        parser.error(f"--data_dir {args.data_dir}: results/ and saved_models/ hold the paper tables' runs, trained on "
                     f"dataset/{args.dataset}; runs on other data go into a --results_dir and a --save_dir of your "
                     "own")
    if args.dataset not in preset_datasets():
        raise InputError(f"unknown dataset {args.dataset!r} (no presets/{args.dataset}.json); known: "
                         f"{', '.join(preset_datasets())}")


# train.py settings the plan and the runner give each run: --train_args may not change them
RUNNER_SETS = (*NAMED, "run_id", "save_dir", "early_stop", "data_dir", "threads", "resume", "device")


def into_project_folders(results_dir: str, save_dir: str) -> bool:
    """Whether runs would go into the project's results/ or saved_models/, which hold the paper tables' runs."""
    project = {(PROJECT_ROOT / folder).resolve() for folder in ("results", TrainConfig.save_dir)}
    return bool({Path(results_dir).resolve(), Path(save_dir).resolve()} & project)


def check_train_args(train_args: str, parser: ArgumentParser, results_dir: str, save_dir: str) -> None:
    """--train_args checked by train.py's own parser before any run starts, and refused where it would change
    what a run's name promises (its K, seed, ...) or where the runner puts it; flags that change what a run
    computes otherwise (--lr, --num_epoch, ...) only into folders other than results/ and saved_models/."""
    try:
        tokens = shlex.split(train_args)
    except ValueError as error:
        parser.error(f"--train_args {train_args!r}: {error}")
    if {"-h", "--help"} & set(tokens):  # train.py would print its help and the runner go on to nothing
        parser.error("--train_args: --help lists train.py's flags: run python train.py --help")
    refusal = io.StringIO()
    try:
        with contextlib.redirect_stderr(refusal):
            parsed = train_parse_args(tokens)  # given_flags leaves out --resume: no setting, but the runner's
    except SystemExit:  # train.py's one-line error, told as this runner's: the flag came through --train_args
        parser.exit(2, f"{parser.prog}: error: --train_args: {refusal.getvalue().removeprefix(TRAIN_ERROR)}")
    given = set(given_flags(parsed)) | {key for key in RUNNER_SETS if getattr(parsed, key, None) is not None}
    taken = sorted(given & set(RUNNER_SETS))
    if taken:
        parser.error(f"--train_args: {', '.join('--' + key for key in taken)}: set for each run by the plan or by "
                     "this runner's own flags")
    changed = sorted(given & set(HYPERPARAMETERS))
    if changed and into_project_folders(results_dir, save_dir):
        parser.error(f"--train_args: {', '.join('--' + key for key in changed)} change what the table's runs "
                     "compute, which their names do not say; results/ and saved_models/ hold runs of the paper's "
                     "settings: pass a --results_dir and a --save_dir of your own for such runs")


def warn_untimed(todo: list[Run], args: argparse.Namespace) -> None:
    """One warning line when --hours cannot vouch for some runs to do, so that a runner which starts none of
    them says why at the top of its log, not only run by run."""
    blind, why = budget_of(args).untimed_runs(todo)
    if blind:
        log.warning("--hours %g: %d of the %d runs to do are not started, their time cannot be estimated: %s; "
                    "start some without --hours to time epochs (runs of two K give a line for the other K)",
                    args.hours, len(blind), len(todo), why)


def buildable_test(test_file: Path, flag: str) -> Path:
    """The --out for ``prepare_data.py {flag}`` to build the missing ``test_file``: it must be OUT/webnlg/test.json,
    in a folder of its own (prepare_data.py replaces OUT/webnlg whole: never the project's dataset/webnlg)."""
    option = f"--{'retagged' if flag == '--retag_test' else 'rebuilt'}_test {test_file}"
    if test_file.name != "test.json" or test_file.parent.name != "webnlg":
        raise InputError(f"{option}: no such file; to have it built, name a path OUT/webnlg/test.json")
    out = test_file.parent.parent
    if out.resolve() == DATASETS_DIR.resolve():
        raise InputError(f"{option}: building it would replace the prepared dataset/webnlg; name a path under "
                         "another folder (default: dataset/retagged/webnlg/test.json, dataset/rebuilt/...)")
    return out


def finish(outcomes: dict[str, str]) -> None:
    """Log each run's outcome; exit non-zero naming the runs that failed."""
    log.info("outcomes: %s", json.dumps(outcomes, indent=1))
    failed = [name for name, outcome in outcomes.items() if outcome.startswith("failed")]
    if failed:
        refused = [name for name in failed if outcomes[name].startswith(f"failed: {TRAIN_ERROR}")]
        advice = ("fix what train.py says there (in the data, or in this command's flags), then run it again: "
                  "finished runs are kept, the others resume" if refused
                  else "running the same command again resumes them")
        raise SystemExit(f"reproduce.py: {len(failed)} of {len(outcomes)} runs failed: {', '.join(failed)} "
                         f"(see their stdout.log; {advice})" + "".join(
                             f"\n  {name}: {outcomes[name].removeprefix('failed: ').rsplit(' (see ', 1)[0]}"
                             for name in refused[:5]))


def main(argv: list[str] | None = None) -> Plan | None:
    """The command line: an expected error (a flag, a file, a dataset) is one line on stderr and exit status 1
    (:class:`ErrorExit`); --debug shows its traceback instead. The flags' own checks read files (presets, test
    copies), so they run inside too."""
    with one_line_errors("reproduce.py", debug="--debug" in (sys.argv[1:] if argv is None else argv)):
        return reproduce(parse_args(argv))


def reproduce(args: argparse.Namespace) -> Plan | None:
    """Plan the table's runs, train what is missing (or only report, or study), and write the report."""
    args.deadline = None if args.hours is None else time.time() + args.hours * 3600
    setup_logging()
    results_dir = Path(args.results_dir)
    reporting = args.report or args.compare_test or args.mention_study
    for flag in ("results_dir",) if reporting else ("save_dir", "results_dir"):  # where runs and summaries will
        try:  # be written: before any run trains, not at its end
            check_folder_path(getattr(args, flag), f"--{flag}")
        except InputError as error:
            if not args.dry_run:
                raise
            log.warning("a real start would stop here: %s", error)  # a dry run still lists what it would do
    for flag in ("report", "compare_test", "mention_study"):
        if getattr(args, flag) and not any((results_dir / "runs").glob("*/results.json")):
            raise InputError(f"--{flag}: {results_dir / 'runs'} " + ("holds " if (results_dir / "runs").is_dir()
                                                                     else "does not exist: ")
                             + "no run summaries (<run>/results.json) to report on; train some with --table first")
    if args.compare_test:
        if args.dataset != "webnlg":
            raise InputError(f"--compare_test --dataset {args.dataset}: the retagged and rebuilt tests exist for "
                             "webnlg only")
        retagged, rebuilt = Path(args.retagged_test), Path(args.rebuilt_test)
        for test_file, flag in ((retagged, "--retagged_test"), (rebuilt, "--rebuilt_test")):  # before any building
            if test_file.exists() and next(read_json_records(test_file), None) is None:
                raise InputError(f"{flag} {test_file}: no sentences")
        to_build = {flag: buildable_test(test_file, flag)  # both checked before either is built
                    for test_file, flag in ((retagged, "--retag_test"), (rebuilt, "--rebuild_test"))
                    if not test_file.exists()}
        if not finished_checkpoints(args.dataset, Path(args.save_dir), results_dir):  # nothing to build the copies for
            log.warning("no finished run of %s with a best.pt in %s: nothing to score on the test copies",
                        args.dataset, args.save_dir)
        else:
            for flag, out in to_build.items():
                import prepare_data

                prepare_data.main(["--dataset", args.dataset, flag, "--out", str(out)])
            compare_test_files(args.dataset, Path(args.save_dir), results_dir, retagged, rebuilt)
    if args.mention_study:
        mention_study(args.dataset, Path(args.save_dir), results_dir)
    if reporting:
        write_report(args.dataset, results_dir)
        return None
    plan = plan_runs(args.table, args.dataset, args.seeds)
    if args.only:
        if unmatched := [p for p in args.only if not any(fnmatchcase(run.name, p) for run in plan.runs)]:
            raise InputError(f"--only {' '.join(unmatched)}: no planned run of table {args.table} matches (they "
                             f"are named like {plan.runs[0].name})")
        plan.runs = [run for run in plan.runs if any(fnmatchcase(run.name, pattern) for pattern in args.only)]
    save_dir = Path(args.save_dir)
    foreign = foreign_runs(plan.runs, args)
    refusal = InputError(f"{len(foreign)} run folder(s) hold runs trained with other settings than the table's; "
                         f"move them away or pass another --save_dir (and --results_dir): {'; '.join(foreign)}")
    if foreign and not (args.dry_run and args.executor == "local"):  # that lists the plan first, then refuses
        raise refusal
    todo = [r for r in plan.runs if not is_finished(r.name, save_dir, results_dir)]
    log.info("table %s on %s: %d runs planned, %d still to do", args.table, args.dataset, len(plan.runs), len(todo))
    if todo:  # every run would fail at once on data that is not there, or that lacks the POS tags they use
        data_dir = resolve_project_path(args.data_dir or DATASETS_DIR / args.dataset)
        try:
            check_data_files(data_dir, args.dataset)
            if lacks_pos_tags(data_dir) and (tagged := [run.name for run in todo if run.pos_dim > 0]):
                raise InputError(f"{data_dir} has no POS tags (its labels.json), which {len(tagged)} of the runs to "
                                 f"do use (e.g. {tagged[0]}): prepare the data with a tagger")
        except InputError as error:
            if not args.dry_run:
                raise
            log.warning("the runs to do cannot start yet: %s", error)
    hours, untimed_runs = budget_of(args).core_hours(todo)
    if len(todo) > untimed_runs:
        log.info("at most about %.1f core-hours if no run stops early (epoch times of earlier runs)%s", hours,
                 f", and {untimed_runs} of the runs to do not yet timed" if untimed_runs else "")
    if todo and args.deadline is not None:
        warn_untimed(todo[: args.max_runs] if args.max_runs else todo, args)
    for run in plan.runs:  # finished here: its summary (not an unfinished attempt's over a committed summary)
        if run not in todo and has_results(save_dir / run.name) and not args.dry_run:
            copy_summary(save_dir / run.name, results_dir)
    unfinished, todo = todo, todo[: args.max_runs] if args.max_runs else todo
    if args.executor == "slurm":
        outcomes = run_on_slurm(todo, args)
        if outcomes is None:
            return plan
    elif args.dry_run:  # what a real start would do with each run
        verdicts = budget_of(args).dry_run_verdicts(todo, args.jobs)
        for run in plan.runs:
            reason = verdicts.get(run)
            word = ("done" if run not in unfinished else "later" if run not in todo else "skip" if reason
                    else "todo")
            note = f" (beyond --max_runs {args.max_runs})" if word == "later" else f" ({reason})" if reason else ""
            if word == "todo" and (save_dir / run.name / "config.json").exists():
                done = epochs_done(save_dir / run.name)
                note = f" (resumed after {done} epoch{'s' * (done != 1)})"
            if any(entry.startswith(f"{folder / run.name}:") for entry in foreign
                   for folder in (save_dir, results_dir / "runs")):
                word, note = "refused", " (trained with other settings: see below)"
            print(f"{word} {run.name}{note}")
        if foreign:
            raise refusal
        return plan
    else:
        outcomes = run_locally(todo, args)
    write_report(args.dataset, results_dir)
    finish(outcomes)
    return plan


if __name__ == "__main__":
    main()
