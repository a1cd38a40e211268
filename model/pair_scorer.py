"""Memory-lean scoring of every word pair: logits_ij = Wr relu(A h_i + B h_j + b_m) + b_r.

Splitting ``Wm [h_i; h_j]`` into ``A h_i + B h_j`` lets the pair tensor be formed
by broadcasting two (B, n, d) projections. The two autograd functions below
never keep the (B, n, n, d) pair tensor for backward; they compute it in row
chunks and recompute what the backward pass needs:

* :class:`PairMax` returns ``max_j logits_ij`` per relation (the interaction
  layers' ``y_r(i)``, as a logit) and keeps only the arg-max, so its backward
  touches one pair per (sentence, token, relation).
* :class:`PairBCE` returns the summed binary cross-entropy over all real cells,
  computed from logits, and keeps only d(loss)/d(logits) (B, n, n, R).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

CHUNK_ELEMENTS = 1 << 22  # pair-tensor elements per chunk (16 MB in float32)


def _row_chunks(left: torch.Tensor, right: torch.Tensor) -> list[slice]:
    batch, length, hidden = right.shape
    rows = max(1, CHUNK_ELEMENTS // max(1, batch * length * hidden))
    return [slice(start, start + rows) for start in range(0, left.shape[1], rows)]


def _pairs(left: torch.Tensor, right: torch.Tensor, rows: slice) -> torch.Tensor:
    """relu(A h_i + B h_j) for the rows ``rows``: (B, rows, n, d)."""
    return torch.relu(left[:, rows, None, :] + right[:, None, :, :])


def pair_logits(left: torch.Tensor, right: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """All pair logits (B, n, n, R), chunked; used for decoding (no gradient needed)."""
    return torch.cat([F.linear(_pairs(left, right, rows), weight, bias)
                      for rows in _row_chunks(left, right)], dim=1)


class PairMax(torch.autograd.Function):
    """``max over real j`` of the pair logits, per token i and relation r."""

    @staticmethod
    def forward(ctx, left, right, weight, bias, mask):  # noqa: D102
        blocked = ~mask[:, None, :, None]  # padded j never wins the max
        values, winners = [], []
        for rows in _row_chunks(left, right):
            logits = F.linear(_pairs(left, right, rows), weight, bias).masked_fill(blocked, float("-inf"))
            value, winner = logits.max(dim=2)
            values.append(value)
            winners.append(winner)
        winner = torch.cat(winners, dim=1)  # (B, n, R)
        ctx.save_for_backward(left, right, weight, winner)
        return torch.cat(values, dim=1)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        left, right, weight, winner = ctx.saved_tensors
        batch, length, relations = winner.shape
        hidden = left.shape[-1]
        flat_winner = winner.reshape(batch, length * relations)
        chosen_right = right.gather(1, flat_winner[..., None].expand(-1, -1, hidden))
        chosen_right = chosen_right.view(batch, length, relations, hidden)
        pair = torch.relu(left[:, :, None, :] + chosen_right)  # (B, n, R, d)
        grad_weight = torch.einsum("bir,bird->rd", grad, pair)
        grad_bias = grad.sum(dim=(0, 1))
        grad_pair = grad[..., None] * weight[None, None] * (pair > 0)
        grad_left = grad_pair.sum(dim=2)
        grad_right = torch.zeros_like(right).scatter_add_(
            1, flat_winner[..., None].expand(-1, -1, hidden), grad_pair.view(batch, length * relations, hidden))
        return grad_left, grad_right, grad_weight, grad_bias, None


class PairBCE(torch.autograd.Function):
    """Sum of BCE-with-logits over all real (i, j, r) cells."""

    @staticmethod
    def forward(ctx, left, right, weight, bias, targets, cell_mask):  # noqa: D102
        total = left.new_zeros(())
        grad_logits = torch.empty_like(targets)
        weights = cell_mask[..., None].to(targets.dtype)
        for rows in _row_chunks(left, right):
            logits = F.linear(_pairs(left, right, rows), weight, bias)
            target, keep = targets[:, rows], weights[:, rows]
            total += (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * keep).sum()
            grad_logits[:, rows] = (torch.sigmoid(logits) - target) * keep
        ctx.save_for_backward(left, right, weight, grad_logits)
        return total

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        left, right, weight, grad_logits = ctx.saved_tensors
        grad_left = torch.zeros_like(left)
        grad_right = torch.zeros_like(right)
        grad_weight = torch.zeros_like(weight)
        for rows in _row_chunks(left, right):
            pair = _pairs(left, right, rows)
            chunk_grad = grad_logits[:, rows] * grad
            grad_weight += chunk_grad.flatten(0, 2).T @ pair.flatten(0, 2)
            grad_pair = (chunk_grad @ weight) * (pair > 0)
            grad_left[:, rows] = grad_pair.sum(dim=2)
            grad_right += grad_pair.sum(dim=1)
        grad_bias = grad_logits.sum(dim=(0, 1, 2)) * grad
        return grad_left, grad_right, grad_weight, grad_bias, None, None
