"""The fused C++ pair kernels (model/csrc/pair_kernels.cpp): build, choice, and the tensor layouts they read.

They compute the same pair logits as the PyTorch path in model/pair_scorer.py
without ever storing the (B, n, n, d) pair tensor, for float32 tensors on the
CPU. With ``bf16=True`` the forward kernels round each relu(a_i + b_j) and Wr to
bfloat16 and multiply them with AVX512-BF16 dot products (float32 sums), where
the CPU has them (:func:`has_bf16`); the backward kernels stay float32.

The extension is compiled on first use with torch.utils.cpp_extension (needs a
C++ compiler and ninja; cached in ~/.cache/torch_extensions or
$TORCH_EXTENSIONS_DIR, keyed by this CPU's instruction sets since it is built
with -march=native).

Which path runs is chosen by :func:`model.speed.configure` (``kernel``).
"""
from __future__ import annotations

import hashlib
import logging
import os
import platform
from pathlib import Path
from types import ModuleType

import torch
import torch.nn.functional as F

from model import speed

log = logging.getLogger(__name__)
SOURCE = Path(__file__).resolve().parent / "csrc" / "pair_kernels.cpp"
# Floats per vector in the build. 8, not 16, even with AVX-512: on this project's AMD EPYC (Zen 4) 8 measured
# faster (less padding of j, same multiply-add throughput). RIN_PAIR_LANES=16 may suit other AVX-512 CPUs.
LANES = int(os.environ.get("RIN_PAIR_LANES", 8))

_module: ModuleType | None = None
_build_error: str | None = None
_warned = False


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


def build() -> ModuleType:
    """Compile (or load the cached build of) the extension; raises RuntimeError when that fails."""
    global _module, _build_error
    if _module is not None:
        return _module
    if _build_error is not None:
        raise RuntimeError(_build_error)
    from torch.utils import cpp_extension

    flags = _cpu_flags()
    # relations scored at once: 24 accumulators fit AVX-512's 32 registers; with AVX2's 16, blocks of 8
    # measured about 30% faster than 24 (the same code built with -march=haswell on this CPU)
    block = 24 if "avx512f" in flags else 8
    # the source's path is part of the key: one build per checkout, since ninja rebuilds whenever the
    # compile command (which names the path) differs from the one it last ran in that build folder
    key = hashlib.sha1(f"{flags} {LANES} {block} {SOURCE} {SOURCE.read_text()}".encode()).hexdigest()[:10]
    log.info("loading the fused pair kernels (compiled on first use, about 30 s here; cached after that)")
    try:
        _module = cpp_extension.load(
            name=f"rin_pair_kernels_{key}", sources=[str(SOURCE)],
            extra_cflags=["-O3", "-march=native", "-fopenmp", f"-DPAIR_LANES={LANES}", f"-DPAIR_BLOCK={block}"],
            extra_ldflags=["-fopenmp"], verbose=False)
    except Exception as error:  # compiler, ninja or linker missing: every failure means "use PyTorch"
        _build_error = f"the fused pair kernels could not be built ({type(error).__name__}: {str(error)[-2000:]})"
        raise RuntimeError(_build_error) from None
    return _module


def fused_applies(tensor: torch.Tensor) -> bool:
    """Whether the pair scorer should use the fused kernels for ``tensor`` under the current choice."""
    global _warned
    choice = speed.current().kernel
    if choice == "torch":
        return False
    if tensor.device.type != "cpu" or tensor.dtype != torch.float32:
        if choice == "fused":
            raise RuntimeError(f"the fused pair kernels take float32 CPU tensors, not {tensor.dtype} on "
                               f"{tensor.device}; use --pair_kernel auto or torch")
        return False
    try:
        build()
    except RuntimeError as error:
        if choice == "fused":
            raise
        if not _warned:
            log.warning("%s; using the PyTorch pair scorer", error)
            _warned = True
        return False
    return True


def has_bf16() -> bool:
    """Whether the fused kernels were built with the bfloat16 scorer (the CPU has AVX512-BF16)."""
    return bool(build().has_bf16)


