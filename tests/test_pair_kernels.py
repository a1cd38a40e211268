"""The fused C++ pair kernels compute what the PyTorch pair scorer computes (float32, CPU), in every build this
CPU can run; the builds it cannot run still compile; the bfloat16 scorer sums the rounded products it
promises; and every CPU, compiler or ninja that cannot give a build falls back to PyTorch with one warning."""
import importlib.util
import logging
import shutil
import subprocess
import sysconfig

import pytest
import torch
from helpers import random_examples, small_model
from torch import nn

from data.loader import collate
from model import pair_kernels, pair_scorer, speed
from model.layers import GRUCell
from model.reference import reference_loss


def kernels_available() -> bool:
    try:
        pair_kernels.build()
    except RuntimeError:
        return False
    return True


NO_KERNELS = ("the fused pair kernels cannot be built or run here (no C++ compiler or ninja, or a CPU without "
              "AVX2; test_kernels_build_where_a_compiler_is_present says which)")
needs_kernels = pytest.mark.skipif(not kernels_available(), reason=NO_KERNELS)


def default_variant() -> str | None:
    try:
        return pair_kernels.chosen().name
    except RuntimeError:
        return None


def variant_params() -> list:
    """Every build; those other than this CPU's default compile on first use: marked slow."""
    return [pytest.param(v.name, marks=() if v.name == default_variant() else pytest.mark.slow)
            for v in pair_kernels.VARIANTS]


@pytest.fixture(autouse=True)
def restore_choice():
    yield
    speed.configure(kernel="auto", precision="fp32")


@pytest.fixture
def variant(request, monkeypatch):
    """Run the test on the build named by the parameter (skipped, with the reason, where the CPU cannot)."""
    chosen = pair_kernels.BY_NAME[request.param]
    if not pair_kernels.runnable(chosen):
        missing = sorted(set(chosen.needs) - pair_kernels.cpu()[1])
        pytest.skip(f"this CPU cannot run the {chosen.name} build (lacks {' '.join(missing)}); "
                    "test_builds_this_cpu_cannot_run_still_compile compiles it")
    if not kernels_available():
        pytest.skip(NO_KERNELS)
    monkeypatch.setenv("RIN_PAIR_ISA", chosen.name)
    assert pair_kernels.build().isa == chosen.name
    return chosen.name


@pytest.fixture
def fresh_kernels(monkeypatch):
    """No build loaded, failed or warned about yet in this process (restored afterwards)."""
    monkeypatch.setattr(pair_kernels, "_modules", {})
    monkeypatch.setattr(pair_kernels, "_errors", {})
    monkeypatch.setattr(speed, "_warned_kernels", False)


def test_kernels_build_where_a_compiler_is_present():
    if shutil.which("c++") is None or importlib.util.find_spec("ninja") is None:
        pytest.skip("no C++ compiler or no ninja: the PyTorch pair scorer is used")
    if default_variant() is None:
        pytest.skip(f"no build runs on this CPU: {pair_kernels.cpu()[0]} without AVX2 (the PyTorch pair scorer "
                    "is used; test_cpu_without_a_build_falls_back_with_one_warning)")
    assert pair_kernels.build().isa == default_variant()  # raises with the compiler's message when it breaks


def test_the_best_build_the_cpu_runs_is_chosen(monkeypatch):
    monkeypatch.delenv("RIN_PAIR_ISA", raising=False)  # the automatic choice, whatever the caller's environment
    avx2 = set(pair_kernels.BY_NAME["avx2"].needs)
    avx512 = set(pair_kernels.BY_NAME["avx512"].needs)
    for flags, expected in ((avx2, "avx2"), (avx512, "avx512"), (avx512 | {"avx512_bf16"}, "avx512_bf16"),
                            (avx2 | {"avx512f"}, "avx2")):  # part of AVX-512 is not enough
        monkeypatch.setattr(pair_kernels, "cpu", lambda flags=flags: ("x86_64", frozenset(flags)))
        assert pair_kernels.chosen().name == expected
    monkeypatch.setenv("RIN_PAIR_ISA", "avx2")  # a lower level on request
    assert pair_kernels.chosen().name == "avx2"
    for request, message in (("avx512_bf16", "lacks"), ("sse", "not one of"), ("none", "switched off")):
        monkeypatch.setenv("RIN_PAIR_ISA", request)
        with pytest.raises(RuntimeError, match=message):
            pair_kernels.chosen()


