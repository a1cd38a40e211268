"""The GPU path: the same numbers as the CPU, every precision, repeatable deterministic steps, resume.

Marked ``cuda``: skipped, with the reason, where no GPU is present (tests/conftest.py). What can be checked
without a GPU is checked on the CPU elsewhere: shapes on the meta device (tests/unit/test_model.py), the PyTorch
pair scorer against the paper-literal oracle (tests/test_fast_path.py), refusals (tests/test_cli_errors.py).
"""
from __future__ import annotations

import copy

import pytest
import torch
from helpers import random_examples, saved_bytes_per_round_and_token, small_model

import train
from data.loader import collate
from model import speed
from model.reference import reference_loss
from model.rin import RINConfig
from model.run import epoch_records
from model.training import (
    activation_bytes,
    load_training_state,
    make_optimizer,
    save_training_state,
    train_step,
)

pytestmark = pytest.mark.cuda
CPU, CUDA = torch.device("cpu"), torch.device("cuda")
# the CPU and the GPU draw different dropout masks from the same seed: comparisons across them use none
NO_DROPOUT = {"input_dropout": 0.0, "word_dropout": 0.0}


def one_step(model, examples, device, precision="fp32"):
    """One training step from the same random state each time: its losses, gradients (clipped) and new weights."""
    speed.configure_for(device, "torch", precision, "adaptive")  # as the scripts do (cuDNN's LSTM in IEEE float32)
    torch.manual_seed(0)  # the dropout masks, on the CPU and every GPU
    model = model.to(device)
    optimizer = make_optimizer(model, 1e-3)
    batch = collate(examples, device)
    losses = train_step(model, optimizer, batch, 5.0, speed.grad_scaler(device))
    gradients = {name: p.grad.detach().cpu() for name, p in model.named_parameters() if p.grad is not None}
    return ([loss.item() for loss in losses], gradients,
            {name: value.detach().cpu() for name, value in model.state_dict().items()})


def test_a_cuda_step_computes_what_the_cpu_step_computes():
    """Gradients, not the weights after Adam: its first update is about lr * sign(gradient), so a gradient near
    zero rounded to the other sign on the GPU moves a weight by 2 lr."""
    model, examples = small_model(relations=5, rounds=2, **NO_DROPOUT), random_examples(8, 5, seed=1)
    cpu_losses, cpu_gradients, _ = one_step(copy.deepcopy(model), examples, CPU)
    gpu_losses, gpu_gradients, _ = one_step(copy.deepcopy(model), examples, CUDA)
    assert gpu_losses == pytest.approx(cpu_losses, rel=1e-4)
    assert gpu_gradients.keys() == cpu_gradients.keys()
    for name, value in cpu_gradients.items():
        assert torch.allclose(gpu_gradients[name], value, rtol=1e-3, atol=1e-6), name


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_steps_stay_close_to_float32(precision):
    if precision == "bf16" and not speed.cuda_bf16(CUDA):
        pytest.skip(f"{torch.cuda.get_device_name()} has no bfloat16 arithmetic (train.py refuses it there)")
    model, examples = small_model(relations=5, rounds=2), random_examples(8, 5, seed=2)
    reference = one_step(copy.deepcopy(model), examples, CUDA)[0]
    losses = one_step(copy.deepcopy(model), examples, CUDA, precision)[0]
    assert losses == pytest.approx(reference, rel=0.05)


def test_the_paper_literal_oracle_runs_on_the_gpu():
    """bench.py --device cuda times it as the baseline: the same losses as on the CPU."""
    model, examples = small_model(relations=5, rounds=2, **NO_DROPOUT), random_examples(8, 5, seed=6)
    on_cpu = [loss.item() for loss in reference_loss(model, examples)]
    on_gpu = [loss.item() for loss in reference_loss(copy.deepcopy(model).to(CUDA), examples)]
    assert on_gpu == pytest.approx(on_cpu, rel=1e-4)


def test_deterministic_steps_repeat_bit_for_bit():
    torch.use_deterministic_algorithms(True)
    model, examples = small_model(relations=5, rounds=3), random_examples(16, 5, seed=3)
    states = [one_step(copy.deepcopy(model), examples, CUDA)[2] for _ in range(2)]  # dropout included
    assert all(torch.equal(states[0][name], states[1][name]) for name in states[0])