def fused_bf16_applies(tensor: torch.Tensor) -> bool:
    """Whether the bfloat16 fused kernels should score pairs for ``tensor`` (of any float dtype) under the
    current choice; ``fused`` fails where they cannot."""
    if not fused_applies(tensor.float() if tensor.device.type == "cpu" else tensor):
        return False
    if has_bf16():
        return True
    if speed.current().kernel == "fused":
        raise RuntimeError("the fused pair kernels have no bfloat16 scorer on this CPU (it needs AVX512-BF16); "
                           "use --pair_kernel auto or torch, or --precision fp32")
    return False


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def forward_inputs(left: torch.Tensor, right: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                   bf16: bool = False) -> tuple[torch.Tensor, ...]:
    """The forward kernels' operands, br padded to Rp. float32: left, right transposed and padded to
    (B, d, np), Wr^T padded to (d, Rp). bfloat16: features padded to an even d, right as (B, d/2, np, 2) and
    Wr as bfloat16 pairs in int32 (d/2, Rp)."""
    (batch, length, hidden), relations = left.shape, weight.shape[0]
    padded_length, padded_relations = _round_up(length, LANES), _round_up(relations, 8)
    padded_bias = F.pad(bias, (0, padded_relations - relations)).contiguous()
    if not bf16:
        right_t = F.pad(right, (0, 0, 0, padded_length - length)).transpose(1, 2).contiguous()
        weight_t = F.pad(weight, (0, 0, 0, padded_relations - relations)).T.contiguous()
        return left.contiguous(), right_t, weight_t, padded_bias
    extra = hidden % 2
    right_2 = F.pad(right, (0, extra, 0, padded_length - length)).view(batch, padded_length, -1, 2)
    weight_2 = F.pad(weight, (0, extra, 0, padded_relations - relations)).to(torch.bfloat16)
    weight_2 = weight_2.view(padded_relations, -1, 2).transpose(0, 1).contiguous().view(torch.int32)
    return (F.pad(left, (0, extra)).contiguous(), right_2.transpose(1, 2).contiguous(), weight_2.squeeze(-1),
            padded_bias)


def pair_logits(left: torch.Tensor, right: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                lengths: torch.Tensor, bf16: bool = False) -> torch.Tensor:
    """All pair logits as (B, n, R, np), -inf outside real cells: j fastest, np >= n rounded up to the vector
    width."""
    return build().pair_logits(*forward_inputs(left, right, weight, bias, bf16), lengths.contiguous(),
                               weight.shape[0])


def pair_bce(left: torch.Tensor, right: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
             lengths: torch.Tensor, bf16: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """sigmoid of every pair logit as (B, n, R, np), 0 outside real cells; each row's sum of softplus(logit)
    (B, n); each row's sum of sigmoid(logit) per relation (B, n, R)."""
    probabilities, softplus_sums, probability_sums = build().pair_bce(
        *forward_inputs(left, right, weight, bias, bf16), lengths.contiguous(), weight.shape[0])
    return probabilities, softplus_sums, probability_sums


def pair_max(left: torch.Tensor, right: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
             lengths: torch.Tensor, bf16: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Max over real j of the pair logits and its arg-max, (B, n, R) each."""
    values, winner = build().pair_max(*forward_inputs(left, right, weight, bias, bf16), lengths.contiguous(),
                                      weight.shape[0])
    return values, winner


def _pad_features(*tensors: torch.Tensor) -> list[torch.Tensor]:
    """Zero-pad the last dimension to a multiple of the vector width."""
    hidden = tensors[0].shape[-1]
    return [F.pad(t, (0, _round_up(hidden, LANES) - hidden)).contiguous() for t in tensors]


def pair_max_backward(grad: torch.Tensor, winner: torch.Tensor, left: torch.Tensor, right: torch.Tensor,
                      weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of :func:`pair_max`'s values for left, right and Wr (Wr's bias: ``grad.sum((0, 1))``)."""
    hidden = left.shape[-1]
    grads = build().pair_max_backward(grad.contiguous(), winner.contiguous(), *_pad_features(left, right, weight))
    return tuple(g[..., :hidden] for g in grads)


def pair_backward(grad_logits: torch.Tensor, left: torch.Tensor, right: torch.Tensor, weight: torch.Tensor,
                  lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of ``sum(grad_logits * logits)`` for left, right and Wr.

    ``grad_logits`` is (B, n, R, np) as :func:`pair_logits` returns, zero outside real cells.
    """
    length, hidden = left.shape[1:]
    left_p, right_p, weight_p = _pad_features(left, F.pad(right, (0, 0, 0, grad_logits.shape[3] - length)), weight)
    grad_left, grad_right, grad_weight = build().pair_backward(grad_logits.contiguous(), left_p, right_p, weight_p,
                                                               lengths.contiguous())
    return grad_left[..., :hidden], grad_right[:, :length, :hidden], grad_weight[:, :hidden]