def run_both(model, batch):
    """Loss, gradients and predictions under the PyTorch and the fused pair scorer."""
    outputs = {}
    for choice in ("torch", "fused"):
        speed.configure(kernel=choice)
        model.zero_grad()
        er_loss, rc_loss = model.loss(batch)
        (er_loss + rc_loss).backward()
        grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
        tags, logits = model.predict(batch.word_ids, batch.pos_ids, batch.mask, batch.lengths)
        outputs[choice] = (er_loss, rc_loss, grads, tags, logits)
    return outputs["torch"], outputs["fused"]


@pytest.mark.parametrize("variant", variant_params(), indirect=True)
@pytest.mark.parametrize("relations, rounds, sizes", [
    (4, 2, {}),  # Rp = 8: one block of 8 (AVX-512), 6 + 2 (AVX2); 7 pair features (one padded vector)
    (30, 3, {"pair_hidden": 20}),  # Rp = 32: blocks of 24 + 8 relations (AVX-512), 5 x 6 + 2 (AVX2)
    (57, 1, {"pair_hidden": 70}),  # 24 + 24 + 8 + 8 (AVX-512), 10 x 6 + 4 (AVX2); two chunks of features
    (5, 0, {}),  # no interaction: only the BCE and the decoder use the kernels
])
def test_fused_kernels_match_pytorch(variant, relations, rounds, sizes):
    model = small_model(relations, rounds, **sizes).eval()
    for seed in range(2):
        examples = random_examples(7, relations, seed=seed, max_len=21)
        assert max(len(e.word_ids) for e in examples) > 16  # np = 24: a tile of 2 x 8 j (AVX2), then 8 more
        examples[0] = random_examples(1, relations, seed=99, max_len=1)[0]  # a one-token sentence
        batch = collate(examples, torch.device("cpu"))
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


@pytest.mark.parametrize("variant", variant_params(), indirect=True)
def test_pair_max_ignores_padding_and_breaks_ties_to_the_first_j(variant):
    torch.manual_seed(0)
    left, right = torch.randn(3, 19, 7), torch.randn(3, 19, 7)
    # identical pairs in sentence 0, each group the first j of which must win (8 lanes or more per vector):
    right[0, [1, 3, 17]] = 3.0 + 6.0 * (torch.arange(7.0) % 2)  # in one vector (1, 3), in one lane (1, 17)
    right[0, [2, 10]] = 3.0 + torch.arange(7.0)  # in one lane of two vectors
    right[0, [7, 9]] = 3.0 + torch.arange(7.0).flip(0)  # the first j in the higher lane (7 of vector 0, 1 of 1)
    right[1, 4:] = 50.0  # padding of sentence 1 (length 4) would win every max
    weight, bias = torch.randn(9, 7), torch.randn(9)
    mask = torch.tensor([[True] * 19, [True] * 4 + [False] * 15, [False] * 19])  # sentence 2 is empty
    speed.configure(kernel="fused")
    values, winner = pair_kernels.pair_max(left, right, weight, bias, mask.sum(dim=1))
    logits = ((left[:, :, None] + right[:, None]).relu() @ weight.T + bias).masked_fill(~mask[:, None, :, None],
                                                                                           float("-inf"))
    expected = logits.max(dim=2)
    assert torch.allclose(values, expected.values, atol=1e-5)
    # the winner's logit is the max (PyTorch's product may round identical pairs differently by position, so
    # its arg-max is no oracle for exact ties), and of identical pairs the first j wins
    assert torch.allclose(logits.gather(2, winner[:, :, None]).squeeze(2), expected.values, atol=1e-5)
    assert (winner[1] < 4).all() and not torch.isin(winner[0], torch.tensor([3, 9, 10, 17])).any()
    assert all((winner[0] == j).any() for j in (1, 2, 7))  # every group won somewhere: its tie was contested
    assert (winner[2] == 0).all() and (values[2] == float("-inf")).all()  # an empty sentence: -inf at j = 0
    grads = torch.autograd.grad(pair_scorer.pair_max(left.requires_grad_(), right.requires_grad_(), weight, bias,
                                                     mask).sum(), (left, right))
    assert grads[1][1, 4:].abs().sum() == 0  # padding gets no gradient


