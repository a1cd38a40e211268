"""Check a GPU machine in one command (under 8 minutes on one GPU) and print one summary table.

    python gpu_check.py                                   # on a GPU machine; writes results/gpu_check/
    python gpu_check.py --device cpu --quick --out /tmp/check   # the same steps on CPU and generated data

Steps, each with its own log in --out and a line in the table (passed / failed / skipped, seconds, detail),
the checks first and the measurements last, so that a slow GPU spends the time budget on what can fail:
1. cuda tests: ``pytest -m cuda`` (tests/test_cuda.py: the GPU step against the CPU's, each precision,
   deterministic repeats, a resumed deterministic run, the fp16 loss scaler through a checkpoint).
2. cpu tests here: two tests of the ordinary suite (kill and resume bit for bit, learning), which must run on
   the CPU of a GPU machine as on a CPU-only one (tests/conftest.py hides the GPU from them).
3. train fp32: a 3-epoch WebNLG training (``train.py --num_epoch 3``).
4. train bf16: the same in bf16 (fp16, with loss scaling, on a GPU without bfloat16 arithmetic); its dev F1
   may fall at most --f1_tolerance below fp32's (above is fine: a short run's F1 moves by more than that
   either way).
5. kill and resume: the fp32 training again, killed with SIGKILL once epoch 1's last.pt exists, then
   ``train.py --resume``; every epoch's losses and dev scores and the final dev/test scores must equal those
   of the uninterrupted fp32 run (``--deterministic`` on CUDA). Skipped with --epochs 1: nothing left to resume.
6. evaluate and predict: ``evaluate.py`` on the fp32 run's test split, on the GPU and on the CPU: both must
   give the test F1 of its results.json (within --f1_tolerance / 10: a cell at the threshold may flip);
   ``predict.py --text`` must extract.
7. deterministic cost: the fp32 training once more without ``--deterministic``; seconds per epoch of both.
8. bench: ``bench.py --device cuda`` on few batches (the oracle against production, each precision,
   inference); a measurement, skipped when the budget runs out.
On CPU (``--device cpu``) the GPU-only steps (1, 2, 7, 8) are reported as skipped; ``--quick`` trains on
generated data (data/synthetic.py), so the command runs anywhere, e.g. in tests/test_gpu_check.py. Exits 1 if a
step failed. The table also goes to <out>/summary.md, the figures to <out>/summary.json.
"""
from __future__ import annotations

import utils.interrupt  # noqa: F401  first, before torch loads: a Ctrl-C meanwhile is one line

# isort: split
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from utils.cli import ArgumentParser, non_negative_float, positive_int
from utils.cpu import usable_cores
from utils.errors import InputError, one_line_errors
from utils.files import check_folder_path, write_json
from utils.project import DATASETS_DIR, PROJECT_ROOT, code_commit

PYTHON = sys.executable
RUNS = ("fp32", "bf16", "fp16", "killed", "fp32_free")  # the run folders a check trains in <out>/runs
DEFAULT_DATA_DIR = DATASETS_DIR / "webnlg"


@dataclass
class Step:
    name: str
    status: str  # passed, failed or skipped
    seconds: float
    detail: str


