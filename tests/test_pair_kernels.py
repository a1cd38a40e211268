"""The fused C++ pair kernels compute what the PyTorch pair scorer computes (float32, CPU), and the bfloat16
scorer sums the rounded products it promises."""
import importlib.util
import shutil

import pytest
import torch
from helpers import random_examples, small_model

from data.loader import collate
from model import pair_kernels, pair_scorer


def kernels_available() -> bool:
    try:
        pair_kernels.build()
    except RuntimeError:
        return False
    return True


needs_kernels = pytest.mark.skipif(not kernels_available(), reason="no C++ compiler or ninja here: the fused "
                                   "pair kernels cannot be built (test_kernels_build says why)")


@pytest.fixture(autouse=True)
def restore_choice():
    yield
    pair_kernels.set_pair_kernel("auto")


def test_kernels_build_where_a_compiler_is_present():
    if shutil.which("c++") is None or importlib.util.find_spec("ninja") is None:
        pytest.skip("no C++ compiler or no ninja: the PyTorch pair scorer is used")
    pair_kernels.build()  # raises with the compiler's message when the build breaks


def run_both(model, batch):
    """Loss, gradients and predictions under the PyTorch and the fused pair scorer."""
    outputs = {}
    for choice in ("torch", "fused"):
        pair_kernels.set_pair_kernel(choice)
        model.zero_grad()
        er_loss, rc_loss = model.loss(batch)
        (er_loss + rc_loss).backward()
        grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
        tags, logits = model.predict(batch.word_ids, batch.pos_ids, batch.mask, batch.lengths)
        outputs[choice] = (er_loss, rc_loss, grads, tags, logits)
    return outputs["torch"], outputs["fused"]


@needs_kernels
@pytest.mark.parametrize("relations, rounds, sizes", [
    (4, 2, {}),  # one block of 8 relations, 7 pair features (one padded vector)
    (30, 3, {"pair_hidden": 20}),  # blocks of 24 + 8 relations
    (57, 1, {"pair_hidden": 70}),  # 24 + 24 + 8 + 8; more than one chunk of feature vectors
    (5, 0, {}),  # no interaction: only the BCE and the decoder use the kernels
])
def test_fused_kernels_match_pytorch(relations, rounds, sizes):
    model = small_model(relations, rounds, **sizes).eval()
    for seed in range(2):
        examples = random_examples(7, relations, seed=seed, max_len=21)
        examples[0] = random_examples(1, relations, seed=99, max_len=1)[0]  # a one-token sentence
        batch = collate(examples, range(len(examples)), torch.device("cpu"))
        (er_a, rc_a, grads_a, tags_a, logits_a), (er_b, rc_b, grads_b, tags_b, logits_b) = run_both(model, batch)
        assert torch.allclose(er_a, er_b, rtol=1e-5) and torch.allclose(rc_a, rc_b, rtol=1e-5)
        assert grads_a.keys() == grads_b.keys()
        for name in grads_a:
            assert torch.allclose(grads_a[name], grads_b[name], rtol=1e-4, atol=1e-5), name
        assert torch.equal(tags_a, tags_b)
        assert torch.equal(torch.isinf(logits_a), torch.isinf(logits_b))
        real = torch.isfinite(logits_a)
        assert real.sum() == sum(len(e.word_ids) ** 2 for e in examples) * relations
        assert torch.allclose(logits_a[real], logits_b[real], rtol=1e-5, atol=1e-5)


@needs_kernels
def test_pair_max_ignores_padding_and_breaks_ties_to_the_first_j():
    torch.manual_seed(0)
    left, right = torch.randn(2, 6, 7), torch.randn(2, 6, 7)
    right[0, 3] = right[0, 1]  # j = 1 and j = 3 score the same in sentence 0
    right[1, 4:] = 50.0  # padding of sentence 1 (length 4) would win every max
    weight, bias = torch.randn(9, 7), torch.randn(9)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    pair_kernels.set_pair_kernel("fused")
    values, winner = pair_kernels.pair_max(left, right, weight, bias, mask.sum(dim=1))
    logits = (left[:, :, None] + right[:, None]).relu() @ weight.T + bias
    expected = logits.masked_fill(~mask[:, None, :, None], float("-inf")).max(dim=2)
    assert torch.allclose(values, expected.values, atol=1e-5)
    assert torch.equal(winner, expected.indices)
    assert (winner[1] < 4).all() and (winner[0] != 3).all()
    grads = torch.autograd.grad(pair_scorer.pair_max(left.requires_grad_(), right.requires_grad_(), weight, bias,
                                                     mask).sum(), (left, right))
    assert grads[1][1, 4:].abs().sum() == 0  # padding gets no gradient


