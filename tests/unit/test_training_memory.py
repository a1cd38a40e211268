"""A training step's memory is bounded by TRAIN_VALUES, not by the batch size times the longest sentence squared:
a batch over the bound is taken in parts whose gradients add up to the whole batch's."""
import pytest
import torch
from helpers import random_examples, saved_bytes_per_round_and_token, small_model

from data.loader import collate, memory_parts
from model import speed, training
from model.rin import RINConfig


def test_parts_hold_at_most_the_budget_and_every_sentence_once():
    lengths = [600] * 3 + [40] * 47
    batch = list(range(50))[::-1]  # any order: parts are consecutive runs of it
    parts = memory_parts(batch, lengths, values_per_cell=124, budget=1 << 28)
    assert [i for part in parts for i in part] == batch
    assert all(len(part) * max(lengths[i] for i in part) ** 2 * 124 <= 1 << 28 for part in parts)
    assert len(parts) > 1
    assert memory_parts(batch, [80] * 50, values_per_cell=311, budget=1 << 28) == [batch]  # a WebNLG batch
    assert memory_parts([0, 1], [5000, 5000], 124, 1 << 28) == [[0], [1]]  # over the budget alone: one each


@pytest.mark.parametrize("kernel", ["auto", "torch"])
def test_a_batch_in_parts_takes_the_whole_batchs_step(kernel):
    """Losses and gradients of a step on 9 sentences given whole and in three parts agree (dropout off:
    its masks are drawn per part)."""
    speed.configure(kernel=kernel)
    examples = random_examples(9, 4, seed=7, max_len=14)
    grads, losses = [], []
    for parts in ([list(range(9))], [[0, 1, 2, 3], [4], [5, 6, 7, 8]]):
        model = small_model(input_dropout=0.0, word_dropout=0.0)
        optimizer = training.make_optimizer(model, 1e-3)
        batches = [collate([examples[i] for i in part], torch.device("cpu")) for part in parts]
        losses.append(torch.stack(training.train_step(model, optimizer, batches, max_grad_norm=0.0)))
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert torch.allclose(losses[0], losses[1], rtol=1e-5)
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-7)


def test_an_epoch_splits_only_the_batches_over_the_budget(monkeypatch):
    """With the budget set just under the long batch's values, that batch alone is taken in parts."""
    examples = random_examples(8, 4, seed=1, max_len=5) + random_examples(4, 4, seed=2, max_len=3)
    for example in examples[:2]:  # two long sentences
        example.word_ids, example.pos_ids, example.tag_ids = ([1] * 30 for _ in range(3))
    model = small_model()
    values_per_cell = model.config.num_relations + model.config.pair_hidden
    monkeypatch.setattr(training, "TRAIN_VALUES", 2 * 30 ** 2 * values_per_cell)  # two 30-token sentences
    steps = []
    real_step = training.train_step
    monkeypatch.setattr(training, "train_step", lambda model, optimizer, parts, *args: (
        steps.append(sorted(p.word_ids.shape[0] for p in parts)), real_step(model, optimizer, parts, *args))[1])
    losses = training.train_epoch(model, training.make_optimizer(model, 1e-3), examples, 4,
                                  torch.Generator().manual_seed(0), torch.device("cpu"), 5.0)
    assert sorted(steps) == [[2, 2], [4], [4]]  # the batch of the 4 longest (30, 30 and two short) in two
    assert all(value > 0 for value in losses.values())


def test_largest_step_is_the_most_tokens_an_epoch_takes_at_once(monkeypatch):
    """train.py counts a step's activations on largest_step's tokens: the most (sentences x longest, padding
    included) that any step of any epoch takes, a batch in parts counted by part."""
    examples = random_examples(23, 4, seed=3, max_len=20)
    examples[5].word_ids = examples[5].pos_ids = examples[5].tag_ids = [1] * 40
    model = small_model()
    values_per_cell = training.pair_values_per_cell(model.config)
    monkeypatch.setattr(training, "TRAIN_VALUES", 2 * 40 ** 2 * values_per_cell)  # the longest batch in parts
    steps, batches = [], []
    monkeypatch.setattr(training, "train_step", lambda model, optimizer, parts, *args: (
        batches.append(len(parts)), steps.extend(p.word_ids.numel() for p in parts),
        (torch.zeros(()), torch.zeros(())))[-1])
    for seed in range(3):
        training.train_epoch(model, None, examples, 4, torch.Generator().manual_seed(seed), torch.device("cpu"), 5.0)
    largest = training.largest_step(examples, 4, model.config)
    assert max(batches) > 1 and max(steps) == largest < 3 * 40  # the 40-token batch of 3 in parts: not 3 x 40
    assert training.largest_step(examples[:1], 4, model.config) == len(examples[0].word_ids)


@pytest.mark.parametrize("kernel", ["auto", "torch"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_activation_bytes_is_a_lower_bound_of_what_a_round_keeps(kernel, precision):
    """train.py refuses a run whose weights and activations exceed the free memory, the activations counted with
    activation_bytes per token and round: never more than a training step keeps for its backward pass, with
    either pair scorer and precision (tests/test_cuda.py checks the GPU's)."""
    speed.configure(kernel=kernel, precision=precision)
    if speed.precision_for("cpu") != precision:
        pytest.skip("this CPU has no bfloat16 arithmetic: --precision bf16 runs in float32 here (tested so)")
    for rnn_hidden, relations in ((50, 211), (100, 5)):
        config = RINConfig(vocab_size=30, num_pos=6, num_tags=5, num_relations=relations, rnn_hidden=rnn_hidden)
        kept = saved_bytes_per_round_and_token(torch.device("cpu"), rnn_hidden, relations)
        assert training.activation_bytes(config) <= kept
