"""The fused C++ pair kernels (model/csrc/pair_kernels.cpp): build, choice, and the tensor layouts they read.

They compute the same pair logits as the PyTorch path in model/pair_scorer.py
without ever storing the (B, n, n, d) pair tensor, for float32 tensors on the
CPU; the same build holds the GRU cells (:func:`gru_cell`). With
``bf16=True`` the forward kernels round each relu(a_i + b_j) and Wr to bfloat16
and multiply them with AVX512-BF16 dot products (float32 sums), in the build for
CPUs that have them (:func:`has_bf16`); the backward kernels stay float32.

One source, one build per instruction-set level (:data:`VARIANTS`), chosen at run
time from the CPU's flags, so a build never depends on the machine it was made
on: AVX2 + FMA (``-march=x86-64-v3``), AVX-512 (``x86-64-v4``) and AVX-512 with
BF16. Each is compiled on first use with torch.utils.cpp_extension (needs a C++
compiler and ninja; cached in ~/.cache/torch_extensions or $TORCH_EXTENSIONS_DIR).
CPUs without AVX2 (plain x86-64, aarch64...) and machines where the build fails
use the PyTorch pair scorer, with one warning. ``RIN_PAIR_ISA=<variant>`` picks a
lower level than the best (to compare them), ``RIN_PAIR_ISA=none`` none.

Which path runs is chosen in model/speed.py (``kernel``; :func:`model.speed.fused_applies`).
"""
from __future__ import annotations

import hashlib
import logging
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch
import torch.nn.functional as F

from utils.cpu import X86_64, cpu_flags

log = logging.getLogger(__name__)
SOURCE = Path(__file__).resolve().parent / "csrc" / "pair_kernels.cpp"
# Floats per vector. 8, not 16, even with AVX-512: on an AMD EPYC (Zen 4) 8 measured faster (less padding of
# j, the same multiply-add throughput). RIN_PAIR_LANES=16 may suit other AVX-512 CPUs (no bfloat16 scorer then).
LANES = int(os.environ.get("RIN_PAIR_LANES", 8))
_AVX2 = ("avx", "avx2", "fma", "f16c", "bmi1", "bmi2", "movbe", "abm")  # what -march=x86-64-v3 may use
_AVX512 = _AVX2 + ("avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl")  # x86-64-v4


@dataclass(frozen=True)
class Variant:
    """One build of the kernels: compiler flags, the CPU flags (/proc/cpuinfo) it needs, and the forward
    scorer's register tile: ``j_vectors`` vectors of positions j by ``block`` relations."""

    name: str
    cflags: tuple[str, ...]
    needs: tuple[str, ...]
    block: int  # 1 x 24 accumulators fit AVX-512's 32 registers, 2 x 6 fit AVX2's 16
    j_vectors: int


VARIANTS = (  # best first
    Variant("avx512_bf16", ("-march=x86-64-v4", "-mavx512bf16"), _AVX512 + ("avx512_bf16",), 24, 1),
    Variant("avx512", ("-march=x86-64-v4",), _AVX512, 24, 1),
    Variant("avx2", ("-march=x86-64-v3",), _AVX2, 6, 2),
)
BY_NAME = {v.name: v for v in VARIANTS}

_modules: dict[str, ModuleType] = {}
_errors: dict[str, str] = {}


def cpu() -> tuple[str, frozenset[str]]:
    """This machine's architecture (``platform.machine()``, lower case) and CPU flags (empty off Linux)."""
    return platform.machine().lower(), cpu_flags()


def runnable(variant: Variant) -> bool:
    """Whether this CPU can execute ``variant`` (never load one it cannot: illegal instructions)."""
    machine, flags = cpu()
    return machine in X86_64 and all(flag in flags for flag in variant.needs)


def chosen() -> Variant:
    """The build the kernels use here: the best this CPU runs, or ``$RIN_PAIR_ISA``'s. RuntimeError (with the
    reason) when none applies, and the PyTorch pair scorer runs instead."""
    request = os.environ.get("RIN_PAIR_ISA", "").strip().lower()
    if request == "none":
        raise RuntimeError("RIN_PAIR_ISA=none: the fused pair kernels are switched off")
    if request:
        if request not in BY_NAME:
            raise RuntimeError(f"RIN_PAIR_ISA={request!r} is not one of none, {', '.join(BY_NAME)}")
        if not runnable(BY_NAME[request]):
            raise RuntimeError(f"RIN_PAIR_ISA={request}: this CPU lacks {' '.join(BY_NAME[request].needs)}")
        return BY_NAME[request]
    for variant in VARIANTS:
        if runnable(variant):
            return variant
    machine, _ = cpu()
    raise RuntimeError(f"the fused pair kernels need an x86-64 CPU with AVX2 and FMA; this {machine} CPU has "
                       "neither" if machine in X86_64 else
                       f"the fused pair kernels need an x86-64 CPU with AVX2 and FMA, not {machine}")


def compile_flags(variant: Variant) -> list[str]:
    """The C++ flags of ``variant``'s build (the tests compile a variant this CPU cannot run with these)."""
    return ["-O3", *variant.cflags, "-fopenmp", f"-DPAIR_LANES={LANES}", f"-DPAIR_BLOCK={variant.block}",
            f"-DPAIR_J_VECTORS={variant.j_vectors}", f"-DPAIR_ISA={variant.name}"]