@needs_kernels
def test_pair_bce_sigmoid_and_softplus_over_the_float_range():
    """With Wr = 0 every logit is its relation's bias: sweep biases from -120 to 120 (tails included)."""
    relations = 241
    bias = torch.linspace(-120.0, 120.0, relations)
    bias[120] = 0.0  # exactly zero
    bias = torch.cat([bias, torch.tensor([-1e-6, 1e-6, -20.5, 16.3, -88.7, 89.0])])
    left, right = torch.randn(2, 5, 7), torch.randn(2, 5, 7)
    weight = torch.zeros(len(bias), 7)
    lengths = torch.tensor([5, 3])
    probabilities, softplus_sums, probability_sums = pair_kernels.pair_bce(left, right, weight, bias, lengths)
    real = (torch.arange(5)[None, :] < lengths[:, None])  # rows i
    cells = real[:, :, None] & real[:, None, :]  # (i, j)
    expected = torch.sigmoid(bias)[None, None, :, None].expand(2, 5, -1, 5) * cells[:, :, None, :]
    assert torch.allclose(probabilities[..., :5], expected, rtol=2e-6, atol=1e-30)
    assert (probabilities[..., 5:] == 0).all()  # lanes beyond the sentence
    counts = cells.sum(dim=2).double()  # real j per row
    softplus = torch.nn.functional.softplus(bias.double()).sum()
    assert torch.allclose(softplus_sums.double(), counts * softplus, rtol=1e-6)
    sigmoid_sums = counts[..., None] * torch.sigmoid(bias.double())
    assert torch.allclose(probability_sums.double(), sigmoid_sums, rtol=1e-6, atol=1e-30)
    for logit in (-30.0, -17.0, -1e-3, 1e-3):  # log1p, not log(1 + e): tiny softplus values keep their digits
        _, softplus_sums, _ = pair_kernels.pair_bce(left[:1, :1], right[:1, :1], weight[:1], torch.tensor([logit]),
                                                    torch.tensor([1]))
        expected = torch.nn.functional.softplus(torch.tensor(logit, dtype=torch.float64))
        assert abs(softplus_sums.item() - expected.item()) < 1e-6 * expected.item(), logit


def test_choice_is_checked_and_respected():
    with pytest.raises(ValueError):
        pair_kernels.set_pair_kernel("fast")
    pair_kernels.set_pair_kernel("torch")
    assert not pair_kernels.fused_applies(torch.zeros(1))
    pair_kernels.set_pair_kernel("auto")
    assert not pair_kernels.fused_applies(torch.zeros(1, dtype=torch.float64))  # float64: PyTorch path
    pair_kernels.set_pair_kernel("fused")
    with pytest.raises(RuntimeError, match="float32 CPU"):
        pair_kernels.fused_applies(torch.zeros(1, dtype=torch.float64))


