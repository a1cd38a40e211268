"""The GPU path: the same numbers as the CPU, every precision, repeatable deterministic steps, resume.

Marked ``cuda``: skipped, with the reason, where no GPU is present (tests/conftest.py). What can be checked
without a GPU is checked on the CPU elsewhere: shapes on the meta device (tests/test_model.py), the PyTorch
pair scorer against the paper-literal oracle (tests/test_fast_path.py), refusals (tests/test_cli_errors.py).
"""
from __future__ import annotations

import copy
import json

import pytest
import torch
from helpers import random_examples, small_model

import train
from data.loader import collate
from model import speed
from model.reference import reference_loss
from model.training import make_optimizer, train_step

pytestmark = pytest.mark.cuda
CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture(autouse=True)
def default_speed():
    yield
    speed.configure(kernel="auto", precision="fp32")
    torch.use_deterministic_algorithms(False)


def one_step(model, examples, device, precision="fp32"):
    speed.configure(kernel="torch", precision=precision)
    model = model.to(device)
    optimizer = make_optimizer(model, 1e-3)
    batch = collate(examples, range(len(examples)), device)
    losses = train_step(model, optimizer, batch, 5.0, speed.grad_scaler(device))
    return [loss.item() for loss in losses], {k: v.detach().cpu() for k, v in model.state_dict().items()}


def test_a_cuda_step_computes_what_the_cpu_step_computes():
    model, examples = small_model(relations=5, rounds=2), random_examples(8, 5, seed=1)
    cpu_losses, cpu_state = one_step(copy.deepcopy(model), examples, CPU)
    gpu_losses, gpu_state = one_step(copy.deepcopy(model), examples, CUDA)
    assert gpu_losses == pytest.approx(cpu_losses, rel=1e-4)
    for name, value in cpu_state.items():
        assert torch.allclose(gpu_state[name], value, atol=1e-5), name


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_steps_stay_close_to_float32(precision):
    if precision == "bf16" and not speed.cuda_bf16(CUDA):
        pytest.skip(f"{torch.cuda.get_device_name()} has no bfloat16 arithmetic (train.py refuses it there)")
    model, examples = small_model(relations=5, rounds=2), random_examples(8, 5, seed=2)
    reference, _ = one_step(copy.deepcopy(model), examples, CUDA)
    losses, _ = one_step(copy.deepcopy(model), examples, CUDA, precision)
    assert losses == pytest.approx(reference, rel=0.05)


def test_the_paper_literal_oracle_runs_on_the_gpu():
    """bench.py --device cuda times it as the baseline: the same losses as on the CPU."""
    model, examples = small_model(relations=5, rounds=2), random_examples(8, 5, seed=6)
    on_cpu = [loss.item() for loss in reference_loss(model, examples)]
    on_gpu = [loss.item() for loss in reference_loss(copy.deepcopy(model).to(CUDA), examples)]
    assert on_gpu == pytest.approx(on_cpu, rel=1e-4)


def test_deterministic_steps_repeat_bit_for_bit():
    torch.use_deterministic_algorithms(True)
    model, examples = small_model(relations=5, rounds=3), random_examples(16, 5, seed=3)
    states = [one_step(copy.deepcopy(model), examples, CUDA)[1] for _ in range(2)]
    assert all(torch.equal(states[0][name], states[1][name]) for name in states[0])


def test_a_resumed_cuda_run_ends_as_an_uninterrupted_one(synthetic_data, tmp_path):
    common = ["--dataset", "synthetic", "--data_dir", str(synthetic_data), "--save_dir", str(tmp_path),
              "--device", "cuda", "--deterministic", "--lr", "0.005", "--rounds", "2", "--seed", "4"]
    straight = train.main([*common, "--run_id", "straight", "--num_epoch", "3"])
    train.main([*common, "--run_id", "resumed", "--num_epoch", "3", "--early_stop", "0"])
    run_dir = tmp_path / "resumed"
    metrics = (run_dir / "metrics.jsonl").read_text().splitlines()
    state = torch.load(run_dir / "last.pt", weights_only=True)
    assert state["progress"]["epoch"] == 3
    (run_dir / "last.pt").replace(run_dir / "last.pt.bak")
    (run_dir / "last_prev.pt").replace(run_dir / "last.pt")  # back to epoch 2, as if killed there
    (run_dir / "results.json").unlink()
    resumed = train.main(["--resume", str(run_dir)])
    assert resumed["test"] == straight["test"]

    def without_time(lines):
        return [{k: v for k, v in json.loads(line).items() if "seconds" not in k} for line in lines]

    assert without_time((run_dir / "metrics.jsonl").read_text().splitlines()) == without_time(metrics)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_training_step_never_makes_the_host_wait(precision):
    """No host sync inside train_step (fp16 is left out: GradScaler's step reads its inf check on the host)."""
    if precision == "bf16" and not speed.cuda_bf16(CUDA):
        pytest.skip(f"{torch.cuda.get_device_name()} has no bfloat16 arithmetic")
    speed.configure(kernel="torch", precision=precision)
    model = small_model(relations=5, rounds=2).to(CUDA)
    optimizer = make_optimizer(model, 1e-3)
    examples = random_examples(8, 5, seed=5)
    batch = collate(examples, range(len(examples)), CUDA)
    train_step(model, optimizer, batch, 5.0)  # first step: lazy initialisation (cuBLAS handles, Adam state)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        train_step(model, optimizer, batch, 5.0)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
