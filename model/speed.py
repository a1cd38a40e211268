"""How the network computes, never what: the pair-scorer implementation, the numeric precision and the
CPU threads.

One switch for all, :func:`configure` (a script calls it through
:func:`configure_for`, which first checks that the choice can run on its device),
one set of flags, :func:`add_arguments`, and :func:`describe` for logs. The caller wraps
forward and loss in :func:`autocast`; the layers ask :func:`current` which
implementation and precision to use (the pair scorer, model/pair_scorer.py, and the
GRU cells, model/layers.py, ask :func:`fused_applies` whether the kernels of
model/pair_kernels.py run; the BiLSTM leaves autocast where the CPU has no bfloat16
LSTM).

* kernel ``auto`` (default): the fused C++ kernels (model/pair_kernels.py: the
  pair scorer and the GRU cells) where they apply and build, else PyTorch with
  one warning; ``fused``: fail instead; ``torch``: always PyTorch.
* precision ``fp32`` (default); ``bf16``: mixed precision, matrix products in
  bfloat16 under autocast (CPU, or a GPU with bfloat16); on a CPU without
  bfloat16 arithmetic (neither AVX512-BF16 nor AMX-BF16) it runs float32, with
  one warning: emulated bfloat16 is slower than float32 (docs/speed.md,
  "--precision bf16, per CPU class"); ``fp16``: float16
  autocast with loss scaling (:func:`grad_scaler`), for CUDA GPUs without
  bfloat16. Parameters, losses and Adam stay float32.
* thread policy ``adaptive`` (default): on the CPU, :func:`autocast` also fits the
  intra-op thread count, at most once a second, to the cores other processes
  leave free (:class:`ThreadGovernor`): a parallel region runs as slowly as its
  slowest thread, and a thread that shares its core with a busy process stalls
  every region (docs/speed.md, "Threads when other processes share the cores").
  ``fixed``: keep the count set with torch.set_num_threads (repeatable runs, timing).
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from model import pair_kernels
from utils.cpu import affinity, cpu_flags
from utils.errors import InputError

KERNELS = ("auto", "fused", "torch")
PRECISIONS = ("fp32", "bf16", "fp16")
THREAD_POLICIES = ("adaptive", "fixed")
KERNEL_ENV, THREAD_POLICY_ENV = "RIN_PAIR_KERNEL", "RIN_THREAD_POLICY"  # the environment's defaults for both flags
log = logging.getLogger(__name__)
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Speed:
    kernel: str = "auto"
    precision: str = "fp32"
    thread_policy: str = "adaptive"


def _from_environment() -> Speed:
    """The defaults of --pair_kernel and --thread_policy from $RIN_PAIR_KERNEL and $RIN_THREAD_POLICY; a value
    that is none of the choices is ignored with a warning, as is $RIN_THREADS (this variable's name before
    2026-12-07, ignored: it read like a thread count)."""
    chosen = {}
    for variable, field, choices in ((KERNEL_ENV, "kernel", KERNELS),
                                     (THREAD_POLICY_ENV, "thread_policy", THREAD_POLICIES)):
        value = os.environ.get(variable) or None  # VAR= (empty) is unset, as a shell user means it
        if value in choices:
            chosen[field] = value
        elif value is not None:
            log.warning("$%s=%r is none of %s: ignored (the default, %s, applies)", variable, value,
                        ", ".join(choices), getattr(Speed, field))
    if "RIN_THREADS" in os.environ:
        log.warning("$RIN_THREADS is ignored: the thread policy's variable is $%s (%s); a thread count is "
                    "--threads", THREAD_POLICY_ENV, " or ".join(THREAD_POLICIES))
    return Speed(**chosen)


DEFAULTS = _from_environment()  # the flags' defaults, fixed at import: configure() never changes them
_current = DEFAULTS


def current() -> Speed:
    """The setting the layers compute with now (the defaults until :func:`configure` changes it)."""
    return _current


def configure(kernel: str | None = None, precision: str | None = None, thread_policy: str | None = None
              ) -> Speed:
    """Set the pair-scorer implementation, the precision and/or the thread policy from now on; returns the new
    setting. Switching to ``fixed`` restores the thread count the governor started from."""
    global _current
    for value, allowed, what in ((kernel, KERNELS, "pair kernel"), (precision, PRECISIONS, "precision"),
                                 (thread_policy, THREAD_POLICIES, "thread policy")):
        if value is not None and value not in allowed:
            raise ValueError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")
    if thread_policy == "fixed":
        governor.restore()
    elif thread_policy == "adaptive" and _current.thread_policy == "fixed":
        governor.resume()
    changes = (("kernel", kernel), ("precision", precision), ("thread_policy", thread_policy))
    _current = replace(_current, **{k: v for k, v in changes if v})
    return _current


def configure_for(device: torch.device, kernel: str, precision: str, thread_policy: str) -> None:
    """:func:`configure` for a script, after checking that ``precision`` and ``kernel`` can run on ``device``;
    InputError with the reason (before any work starts) where one cannot."""
    if problem := precision_problem(precision, device):
        raise InputError(problem)
    governor.reset()  # before configure: a stale ceiling must not override this script's --threads
    configure(kernel=kernel, precision=precision, thread_policy=thread_policy)
    if device.type == "cuda":  # cuDNN runs float32 LSTMs in TF32 unless told: fp32 means float32 throughout.
        # The flag of every torch we support; the newer per-operator one, set alone, breaks reads of this one
        torch.backends.cudnn.allow_tf32 = False
    try:
        fused_applies(torch.zeros(0, device=device))
    except RuntimeError as error:
        given = f"--pair_kernel {kernel}" + (f" (${KERNEL_ENV}={kernel} here)"  # the default where not given
                                             if os.environ.get(KERNEL_ENV) == kernel else "")
        raise InputError(f"{given}: {str(error).splitlines()[0][:300]}") from None


_warned_kernels = False  # the fused kernels' build failure was warned about (kernel auto)


def fused_applies(tensor: torch.Tensor) -> bool:
    """Whether the pair scorer and the GRU cells should use the fused kernels for ``tensor`` under the current
    choice."""
    choice = _current.kernel
    if choice == "torch":
        return False
    if tensor.device.type != "cpu" or tensor.dtype != torch.float32:
        if choice == "fused":
            raise RuntimeError(f"the fused pair kernels take float32 CPU tensors, not {tensor.dtype} on "
                               f"{tensor.device}; use --pair_kernel auto or torch")
        return False
    return _built(choice)


@torch.compiler.disable  # opaque to torch.compile: a clean graph break, not traced
def _built(choice: str) -> bool:
    """Whether the chosen build loads; warns once (``auto``) or raises (``fused``) when it does not."""
    global _warned_kernels
    try:
        pair_kernels.build()
    except RuntimeError as error:
        if choice == "fused":
            raise
        if not _warned_kernels:  # a compiler's output (--pair_kernel fused shows it) cut to the line that says why
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            said = lines[0][:300]
            if len(lines) > 1:
                why = next((line for line in lines[1:] if "error" in line.lower() or "not found" in line), lines[-1])
                said = (f"the fused pair kernels could not be built ({why[:300]}; --pair_kernel fused shows the "
                        "compiler's output)")
            log.warning("%s; using the PyTorch pair scorer", said)
            _warned_kernels = True
        return False
    return True


def describe(device: torch.device | str = "cpu") -> str:
    """Which pair scorer runs on ``device`` under the current choice, in words (for logs and benchmark records)."""
    precision = _current.precision
    if not fused_applies(torch.zeros(0, device=device)):
        return "PyTorch" + ("" if precision == "fp32" else f", {precision}")
    bf16 = ("" if precision == "fp32" else
            ", bf16 dot products" if pair_kernels.has_bf16() else ", float32 (no AVX512-BF16)")
    return f"fused C++ kernels ({pair_kernels.build().isa}{bf16})"


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, defaults: bool = True) -> None:
    """``--pair_kernel``, ``--precision`` and ``--thread_policy``, defined once for train.py, evaluate.py and
    predict.py (bench.py times the variants itself); ``defaults=False`` leaves them None when not given (train.py
    tells given flags from defaults, for --resume)."""
    def default(value: str) -> str | None:
        return value if defaults else None

    parser.add_argument("--pair_kernel", choices=KERNELS, default=default(DEFAULTS.kernel),
                        help="pair scorer and GRU cell implementation: fused C++ kernels (CPU; "
                        "built on first use), PyTorch, or auto = fused where they apply and build, else PyTorch "
                        f"(default: ${KERNEL_ENV} or {Speed.kernel})")
    parser.add_argument("--precision", choices=PRECISIONS, default=default(Speed.precision),
                        help="fp32 = float32 throughout; bf16 = mixed precision, matrix products in bfloat16 (CPU, "
                        "or a GPU with bfloat16); fp16 = float16 mixed precision with loss scaling, for CUDA GPUs "
                        "without bfloat16. Parameters, losses and Adam stay float32 (default: "
                        f"{Speed.precision})")
    parser.add_argument("--thread_policy", choices=THREAD_POLICIES, default=default(DEFAULTS.thread_policy),
                        help="adaptive: use only the CPU cores other processes leave free, checked "
                        "every second (threads that share a core with a busy process stall every parallel "
                        "step); fixed: always the --threads count, for repeatable runs and timing "
                        f"(default: ${THREAD_POLICY_ENV} or {Speed.thread_policy}; fixed with train.py "
                        "--deterministic)")


def precision_problem(precision: str, device: torch.device) -> str | None:
    """Why ``precision`` cannot run on ``device`` (one line), or None when it can."""
    if precision == "fp16" and device.type != "cuda":
        return "--precision fp16 is for CUDA GPUs (with loss scaling); on the CPU use bf16 or fp32"
    if precision == "bf16" and device.type == "cuda" and not cuda_bf16(device):
        return (f"--precision bf16: {torch.cuda.get_device_name(device)} has no bfloat16 arithmetic (it needs "
                "compute capability 8.0, e.g. an A100); use --precision fp16 (float16 with loss scaling) or fp32")
    if precision == "bf16" and device.type not in ("cpu", "cuda"):
        return f"--precision bf16 runs on cpu or cuda, not {device.type}"
    return None


def cuda_bf16(device: torch.device | str) -> bool:
    """Whether the GPU ``device`` multiplies bfloat16 natively: compute capability 8.0 on (Ampere), or ROCm.
    ``torch.cuda.is_bf16_supported()`` also says yes where bfloat16 is only emulated (V100, T4), and asks the
    current device, not ``device``."""
    return bool(torch.version.hip) or torch.cuda.get_device_capability(device)[0] >= 8


BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
_warned_bf16 = False


def cpu_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX-BF16) and oneDNN may use it:
    ``ONEDNN_MAX_CPU_ISA`` (or ``DNNL_MAX_CPU_ISA``) below AVX512_CORE_BF16, e.g. AVX2 to stand in for an
    AVX2-only CPU, leaves oneDNN its slow emulated bfloat16, as on such a CPU."""
    limit = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").upper()
    allowed = limit in ("", "ALL", "DEFAULT") or any(level in limit for level in ("BF16", "FP16", "AMX", "AVX10"))
    return allowed and any(flag in cpu_flags() for flag in BF16_CPU_FLAGS)