@needs_kernels
def test_fused_gradients_are_repeatable_with_several_threads():
    """Per-thread partial sums are added in a fixed order, so a step gives the same bits every time."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        model = small_model(30, 2, pair_hidden=20).eval()
        examples = random_examples(16, 30, seed=5, max_len=30)
        batch = collate(examples, range(len(examples)), torch.device("cpu"))
        pair_kernels.set_pair_kernel("fused")
        runs = []
        for _ in range(3):
            model.zero_grad()
            sum(model.loss(batch)).backward()
            runs.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
        assert all(torch.equal(a, b) for run in runs[1:] for a, b in zip(runs[0], run, strict=True))
    finally:
        torch.set_num_threads(threads)


needs_bf16 = pytest.mark.skipif(not (kernels_available() and pair_kernels.has_bf16()),
                                reason="this CPU has no AVX512-BF16: the bfloat16 fused scorer is not built")


@needs_bf16
@pytest.mark.parametrize("hidden, relations", [(7, 4), (20, 30), (70, 57)])  # odd d is padded; 24 + 8 blocks
def test_bf16_kernels_sum_the_rounded_products_in_float32(hidden, relations):
    """Each relu(a_i + b_j) and Wr rounded to bfloat16, products summed: float64 sums of the same roundings."""
    torch.manual_seed(hidden)
    length = 11
    left, right = torch.randn(3, length, hidden), torch.randn(3, length, hidden)
    weight, bias = torch.randn(relations, hidden), torch.randn(relations)
    lengths = torch.tensor([length, 5, 1])
    pairs = (left[:, :, None] + right[:, None]).relu().to(torch.bfloat16).double()
    expected = pairs @ weight.to(torch.bfloat16).double().T + bias.double()  # (B, n, n, R)
    real = torch.arange(length)[None, :] < lengths[:, None]
    cells = real[:, :, None] & real[:, None, :]

    logits = pair_kernels.pair_logits(left, right, weight, bias, lengths, bf16=True)[..., :length].transpose(2, 3)
    assert torch.equal(torch.isinf(logits), ~cells[..., None].expand_as(logits))
    assert torch.allclose(logits[cells].double(), expected[cells], rtol=1e-5, atol=1e-5)

    values, winner = pair_kernels.pair_max(left, right, weight, bias, lengths, bf16=True)
    best = expected.masked_fill(~real[:, None, :, None], float("-inf")).max(dim=2).values
    assert torch.allclose(values.double(), best, rtol=1e-5, atol=1e-5)
    assert torch.allclose(expected.gather(2, winner[:, :, None]).squeeze(2), best, rtol=1e-5, atol=1e-5)
    assert (winner < lengths[:, None, None]).all()

    probabilities, softplus_sums, _ = pair_kernels.pair_bce(left, right, weight, bias, lengths, bf16=True)
    probabilities = probabilities[..., :length].transpose(2, 3)
    assert torch.allclose(probabilities[cells].double(), torch.sigmoid(expected[cells]), rtol=1e-5, atol=1e-6)
    expected_softplus = (torch.nn.functional.softplus(expected) * cells[..., None]).sum(dim=(2, 3))
    assert torch.allclose(softplus_sums.double(), expected_softplus, rtol=1e-5)


@needs_kernels
def test_bf16_precision_falls_back_to_pytorch_without_avx512_bf16(monkeypatch):
    model = small_model(30, 2, pair_hidden=20).eval()
    batch = collate(random_examples(6, 30, seed=3, max_len=15), range(6), torch.device("cpu"))
    reference = sum(model.loss(batch)).item()
    model.set_precision("bf16")
    monkeypatch.setattr(pair_kernels, "has_bf16", lambda: False)
    fallback = sum(model.loss(batch)).item()  # auto: the PyTorch pair scorer on bfloat16 copies
    assert fallback == pytest.approx(reference, rel=0.02)
    pair_kernels.set_pair_kernel("fused")
    with pytest.raises(RuntimeError, match="AVX512-BF16"):
        model.loss(batch)


@needs_bf16
def test_bf16_training_step_stays_close_to_float32():
    """--precision bf16 (fused bfloat16 scorer, autocast dense layers): loss and gradients near float32's."""
    model = small_model(30, 2, pair_hidden=20).eval()
    batch = collate(random_examples(8, 30, seed=4, max_len=20), range(8), torch.device("cpu"))
    results = {}
    for precision in ("fp32", "bf16"):
        model.set_precision(precision)
        model.zero_grad()
        loss = sum(model.loss(batch))
        loss.backward()
        results[precision] = loss.item(), torch.cat([p.grad.flatten() for p in model.parameters()
                                                     if p.grad is not None])
    (loss_32, grad_32), (loss_16, grad_16) = results["fp32"], results["bf16"]
    assert loss_16 == pytest.approx(loss_32, rel=0.01) and loss_16 != loss_32
    assert torch.nn.functional.cosine_similarity(grad_32, grad_16, dim=0) > 0.99
