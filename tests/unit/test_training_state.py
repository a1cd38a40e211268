"""Training state restores across machines: a GPU run's RNG state never breaks a resume elsewhere."""
import logging

import pytest
import torch
from helpers import small_model

from model.run import atomic_torch_save, to_cpu
from model.training import load_training_state, make_optimizer, save_training_state


def test_a_gpu_runs_state_resumes_on_the_cpu_with_a_warning(tmp_path, caplog):
    """The training GPU's generator is saved alone (resumed on whichever GPU the run has then); on a CPU it
    cannot be restored, and the resumed run is said to differ from an uninterrupted one."""
    model = small_model()
    optimizer, generator = make_optimizer(model, 1e-3), torch.Generator().manual_seed(3)
    save_training_state(tmp_path / "last.pt", model, optimizer, generator, {"epoch": 2})
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert "cuda_rng" not in state  # a CPU run has no GPU generator to save
    state["cuda_rng"] = torch.get_rng_state()  # as a GPU run saves its device's
    torch.save(state, tmp_path / "last.pt")
    with caplog.at_level(logging.WARNING):
        progress = load_training_state(tmp_path / "last.pt", small_model(seed=5), make_optimizer(model, 1e-3),
                                       torch.Generator())
    assert progress == {"epoch": 2}
    assert "holds no RNG state of the CPU this run resumes on (saved on another kind of device)" in caplog.text
    caplog.clear()
    state["cuda_rng"] = [torch.get_rng_state()] * 8  # before 2026-12-07: every GPU's, by CPU runs on a GPU node too
    torch.save(state, tmp_path / "last.pt")
    with caplog.at_level(logging.WARNING):
        assert load_training_state(tmp_path / "last.pt", small_model(seed=5), make_optimizer(model, 1e-3),
                                   torch.Generator()) == {"epoch": 2}
    assert not caplog.text  # on the CPU nothing of a GPU's state was needed


def test_checkpoints_hold_cpu_tensors_only(tmp_path):
    """A GPU run's last.pt must load on a machine without one (torch.load without map_location included): every
    tensor is copied to the CPU before saving, which a tensor on the meta device (no data to copy) shows."""
    nested = {"a": [torch.ones(2), (torch.zeros(1), 3)], "b": {"c": torch.arange(3)}, "d": "text"}
    moved = to_cpu(nested)
    assert isinstance(moved["a"], list) and isinstance(moved["a"][1], tuple) and moved["d"] == "text"
    assert torch.equal(moved["b"]["c"], torch.arange(3)) and moved["a"][1][1] == 3
    torch.save({"w": torch.empty(2, device="meta")}, tmp_path / "plain.pt")  # torch.save alone keeps the device
    with pytest.raises(NotImplementedError, match="meta"):
        atomic_torch_save({"state": [torch.empty(2, device="meta")]}, tmp_path / "last.pt")


def test_the_previous_state_is_kept_beside_the_new_one(tmp_path):
    model = small_model()
    optimizer, generator = make_optimizer(model, 1e-3), torch.Generator()
    save_training_state(tmp_path / "last.pt", model, optimizer, generator, {"epoch": 1})
    save_training_state(tmp_path / "last.pt", model, optimizer, generator, {"epoch": 2})
    assert torch.load(tmp_path / "last_prev.pt", weights_only=True)["progress"] == {"epoch": 1}
    assert torch.load(tmp_path / "last.pt", weights_only=True)["progress"] == {"epoch": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "last_prev.pt"]  # no temporary file left
