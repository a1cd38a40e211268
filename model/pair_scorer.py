"""Memory-lean scoring of every word pair: logits_ij = Wr relu(A h_i + B h_j + b_m) + b_r.

Splitting ``Wm [h_i; h_j]`` into ``A h_i + B h_j`` lets the pair tensor be formed
by broadcasting two (B, n, d) projections. The two autograd functions below
never keep the (B, n, n, d) pair tensor for backward; they build it a few
sentences at a time and recompute what the backward pass needs:

* :class:`PairMax` returns ``max_j logits_ij`` per relation (the interaction
  layers' ``y_r(i)``, as a logit) and keeps only the arg-max, so its backward
  scores only the distinct winning pairs.
* :class:`PairBCE` returns the summed binary cross-entropy over all real cells,
  computed from logits against the positive cells (a list: the targets are
  sparse), and keeps only d(loss)/d(logits) (B, n, n, R).

On the CPU the pair logits and their backward come from fused C++ kernels that
keep each relu(A h_i + B h_j) in registers (model/pair_kernels.py), and the BCE's
sigmoid and softplus are taken there too, before a logit is stored; elsewhere, or
with ``--pair_kernel torch``, from the PyTorch code below. Which path runs and in
which precision is :func:`model.speed.precision_for`'s: with ``bf16`` the fused
kernels multiply in bfloat16 (AVX512-BF16); the PyTorch path runs on bfloat16
(``fp16``: float16) copies of its inputs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from model import pair_kernels, speed

CHUNK_ELEMENTS = 1 << 22  # pair-tensor elements per chunk (16 MB in float32)


def _sentence_chunks(left: torch.Tensor) -> list[slice]:
    """Slices of whole sentences whose pair tensor holds about CHUNK_ELEMENTS values."""
    batch, length, hidden = left.shape
    size = max(1, CHUNK_ELEMENTS // max(1, length * length * hidden))
    return [slice(start, start + size) for start in range(0, batch, size)]


def _pairs(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """relu(A h_i + B h_j) for every (i, j): (b, n, n, d)."""
    return (left[:, :, None, :] + right[:, None, :, :]).relu_()


def _scores_into(out: torch.Tensor, pairs: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``out[...] = pairs @ weight.T + bias`` written straight into ``out`` (contiguous), in ``pairs``' dtype."""
    torch.addmm(bias.to(pairs.dtype), pairs.flatten(0, 2), weight.T.to(pairs.dtype), out=out.view(-1, weight.shape[0]))
    return out


def _operands(left: torch.Tensor, right: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
              ) -> tuple[tuple[torch.Tensor, ...], bool]:
    """The pair scorer's inputs in the precision that runs here (:func:`model.speed.precision_for`), and
    whether the fused kernels are to round to bfloat16. The fused kernels take float32 inputs and, under
    bf16, round inside (AVX512-BF16); the PyTorch path runs on copies of ``left`` and ``right`` in the autocast
    dtype and keeps ``weight`` and ``bias`` as they are (float32 parameters): their gradients sum over every
    cell of the batch, which passes float16's 65504 before a loss scale could help, so they are returned in
    float32, their products taken in float32 under fp16 (:func:`_wide`) and in bfloat16 under bf16 (float32's
    range), chunks summed in float32."""
    tensors = (left, right, weight, bias)
    precision = speed.precision_for(left.device)
    if precision == "fp32":
        return tensors, False
    if left.device.type == "cpu" and speed.current().kernel != "torch":
        floats = tuple(t.float() for t in tensors)
        if speed.fused_applies(floats[0]):
            return floats, precision == "bf16" and pair_kernels.has_bf16()
    dtype = speed.AUTOCAST_DTYPES[precision]
    return (left.to(dtype), right.to(dtype), weight, bias), False