def precision_for(device: torch.device | str) -> str:
    """The precision that runs on ``device``: the configured one, except bf16 on a CPU without bfloat16
    arithmetic, where float32 is faster (warned once)."""
    global _warned_bf16
    if _current.precision != "bf16" or torch.device(device).type != "cpu" or cpu_bf16():
        return _current.precision
    if not _warned_bf16:
        log.warning("--precision bf16: this CPU has no bfloat16 arithmetic (AVX512-BF16 or AMX-BF16), or "
                    "ONEDNN_MAX_CPU_ISA hides it, and emulated bfloat16 is slower than float32 (docs/speed.md); "
                    "running float32")
        _warned_bf16 = True
    return "fp32"


def autocast(device: torch.device | str) -> contextlib.AbstractContextManager:
    """The autocast context the caller holds around forward and loss: none in fp32 (so the meta device
    works), else ``torch.autocast`` to the configured dtype. On the CPU with ``adaptive`` threads it first
    lets the :data:`governor` fit the thread count (every training step and decoded batch passes here)."""
    if _current.thread_policy == "adaptive" and torch.device(device).type == "cpu":
        governor.tick()
    dtype = AUTOCAST_DTYPES.get(precision_for(device))
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def grad_scaler(device: torch.device) -> torch.amp.GradScaler:
    """Loss scaling for fp16 (disabled, a pass-through, for every other precision)."""
    return torch.amp.GradScaler(torch.device(device).type, enabled=_current.precision == "fp16")


