"""Where and how a planned run trains: a share of this machine (GPU or cores) or a SLURM job array.

One TrainJob trains (or resumes) one run in a train.py subprocess. reproduce.py runs TrainJobs itself on this
machine (``--executor local``; each concurrent run gets a Slot: one GPU or a share of one through
CUDA_VISIBLE_DEVICES, and its own CPU cores through the child's affinity) or submits them as a SLURM job array
through submitit (``--executor slurm``). A TrainJob decides at the moment it starts whether to start or resume,
so a job that SLURM requeues (preemption, time limit) or that is submitted again later continues from the
run's last.pt, and a finished run is never trained twice.
"""
from __future__ import annotations

import ctypes
import dataclasses
import fcntl
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from model.run import has_results, results_problem
from utils.errors import InputError
from utils.files import read_json, write_json
from utils.project import PROJECT_ROOT

log = logging.getLogger(__name__)
SUMMARY_FILES = ("config.json", "metrics.jsonl", "results.json", "prepare_report.json")
INTERRUPTED = (130, 143, -2, -15)  # train.py's exit on Ctrl-C or SIGTERM (one_line_errors), or the signal's
TRAIN_ERROR = "train.py: error: "  # how train.py's one-line errors begin (utils.errors.one_line_errors)
RUNNING: set[subprocess.Popen] = set()  # this process's train.py children, stopped with it (stop_running)


@dataclasses.dataclass(frozen=True)
class Slot:
    """What one of the runs trained at once on this machine gets: ``gpu`` is the child's CUDA_VISIBLE_DEVICES
    ("" hides every GPU, for CPU runs), ``cores`` the CPUs it is pinned to (its thread count)."""

    gpu: str
    cores: tuple[int, ...]


def visible_gpus(environ: Mapping[str, str], count: int) -> list[str]:
    """The GPUs this process may hand out, as CUDA_VISIBLE_DEVICES entries: the runner's own
    CUDA_VISIBLE_DEVICES list where set (so a child gets "2", not "0", when the runner was given GPUs 2,3),
    else 0..count-1 (``count`` from torch.cuda.device_count())."""
    listed = environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [entry.strip() for entry in listed.split(",") if entry.strip()][:count]
    return [str(index) for index in range(count)]


