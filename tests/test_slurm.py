"""reproduce.py --executor slurm against a real one-node SLURM cluster (tests/slurm_cluster.py), and the
SLURM job's code (TrainJob) through submitit's local executor.

The integration test trains a tiny table (three runs on generated data) twice: on this machine
(--executor local), then as a SLURM job array in which one task is cancelled mid-run (scancel) and one is
preempted (SIGUSR2, as SLURM signals a job before its time limit: submitit requeues it); the cancelled run is
submitted again. Every run must end with the metrics of its local twin, epoch by epoch.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from slurm_cluster import Cluster, why_unavailable

import prepare_vocab
import reproduce
from data.synthetic import write_synthetic_dataset
from experiments.launch import TrainJob
from model.run import epoch_records
from utils.project import PROJECT_ROOT

RUNS = ["webnlg_partial_K2_seed1", "webnlg_partial_K0_seed1", "webnlg_exact_K0_seed1"]
CANCELLED, PREEMPTED = RUNS[0], RUNS[1]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    # epochs of ~2 s with one thread, so a task can be stopped between its first and its last epoch
    folder = write_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), sizes=(1500, 40, 40))
    prepare_vocab.main(["--data_dir", str(folder), "--wv_file", "none"])
    return folder


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if reason := why_unavailable():
        pytest.skip(reason)
    pytest.importorskip("submitit", reason="submitit is not installed (pip install -r requirements.txt)")
    running = Cluster(tmp_path_factory.mktemp("slurm"))
    try:
        running.start()
        yield running
    finally:
        running.stop()


def table_args(data_dir: Path, root: Path) -> list[str]:
    return ["--table", "1", "--dataset", "webnlg", "--seeds", "1", "--only", *RUNS, "--data_dir", str(data_dir),
            "--save_dir", str(root / "runs"), "--results_dir", str(root / "results"), "--early_stop", "0",
            "--train_args", "--num_epoch 3 --eval_batch_size 50 --lr 0.002"]


def slurm_command(data_dir: Path, root: Path, *extra: str) -> list[str]:
    return [sys.executable, str(PROJECT_ROOT / "reproduce.py"), *table_args(data_dir, root), "--executor", "slurm",
            "--cpus_per_run", "1", "--time", "10", "--slurm_folder", str(root / "slurm"), *extra]


def wait_until(condition, timeout: float, what: str, details=lambda: "") -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{details()}")
        time.sleep(0.2)


def queued(env: dict) -> list[str]:
    listed = subprocess.run(["squeue", "--noheader", "--array", "--format=%i %T"], env=env, capture_output=True,
                            text=True, check=True).stdout
    return [line for line in listed.splitlines() if line.strip()]


@pytest.mark.slow
def test_slurm_array_survives_cancel_and_preemption(cluster, data_dir, tmp_path):
    env = {**os.environ, **cluster.env}
    local, remote = tmp_path / "local", tmp_path / "slurm"

    # the reference: the same table trained on this machine, one thread per run as each SLURM task has
    reproduce.main([*table_args(data_dir, local), "--jobs", "2", "--device", "cpu"])
    assert sorted(p.parent.name for p in (local / "runs").glob("*/results.json")) == sorted(RUNS)

    # the whole array, as --dry_run prints it: one task per run, with its resources and command
    dry = subprocess.run(slurm_command(data_dir, remote, "--dry_run"), capture_output=True, text=True, env=env)
    tasks = [line.split("\t") for line in dry.stdout.splitlines() if not line.startswith("#")]
    assert dry.returncode == 0 and [(task[0], task[1]) for task in tasks] == [(str(i), r) for i, r in enumerate(RUNS)]
    assert all("cpus=1 time=10min" in task[2] and "--threads 1" in task[3] for task in tasks)

    # submit without waiting; two tasks run at once on the node's two CPUs
    submitted = subprocess.run(slurm_command(data_dir, remote), capture_output=True, text=True, env=env, timeout=60)
    assert submitted.returncode == 0, submitted.stderr
    job_ids = json.loads((remote / "slurm" / "submitted.json").read_text())
    assert sorted(job_ids) == sorted(RUNS)

    def after_first_epoch(name):
        metrics = remote / "runs" / name / "metrics.jsonl"
        return metrics.exists() and len(metrics.read_text().splitlines()) >= 1

    # preemption: SIGUSR2 (what SLURM sends before a time limit or, configured so, a preemption); submitit calls
    # TrainJob.checkpoint (stops train.py), requeues the task, and the requeued task resumes from last.pt
    wait_until(lambda: after_first_epoch(PREEMPTED), 120, f"{PREEMPTED}'s first epoch")
    subprocess.run(["scancel", "--signal=USR2", job_ids[PREEMPTED]], env=env, check=True)
    # cancelled: the task is killed and not requeued; only submitting again finishes the run
    wait_until(lambda: after_first_epoch(CANCELLED), 120, f"{CANCELLED}'s first epoch")
    subprocess.run(["scancel", job_ids[CANCELLED]], env=env, check=True)
    assert not (remote / "runs" / CANCELLED / "results.json").exists(), "cancelled too late: the run had finished"

    def diagnosis() -> str:
        logs = [path for suffix in ("out", "err")
                for path in sorted((remote / "slurm").glob(f"{job_ids[PREEMPTED]}_*_log.{suffix}"))]
        listed = subprocess.run(["squeue", "--noheader", "--array", "--format=%i %T %r"], env=env,
                                capture_output=True, text=True)
        return "\n".join([f"queue: {listed.stdout.strip() or listed.stderr.strip()}",
                          *(f"--- {path.name}\n{path.read_text()[-2000:]}" for path in logs), cluster.logs()])

    # the preempted task is requeued and starts again after CRED_EXPIRE seconds (tests/slurm_cluster.py); an
    # earlier start (scontrol update StartTime=now) can find its old credential still revoked and fail
    wait_until(lambda: any(line.split()[0] == job_ids[PREEMPTED] and "PENDING" in line for line in queued(env)),
               60, "the preempted task to be requeued", diagnosis)
    results = remote / "runs" / PREEMPTED / "results.json"
    wait_until(lambda: not queued(env), 180, "the array to end", diagnosis)
    assert not (remote / "runs" / CANCELLED / "results.json").exists()
    assert results.exists(), f"the requeued task ended without its results\n{diagnosis()}"
    preempted = json.loads((remote / "results" / "runs" / PREEMPTED / "runner.json").read_text())["invocations"]
    assert preempted[-1]["resumed"] and preempted[-1]["exit_code"] == 0 and preempted[-1]["executor"] == "slurm"
    assert "--resume" in (remote / "runs" / PREEMPTED / "stdout.log").read_text()

    # submit again and wait: the finished runs are skipped, the cancelled one resumes; the report is written
    again = subprocess.run(slurm_command(data_dir, remote, "--wait"), capture_output=True, text=True, env=env,
                           timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "3 runs planned, 1 still to do" in again.stderr
    resubmitted = json.loads((remote / "slurm" / "submitted.json").read_text())
    assert resubmitted[CANCELLED] != job_ids[CANCELLED] and resubmitted[PREEMPTED] == job_ids[PREEMPTED]
    cancelled = json.loads((remote / "results" / "runs" / CANCELLED / "runner.json").read_text())["invocations"]
    assert cancelled[-1]["resumed"] and cancelled[-1]["exit_code"] == 0
    assert "| webnlg_partial_K2_seed1 |" in (remote / "results" / "README.md").read_text()

    # every run ends as its uninterrupted local twin did: each epoch's losses and dev scores, then dev and test
    for name in RUNS:
        assert (epoch_records(remote / "runs" / name / "metrics.jsonl", timings=False)
                == epoch_records(local / "runs" / name / "metrics.jsonl", timings=False)), name
        ours, theirs = (json.loads((root / "runs" / name / "results.json").read_text()) for root in (remote, local))
        assert {k: ours[k] for k in ("dev", "test", "best_epoch")} == {k: theirs[k] for k in ("dev", "test",
                                                                                              "best_epoch")}


@pytest.mark.slow
def test_train_job_through_submitit_local_executor(tmp_path, monkeypatch):
    """The object a SLURM task runs, pickled and run by submitit's local executor: it trains, then skips the
    finished run when submitted again."""
    submitit = pytest.importorskip("submitit")
    data = write_synthetic_dataset(tmp_path / "data", sizes=(60, 20, 20))
    prepare_vocab.main(["--data_dir", str(data), "--wv_file", "none"])
    name = "webnlg_partial_K0_seed1"
    job = TrainJob(name, ("--dataset", "webnlg", "--match", "partial", "--rounds", "0", "--data_dir", str(data),
                          "--num_epoch", "1", "--run_id", name, "--save_dir", str(tmp_path / "runs")),
                   str(tmp_path / "runs"), str(tmp_path / "results"), threads=1)
    executor = submitit.LocalExecutor(folder=tmp_path / "submitit")
    executor.update_parameters(timeout_min=5)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])))
    assert executor.submit(job).result() == "finished"
    assert (tmp_path / "results" / "runs" / name / "results.json").exists()
    assert executor.submit(job).result() == "skipped: finished"


def test_checkpoint_stops_the_child_and_requeues_the_same_job(tmp_path):
    submitit = pytest.importorskip("submitit")
    job = TrainJob("webnlg_exact_K0_seed2", ("--seed", "2"), str(tmp_path), str(tmp_path), threads=1,
                   executor="slurm")
    job._process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    started = time.time()
    again = job.checkpoint()
    assert time.time() - started < 30  # SIGTERM ended the child; it did not run out its minute
    with pytest.raises(ProcessLookupError):
        os.kill(job._process.pid, 0)  # ended and reaped
    assert isinstance(again, submitit.helpers.DelayedSubmission)
    assert again.function == job and again.function is not job and again.function._process is None