def _ticks(path: str, fields: slice, cpus: set[str]) -> int | None:
    """Summed clock-tick counters ``fields`` of the lines of ``cpus`` in a /proc/stat file; None where it is
    missing (not Linux)."""
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    return sum(int(x) for line in text.splitlines() if line.split(" ", 1)[0] in cpus
               for x in line.split()[1:][fields])


class ThreadGovernor:
    """Fits torch's intra-op threads to the cores other processes leave free.

    Every ``interval`` seconds it reads how busy this process's CPUs were (/proc/stat, the CPUs of its
    affinity mask) minus this process's own CPU time (``time.process_time``; QEMU's user-mode emulator reports
    none in /proc/self/stat): what other processes used. Each core they kept busy at least ``busy_share`` of
    the time costs one thread; at least one stays, at most the count torch had when the governor started (or
    was last set by someone else: ``--threads``).
    """

    def __init__(self, interval: float = 1.0, busy_share: float = 0.3) -> None:
        self.interval, self.busy_share = interval, busy_share
        self.cpus = {f"cpu{c}" for c in affinity()}
        self.ceiling: int | None = None  # the thread count asked for
        self.set_to: int | None = None  # what this governor last set
        self.last: tuple[float, float, float] | None = None  # (time, seconds its CPUs were busy, ours)
        self.others: float | None = None  # cores other processes kept busy in the last interval

    def _sample(self) -> tuple[float, float, float] | None:
        busy = _ticks("/proc/stat", slice(0, 8), self.cpus)  # user..steal, all non-idle except fields 3, 4
        idle = _ticks("/proc/stat", slice(3, 5), self.cpus)  # idle, iowait
        if busy is None or idle is None:
            return None
        return time.monotonic(), (busy - idle) / os.sysconf("SC_CLK_TCK"), time.process_time()

    def threads_for(self, others: float) -> int:
        """Threads to use when other processes keep ``others`` cores busy."""
        ceiling = self.ceiling or torch.get_num_threads()
        return max(1, min(ceiling, len(self.cpus) - int(others + 1 - self.busy_share)))

    def tick(self) -> None:
        """Look again if ``interval`` has passed; change torch's thread count if the free cores changed."""
        now = time.monotonic()
        if self.last is not None and now - self.last[0] < self.interval:
            return
        sample = self._sample()
        if sample is None:
            return
        current = torch.get_num_threads()
        if current != self.set_to:  # first look, or set by someone else since: that is the ceiling now
            self.ceiling, self.set_to = current, current
        if self.last is not None:
            busy, ours = sample[1] - self.last[1], sample[2] - self.last[2]
            self.others = max(0.0, (busy - ours) / (sample[0] - self.last[0]))
            threads = self.threads_for(self.others)
            if threads != current:
                torch.set_num_threads(threads)
                self.set_to = threads
        self.last = sample

    def reset(self) -> None:
        """Forget what was measured and set: the next :meth:`tick` takes torch's thread count as the ceiling.
        For a script's start, whose ``--threads`` may equal what the governor last set in this process."""
        self.ceiling = self.set_to = self.last = self.others = None

    def restore(self) -> None:
        """Back to the thread count asked for (``fixed``); the measurements go on at the next :meth:`tick`."""
        if self.ceiling is not None and torch.get_num_threads() == self.set_to:
            torch.set_num_threads(self.ceiling)
            self.set_to = self.ceiling

    def resume(self) -> None:
        """Back to ``adaptive``: at once the count the last measurement gave (if any)."""
        if self.ceiling is not None and self.set_to == torch.get_num_threads() and self.others is not None:
            self.set_to = self.threads_for(self.others)
            torch.set_num_threads(self.set_to)


governor = ThreadGovernor()