@needs_kernels
@pytest.mark.parametrize("lengths", [[4, 9], [4, -1], [4]], ids=["past n", "negative", "one for two sentences"])
def test_kernels_refuse_lengths_outside_the_padded_sentence(lengths):
    """A length the kernels would loop past their buffers with is an error, not a crash (the wrappers are
    public; the model itself passes mask.sum(1))."""
    torch.manual_seed(0)
    left, right, weight, bias = torch.randn(2, 5, 8), torch.randn(2, 5, 8), torch.randn(3, 8), torch.randn(3)
    bad = torch.tensor(lengths)
    speed.configure(kernel="fused")
    with pytest.raises(RuntimeError, match="length"):
        pair_kernels.pair_logits(left, right, weight, bias, bad)
    with pytest.raises(RuntimeError, match="length"):
        pair_kernels.pair_max(left, right, weight, bias, bad)
    with pytest.raises(RuntimeError, match="length"):
        pair_kernels.pair_backward(torch.zeros(2, 5, 3, 8), left, right, weight, bad)
    values, winner = pair_kernels.pair_max(left, right, weight, bias, torch.tensor([5, 3]))
    for outside in (5, -1):
        with pytest.raises(RuntimeError, match="winner"):
            pair_kernels.pair_max_backward(torch.ones_like(values), winner.index_fill(2, torch.tensor([0]), outside),
                                           left, right, weight)
    assert all(g.isfinite().all() for g in pair_kernels.pair_max_backward(torch.ones_like(values), winner,
                                                                          left, right, weight))


@pytest.mark.parametrize("variant", variant_params(), indirect=True)
def test_pair_bce_sigmoid_and_softplus_over_the_float_range(variant):
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


def compiler_targets(flags: list[str]) -> bool:
    probe = subprocess.run(["c++", *flags, "-x", "c++", "-c", "-", "-o", "/dev/null"], input="int x;",
                           capture_output=True, text=True)
    return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.parametrize("name", [v.name for v in pair_kernels.VARIANTS])
