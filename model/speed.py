"""How the network computes, never what: the pair-scorer implementation and the numeric precision.

One switch for both, :func:`configure`, and one pair of flags, :func:`add_arguments`,
shared by every script. The model itself holds no dtype or kernel logic: the
caller wraps forward and loss in :func:`autocast`, the pair scorer asks
:func:`current` which implementation and precision to use.

* kernel ``auto`` (default): the fused C++ kernels (model/pair_kernels.py) where
  they apply and build, else PyTorch with one warning; ``fused``: fail instead;
  ``torch``: always the PyTorch pair scorer.
* precision ``fp32`` (default); ``bf16``: mixed precision, matrix products in
  bfloat16 under autocast (CPU, or a GPU with bfloat16); ``fp16``: float16
  autocast with loss scaling (:func:`grad_scaler`), for CUDA GPUs without
  bfloat16. Parameters, losses and Adam stay float32.
"""
from __future__ import annotations

import argparse
import contextlib
import os
from dataclasses import dataclass, replace

import torch

KERNELS = ("auto", "fused", "torch")
PRECISIONS = ("fp32", "bf16", "fp16")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Speed:
    kernel: str = "auto"
    precision: str = "fp32"


def _from_environment() -> Speed:
    kernel = os.environ.get("RIN_PAIR_KERNEL", "auto")
    return Speed(kernel=kernel if kernel in KERNELS else "auto")


_current = _from_environment()


def current() -> Speed:
    return _current


def configure(kernel: str | None = None, precision: str | None = None) -> Speed:
    """Set the pair-scorer implementation and/or the precision from now on; returns the new setting."""
    global _current
    if kernel is not None and kernel not in KERNELS:
        raise ValueError(f"pair kernel must be one of {', '.join(KERNELS)}, not {kernel!r}")
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    _current = replace(_current, **{k: v for k, v in (("kernel", kernel), ("precision", precision)) if v})
    return _current


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--pair_kernel`` and ``--precision``, defined once for train.py, evaluate.py, predict.py and bench.py."""
    parser.add_argument("--pair_kernel", choices=KERNELS, default=_current.kernel,
                        help="pair scorer implementation: fused C++ kernels (CPU; built on first use), PyTorch, or "
                        "auto = fused where they apply and build, else PyTorch (default: $RIN_PAIR_KERNEL or auto)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="fp32 (default); bf16 = mixed precision, matrix products in bfloat16 (CPU, or a GPU "
                        "with bfloat16); fp16 = float16 mixed precision with loss scaling, for CUDA GPUs without "
                        "bfloat16. Parameters, losses and Adam stay float32")


def precision_problem(precision: str, device: torch.device) -> str | None:
    """Why ``precision`` cannot run on ``device`` (one line), or None when it can."""
    if precision == "fp16" and device.type != "cuda":
        return "--precision fp16 is for CUDA GPUs (with loss scaling); on the CPU use bf16 or fp32"
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return (f"--precision bf16: {torch.cuda.get_device_name(device)} has no bfloat16 support; "
                "use --precision fp16 (float16 with loss scaling) or fp32")
    if precision == "bf16" and device.type not in ("cpu", "cuda"):
        return f"--precision bf16 runs on cpu or cuda, not {device.type}"
    return None


def autocast(device: torch.device | str) -> contextlib.AbstractContextManager:
    """The autocast context the caller holds around forward and loss: none in fp32 (so the meta device
    works), else ``torch.autocast`` to the configured dtype."""
    dtype = AUTOCAST_DTYPES.get(_current.precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def grad_scaler(device: torch.device) -> torch.amp.GradScaler:
    """Loss scaling for fp16 (disabled, a pass-through, for every other precision)."""
    return torch.amp.GradScaler(torch.device(device).type, enabled=_current.precision == "fp16")
