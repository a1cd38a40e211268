"""Training state restores across machines: CUDA RNG states saved elsewhere never break a resume."""
import torch
from helpers import small_model

from model.training import load_training_state, make_optimizer, save_training_state


def test_cuda_rng_states_from_another_machine_are_tolerated(tmp_path):
    model = small_model()
    optimizer, generator = make_optimizer(model, 1e-3), torch.Generator().manual_seed(3)
    save_training_state(tmp_path / "last.pt", model, optimizer, generator, {"epoch": 2})
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    state["cuda_rng"] = [torch.get_rng_state()] * 8  # as if saved on a node with 8 GPUs
    torch.save(state, tmp_path / "last.pt")
    progress = load_training_state(tmp_path / "last.pt", small_model(seed=5), make_optimizer(model, 1e-3),
                                   torch.Generator())
    assert progress == {"epoch": 2}


def test_the_previous_state_is_kept_beside_the_new_one(tmp_path):
    model = small_model()
    optimizer, generator = make_optimizer(model, 1e-3), torch.Generator()
    save_training_state(tmp_path / "last.pt", model, optimizer, generator, {"epoch": 1})
    save_training_state(tmp_path / "last.pt", model, optimizer, generator, {"epoch": 2})
    assert torch.load(tmp_path / "last_prev.pt", weights_only=True)["progress"] == {"epoch": 1}
    assert torch.load(tmp_path / "last.pt", weights_only=True)["progress"] == {"epoch": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "last_prev.pt"]  # no temporary file left
