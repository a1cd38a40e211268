"""RIN's recurrent layers: the BiLSTM encoder, as two one-way LSTMs over right-padded batches, and the GRU cells
of the interaction layers."""
from __future__ import annotations

import functools

import torch
from torch import nn

from model import pair_kernels


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


class GRUCell(nn.GRUCell):
    """``nn.GRUCell`` (same weights and state dict) whose inference step, where no gradient is needed, runs as one
    fused kernel on float32 CPU tensors (``pair_kernels.gru_cell``; it follows ``--pair_kernel``): PyTorch's
    elementwise passes over the (N, 3H) gate products took as long as the products themselves, and NYT
    inference runs 7-14% faster without them (docs/speed.md)."""

    # opaque to torch.compile, as nn.GRUCell's own forward is when eager code calls it (dynamo skips torch's
    # frames); compiled, this frame would be recompiled for every grad mode and thread count it meets
    @torch.compiler.disable
    def forward(self, input: torch.Tensor, hx: torch.Tensor | None = None) -> torch.Tensor:
        if hx is not None and self._fused(input, hx):
            return pair_kernels.gru_cell(self, input, hx)
        return super().forward(input, hx)

    def _fused(self, input: torch.Tensor, hx: torch.Tensor) -> bool:
        """Whether the kernel applies: float32 on the CPU, no autocast, no gradient needed."""
        if torch.is_grad_enabled() and any(t.requires_grad for t in (input, hx, *self.parameters())):
            return False
        if (not self.bias or input.dim() != 2 or input.device.type != "cpu" or hx.dtype != torch.float32
                or torch.is_autocast_enabled("cpu")):
            return False
        return pair_kernels.fused_applies(input)


def split_bidirectional_lstm(state: dict, prefix: str, *args) -> None:
    """Load hook: checkpoints written before the split kept one bidirectional ``encoder``, and before
    :class:`BiLSTM` its halves sat on the model itself; rename their weights to ``bilstm.*``."""
    for key in [k for k in state if k.startswith(prefix + "encoder.")]:
        name = key[len(prefix + "encoder."):]
        direction = "backward_lstm." if name.endswith("_reverse") else "forward_lstm."
        state[prefix + "bilstm." + direction + name.removesuffix("_reverse")] = state.pop(key)
    for key in [k for k in state if k.startswith((prefix + "forward_lstm.", prefix + "backward_lstm."))]:
        state[prefix + "bilstm." + key[len(prefix):]] = state.pop(key)