class Check:
    """Runs the steps in order within one time budget, each step's output logged to <out>/<log>."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = Path(args.out)
        self.deadline = time.time() + args.budget
        self.steps: list[Step] = []

    def left(self, cap: float) -> float:
        return max(1.0, min(cap, self.deadline - time.time()))

    def spent(self) -> bool:
        """Whether the time budget is used up (a step cut off by it was not given its own time)."""
        return self.deadline - time.time() <= 1.0

    def command(self, command: list[str], log: str, cap: float) -> tuple[int | None, str]:
        """Run ``command`` in the project root with at most ``cap`` seconds (less if the budget is nearly
        spent); its exit code (None on timeout) and output, which is also written to <out>/<log>."""
        try:
            done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=self.left(cap))
            code, output = done.returncode, done.stdout + done.stderr
        except subprocess.TimeoutExpired as expired:
            code = None
            output = "".join(part.decode() if isinstance(part, bytes) else part or ""
                             for part in (expired.stdout, expired.stderr))
        (self.out / log).write_text(f"$ {' '.join(command)}\n{output}")
        return code, output

    def record(self, name: str, started: float, status: str, detail: str) -> None:
        self.steps.append(Step(name, status, round(time.time() - started, 1), detail))


def last_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1][:160] if lines else "no output"


def epochs_of(run_dir: Path) -> list[dict]:
    """metrics.jsonl without its timings."""
    from model.run import epoch_records  # here: the model modules load only when a check trains

    return epoch_records(run_dir / "metrics.jsonl", timings=False)


def saved_an_epoch(run_dir: Path) -> bool:
    """Whether a training has saved an epoch to resume from: its last.pt and a line of metrics.jsonl."""
    metrics = run_dir / "metrics.jsonl"
    return (run_dir / "last.pt").exists() and metrics.exists() and bool(metrics.read_text().strip())


def final_scores(run_dir: Path) -> dict:
    results = json.loads((run_dir / "results.json").read_text())
    return {key: results[key] for key in ("dev", "test", "best_epoch")}


def cuda_tests(check: Check) -> None:
    started = time.time()
    if check.args.device == "cpu":
        return check.record("cuda tests", started, "skipped", "no GPU (--device cpu)")
    code, output = check.command([PYTHON, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider"],
                                 "cuda_tests.log", 200)
    status = "passed" if code == 0 else "failed"
    check.record("cuda tests", started, status, "timed out" if code is None else last_line(output))


def cpu_tests(check: Check) -> None:
    started = time.time()
    if check.args.device == "cpu":
        return check.record("cpu tests here", started, "skipped", "no GPU (--device cpu): the suite runs as in CI")
    tests = "test_resume_after_kill_gives_the_same_run or test_learns_synthetic_data"
    code, output = check.command([PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_training.py",
                                  "-k", tests], "cpu_tests.log", 150)
    status = "passed" if code == 0 else "failed"
    check.record("cpu tests here", started, status, "timed out" if code is None else last_line(output))


def bench(check: Check) -> None:
    started = time.time()
    if check.args.device == "cpu":
        return check.record("bench", started, "skipped", "no GPU (--device cpu)")
    figures = check.out / "bench_cuda.json"
    code, output = check.command([PYTHON, "bench.py", "--device", "cuda", "--settings", "webnlg_partial",
                                  "nyt_partial", "--batches", "8", "--oracle_batches", "2", "--json", str(figures)],
                                 "bench_cuda.txt", 200)
    if code is None and check.spent():  # a measurement, not a check: the budget running out fails nothing
        return check.record("bench", started, "skipped", "the time budget ran out before the bench ended")
    if code is None:
        return check.record("bench", started, "failed", "timed out within its own 200 s: see bench_cuda.txt")
    status = "passed" if code == 0 else "failed"
    check.record("bench", started, status, f"figures in {figures.name}; {last_line(output)}")


def evaluate_and_predict(check: Check) -> None:
    """The fp32 run scored again by evaluate.py on this device and on the CPU, and predict.py on this device."""
    started, name = time.time(), "evaluate and predict"
    run_dir = check.out / "runs" / "fp32"
    if not (run_dir / "results.json").exists():
        return check.record(name, started, "skipped", "no fp32 run to score")
    recorded = json.loads((run_dir / "results.json").read_text())["test"]["partial"]["f1"]
    scores = {}
    for device in dict.fromkeys((check.args.device, "cpu")):
        out = check.out / f"predictions_{device}.jsonl"
        code, output = check.command([PYTHON, "evaluate.py", "--model_dir", str(run_dir), "--split", "test",
                                      "--device", device, "--out", str(out)], f"evaluate_{device}.log", 120)
        scores_file = out.with_name(out.stem + "_scores.json")
        if code != 0 or not scores_file.exists():
            return check.record(name, started, "failed", f"evaluate.py --device {device}: "
                                + ("timed out" if code is None else last_line(output)))
        scores[device] = json.loads(scores_file.read_text())["scores"]["ours"]["partial"]["f1"]
    code, output = check.command([PYTHON, "predict.py", "--model_dir", str(run_dir), "--device", check.args.device,
                                  "--text", "Bananaman was created by Steve Bright ."], "predict.log", 60)
    if code != 0 or not output.lstrip().startswith("{"):
        return check.record(name, started, "failed", "predict.py: " + ("timed out" if code is None
                                                                        else last_line(output)))
    tolerance = check.args.f1_tolerance / 10
    worst = max(abs(f1 - recorded) for f1 in scores.values())
    figures = ", ".join(f"{device} {f1:.4f}" for device, f1 in scores.items())
    check.record(name, started, "passed" if worst <= tolerance else "failed",
                 f"test F1 {figures}; results.json {recorded:.4f} (fails beyond {tolerance:g}); predict.py extracts")


def train_command(check: Check, run_id: str, precision: str, deterministic: bool = True) -> list[str]:
    args = check.args
    command = [PYTHON, "train.py", "--dataset", "webnlg", "--match", "partial", "--data_dir", str(args.data_dir),
               "--num_epoch", str(args.epochs), "--seed", "1", "--save_dir", str(check.out / "runs"),
               "--run_id", run_id, "--device", args.device, "--precision", precision]
    if args.device == "cpu":  # a fixed thread count: CPU runs repeat bit for bit
        command += ["--threads", "1" if args.quick else str(usable_cores()), "--thread_policy", "fixed"]
    elif deterministic:
        command += ["--deterministic"]
    return command + (["--lr", "0.005"] if args.quick else [])  # generated data: learnt within 3 epochs


def seconds_per_epoch(run_dir: Path) -> float:
    from model.run import epoch_records

    per_epoch = [row["train_seconds"] for row in epoch_records(run_dir / "metrics.jsonl")]
    return sum(per_epoch) / len(per_epoch)


def train(check: Check, precision: str) -> float | None:
    """Train one run of --epochs epochs; its dev F1 (partial match), None if it failed."""
    from model.run import epochs_done  # here: the model modules load only when a check trains

    started, name = time.time(), f"train {precision}"
    code, output = check.command(train_command(check, precision, precision), f"train_{precision}.log", 150)
    run_dir = check.out / "runs" / precision
    if code != 0 or not (run_dir / "results.json").exists():
        check.record(name, started, "failed", "timed out" if code is None else last_line(output))
        return None
    f1 = json.loads((run_dir / "results.json").read_text())["dev"]["partial"]["f1"]
    detail = f"dev F1 {f1:.4f} after {epochs_done(run_dir)} epochs, {seconds_per_epoch(run_dir):.1f} s/epoch"
    used = json.loads((run_dir / "config.json").read_text()).get("precision_used", precision)
    if used != precision:  # e.g. bf16 on a CPU without bfloat16 arithmetic: nothing of bf16 was checked
        check.record(name, started, "skipped", f"{precision} ran as {used} on this device; {detail}")
        return None
    check.record(name, started, "passed", detail)
    return f1


def deterministic_cost(check: Check) -> None:
    """The fp32 training (``--deterministic``) against the same training without it: seconds per epoch."""
    started, name = time.time(), "deterministic cost"
    if check.args.device == "cpu":
        return check.record(name, started, "skipped", "no GPU (--device cpu); CPU runs repeat with fixed threads")
    reference, run_dir = check.out / "runs" / "fp32", check.out / "runs" / "fp32_free"
    if not (reference / "results.json").exists():
        return check.record(name, started, "skipped", "no --deterministic fp32 run to compare with")
    code, output = check.command(train_command(check, "fp32_free", "fp32", deterministic=False),
                                 "train_fp32_free.log", 150)
    if code is None and check.spent():  # a measurement, not a check: the budget running out fails nothing
        return check.record(name, started, "skipped", "the time budget ran out before the training ended")
    if code != 0 or not (run_dir / "results.json").exists():
        return check.record(name, started, "failed", "timed out" if code is None else last_line(output))
    fixed, free = seconds_per_epoch(reference), seconds_per_epoch(run_dir)
    check.record(name, started, "passed", f"{fixed:.2f} s/epoch with --deterministic, {free:.2f} without: "
                 f"{fixed / free:.2f}x")


def mixed_precision(device: str) -> str:
    """bf16, or fp16 on a GPU without bfloat16 arithmetic (train.py refuses bf16 there)."""
    if device != "cuda":
        return "bf16"
    import torch

    from model import speed

    return "fp16" if speed.precision_problem("bf16", torch.device("cuda")) else "bf16"


def compare_precisions(check: Check, fp32: float | None, mixed: float | None, precision: str = "bf16") -> None:
    """The mixed-precision run's dev F1 against fp32's: it may move a few cells across the threshold, but must
    not cost more than the tolerance (a better mixed run is the noise of a short training, not a fault)."""
    if fp32 is None or mixed is None:
        return
    tolerance = check.args.f1_tolerance
    step = check.steps[-1]
    step.status = "passed" if mixed >= fp32 - tolerance else "failed"
    step.detail += (f"; fp32 {fp32:.4f}, {precision} - fp32 {mixed - fp32:+.4f} (fails if {precision} loses more "
                    f"than {tolerance})")


def kill_and_resume(check: Check) -> None:
    """Kill -9 the fp32 training after its first checkpoint, resume it, compare with the uninterrupted run."""
    from model.run import epochs_done  # here: the model modules load only when a check trains

    started, name = time.time(), "kill and resume"
    reference, run_dir = check.out / "runs" / "fp32", check.out / "runs" / "killed"
    epochs = check.args.epochs
    if epochs < 2:
        return check.record(name, started, "skipped", f"--epochs {epochs}: the kill comes once epoch 1 is saved, "
                            "so the resumed run would train no epoch; give --epochs 2 or more")
    if not (reference / "results.json").exists():
        return check.record(name, started, "skipped", "no uninterrupted fp32 run to compare with")
    with open(check.out / "kill_and_resume.log", "w") as log:
        process = subprocess.Popen(train_command(check, "killed", "fp32"), cwd=PROJECT_ROOT, stdout=log,
                                   stderr=subprocess.STDOUT)
        deadline = time.time() + check.left(150)
        while process.poll() is None and not saved_an_epoch(run_dir):
            if time.time() >= deadline:  # nothing saved to resume from: the check cannot be made
                process.kill()
                process.wait()
                return check.record(name, started, "failed", "the time budget (--budget) ran out before epoch 1's "
                                    "checkpoint was saved: nothing to resume; give a larger --budget")
            time.sleep(0.05)
        if process.poll() is not None:
            return check.record(name, started, "failed", f"train.py ended (exit {process.returncode}) before it "
                                "could be killed: see kill_and_resume.log")
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        killed_after = epochs_done(run_dir)
        if killed_after >= epochs:  # epochs faster than the polling: a resume would check nothing
            return check.record(name, started, "failed", f"killed after epoch {killed_after} of {epochs}, the "
                                "last: the resumed run would train no epoch; give more --epochs")
        log.write(f"\n--- killed with SIGKILL after {killed_after} epoch(s); resuming\n")
        log.flush()
        same_threads = ["--thread_policy", "fixed"] if check.args.device == "cpu" else []
        try:
            resumed = subprocess.run([PYTHON, "train.py", "--resume", str(run_dir), *same_threads],
                                     cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=check.left(150))
        except subprocess.TimeoutExpired:
            return check.record(name, started, "failed", f"killed after epoch {killed_after}; the time budget "
                                "(--budget) ran out before the resumed run ended")
    if resumed.returncode != 0 or not (run_dir / "results.json").exists():
        return check.record(name, started, "failed", f"--resume exited {resumed.returncode}: see kill_and_resume.log")
    same_epochs = epochs_of(run_dir) == epochs_of(reference)
    same_scores = final_scores(run_dir) == final_scores(reference)
    status = "passed" if same_epochs and same_scores else "failed"
    detail = (f"killed after epoch {killed_after}; every epoch and the final scores equal the uninterrupted run's"
              if status == "passed" else f"killed after epoch {killed_after}; differs from the uninterrupted run "
              f"(epochs equal: {same_epochs}, final scores equal: {same_scores})")
    check.record(name, started, status, detail)


def quick_data(out: Path) -> Path:
    """Generated data (data/synthetic.py), large enough that an epoch takes a few seconds on one thread."""
    import prepare_vocab
    from data.synthetic import write_synthetic_dataset

    folder = write_synthetic_dataset(out / "synthetic", sizes=(800, 40, 40))
    prepare_vocab.main(["--dataset", "webnlg", "--data_dir", str(folder), "--wv_file", "none"])
    return folder


def machine() -> str:
    import torch

    if torch.cuda.is_available():
        where = f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
    else:
        where = f"CPU, {usable_cores()} cores"
    return f"{where}, torch {torch.__version__}, commit {code_commit()}"


def table(steps: list[Step], header: str) -> str:
    rows = [f"| {s.name} | {s.status} | {s.seconds:.0f} | {s.detail.replace('|', '/')} |" for s in steps]
    return "\n".join([f"GPU check: {header}", "", "| step | status | seconds | detail |", "|---|---|---|---|",
                      *rows]) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(prog="gpu_check.py", description=__doc__)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cuda or cpu (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="train on generated data (for tests, and for CPUs)")
    parser.add_argument("--out", default=str(PROJECT_ROOT / "results" / "gpu_check"),
                        help="folder for the logs, runs and summary (default results/gpu_check/)")
    parser.add_argument("--data_dir", help="the prepared WebNLG (default dataset/webnlg; not with --quick, which "
                        "trains on generated data)")
    parser.add_argument("--epochs", type=positive_int, default=3,
                        help="epochs of each training (default %(default)s)")
    parser.add_argument("--f1_tolerance", type=non_negative_float, default=0.05,
                        help="most dev F1 the bf16 (or fp16) training may lose against the fp32 one (default "
                        "%(default)s)")
    parser.add_argument("--budget", type=positive_int, default=470,
                        help="seconds for all steps together (default %(default)s: the check ends within 8 minutes)")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error, not one line")
    args = parser.parse_args(argv)
    try:  # before any step, not an OS error naming no flag once the first one writes
        check_folder_path(args.out, "--out")
    except InputError as error:
        parser.error(f"{error}; name a folder for the logs, runs and summary")
    if args.quick and args.data_dir:
        parser.error(f"--data_dir {args.data_dir}: --quick trains on generated data, so it would be ignored")
    args.data_dir = args.data_dir or str(DEFAULT_DATA_DIR)
    return args


def main(argv: list[str] | None = None) -> list[Step]:
    """main() for the command line: an expected error (a flag, a folder, no GPU) is one line on stderr and exit
    status 1; --debug shows its traceback instead."""
    args = parse_args(argv)
    with one_line_errors("gpu_check.py", args.debug):
        return run(args)


def run(args: argparse.Namespace) -> list[Step]:
    """Every step in order, then the summary; exits 1 if a step failed."""
    out = Path(args.out)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise InputError("no CUDA GPU here; use --device cpu --quick to try the steps")
    if not args.quick:
        from experiments.settings import check_data_files  # here: the model modules load only when a check trains

        check_data_files(Path(args.data_dir), "webnlg")
    for name in RUNS:  # an earlier check's runs (train.py would refuse to start them again); nothing else in --out
        shutil.rmtree(out / "runs" / name, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    if args.quick:
        args.data_dir = quick_data(out)
    check = Check(args)
    cuda_tests(check)
    cpu_tests(check)
    fp32 = train(check, "fp32")
    precision = mixed_precision(args.device)
    compare_precisions(check, fp32, train(check, precision), precision)
    kill_and_resume(check)
    evaluate_and_predict(check)
    deterministic_cost(check)
    bench(check)
    summary = table(check.steps, machine())
    print(summary, end="")
    (out / "summary.md").write_text(summary)
    write_json(out / "summary.json", {"machine": machine(), "quick": args.quick, "device": args.device,
                                      "steps": [asdict(step) for step in check.steps]})
    if any(step.status == "failed" for step in check.steps):
        raise SystemExit(1)
    return check.steps


if __name__ == "__main__":
    main()