def test_builds_this_cpu_cannot_run_still_compile(name, tmp_path):
    """Each build this CPU cannot run is compiled (not loaded: illegal instructions), so CI on an AVX2 machine
    still catches an AVX-512 build that breaks; the builds it runs are compiled and tested above."""
    variant = pair_kernels.BY_NAME[name]
    if pair_kernels.runnable(variant):
        pytest.skip(f"this CPU runs the {name} build: test_fused_kernels_match_pytorch[{name}-...] builds and "
                    "tests it")
    if shutil.which("c++") is None:
        pytest.skip("no C++ compiler")
    flags = pair_kernels.compile_flags(variant)
    if not compiler_targets(variant.cflags):
        pytest.skip(f"this compiler cannot target {' '.join(variant.cflags)}")
    from torch.utils import cpp_extension

    includes = [f"-I{path}" for path in [*cpp_extension.include_paths(), sysconfig.get_paths()["include"]]]
    abi = f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}"
    result = subprocess.run(["c++", "-std=c++17", "-fPIC", *flags, *includes, abi, "-DTORCH_EXTENSION_NAME=probe",
                             "-DTORCH_API_INCLUDE_EXTENSION_H", "-c", str(pair_kernels.SOURCE), "-o",
                             str(tmp_path / "kernels.o")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    symbols = subprocess.run(["nm", "-C", str(tmp_path / "kernels.o")], capture_output=True, text=True).stdout
    assert "pair_bce" in symbols and "pair_max_backward" in symbols


def test_choice_is_checked_and_respected():
    with pytest.raises(ValueError):
        speed.configure(kernel="fast")
    speed.configure(kernel="torch")
    assert not speed.fused_applies(torch.zeros(1))
    speed.configure(kernel="auto")
    assert not speed.fused_applies(torch.zeros(1, dtype=torch.float64))  # float64: PyTorch path
    speed.configure(kernel="fused")
    with pytest.raises(RuntimeError, match="float32 CPU"):
        speed.fused_applies(torch.zeros(1, dtype=torch.float64))


def losses_and_warnings(caplog, calls: int = 2) -> tuple[list[float], list[str]]:
    model = small_model(6, 2).eval()
    batch = collate(random_examples(4, 6, seed=2), torch.device("cpu"))
    with caplog.at_level(logging.WARNING, logger=speed.log.name):
        losses = [sum(model.loss(batch)).item() for _ in range(calls)]
    return losses, [r.getMessage() for r in caplog.records if r.name == speed.log.name]


@pytest.mark.parametrize("machine, flags, reason", [
    ("x86_64", {"sse2", "sse4_2", "avx"}, "AVX2"),  # plain x86-64: no AVX2
    ("aarch64", {"fp", "asimd", "sve"}, "aarch64"),
])
def test_cpu_without_a_build_falls_back_with_one_warning(machine, flags, reason, monkeypatch, caplog, fresh_kernels):
    monkeypatch.delenv("RIN_PAIR_ISA", raising=False)
    monkeypatch.setattr(pair_kernels, "cpu", lambda: (machine, frozenset(flags)))
    speed.configure(kernel="torch", thread_policy="fixed")  # the losses are compared bit for bit
    expected = losses_and_warnings(caplog, calls=1)[0][0]
    speed.configure(kernel="auto")
    losses, warnings = losses_and_warnings(caplog)
    assert losses == [expected, expected]  # the PyTorch pair scorer's own loss
    assert len(warnings) == 1 and reason in warnings[0] and "PyTorch pair scorer" in warnings[0]
    speed.configure(kernel="fused")
    with pytest.raises(RuntimeError, match=reason):
        losses_and_warnings(caplog)


@pytest.mark.parametrize("failure", ["no compiler", "no ninja"])
def test_failed_build_falls_back_with_one_warning(failure, monkeypatch, caplog, fresh_kernels, tmp_path):
    if default_variant() is None:
        pytest.skip("no build runs on this CPU: nothing to fail")
    from torch.utils import cpp_extension

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))  # no cached build to load
    if failure == "no compiler":
        monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    else:
        def no_ninja():
            raise RuntimeError("Ninja is required to load C++ extensions")
        monkeypatch.setattr(cpp_extension, "verify_ninja_availability", no_ninja)
    speed.configure(kernel="torch", thread_policy="fixed")  # the losses are compared bit for bit
    expected = losses_and_warnings(caplog, calls=1)[0][0]
    speed.configure(kernel="auto")
    losses, warnings = losses_and_warnings(caplog)
    assert losses == [expected, expected]
    assert len(warnings) == 1 and "could not be built" in warnings[0]
    assert "\n" not in warnings[0] and len(warnings[0]) < 500  # the compiler's command lines are not repeated
    assert ("no-such-compiler: not found" if failure == "no compiler" else "Ninja is required") in warnings[0]
    speed.configure(kernel="fused")
    with pytest.raises(RuntimeError, match="could not be built"):
        losses_and_warnings(caplog)


@needs_kernels
def test_fused_gradients_are_repeatable_whatever_the_thread_count():
    """Chunks of work are fixed and their partial sums added in order: the same bits every time, with any
    number of threads and whichever thread takes which chunk."""
    threads = torch.get_num_threads()
    torch.manual_seed(1)
    batch, length, hidden, relations = 37, 19, 20, 30
    left, right = torch.randn(batch, length, hidden), torch.randn(batch, length, hidden)
    weight, bias = torch.randn(relations, hidden), torch.randn(relations)
    lengths = torch.randint(1, length + 1, (batch,))
    runs = []
    try:
        for count in (1, 2, 3, 2):
            torch.set_num_threads(count)
            grad_logits, _, _ = pair_kernels.pair_bce(left, right, weight, bias, lengths)
            _, winner = pair_kernels.pair_max(left, right, weight, bias, lengths)
            runs.append([*pair_kernels.pair_backward(grad_logits, left, right, weight, lengths),
                         *pair_kernels.pair_max_backward(torch.randn(winner.shape, generator=torch.Generator()
                                                                     .manual_seed(0)), winner, left, right, weight)])
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for run in runs[1:] for a, b in zip(runs[0], run, strict=True))


