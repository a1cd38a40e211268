"""gpu_check.py in its CPU mode (--device cpu --quick): GPU-only steps skipped, the trainings, the precision
comparison and the kill-and-resume check run on generated data."""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import UNWRITABLE

import gpu_check
from model import speed
from utils.errors import InputError
from utils.project import PROJECT_ROOT


@pytest.mark.slow
def test_cpu_quick_mode_runs_every_step_it_can(tmp_path):
    done = subprocess.run([sys.executable, "gpu_check.py", "--device", "cpu", "--quick", "--out", str(tmp_path)],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    steps = json.loads((tmp_path / "summary.json").read_text())["steps"]
    bf16 = "passed" if speed.cpu_bf16() else "skipped"  # where bf16 runs as float32, nothing of it is checked
    assert [(s["name"], s["status"]) for s in steps] == [
        ("cuda tests", "skipped"), ("cpu tests here", "skipped"), ("train fp32", "passed"), ("train bf16", bf16),
        ("kill and resume", "passed"), ("evaluate and predict", "passed"), ("deterministic cost", "skipped"),
        ("bench", "skipped")]
    assert "every epoch and the final scores equal" in steps[4]["detail"]
    recorded = json.loads((tmp_path / "runs" / "fp32" / "results.json").read_text())["test"]["partial"]["f1"]
    assert f"test F1 cpu {recorded:.4f}; results.json {recorded:.4f}" in steps[5]["detail"]
    table = (tmp_path / "summary.md").read_text()
    assert table in done.stdout and "| kill and resume | passed |" in table
    for log in ("train_fp32.log", "train_bf16.log", "kill_and_resume.log", "evaluate_cpu.log", "predict.log"):
        assert (tmp_path / log).exists()


def test_kill_and_resume_fails_with_a_reason_when_the_budget_ends_before_a_checkpoint(tmp_path, monkeypatch):
    """A training still short of its first checkpoint when the budget runs out is stopped and the step fails
    saying why, instead of reading the metrics.jsonl it never wrote."""
    (tmp_path / "runs" / "fp32").mkdir(parents=True)
    (tmp_path / "runs" / "fp32" / "results.json").write_text("{}")  # the uninterrupted run to compare with
    monkeypatch.setattr(gpu_check, "train_command", lambda *args: [sys.executable, "-c", "import time; time.sleep(60)"])
    check = gpu_check.Check(gpu_check.parse_args(["--out", str(tmp_path), "--device", "cpu", "--quick", "--budget",
                                                  "1"]))
    check.deadline = time.time()  # spent: the step waits its minimum of a second
    gpu_check.kill_and_resume(check)
    (step,) = check.steps
    assert step.status == "failed" and "ran out before epoch 1's checkpoint was saved: nothing to resume" in step.detail
    assert step.seconds < 10


def kill_and_resume_step(out: Path, monkeypatch, epochs: int, training: str) -> gpu_check.Step:
    """The kill-and-resume step alone, after an uninterrupted fp32 run (faked), ``training`` standing for train.py."""
    (out / "runs" / "fp32").mkdir(parents=True)
    (out / "runs" / "fp32" / "results.json").write_text("{}")
    monkeypatch.setattr(gpu_check, "train_command", lambda *args: [sys.executable, "-c", training])
    check = gpu_check.Check(gpu_check.parse_args(["--out", str(out), "--device", "cpu", "--quick", "--epochs",
                                                  str(epochs)]))
    gpu_check.kill_and_resume(check)
    (step,) = check.steps
    return step


def test_kill_and_resume_is_skipped_with_one_epoch(tmp_path, monkeypatch):
    """With --epochs 1 the kill comes after the last epoch: the resumed run trains nothing, so it checks nothing
    and must not pass."""
    step = kill_and_resume_step(tmp_path, monkeypatch, 1, "raise SystemExit('train.py ran')")
    assert step.status == "skipped" and "--epochs 1: the kill comes once epoch 1 is saved" in step.detail


def test_kill_and_resume_fails_when_the_kill_comes_after_the_last_epoch(tmp_path, monkeypatch):
    """Epochs saved faster than the step polls: killed after the last one, there is nothing to resume."""
    run_dir = tmp_path / "runs" / "killed"
    training = (f"import pathlib, time; run = pathlib.Path({str(run_dir)!r}); run.mkdir(parents=True); "
                "(run / 'metrics.jsonl').write_text('{}\\n{}\\n'); (run / 'last.pt').write_text(''); time.sleep(60)")
    step = kill_and_resume_step(tmp_path, monkeypatch, 2, training)
    assert step.status == "failed" and "killed after epoch 2 of 2, the last" in step.detail, step.detail


@pytest.mark.skipif(not UNWRITABLE.is_dir(), reason="needs Linux's /sys/kernel to stand for a read-only place")
def test_an_out_folder_that_takes_nothing_new_is_refused_before_any_step(monkeypatch, capsys):
    """Not an OS error naming no flag once the first step writes in it."""
    monkeypatch.setattr(gpu_check, "run", lambda args: pytest.fail("a step ran"))
    for out in (UNWRITABLE, UNWRITABLE / "check"):
        with pytest.raises(SystemExit) as refused:
            gpu_check.main(["--device", "cpu", "--quick", "--out", str(out)])
        error = capsys.readouterr().err
        assert refused.value.code == 2 and error.startswith(f"gpu_check.py: error: --out {out}: cannot make "
                                                            f"folders in {UNWRITABLE} ("), error


def test_bad_flags_and_folders_are_one_line_errors(tmp_path, capsys):
    """A file as --out, --data_dir with --quick (which would ignore it): refused as flags; an unprepared --data_dir:
    one line and exit status 1, nothing written, and its traceback with --debug."""
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    for flags, message in ((["--out", str(a_file)], f"--out {a_file}: {a_file} is a file, not a folder; name a "
                                                    "folder"),
                           (["--out", str(a_file / "sub")], f"--out {a_file / 'sub'}: {a_file} is a file"),
                           (["--quick", "--data_dir", "x"], "--data_dir x: --quick trains on generated data")):
        with pytest.raises(SystemExit) as refused:
            gpu_check.main(["--device", "cpu", *flags])
        error = capsys.readouterr().err
        assert refused.value.code == 2 and error.startswith(f"gpu_check.py: error: {message}"), error
    flags = ["--device", "cpu", "--out", str(tmp_path / "out"), "--data_dir", str(tmp_path / "absent")]
    with pytest.raises(SystemExit) as refused:
        gpu_check.main(flags)
    error = capsys.readouterr().err
    assert refused.value.code == 1 and error.startswith(
        f"gpu_check.py: error: {tmp_path / 'absent'} does not exist: put train.json, dev.json and test.json in RIN "
        "format into") and error.count("\n") == 1
    assert not (tmp_path / "out").exists()
    (tmp_path / "absent").mkdir()
    (tmp_path / "absent" / "train.json").write_text("")
    with pytest.raises(InputError, match="absent: missing dev.json, test.json, vocab.json"):
        gpu_check.main([*flags, "--debug"])


def test_only_the_checks_own_runs_are_removed_from_out(tmp_path, monkeypatch):
    """--out may be a folder with other runs in runs/ (e.g. results/): only the run folders the check trains go."""
    for name in ("fp32", "killed", "webnlg_exact_K0_seed1"):
        (tmp_path / "runs" / name).mkdir(parents=True)

    def stop(out):
        raise InputError("stopped after the clean-up")

    monkeypatch.setattr(gpu_check, "quick_data", stop)
    with pytest.raises(SystemExit):
        gpu_check.main(["--device", "cpu", "--quick", "--out", str(tmp_path)])
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["webnlg_exact_K0_seed1"]
