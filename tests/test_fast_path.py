"""The production path (bucketed batches, broadcast pair scorer, custom autograd) equals the oracle."""
import pytest
import torch
from helpers import random_examples, small_model

from data.loader import collate
from model.pair_scorer import CHUNK_ELEMENTS
from model.reference import reference_loss


def gradients(model, loss):
    model.zero_grad()
    loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("rounds, switches", [(0, {}), (2, {}), (3, {"er_feedback": False}),
                                              (2, {"rc_feedback": False}), (1, {"pos_dim": 0})])
def test_loss_and_gradients_match_oracle(rounds, switches):
    relations = 5
    model = small_model(relations, rounds, **switches).double().eval()  # eval: no dropout
    for seed in range(3):
        examples = random_examples(6, relations, seed=seed)
        batch = collate(examples, torch.device("cpu"))
        fast = model.loss(batch)
        fast_grads = gradients(model, fast[0] + fast[1])
        slow = reference_loss(model, examples)
        slow_grads = gradients(model, slow[0] + slow[1])
        for a, b in zip(fast, slow, strict=True):
            assert torch.allclose(a, b, atol=1e-5, rtol=1e-5), (a, b)
        assert fast_grads.keys() == slow_grads.keys()
        for name in fast_grads:
            assert torch.allclose(fast_grads[name], slow_grads[name], atol=1e-5, rtol=1e-5), name


def test_chunking_does_not_change_results(monkeypatch):
    """Many small chunks (one sentence each) give the same loss and gradients as one chunk."""
    relations = 4
    model = small_model(relations, 2).double().eval()
    examples = random_examples(5, relations, seed=7)
    batch = collate(examples, torch.device("cpu"))
    whole = model.loss(batch)
    whole_grads = gradients(model, sum(whole))
    monkeypatch.setattr("model.pair_scorer.CHUNK_ELEMENTS", 1)
    assert CHUNK_ELEMENTS > 1
    parts = model.loss(batch)
    part_grads = gradients(model, sum(parts))
    assert torch.allclose(sum(whole), sum(parts))
    for name in whole_grads:
        assert torch.allclose(whole_grads[name], part_grads[name]), name


def test_winning_pairs_padded_as_on_a_gpu_change_no_gradient(monkeypatch):
    """On a GPU, PairMax's backward pads its distinct winning pairs to a fixed count (nonzero_static: no host
    sync); the padding, forced here on the CPU, gives the gradients of the exact count."""
    relations = 4
    model = small_model(relations, 2).double().eval()
    examples = random_examples(5, relations, seed=8)
    batch = collate(examples, torch.device("cpu"))
    exact = gradients(model, sum(model.loss(batch)))
    counts = []

    def padded(flags, bound):
        counts.append((int(flags.sum()), bound))
        return torch.nonzero_static(flags, size=bound, fill_value=0).squeeze(1)

    monkeypatch.setattr("model.pair_scorer._true_indices", padded)
    padded_grads = gradients(model, sum(model.loss(batch)))
    assert counts and all(count < bound for count, bound in counts)  # the padding did happen
    for name in exact:
        assert torch.allclose(exact[name], padded_grads[name]), name