def build(variant: Variant | None = None) -> ModuleType:
    """Compile (or load the cached build of) ``variant`` (default :func:`chosen`); RuntimeError when that fails or
    this CPU cannot run it."""
    variant = variant or chosen()
    if variant.name in _modules:
        return _modules[variant.name]
    if variant.name in _errors:
        raise RuntimeError(_errors[variant.name])
    if not runnable(variant):
        raise RuntimeError(f"this CPU cannot run the {variant.name} build of the pair kernels (it lacks "
                           f"{' '.join(f for f in variant.needs if f not in cpu()[1])})")
    from torch.utils import cpp_extension

    flags = compile_flags(variant)
    # the source's path is part of the key: one build per checkout, since ninja rebuilds whenever the
    # compile command (which names the path) differs from the one it last ran in that build folder
    key = hashlib.sha1(f"{flags} {SOURCE} {SOURCE.read_text()}".encode()).hexdigest()[:10]
    name = f"rin_pair_kernels_{variant.name}_{key}"
    try:  # said only when it compiles (a private helper of torch's: where it looks, may move)
        cached = (Path(cpp_extension._get_build_directory(name, False)) / f"{name}.so").exists()
    except Exception:  # noqa: BLE001 - not knowing only means saying it once too often
        cached = False
    (log.debug if cached else log.info)("loading the %s build of the fused pair kernels (compiled on first use, "
                                        "about 30 s; cached after that)", variant.name)
    try:
        _modules[variant.name] = cpp_extension.load(name=name, sources=[str(SOURCE)], extra_cflags=flags,
                                                    extra_ldflags=["-fopenmp"], verbose=False)
    except Exception as error:  # compiler, ninja or linker missing: every failure means "use PyTorch"
        _errors[variant.name] = (f"the fused pair kernels could not be built ({type(error).__name__}: "
                                 f"{str(error)[-2000:]})")
        raise RuntimeError(_errors[variant.name]) from None
    return _modules[variant.name]


@torch.compiler.disable  # opaque to torch.compile: a clean graph break, not traced
def has_bf16() -> bool:
    """Whether the chosen build has the bfloat16 scorer (the CPU has AVX512-BF16)."""
    return bool(build().has_bf16)


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


@torch.compiler.disable  # opaque to torch.compile: a clean graph break, not traced
def pair_logits(left: torch.Tensor, right: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                lengths: torch.Tensor, bf16: bool = False) -> torch.Tensor:
    """All pair logits as (B, n, R, np), -inf outside real cells: j fastest, np >= n rounded up to the vector
    width."""
    return build().pair_logits(*forward_inputs(left, right, weight, bias, bf16), lengths.contiguous(),
                               weight.shape[0])


@torch.compiler.disable  # opaque to torch.compile: a clean graph break, not traced
def pair_bce(left: torch.Tensor, right: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
             lengths: torch.Tensor, bf16: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """sigmoid of every pair logit as (B, n, R, np), 0 outside real cells; each row's sum of softplus(logit)
    (B, n); each row's sum of sigmoid(logit) per relation (B, n, R)."""
    probabilities, softplus_sums, probability_sums = build().pair_bce(
        *forward_inputs(left, right, weight, bias, bf16), lengths.contiguous(), weight.shape[0])
    return probabilities, softplus_sums, probability_sums


@torch.compiler.disable  # opaque to torch.compile: a clean graph break, not traced
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


@torch.compiler.disable  # opaque to torch.compile: a clean graph break, not traced
def pair_max_backward(grad: torch.Tensor, winner: torch.Tensor, left: torch.Tensor, right: torch.Tensor,
                      weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of :func:`pair_max`'s values for left, right and Wr (Wr's bias: ``grad.sum((0, 1))``)."""
    hidden = left.shape[-1]
    grads = build().pair_max_backward(grad.contiguous(), winner.contiguous(), *_pad_features(left, right, weight))
    return tuple(g[..., :hidden] for g in grads)


@torch.compiler.disable  # opaque to torch.compile: a clean graph break, not traced
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


@torch.compiler.disable  # opaque to torch.compile: a clean graph break, not traced
def gru_cell(input: torch.Tensor, hidden: torch.Tensor, weight_ih: torch.Tensor, weight_hh: torch.Tensor,
             bias_ih: torch.Tensor, bias_hh: torch.Tensor, save: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """A GRU cell's new state (N, H), as ``nn.GRUCell`` computes it, in cache-sized blocks of rows (float32,
    CPU, no autograd); with ``save``, also the (N, 4H) rows :func:`gru_cell_backward` reads."""
    return tuple(build().gru_cell(input.contiguous(), hidden.contiguous(), weight_ih.contiguous(),
                                  weight_hh.contiguous(), bias_ih.contiguous(), bias_hh.contiguous(), save))


@torch.compiler.disable  # opaque to torch.compile: a clean graph break, not traced
def gru_cell_backward(grad: torch.Tensor, saved: torch.Tensor, hidden: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of gi = W_ih x + b_ih and gh = W_hh h + b_hh (N, 3H each) from d(loss)/dh', and the part of
    h's gradient that bypasses the products."""
    return tuple(build().gru_cell_backward(grad.contiguous(), saved, hidden.contiguous()))
