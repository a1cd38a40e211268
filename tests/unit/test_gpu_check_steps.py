"""gpu_check.py's judgement of its steps, without running them."""
import gpu_check


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
