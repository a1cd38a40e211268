"""Padding invariance and what each ablation switch changes."""
import contextlib

import pytest
import torch
from helpers import random_examples, small_model

from data.loader import collate
from model import speed

CPU = torch.device("cpu")


def outputs(model, examples):
    batch = collate(examples, CPU, with_targets=False)
    out = model(batch.word_ids, batch.pos_ids, batch.mask, batch.lengths)
    tags, logits = model.predict(batch.word_ids, batch.pos_ids, batch.mask, batch.lengths)
    return out, tags, torch.sigmoid(logits)


@pytest.mark.parametrize("rounds", [0, 3])
def test_padding_never_changes_a_real_token(rounds):
    model = small_model(relations=4, rounds=rounds).eval()
    examples = random_examples(6, 4, seed=3, max_len=15)
    _, batch_tags, batch_probs = outputs(model, examples)
    for row, example in enumerate(examples):
        n = len(example.word_ids)
        out, tags, probs = outputs(model, [example])
        assert torch.equal(tags[0], batch_tags[row, :n])
        assert torch.allclose(probs[0], batch_probs[row, :n, :n], atol=1e-6)
        assert batch_probs[row, n:].abs().sum() == 0 and batch_probs[row, :, n:].abs().sum() == 0


def perturbed(model, module_name):
    """A copy of ``model`` whose ``module_name`` weights are changed."""
    import copy

    other = copy.deepcopy(model)
    with torch.no_grad():
        for parameter in getattr(other, module_name).parameters():
            parameter.add_(torch.randn_like(parameter))
    return other


def changes(model, module_name, examples):
    """Which final outputs move when ``module_name`` changes: (tag logits, relation probs)."""
    before_out, _, before_probs = outputs(model, examples)
    after_out, _, after_probs = outputs(perturbed(model, module_name), examples)
    return (not torch.allclose(before_out.tag_logits, after_out.tag_logits),
            not torch.allclose(before_probs, after_probs))


def test_full_model_couples_both_tasks():
    model = small_model(rounds=2).eval()
    examples = random_examples(4, 4, seed=1)
    assert changes(model, "entity_gru", examples) == (True, True)
    assert changes(model, "relation_gru", examples) == (True, True)


def test_without_interaction_the_grus_do_nothing():
    model = small_model(rounds=0).eval()
    examples = random_examples(4, 4, seed=1)
    assert changes(model, "entity_gru", examples) == (False, False)
    assert changes(model, "relation_gru", examples) == (False, False)


def test_without_er_feedback_entities_no_longer_reach_relations():
    model = small_model(rounds=2, er_feedback=False).eval()
    examples = random_examples(4, 4, seed=1)
    assert changes(model, "entity_gru", examples) == (True, False)  # He still makes the ER prediction
    assert changes(model, "relation_gru", examples) == (True, True)


def test_without_rc_feedback_relations_no_longer_reach_entities():
    model = small_model(rounds=2, rc_feedback=False).eval()
    examples = random_examples(4, 4, seed=1)
    assert changes(model, "relation_gru", examples) == (False, True)
    assert changes(model, "entity_gru", examples) == (True, True)


def test_without_pos_the_tags_are_ignored():
    model = small_model(pos_dim=0).eval()
    assert model.pos_embedding is None
    examples = random_examples(3, 4, seed=2)
    before = outputs(model, examples)[2]
    for example in examples:
        example.pos_ids = (example.pos_ids + 1) % 6
    assert torch.equal(before, outputs(model, examples)[2])
    with_pos = small_model(pos_dim=3).eval()
    before = outputs(with_pos, examples)[2]
    for example in examples:
        example.pos_ids = (example.pos_ids + 1) % 6
    assert not torch.equal(before, outputs(with_pos, examples)[2])


def test_word_dropout_only_in_training():
    model = small_model(word_dropout=0.5, input_dropout=0.0)
    examples = random_examples(4, 4, seed=5)
    batch = collate(examples, CPU, with_targets=False)
    model.eval()
    first = model.encode(batch.word_ids, batch.pos_ids, batch.lengths)
    assert torch.equal(first, model.encode(batch.word_ids, batch.pos_ids, batch.lengths))
    model.train()
    assert not torch.equal(first, model.encode(batch.word_ids, batch.pos_ids, batch.lengths))