def _wide(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` in float32 if it is float16, whose range a sum over many cells can pass (bfloat16 has
    float32's range)."""
    return tensor.float() if tensor.dtype == torch.float16 else tensor


def pair_max(left: torch.Tensor, right: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, mask: torch.Tensor
             ) -> torch.Tensor:
    """``max over real j`` of the pair logits (B, n, R), differentiable (:class:`PairMax`)."""
    operands, fused_bf16 = _operands(left, right, weight, bias)
    return PairMax.apply(*operands, mask, fused_bf16)


def pair_bce(left: torch.Tensor, right: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, cells: torch.Tensor,
             mask: torch.Tensor) -> torch.Tensor:
    """Summed BCE over all real cells against the positive ``cells``, differentiable (:class:`PairBCE`)."""
    operands, fused_bf16 = _operands(left, right, weight, bias)
    return PairBCE.apply(*operands, cells, mask, fused_bf16)


def pair_logits(left: torch.Tensor, right: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
    """All pair logits (B, n, n, R) in float32, -inf outside real cells; used for decoding (no gradient)."""
    (left, right, weight, bias), fused_bf16 = _operands(left, right, weight, bias)
    batch, length, _ = left.shape
    if speed.fused_applies(left):
        logits = pair_kernels.pair_logits(left, right, weight, bias, mask.sum(dim=1), fused_bf16)
        return logits[..., :length].transpose(2, 3)
    logits = left.new_empty(batch, length, length, weight.shape[0])
    for part in _sentence_chunks(left):
        _scores_into(logits[part], _pairs(left[part], right[part]), weight, bias)
    logits = logits.masked_fill_(~(mask[:, :, None, None] & mask[:, None, :, None]), float("-inf"))
    return logits.float()


def _true_indices(flags: torch.Tensor, bound: int) -> torch.Tensor:
    """Indices of the True entries of a 1-D ``flags``. On a GPU, padded with index 0 to ``bound`` (at least
    their count) by ``nonzero_static``: a result whose size depends on the data would make the host wait for
    the device. Callers give the padding zero weight."""
    if flags.device.type == "cpu":
        return flags.nonzero().squeeze(1)
    return torch.nonzero_static(flags, size=bound, fill_value=0).squeeze(1)


class PairMax(torch.autograd.Function):
    """``max over real j`` of the pair logits, per token i and relation r."""

    @staticmethod
    def forward(ctx, left: torch.Tensor, right: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,  # noqa: D102
                mask: torch.Tensor, fused_bf16: bool) -> torch.Tensor:
        if speed.fused_applies(left):
            values, winner = pair_kernels.pair_max(left, right, weight, bias, mask.sum(dim=1), fused_bf16)
            ctx.fused = True
            ctx.save_for_backward(left, right, weight, winner)
            return values
        ctx.fused = False
        batch, length, _ = left.shape
        values = left.new_empty(batch, length, weight.shape[0])
        winner = torch.empty(values.shape, dtype=torch.long, device=left.device)
        for part in _sentence_chunks(left):
            logits = _scores_into(left.new_empty(*left[part].shape[:2], length, weight.shape[0]),
                                  _pairs(left[part], right[part]), weight, bias)
            logits.masked_fill_(~mask[part, None, :, None], float("-inf"))  # padded j never wins
            torch.max(logits, dim=2, out=(values[part], winner[part]))
        ctx.save_for_backward(left, right, weight, winner)
        return values

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # noqa: D102
        left, right, weight, winner = ctx.saved_tensors
        if ctx.fused:
            grad_left, grad_right, grad_weight = pair_kernels.pair_max_backward(grad, winner, left, right, weight)
            return grad_left, grad_right, grad_weight, grad.sum(dim=(0, 1)), None, None
        # Only the winning cell of each (sentence, i, r) gets a gradient. Score the
        # distinct winning pairs (b, i, j) once each: at most B*n*min(n, R) of them.
        # On a GPU exactly that many (the padding, with zero gradient, all points at
        # pair 0): a (B*n*min(n, R), d) tensor in one piece, 128 MB for 50 sentences
        # of 80 tokens at 170 relations, the price of not waiting for the count.
        batch, length, relations = winner.shape
        rows = torch.arange(batch * length, device=winner.device).repeat_interleave(relations)
        cell_ids = rows * length + winner.flatten()
        used = torch.zeros(batch * length * length, dtype=torch.bool, device=winner.device)
        used[cell_ids] = True  # a dense map instead of torch.unique: no sort
        pair_ids = _true_indices(used, bound=batch * length * min(length, relations))
        slot = (torch.cumsum(used, 0) - 1)[cell_ids]
        sentence, i, j = pair_ids // (length * length), (pair_ids // length) % length, pair_ids % length
        pair = torch.relu(left[sentence, i] + right[sentence, j])  # (U, d)
        cell_grad = grad.new_zeros(len(pair_ids), relations)
        cell_grad[slot, torch.arange(relations, device=grad.device).repeat(batch * length)] = grad.flatten()
        grad_weight = (_wide(cell_grad).T @ _wide(pair)).to(weight.dtype)
        grad_bias = grad.sum(dim=(0, 1), dtype=weight.dtype)
        grad_pair = torch.ops.aten.threshold_backward(cell_grad @ weight.to(cell_grad.dtype), pair, 0.0)
        hidden = left.shape[-1]
        grad_left = left.new_zeros(batch * length, hidden).index_add_(0, sentence * length + i, grad_pair)
        grad_right = right.new_zeros(batch * length, hidden).index_add_(0, sentence * length + j, grad_pair)
        return grad_left.view_as(left), grad_right.view_as(right), grad_weight, grad_bias, None, None


class PairBCE(torch.autograd.Function):
    """Sum of BCE-with-logits over all real (i, j, r) cells; ``cells`` (P, 4) lists the positive ones as
    (sentence, i, j, r), each once; ``mask`` (B, n) marks real tokens."""

    @staticmethod
    def forward(ctx, left: torch.Tensor, right: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,  # noqa: D102
                cells: torch.Tensor, mask: torch.Tensor, fused_bf16: bool) -> torch.Tensor:
        ctx.fused = speed.fused_applies(left)
        if ctx.fused:
            total, grad_logits, grad_bias = _fused_bce(left, right, weight, bias, cells, mask, fused_bf16)
            ctx.save_for_backward(left, right, weight, grad_logits, mask.sum(dim=1), grad_bias)
            return total
        total = left.new_zeros((), dtype=torch.promote_types(left.dtype, torch.float32))
        batch, length, _ = left.shape
        targets = torch.zeros(batch, length, length, weight.shape[0], dtype=torch.bool, device=left.device)
        targets[cells.unbind(dim=1)] = True
        grad_logits = left.new_empty(targets.shape)  # holds the logits, then d(loss)/d(logits)
        keep = (mask[:, :, None] & mask[:, None, :])[..., None]
        for part in _sentence_chunks(left):
            logits = _scores_into(grad_logits[part], _pairs(left[part], right[part]), weight, bias)
            target, keep_part = targets[part].to(logits.dtype), keep[part]
            # BCE from logits: softplus(z) - y z, summed over real cells
            total += F.softplus(logits).addcmul_(logits, target, value=-1.0).mul_(keep_part).sum(dtype=total.dtype)
            logits.sigmoid_().sub_(target).mul_(keep_part)
        ctx.save_for_backward(left, right, weight, grad_logits)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # noqa: D102
        if ctx.fused:
            left, right, weight, grad_logits, lengths, grad_bias = ctx.saved_tensors
            grad_left, grad_right, grad_weight = pair_kernels.pair_backward(grad_logits, left, right, weight, lengths)
            return grad_left * grad, grad_right * grad, grad_weight * grad, grad_bias * grad, None, None, None
        left, right, weight, grad_logits = ctx.saved_tensors
        grad_left = torch.empty_like(left)
        grad_right = torch.empty_like(right)
        grad_weight = torch.zeros(weight.shape, dtype=torch.promote_types(grad_logits.dtype, torch.float32),
                                  device=weight.device)  # chunks summed in float32 (float64 in the oracle tests)
        for part in _sentence_chunks(left):
            pair = _pairs(left[part], right[part])
            chunk_grad = grad_logits[part]
            grad_weight += _wide(chunk_grad.flatten(0, 2)).T @ _wide(pair.flatten(0, 2))
            grad_pair = torch.ops.aten.threshold_backward(chunk_grad @ weight.to(chunk_grad.dtype), pair, 0.0)
            grad_left[part] = grad_pair.sum(dim=2)
            grad_right[part] = grad_pair.sum(dim=1)
        grad_weight, grad_bias = grad_weight.to(weight.dtype), grad_logits.sum(dim=(0, 1, 2), dtype=weight.dtype)
        return grad_left * grad, grad_right * grad, grad_weight * grad, grad_bias * grad, None, None, None


def _fused_bce(left: torch.Tensor, right: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, cells: torch.Tensor,
               mask: torch.Tensor, bf16: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The loss, d(loss)/d(logits) in the fused kernels' (B, n, R, np) layout (zero outside real cells) and
    d(loss)/d(bias).

    BCE from logits is softplus(z) - y z with gradient sigmoid(z) - y. The kernel gives softplus and
    sigmoid of every cell; the few positive cells (y = 1) are corrected here, their logits recomputed.
    """
    probabilities, softplus_sums, probability_sums = pair_kernels.pair_bce(left, right, weight, bias,
                                                                           mask.sum(dim=1), bf16)
    sentence, i, j, relation = cells.unbind(dim=1)  # positive cells, all real
    pairs, rows = F.relu(left[sentence, i] + right[sentence, j]), weight[relation]
    if bf16:  # the products the kernel summed: both factors rounded to bfloat16 (to nearest even), as there
        pairs, rows = pairs.bfloat16().float(), rows.bfloat16().float()
    positive_logits = (pairs * rows).sum(dim=1) + bias[relation]
    total = softplus_sums.sum() - positive_logits.sum()
    grad_logits = probabilities
    grad_logits[sentence, i, relation, j] -= 1.0
    grad_bias = probability_sums.sum(dim=(0, 1)) - torch.bincount(relation, minlength=weight.shape[0])
    return total, grad_logits, grad_bias
