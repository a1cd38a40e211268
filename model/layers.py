"""RIN's recurrent layers: the BiLSTM encoder, as two one-way LSTMs over right-padded batches, and the GRU cells
of the interaction layers."""
from __future__ import annotations

import functools

import torch
from torch import nn

from model import pair_kernels, speed


def gather_positions(values: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """values[b, positions[b, j]] for every (b, j)."""
    return values.gather(1, positions[..., None].expand(-1, -1, values.shape[-1]))


@functools.cache
def cpu_has_bf16_lstm() -> bool:
    """Whether oneDNN runs an LSTM under bfloat16 autocast on this CPU (it needs AVX-512; on AVX2-only CPUs it
    raises "could not create a primitive descriptor"). Probed once with a tiny LSTM."""
    lstm = nn.LSTM(2, 2, batch_first=True)
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            lstm(torch.zeros(1, 1, 2))
    except RuntimeError:
        return False
    return True


class BiLSTM(nn.Module):
    """A one-layer BiLSTM whose backward half reads each sentence reversed within its length, so padded batches
    need no packing (inference about 8% faster on CPU than a packed ``nn.LSTM(bidirectional=True)``).

    Under bfloat16 autocast on a CPU whose oneDNN has no bfloat16 LSTM (no AVX-512, or hidden by
    ONEDNN_MAX_CPU_ISA), both halves run in float32 instead of failing.
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.forward_lstm = nn.LSTM(input_size, hidden_size, batch_first=True)
        self.backward_lstm = nn.LSTM(input_size, hidden_size, batch_first=True)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Features (B, n, 2 * hidden) of right-padded ``inputs`` (B, n, in); zeros at padded positions."""
        if (inputs.device.type == "cpu" and torch.is_autocast_enabled("cpu")
                and torch.get_autocast_dtype("cpu") == torch.bfloat16 and not cpu_has_bf16_lstm()):
            with torch.autocast("cpu", enabled=False):
                return self._run(inputs.float(), lengths)
        return self._run(inputs, lengths)

    def _run(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(inputs.shape[1], device=inputs.device)
        real = positions < lengths[:, None]
        # position j of sentence b reversed within its length (padding stays in place); its own inverse
        reverse = torch.where(real, lengths[:, None] - 1 - positions, positions)
        forward_features, _ = self.forward_lstm(inputs)
        backward_features, _ = self.backward_lstm(gather_positions(inputs, reverse))
        features = torch.cat([forward_features, gather_positions(backward_features, reverse)], dim=-1)
        return features * real[..., None]


class FusedGRUCell(torch.autograd.Function):
    """A GRU cell through the fused kernels: forward as ``pair_kernels.gru_cell``; backward from its saved gates,
    the products' gradients in PyTorch."""

    @staticmethod
    def forward(ctx, input: torch.Tensor, hidden: torch.Tensor, weight_ih: torch.Tensor, weight_hh: torch.Tensor,
                bias_ih: torch.Tensor, bias_hh: torch.Tensor) -> torch.Tensor:
        out, saved = pair_kernels.gru_cell(input, hidden, weight_ih, weight_hh, bias_ih, bias_hh, save=True)
        ctx.save_for_backward(input, hidden, weight_ih, weight_hh, saved)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        input, hidden, weight_ih, weight_hh, saved = ctx.saved_tensors
        grad_gi, grad_gh, grad_hidden = pair_kernels.gru_cell_backward(grad, saved, hidden)
        needs = ctx.needs_input_grad
        return (grad_gi @ weight_ih if needs[0] else None,
                torch.addmm(grad_hidden, grad_gh, weight_hh) if needs[1] else None,
                grad_gi.T @ input if needs[2] else None,
                grad_gh.T @ hidden if needs[3] else None,
                grad_gi.sum(0) if needs[4] else None,
                grad_gh.sum(0) if needs[5] else None)


class GRUCell(nn.GRUCell):
    """``nn.GRUCell`` (same weights and state dict) that runs on the fused kernels for float32 CPU tensors outside
    autocast (it follows ``--pair_kernel``): PyTorch's elementwise passes over the (N, 3H) gate products took
    as long as the products themselves (docs/speed.md). On the kernels it has a first derivative only (no
    double backward, no torch.func transforms), all that training needs."""

    # opaque to torch.compile, as nn.GRUCell's own forward is when eager code calls it (dynamo skips torch's
    # frames); compiled, this frame would be recompiled for every grad mode and thread count it meets
    @torch.compiler.disable
    def forward(self, input: torch.Tensor, hx: torch.Tensor | None = None) -> torch.Tensor:
        """One step of the cell for every row; with (B, n, .) operands, for every token of every sentence."""
        if input.dim() <= 2 or hx is None:
            return self._step(input, hx)
        return self._step(input.flatten(0, -2), hx.flatten(0, -2)).view(*hx.shape[:-1], self.hidden_size)

    def _step(self, input: torch.Tensor, hx: torch.Tensor | None) -> torch.Tensor:
        if hx is None or not self._uses_kernels(input, hx):
            return super().forward(input, hx)
        weights = (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        if torch.is_grad_enabled() and any(t.requires_grad for t in (input, hx, *weights)):
            return FusedGRUCell.apply(input, hx, *weights)
        return pair_kernels.gru_cell(input, hx, *weights)[0]

    def _uses_kernels(self, input: torch.Tensor, hx: torch.Tensor) -> bool:
        """Whether the kernels apply: float32 on the CPU, no autocast."""
        if (not self.bias or input.dim() != 2 or input.device.type != "cpu" or hx.dtype != torch.float32
                or torch.is_autocast_enabled("cpu")):
            return False
        return speed.fused_applies(input)


def split_bidirectional_lstm(state: dict, prefix: str, *args) -> None:
    """Load hook: checkpoints written before the split kept one bidirectional ``encoder``, and before
    :class:`BiLSTM` its halves sat on the model itself; rename their weights to ``bilstm.*``."""
    for key in [k for k in state if k.startswith(prefix + "encoder.")]:
        name = key[len(prefix + "encoder."):]
        direction = "backward_lstm." if name.endswith("_reverse") else "forward_lstm."
        state[prefix + "bilstm." + direction + name.removesuffix("_reverse")] = state.pop(key)
    for key in [k for k in state if k.startswith((prefix + "forward_lstm.", prefix + "backward_lstm."))]:
        state[prefix + "bilstm." + key[len(prefix):]] = state.pop(key)