def test_a_resumed_cuda_run_ends_as_an_uninterrupted_one(synthetic_data, tmp_path):
    common = ["--dataset", "synthetic", "--data_dir", str(synthetic_data), "--save_dir", str(tmp_path),
              "--device", "cuda", "--deterministic", "--lr", "0.005", "--rounds", "2", "--seed", "4"]
    straight = train.main([*common, "--run_id", "straight", "--num_epoch", "3"])
    train.main([*common, "--run_id", "resumed", "--num_epoch", "3", "--early_stop", "0"])
    run_dir = tmp_path / "resumed"
    metrics = epoch_records(run_dir / "metrics.jsonl", timings=False)
    state = torch.load(run_dir / "last.pt", weights_only=True)
    assert state["progress"]["epoch"] == 3
    (run_dir / "last.pt").replace(run_dir / "last.pt.bak")
    (run_dir / "last_prev.pt").replace(run_dir / "last.pt")  # back to epoch 2, as if killed there
    (run_dir / "results.json").unlink()
    resumed = train.main(["--resume", str(run_dir)])
    assert resumed["test"] == straight["test"]

    assert epoch_records(run_dir / "metrics.jsonl", timings=False) == metrics


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_training_step_never_makes_the_host_wait(precision):
    """No host sync inside train_step (fp16 is left out: GradScaler's step reads its inf check on the host)."""
    if precision == "bf16" and not speed.cuda_bf16(CUDA):
        pytest.skip(f"{torch.cuda.get_device_name()} has no bfloat16 arithmetic")
    speed.configure(kernel="torch", precision=precision)
    model = small_model(relations=5, rounds=2).to(CUDA)
    optimizer = make_optimizer(model, 1e-3)
    examples = random_examples(8, 5, seed=5)
    batch = collate(examples, CUDA)
    train_step(model, optimizer, batch, 5.0)  # first step: lazy initialisation (cuBLAS handles, Adam state)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        train_step(model, optimizer, batch, 5.0)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()


def test_the_fp16_loss_scale_survives_a_checkpoint(tmp_path):
    """fp16 trains with a GradScaler whose scale adapts step by step: last.pt keeps it, --resume restores it."""
    speed.configure_for(CUDA, "torch", "fp16", "adaptive")
    model = small_model(relations=5, rounds=2).to(CUDA)
    optimizer, scaler = make_optimizer(model, 1e-3), speed.grad_scaler(CUDA)
    batch = collate(random_examples(8, 5, seed=7), CUDA)
    for _ in range(3):
        train_step(model, optimizer, batch, 5.0, scaler)
    scaler.update(1234.0)  # a scale no fresh scaler has: restored, or the test fails
    save_training_state(tmp_path / "last.pt", model, optimizer, torch.Generator(), {"epoch": 1}, scaler)
    assert all(value.device.type == "cpu" for value in torch.load(tmp_path / "last.pt", weights_only=True)
               ["model"].values())  # a GPU run's checkpoint loads on a machine without one
    restored_model = small_model(relations=5, rounds=2, seed=9).to(CUDA)
    restored = speed.grad_scaler(CUDA)
    load_training_state(tmp_path / "last.pt", restored_model, make_optimizer(restored_model, 1e-3),
                        torch.Generator(), restored)
    assert restored.get_scale() == 1234.0 and restored.state_dict() == scaler.state_dict()


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_activation_bytes_is_a_lower_bound_on_the_gpu(precision):
    """train.py's memory check refuses on the GPU's free memory: its activation count must stay under what the
    GPU's own kernels (cuDNN's LSTM, the fused GRU cell) keep for the backward pass."""
    speed.configure_for(CUDA, "auto", precision, "adaptive")
    for rnn_hidden, relations in ((50, 211), (100, 5)):
        config = RINConfig(vocab_size=30, num_pos=6, num_tags=5, num_relations=relations, rnn_hidden=rnn_hidden)
        assert activation_bytes(config) <= saved_bytes_per_round_and_token(CUDA, rnn_hidden, relations)