def test_bf16_precision_stays_close():
    """--precision bf16 (bfloat16 autocast where the CPU multiplies bfloat16, float32 elsewhere) stays close to
    float32."""
    model = small_model(rounds=2).eval()
    examples = random_examples(4, 4, seed=6)
    reference = outputs(model, examples)[2]
    speed.configure(precision="bf16")
    try:
        with speed.autocast(CPU):
            got = outputs(model, examples)[2]
    finally:
        speed.configure(precision="fp32")
    assert (got - reference).abs().max() < 0.05
    with pytest.raises(ValueError):
        speed.configure(precision="fp8")


def test_the_bilstm_runs_under_bfloat16_autocast_on_every_cpu():
    """oneDNN has a bfloat16 LSTM only with AVX-512 (and ONEDNN_MAX_CPU_ISA may hide it): elsewhere the BiLSTM
    runs in float32 inside the autocast region instead of failing."""
    model = small_model(rounds=1).eval()
    batch = collate(random_examples(5, 4, seed=8), CPU, with_targets=False)
    inputs = torch.randn(*batch.word_ids.shape, model.bilstm.forward_lstm.input_size)
    reference = model.bilstm(inputs, batch.lengths)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        got = model.bilstm(inputs, batch.lengths)
    assert (got.float() - reference).abs().max() < 0.05


def test_fp32_enters_no_autocast_and_runs_on_the_meta_device():
    """fp32 holds no autocast context, so the meta device checks every shape without computing."""
    assert isinstance(speed.autocast("cpu"), contextlib.nullcontext)
    model = small_model(rounds=2).to("meta")
    words = torch.zeros(3, 5, dtype=torch.long, device="meta")
    mask = torch.ones(3, 5, dtype=torch.bool, device="meta")
    speed.configure(kernel="torch")
    try:
        out = model(words, words, mask, torch.full((3,), 5, device="meta"))
    finally:
        speed.configure(kernel="auto")
    assert out.tag_logits.shape == (3, 5, 5) and out.relation_state.shape == (3, 5, 12)


def test_split_lstm_equals_a_packed_bidirectional_lstm():
    """The encoder's two one-way LSTMs compute exactly the BiLSTM of the paper (and of older checkpoints)."""
    model = small_model(relations=3, rounds=1).double().eval()
    examples = random_examples(7, 3, seed=4)  # lengths differ: padding in most sentences
    batch = collate(examples, CPU, with_targets=False)
    bilstm = torch.nn.LSTM(model.bilstm.forward_lstm.input_size, model.config.rnn_hidden, batch_first=True,
                           bidirectional=True).double()
    for name, value in model.bilstm.forward_lstm.state_dict().items():
        getattr(bilstm, name).data.copy_(value)
        getattr(bilstm, name + "_reverse").data.copy_(model.bilstm.backward_lstm.state_dict()[name])
    inputs = torch.randn(*batch.word_ids.shape, model.bilstm.forward_lstm.input_size, dtype=torch.float64,
                         requires_grad=True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(inputs, batch.lengths, batch_first=True, enforce_sorted=False)
    expected, _ = torch.nn.utils.rnn.pad_packed_sequence(bilstm(packed)[0], batch_first=True,
                                                         total_length=inputs.shape[1])
    got = model.bilstm(inputs, batch.lengths)
    assert torch.allclose(got, expected, atol=1e-10)
    weights = torch.randn_like(got)
    assert torch.allclose(torch.autograd.grad((got * weights).sum(), inputs)[0],
                          torch.autograd.grad((expected * weights).sum(), inputs)[0], atol=1e-10)

    # a checkpoint written with one bidirectional ``encoder`` loads into the split encoder
    state = {k: v for k, v in model.state_dict().items() if "_lstm." not in k}
    state.update({"encoder." + k: v for k, v in bilstm.state_dict().items()})
    fresh = small_model(relations=3, rounds=1, seed=9).double()
    fresh.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values(),
                                                 strict=True))

    # so does one written when the two one-way LSTMs sat on the model itself (before model/layers.py)
    state = {k.removeprefix("bilstm."): v for k, v in model.state_dict().items()}
    fresh = small_model(relations=3, rounds=1, seed=9).double()
    fresh.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values(),
                                                 strict=True))