def assign_slots(jobs: int, cores: Sequence[int], gpus: Sequence[str], runs_per_gpu: int = 1) -> list[Slot]:
    """``jobs`` slots: with GPUs, slot i gets GPU i // runs_per_gpu (refused if there are too few GPUs); the
    cores are split into ``jobs`` contiguous groups (one core each, shared round-robin, when there are fewer
    cores than jobs), so concurrent runs never compete for a core as they would unpinned."""
    if jobs < 1 or runs_per_gpu < 1 or not cores:
        raise ValueError(f"need jobs >= 1, runs_per_gpu >= 1 and some cores (got {jobs}, {runs_per_gpu}, {cores})")
    if gpus and jobs > len(gpus) * runs_per_gpu:
        raise ValueError(f"--jobs {jobs} with --runs_per_gpu {runs_per_gpu} needs {-(-jobs // runs_per_gpu)} GPUs; "
                         f"{len(gpus)} visible ({','.join(gpus)}): lower --jobs or raise --runs_per_gpu")
    if jobs > len(cores):
        groups = [(cores[index % len(cores)],) for index in range(jobs)]
    else:
        size, extra = divmod(len(cores), jobs)
        starts = [index * size + min(index, extra) for index in range(jobs + 1)]
        groups = [tuple(cores[starts[index]:starts[index + 1]]) for index in range(jobs)]
    return [Slot(gpus[index // runs_per_gpu] if gpus else "", group) for index, group in enumerate(groups)]


def run_is_busy(run_dir: Path) -> bool:
    """Whether a train.py holds ``run_dir`` (its flock on train.lock). flock works across the nodes of a shared
    filesystem and is released when its holder dies, unlike a pid, which says nothing on another node."""
    lock = run_dir / "train.lock"
    if not lock.exists():
        return False
    with open(lock, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def copy_summary(run_dir: Path, results_dir: Path) -> None:
    """The run's small files (not its checkpoints) to results_dir/runs/<run>/, where the report reads them."""
    target = results_dir / "runs" / run_dir.name
    target.mkdir(parents=True, exist_ok=True)
    for name in SUMMARY_FILES:
        if (run_dir / name).exists():
            target.joinpath(name).write_bytes((run_dir / name).read_bytes())


def stop_running(grace_seconds: float = 5.0) -> None:
    """SIGTERM for the train.py children still running ``grace_seconds`` after the runner was interrupted: a
    Ctrl-C at a terminal reaches them itself, a ``kill`` of the runner alone does not (they would train on, for
    hours, while it waits for them). SIGTERM, not SIGINT: children of a background runner (``nohup ... &``)
    ignore SIGINT; train.py stops on either as it does on Ctrl-C. (A ``kill -9`` of the runner: _child_setup.)"""
    deadline = time.time() + grace_seconds
    for process in list(RUNNING):
        try:
            process.wait(timeout=max(0.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            process.terminate()


def is_finished(name: str, save_dir: Path, results_dir: Path) -> bool:
    """A run is finished once it has a readable results.json, in its run folder or in its committed summary; a
    damaged one is warned about (once), saying what follows: the other copy counts, or the run is resumed, which
    writes the file again."""
    run_file, summary_file = save_dir / name / "results.json", results_dir / "runs" / name / "results.json"
    problems = {path: results_problem(path) for path in (run_file, summary_file) if path.exists()}
    finished = any(problem is None for problem in problems.values())
    for path, problem in problems.items():
        if problem is not None and path not in _WARNED:
            _WARNED.add(path)
            if not finished:
                then = ("the run counts as unfinished: the runner resumes it, which writes the file again (or "
                        "trains it anew where no run folder is left)")
            elif path == run_file:
                then = (f"the run counts as finished by its summary {summary_file}; python train.py --resume "
                        f"{run_file.parent} writes this file again")
            else:
                then = f"the run counts as finished by {run_file}, which the runner copies over it"
            log.warning("%s; %s", problem, then)
    return finished


_WARNED: set[Path] = set()


def _libc_prctl() -> Callable | None:
    """Linux's prctl, looked up once before any fork (a forked child of a threaded runner should call no more
    than it must); None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _libc_prctl()
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _child_setup(slurm: bool) -> Callable[[], None] | None:
    """What a train.py child does before it starts: on Linux it gets SIGTERM when the runner dies, even by
    ``kill -9`` (stop_running cannot run then), so no training goes on unwatched, unrecorded and holding its run
    against the next runner; it stops as on Ctrl-C and the next runner resumes it. In a SLURM job it also
    ignores SIGUSR2 (submitit's preemption and time-limit signal, sent to every process of the job): that is for
    the job's submitit process, which stops the child itself and requeues."""
    if _PRCTL is None and not slurm:
        return None  # nothing to do: the child runs no Python code of ours before train.py
    runner = os.getpid()

    def setup() -> None:
        if _PRCTL is not None:
            if _PRCTL(PR_SET_PDEATHSIG, int(signal.SIGTERM)) != 0:
                os.write(2, b"reproduce.py: prctl(PR_SET_PDEATHSIG) refused: this train.py outlives a kill -9 of "
                            b"the runner\n")
            elif os.getppid() != runner:  # the runner died before the line above
                os._exit(128 + signal.SIGTERM)
        if slurm:
            signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    return setup


def stop_child(pid: int, grace_seconds: float = 60.0) -> None:
    """SIGTERM the child ``pid``, SIGKILL it after ``grace_seconds``, and reap it. Reaped with os.waitpid, not
    Popen.wait: this runs in a signal handler that interrupted Popen.wait, which holds the Popen's lock."""
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.time() + grace_seconds
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.time() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return
            time.sleep(0.1)
    except (ProcessLookupError, ChildProcessError):
        pass  # it had already ended (and been reaped)


@dataclasses.dataclass
class TrainJob:
    """Train or resume one run: a picklable description (plain data, pickled by reference to this class by
    submitit) and the code that runs it in a train.py subprocess."""

    name: str
    start_args: tuple[str, ...]  # train.py flags of a fresh start (--run_id and --save_dir included)
    save_dir: str
    results_dir: str
    threads: int | None = None  # --threads for train.py; None: the child's cores (local) or all it may use
    executor: str = "local"  # "slurm": the job of a SLURM array task
    commit: bool = False  # git-commit the run's summary when it ends (reproduce.py --commit)
    resume_args: tuple[str, ...] = ()  # flags a resumed run takes too (how it computes: settings.RESUME_FREE)
    _process: subprocess.Popen | None = dataclasses.field(default=None, init=False, repr=False, compare=False)

    @property
    def run_dir(self) -> Path:
        return Path(self.save_dir) / self.name

    def command(self) -> list[str]:
        """train.py --resume where the run has started (its config.json exists), else a fresh start."""
        resume = (self.run_dir / "config.json").exists()
        args = ["--resume", str(self.run_dir), *self.resume_args] if resume else list(self.start_args)
        return [sys.executable, str(PROJECT_ROOT / "train.py"), *args,
                *(["--threads", str(self.threads)] if self.threads else [])]

    def __call__(self) -> str:
        """Entry point of a SLURM array task (submitit calls it; again after a requeue)."""
        return self.run()

    def checkpoint(self) -> object:
        """submitit calls this on preemption or near the time limit: stop train.py (its last.pt, written after
        every epoch, is the checkpoint) and requeue this same job, which then resumes the run."""
        import submitit

        if self._process is not None:
            stop_child(self._process.pid)
        return submitit.helpers.DelayedSubmission(dataclasses.replace(self))

    def run(self, slot: Slot | None = None) -> str:
        """Train or resume the run unless it is finished or another train.py holds it; returns what happened
        (a failure starts with "failed")."""
        results_dir = Path(self.results_dir)
        if is_finished(self.name, Path(self.save_dir), results_dir):
            return "skipped: finished"
        if run_is_busy(self.run_dir):
            return "skipped: another train.py is training it"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        resume = (self.run_dir / "config.json").exists()
        command = self.command()
        env = dict(os.environ)
        threads = self.threads
        if slot is not None:
            env["CUDA_VISIBLE_DEVICES"] = slot.gpu
            threads = threads or len(slot.cores)
            command += [] if self.threads else ["--threads", str(threads)]
            # the slot's device, resumes included: a run begun by hand on cuda:1 resumes on this slot's GPU
            command += ["--device", "cuda" if slot.gpu else "cpu"]
        start = time.time()
        with open(self.run_dir / "stdout.log", "a") as out:
            out.write(f"$ {shlex.join(command)}\n")
            out.flush()
            logged_from = out.tell()
            self._process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT, env=env,
                preexec_fn=_child_setup(self.executor == "slurm"))
            RUNNING.add(self._process)
            try:
                if slot is not None and hasattr(os, "sched_setaffinity"):
                    try:  # the child has just been exec'd: threads it starts later inherit this affinity
                        os.sched_setaffinity(self._process.pid, slot.cores)
                    except ProcessLookupError:
                        pass  # it has already exited; its exit code says why
                code = self._process.wait()
            finally:
                RUNNING.discard(self._process)
        self._process = None
        wall = time.time() - start
        self.record(resume, code, wall, threads, slot)
        copy_summary(self.run_dir, results_dir)
        if self.commit:
            commit_summary(results_dir / "runs" / self.name, self.name)
        if code == 0:
            return "finished"
        results = self.run_dir / "results.json"
        if code in INTERRUPTED and has_results(self.run_dir) and results.stat().st_mtime >= start:
            return f"finished (train.py was stopped as it ended, exit {code}, after writing {results})"
        if error := train_error(self.run_dir / "stdout.log", logged_from):
            return f"failed: {error} (see {self.run_dir / 'stdout.log'})"
        if code in INTERRUPTED:
            return f"failed: train.py was interrupted (exit {code}); it resumes from its last epoch when run again"
        return f"failed (train.py exit {code}; see {self.run_dir / 'stdout.log'})"

    def record(self, resume: bool, code: int, wall: float, threads: int | None, slot: Slot | None) -> None:
        """Append this invocation to results_dir/runs/<run>/runner.json: where and how long it ran."""
        runner_file = Path(self.results_dir) / "runs" / self.name / "runner.json"
        runner_file.parent.mkdir(parents=True, exist_ok=True)
        history = read_json(runner_file) if runner_file.exists() else {"invocations": []}
        where = {"executor": self.executor, "host": socket.gethostname()}
        if slot is not None:
            where |= {"cuda_visible_devices": slot.gpu, "cores": list(slot.cores)}
        if "SLURM_JOB_ID" in os.environ:
            where["slurm_job"] = "_".join(os.environ[key] for key in ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID")
                                          if key in os.environ) or os.environ["SLURM_JOB_ID"]
        history["invocations"].append({"resumed": resume, "wall_seconds": round(wall, 1), "exit_code": code,
                                       "threads": threads, "ended": time.strftime("%Y-%m-%dT%H:%M:%S"), **where})
        history["wall_seconds_total"] = round(sum(i["wall_seconds"] for i in history["invocations"]), 1)
        write_json(runner_file, history)


def train_error(log_file: Path, offset: int) -> str | None:
    """The one-line error train.py gave in ``log_file`` after byte ``offset`` (what a user must fix before a
    run can go on: data, flags, a damaged folder), or None where it stopped otherwise (a crash, a signal)."""
    with open(log_file, "rb") as handle:
        handle.seek(offset)
        lines = handle.read().decode("utf-8", errors="replace").splitlines()
    return next((line for line in reversed(lines) if line.startswith(TRAIN_ERROR)), None)


def commit_summary(folder: Path, name: str) -> None:
    """Commit ``folder`` in the repository that holds it, which need not be the one this code runs from (a
    runner started from a scratch worktree with ``--results_dir`` in the main checkout)."""
    for _ in range(5):  # another commit may hold the index lock for a moment
        added = subprocess.run(["git", "add", "."], cwd=folder, capture_output=True)
        done = subprocess.run(["git", "commit", "-q", "-m", f"results: {name}", "--", "."],
                              cwd=folder, capture_output=True)
        if added.returncode == 0 and done.returncode in (0, 1):
            return
        time.sleep(2)
    log.warning("could not commit %s: %s", folder, done.stderr.decode().strip())


@dataclasses.dataclass(frozen=True)
class SlurmResources:
    """What each array task asks SLURM for (reproduce.py's --partition, --gpus_per_run, --cpus_per_run,
    --time in minutes, --mem as sbatch takes it, e.g. 8G)."""

    partition: str | None = None
    gpus_per_run: int = 0
    cpus_per_run: int = 2
    time: int = 24 * 60
    mem: str | None = None
    parallel: int | None = None  # at most this many tasks at once (--jobs); None: as SLURM schedules them

    def describe(self) -> str:
        parts = [f"partition={self.partition or '(default)'}", f"gpus={self.gpus_per_run}",
                 f"cpus={self.cpus_per_run}", f"time={self.time}min", f"mem={self.mem or '(default)'}"]
        return " ".join(parts)

    def parameters(self, tasks: int) -> dict:
        """submitit.SlurmExecutor parameters (sbatch options) for an array of ``tasks`` runs."""
        chosen = {"job_name": "rin", "time": self.time, "cpus_per_task": self.cpus_per_run, "ntasks_per_node": 1,
                  "array_parallelism": min(tasks, self.parallel or tasks), "stderr_to_stdout": True,
                  # the jobs import this project's code (the pickled TrainJob refers to experiments.launch)
                  "setup": [f"export PYTHONPATH={shlex.quote(str(PROJECT_ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}"]}
        if self.partition:
            chosen["partition"] = self.partition
        if self.gpus_per_run:
            chosen["gpus_per_node"] = self.gpus_per_run
        else:  # SLURM sets no CUDA_VISIBLE_DEVICES then: on a node without GPU cgroups train.py would take its GPUs
            chosen["setup"].append("export CUDA_VISIBLE_DEVICES=")
        if self.mem:
            chosen["mem"] = self.mem
        return chosen


def submit_array(jobs: list[TrainJob], resources: SlurmResources, folder: Path) -> list:
    """Submit ``jobs`` as one SLURM job array (submitit.SlurmExecutor); its logs and submitit's files go to
    ``folder``, and folder/submitted.json maps each run to its array task (for scancel, squeue, sacct)."""
    import submitit

    # a requeue after each time limit continues the run, so allow many (submitit's default is 3)
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=100)
    executor.update_parameters(**resources.parameters(len(jobs)))
    try:
        submitted = executor.submit_array(jobs)
    except submitit.core.utils.FailedJobError as error:  # sbatch refused it (partition, limits, memory...)
        lines = str(error).strip().splitlines() or ["no message"]
        raise InputError(f"sbatch refused the job array: {lines[-1]}") from None
    record = read_json(folder / "submitted.json") if (folder / "submitted.json").exists() else {}
    record |= {job.name: handle.job_id for job, handle in zip(jobs, submitted, strict=True)}
    write_json(folder / "submitted.json", record)
    return submitted


def queued_jobs() -> set[str] | None:
    """SLURM job ids (array tasks as ARRAY_TASK) still pending, running, requeued or completing; None when
    squeue does not answer (a busy controller: ask again later). Asked of squeue, since sacct needs an
    accounting database that small clusters often lack."""
    try:
        listed = subprocess.run(["squeue", "--noheader", "--array", "--format=%i"], capture_output=True, text=True,
                                check=True, timeout=120).stdout
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return None
    return {line.strip() for line in listed.splitlines() if line.strip()}


def wait_for_array(jobs: list[TrainJob], submitted: list, poll_seconds: float = 5.0) -> dict[str, str]:
    """Block until every task of the array has left the queue; each run's outcome (what its TrainJob returned,
    or why it has none: cancelled, killed, out of memory...)."""
    outcomes: dict[str, str] = {}
    while len(outcomes) < len(jobs):
        queued = queued_jobs()
        for job, handle in zip(jobs, submitted, strict=True):
            if queued is None:
                break
            if job.name in outcomes or (handle.job_id in queued and not handle.paths.result_pickle.exists()):
                continue
            if handle.paths.result_pickle.exists():
                try:
                    outcomes[job.name] = handle.result()
                except Exception as error:  # the job's exception, raised again here by submitit
                    outcomes[job.name] = f"failed: {str(error).strip().splitlines()[-1]}"
            else:
                outcomes[job.name] = (f"failed: SLURM task {handle.job_id} ended without a result (cancelled or "
                                      f"killed; its log: {handle.paths.stdout}); submit again to resume it")
        if len(outcomes) < len(jobs):
            time.sleep(poll_seconds)
    return outcomes