def gru_weights(cell: nn.GRUCell) -> tuple[torch.Tensor, ...]:
    return cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh


@pytest.mark.parametrize("variant", variant_params(), indirect=True)
@pytest.mark.parametrize("rows, inputs, hidden", [(0, 5, 100), (1, 5, 100), (129, 24, 100), (300, 171, 13)],
                         ids=["no rows", "one row", "two blocks", "H not a multiple of the vector width"])
def test_gru_kernels_match_nn_grucell(variant, rows, inputs, hidden):
    """The GRU cells: nn.GRUCell's state and gradients up to rounding, saturated gates included, and the same
    bits on one thread and two (as with nn.GRUCell, a one-block call's product may still round differently on
    more threads)."""
    torch.manual_seed(0)
    cell = GRUCell(inputs, hidden)
    input, state, grad = torch.randn(rows, inputs), torch.randn(rows, hidden), torch.randn(rows, hidden)
    input[: rows // 2] *= 100.0  # gates at 0 and 1, tanh at -1 and 1: no overflow to inf or nan
    input.requires_grad_(), state.requires_grad_()
    expected = nn.GRUCell.forward(cell, input, state)
    expected_grads = torch.autograd.grad(expected, (input, state, *cell.parameters()), grad)
    threads = torch.get_num_threads()
    runs = []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            output = cell(input, state)
            assert output.grad_fn.name() == "FusedGRUCellBackward"
            runs.append((output, *torch.autograd.grad(output, (input, state, *cell.parameters()), grad)))
            with torch.no_grad():
                assert torch.equal(pair_kernels.gru_cell(input, state, *gru_weights(cell))[0], output)
    finally:
        torch.set_num_threads(threads)
    assert runs[0][0].shape == expected.shape
    assert all(torch.equal(a, b) for a, b in zip(*runs, strict=True))
    assert torch.allclose(runs[0][0], expected, rtol=1e-5, atol=2e-6)
    for fused, reference in zip(runs[0][1:], expected_grads, strict=True):
        scale = max(1.0, reference.abs().amax().item()) if reference.numel() else 1.0
        assert torch.allclose(fused, reference, rtol=1e-4, atol=1e-5 * scale)


@needs_kernels
@pytest.mark.parametrize("kernel", ["auto", "torch"])
def test_a_gru_cell_steps_every_token_of_a_batch(kernel):
    """(B, n, .) operands, as model/rin.py passes them: each token one row of the 2-D cell, hooks called once."""
    speed.configure(kernel=kernel)
    torch.manual_seed(0)
    cell, input, state = GRUCell(5, 12), torch.randn(2, 3, 5), torch.randn(2, 3, 12)
    calls = []
    cell.register_forward_hook(lambda module, args, output: calls.append(output.shape))
    with torch.no_grad():
        rows = nn.GRUCell.forward(cell, input.flatten(0, 1), state.flatten(0, 1)).view(2, 3, 12)
        assert torch.allclose(cell(input, state), rows, atol=2e-6)
    assert calls == [torch.Size([2, 3, 12])]


def test_gru_cells_use_the_kernels_for_float32_outside_autocast(monkeypatch):
    """Inference and training in float32 run the kernels; bfloat16 autocast, float64 and ``--pair_kernel torch``
    run nn.GRUCell; a gradient for the input, the state or the weights alone is right too, with a
    non-contiguous state."""
    calls = []
    kernel = pair_kernels.gru_cell
    monkeypatch.setattr(pair_kernels, "gru_cell", lambda *args, **kw: calls.append(1) or kernel(*args, **kw))
    torch.manual_seed(0)
    cell, input, state = GRUCell(5, 12), torch.randn(9, 5), torch.randn(9, 12)
    with torch.no_grad():
        expected = nn.GRUCell.forward(cell, input, state)
        assert torch.allclose(cell(input, state), expected, atol=2e-6) and len(calls) == 1
        with torch.autocast("cpu", dtype=torch.bfloat16):
            cell(input, state)
        assert cell.double()(input.double(), state.double()).dtype == torch.float64
        cell.float()
        speed.configure(kernel="torch")
        assert torch.equal(cell(input, state), expected)
        assert len(calls) == 1
    speed.configure(kernel="auto")
    state = torch.randn(12, 9).T  # a transposed view
    for wanted in ("input", "state", "weights"):
        input = input.detach().requires_grad_(wanted == "input")
        state = state.detach().requires_grad_(wanted == "state")
        cell.requires_grad_(wanted == "weights")
        output = cell(input, state)
        assert output.grad_fn.name() == "FusedGRUCellBackward"
        reference = nn.GRUCell.forward(cell, input, state)
        targets = {"input": (input,), "state": (state,), "weights": tuple(cell.parameters())}[wanted]
        for fused, expected_grad in zip(torch.autograd.grad(output.sum(), targets),
                                        torch.autograd.grad(reference.sum(), targets), strict=True):
            assert torch.allclose(fused, expected_grad, atol=1e-5)
    assert len(calls) == 4


@needs_kernels
def test_gru_kernels_refuse_what_they_cannot_read():
    weights = tuple(w.detach() for w in gru_weights(GRUCell(5, 12)))
    with pytest.raises(RuntimeError, match="inconsistent shapes"):
        pair_kernels.gru_cell(torch.zeros(3, 6), torch.zeros(3, 12), *weights)
    with pytest.raises(RuntimeError, match="float32"):
        pair_kernels.gru_cell(torch.zeros(3, 5).double(), torch.zeros(3, 12), *weights)
    with pytest.raises(RuntimeError, match="inconsistent shapes"):
        pair_kernels.gru_cell_backward(torch.zeros(3, 12), torch.zeros(3, 36), torch.zeros(3, 12))


@needs_kernels
def test_the_oracle_keeps_pytorchs_gru_cells(monkeypatch):
    """model/reference.py is the paper-literal computation: none of the production path's kernels."""
    monkeypatch.setattr(pair_kernels, "gru_cell", lambda *args, **kw: pytest.fail("the oracle ran the GRU kernels"))
    reference_loss(small_model(4, 2), random_examples(3, 4, seed=0))


def test_gru_cells_stay_out_of_torch_compile():
    """Dynamo leaves GRUCell.forward to eager code, as it leaves nn.GRUCell's when the model's eager code calls
    it: compiled, that frame was recompiled for each grad mode and thread count it met, up to the recompile
    limit (a warning, and seconds each)."""
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(GRUCell(5, 12))(torch.randn(3, 5), torch.randn(3, 12))
    assert explanation.graph_count == 0


needs_bf16 = pytest.mark.skipif(not (kernels_available() and pair_kernels.has_bf16()),
                                reason="the build in use is not avx512_bf16 (no AVX512-BF16 on this CPU, or "
                                       "RIN_PAIR_ISA asks for a lower one): the bfloat16 fused scorer is not built")


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

    # the loss: the positive cells' logits it subtracts are the same rounded products (not float32 ones)
    positive = cells[..., None] & (torch.arange(relations) % 3 == 0)
    loss = pair_scorer._fused_bce(left, right, weight, bias, positive.nonzero(), real, True)[0]
    expected_loss = (torch.nn.functional.softplus(expected) * cells[..., None]).sum() - expected[positive].sum()
    assert loss.item() == pytest.approx(expected_loss.item(), rel=1e-6)


def bf16_step(model, batch) -> tuple[float, torch.Tensor]:
    """Loss and all gradients of one step under the configured precision, autocast held as train_step holds it."""
    model.zero_grad()
    with speed.autocast("cpu"):
        loss = sum(model.loss(batch))
    loss.backward()
    return loss.item(), torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


@pytest.mark.parametrize("kernel", ["auto", "fused", "torch"])
def test_bf16_on_a_cpu_without_bfloat16_arithmetic_runs_float32(kernel, monkeypatch, caplog):
    """Where the CPU lacks AVX512-BF16 and AMX-BF16 (forced here), emulated bfloat16 is slower than float32
    (docs/speed.md): --precision bf16 runs float32 exactly, with one warning."""
    if kernel == "fused" and not kernels_available():
        pytest.skip(NO_KERNELS)
    monkeypatch.setattr(speed, "cpu_bf16", lambda: False)
    monkeypatch.setattr(speed, "_warned_bf16", False)
    model = small_model(30, 2, pair_hidden=20).eval()
    batch = collate(random_examples(6, 30, seed=3, max_len=15), torch.device("cpu"))
    speed.configure(kernel=kernel, thread_policy="fixed")  # bit for bit: adaptive threads follow the machine's load
    loss_32, grad_32 = bf16_step(model, batch)
    speed.configure(precision="bf16")
    with caplog.at_level(logging.WARNING, logger=speed.log.name):
        steps = [bf16_step(model, batch) for _ in range(2)]
    assert all(loss == loss_32 and torch.equal(grad, grad_32) for loss, grad in steps)
    warnings = [r.getMessage() for r in caplog.records if r.name == speed.log.name]
    assert len(warnings) == 1 and "running float32" in warnings[0]


@pytest.mark.parametrize(("limit", "allowed"), [("", True), ("ALL", True), ("avx512_core_bf16", True),
                                              ("AVX512_CORE_AMX", True), ("AVX2", False), ("AVX512_CORE", False),
                                              ("AVX512_CORE_VNNI", False)])
def test_a_onednn_isa_limit_without_bfloat16_counts_as_a_cpu_without_it(limit, allowed, monkeypatch):
    """ONEDNN_MAX_CPU_ISA below AVX512_CORE_BF16 (the AVX2 stand-in of docs/speed.md) leaves oneDNN emulated
    bfloat16, so --precision bf16 runs float32 as on a CPU without it; the CPU's flags are faked both ways."""
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", limit)
    monkeypatch.setattr(speed, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "avx512_bf16"}))
    assert speed.cpu_bf16() is allowed
    monkeypatch.setattr(speed, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    assert speed.cpu_bf16() is False


@needs_kernels
@pytest.mark.parametrize("kernel", ["auto", "fused", "torch"])
def test_bf16_without_the_fused_bfloat16_scorer(kernel, monkeypatch):
    """A CPU with bfloat16 arithmetic but a kernel build without the bfloat16 scorer (forced here, so it runs on
    every CPU): the fused kernels score the autocast's bfloat16 inputs in float32 (auto, fused), the PyTorch
    pair scorer multiplies bfloat16 copies (torch); the dense layers run under bfloat16 autocast either way."""
    monkeypatch.setattr(speed, "cpu_bf16", lambda: True)
    monkeypatch.setattr(pair_kernels, "has_bf16", lambda: False)
    model = small_model(30, 2, pair_hidden=20).eval()
    batch = collate(random_examples(6, 30, seed=3, max_len=15), torch.device("cpu"))
    loss_32, grad_32 = bf16_step(model, batch)
    speed.configure(kernel=kernel, precision="bf16")
    loss_16, grad_16 = bf16_step(model, batch)
    assert loss_16 == pytest.approx(loss_32, rel=0.02) and loss_16 != loss_32
    assert torch.nn.functional.cosine_similarity(grad_32, grad_16, dim=0) > 0.99
    left, right = torch.randn(2, 5, 20, dtype=torch.bfloat16), torch.randn(2, 5, 20, dtype=torch.bfloat16)
    weight, bias = torch.randn(30, 20), torch.randn(30)
    operands, rounds_to_bf16 = pair_scorer._operands(left, right, weight, bias)
    assert operands[0].dtype == (torch.bfloat16 if kernel == "torch" else torch.float32) and not rounds_to_bf16
    mask = torch.ones(2, 5, dtype=torch.bool)
    got = pair_scorer.pair_logits(left, right, weight, bias, mask)
    speed.configure(kernel="torch", precision="fp32")
    float32 = pair_scorer.pair_logits(left.float(), right.float(), weight, bias, mask)
    if kernel == "torch":  # bfloat16 products
        assert got.dtype == torch.float32 and not torch.equal(got, float32)
        assert torch.allclose(got, float32, rtol=0.05, atol=0.1)
    else:  # the float32 kernels on the bfloat16 inputs
        assert torch.allclose(got, float32, rtol=1e-5, atol=1e-5)


def scorer_case(batch: int, length: int, hidden: int, relations: int, features: float, weights: float) -> tuple:
    """Random pair-scorer inputs (left, right, Wr, br, mask, one positive cell per sentence), seeded."""
    generator = torch.Generator().manual_seed(0)
    left, right = (torch.randn(batch, length, hidden, generator=generator) * features for _ in range(2))
    weight, bias = torch.randn(relations, hidden, generator=generator) * weights, torch.zeros(relations)
    mask = torch.ones(batch, length, dtype=torch.bool)
    return left, right, weight, bias, mask, torch.tensor([[b, 1, 2, b % relations] for b in range(batch)])


def test_float16_pair_scorer_sums_weight_gradients_in_float32():
    """--precision fp16 (CUDA) on the PyTorch pair scorer: the BCE's bias gradient sums about 0.5 per cell, so
    90,000 here, past float16's 65504 before any loss scale applies. Wr and its bias stay float32 parameters:
    their gradients are summed and returned in float32 and are finite; left and right run in float16."""
    speed.configure(kernel="torch", precision="fp16")  # what train.py sets on a GPU; the CPU computes float16 too
    left, right, weight, bias, mask, cells = scorer_case(50, 60, 16, 8, features=0.3, weights=0.1)

    def gradients():
        inputs = [t.clone().requires_grad_() for t in (left, right, weight, bias)]
        loss = pair_scorer.pair_bce(*inputs, cells, mask) + pair_scorer.pair_max(*inputs, mask).float().sum()
        loss.backward()
        return loss.item(), [t.grad for t in inputs]

    loss_16, grads_16 = gradients()
    speed.configure(precision="fp32")
    left, right = left.half().float(), right.half().float()  # the same inputs, computed in float32
    loss_32, grads_32 = gradients()
    assert [g.dtype for g in grads_16] == [torch.float32] * 4
    assert all(bool(g.isfinite().all()) for g in grads_16)
    assert grads_32[3].abs().max() > 65504  # the sum that overflowed float16
    assert loss_16 == pytest.approx(loss_32, rel=1e-3)
    for got, expected in zip(grads_16, grads_32, strict=True):
        assert torch.nn.functional.cosine_similarity(got.flatten(), expected.flatten(), dim=0) > 0.999


def test_bfloat16_pair_scorer_sums_its_chunks_in_float32(monkeypatch):
    """--precision bf16 on the PyTorch pair scorer (a GPU, or --pair_kernel torch): each chunk's Wr gradient is
    one bfloat16 product, but the chunks add up in float32; summed in bfloat16, one sentence per chunk, the
    gradient drifted 0.85% from float32's here, against 0.03% now."""
    monkeypatch.setattr(speed, "cpu_bf16", lambda: True)  # bfloat16 runs on any CPU; only the speed differs
    monkeypatch.setattr(pair_scorer, "CHUNK_ELEMENTS", 1)  # one sentence per chunk: 64 chunks
    left, right, weight, bias, mask, cells = scorer_case(64, 12, 16, 8, features=0.5, weights=0.3)

    def weight_gradient(precision: str) -> torch.Tensor:
        speed.configure(kernel="torch", precision=precision)
        inputs = [t.clone().requires_grad_() for t in (left, right, weight, bias)]
        pair_scorer.pair_bce(*inputs, cells, mask).backward()
        return inputs[2].grad

    bf16 = weight_gradient("bf16")
    left, right = left.bfloat16().float(), right.bfloat16().float()  # the same inputs, computed in float32
    float32 = weight_gradient("fp32")
    assert bf16.dtype == torch.float32
    assert (bf16 - float32).norm() / float32.norm() < 1e-3


@needs_bf16
def test_bf16_training_step_stays_close_to_float32():
    """--precision bf16 (fused bfloat16 scorer, autocast dense layers): loss and gradients near float32's."""
    model = small_model(30, 2, pair_hidden=20).eval()
    batch = collate(random_examples(8, 30, seed=4, max_len=20), torch.device("cpu"))
    loss_32, grad_32 = bf16_step(model, batch)
    speed.configure(precision="bf16")
    loss_16, grad_16 = bf16_step(model, batch)
    assert loss_16 == pytest.approx(loss_32, rel=0.01) and loss_16 != loss_32
    assert torch.nn.functional.cosine_similarity(grad_32, grad_16, dim=0) > 0.99
