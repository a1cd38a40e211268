"""gpu_check.py's judgement of its steps, without running them."""
import pytest
import torch

import gpu_check
from model import speed


def test_a_bf16_run_far_below_fp32_fails_the_check_and_one_above_passes(tmp_path):
    check = gpu_check.Check(gpu_check.parse_args(["--device", "cpu", "--out", str(tmp_path)]))
    check.steps.append(gpu_check.Step("train bf16", "passed", 1.0, "dev F1 0.7000"))
    gpu_check.compare_precisions(check, 0.80, 0.70)
    assert check.steps[-1].status == "failed"
    assert "bf16 - fp32 -0.1000 (fails if bf16 loses more than 0.05)" in check.steps[-1].detail
    for fp32 in (0.72, 0.60):  # within the tolerance below; better than fp32 (a short run's noise)
        check.steps[-1].status = "passed"
        gpu_check.compare_precisions(check, fp32, 0.70)
        assert check.steps[-1].status == "passed"


@pytest.mark.parametrize(("capability", "expected"), [((7, 0), "fp16"), ((8, 0), "bf16"), ((9, 0), "bf16")])
def test_a_gpu_without_bfloat16_arithmetic_is_checked_in_fp16(capability, expected, monkeypatch):
    """A V100 (7.0) emulates bfloat16, which torch.cuda.is_bf16_supported() counts as support: train.py refuses
    bf16 there by compute capability (of the GPU asked for), and gpu_check.py trains fp16 instead."""
    asked = []
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: asked.append(device) or capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100")
    assert gpu_check.mixed_precision("cuda") == expected
    problem = speed.precision_problem("bf16", torch.device("cuda", 1))
    assert (problem is None) == (expected == "bf16") and asked[-1] == torch.device("cuda", 1)
    if problem:
        assert "Tesla V100 has no bfloat16 arithmetic" in problem and "--precision fp16" in problem
    assert gpu_check.mixed_precision("cpu") == "bf16"


@pytest.mark.parametrize(("seconds_left", "status"), [(0, "skipped"), (300, "failed")])
def test_a_bench_cut_off_by_the_budget_is_skipped_and_one_that_hangs_fails(tmp_path, monkeypatch, seconds_left,
                                                                          status):
    """The bench is a measurement: the time budget running out fails nothing; but a bench that ran past its own
    200 s with budget to spare hung, and that is a failure, not a skip."""
    import time

    check = gpu_check.Check(gpu_check.parse_args(["--device", "cpu", "--out", str(tmp_path)]))
    check.args.device = "cuda"  # past the CPU skip; the command itself is faked
    check.deadline = time.time() + seconds_left
    monkeypatch.setattr(check, "command", lambda *args: (None, ""))
    gpu_check.bench(check)
    assert check.steps[-1].status == status
