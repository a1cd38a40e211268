"""gpu_check.py in its CPU mode (--device cpu --quick): GPU-only steps skipped, the trainings, the precision
comparison and the kill-and-resume check run on generated data."""
import json
import subprocess
import sys

import pytest

from model import speed
from utils.helpers import PROJECT_ROOT


@pytest.mark.slow
def test_cpu_quick_mode_runs_every_step_it_can(tmp_path):
    done = subprocess.run([sys.executable, "gpu_check.py", "--device", "cpu", "--quick", "--out", str(tmp_path)],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    steps = json.loads((tmp_path / "summary.json").read_text())["steps"]
    bf16 = "passed" if speed.cpu_bf16() else "skipped"  # where bf16 runs as float32, nothing of it is checked
    assert [(s["name"], s["status"]) for s in steps] == [
        ("cuda tests", "skipped"), ("bench", "skipped"), ("train fp32", "passed"), ("train bf16", bf16),
        ("kill and resume", "passed"), ("deterministic cost", "skipped")]
    assert "every epoch and the final scores equal" in steps[-2]["detail"]
    table = (tmp_path / "summary.md").read_text()
    assert table in done.stdout and "| kill and resume | passed |" in table
    for log in ("train_fp32.log", "train_bf16.log", "kill_and_resume.log"):
        assert (tmp_path / log).exists()

