"""The device a script runs on, the threads it takes and its seeds (these load torch; the CPU facts they read are
utils/cpu.py's)."""
from __future__ import annotations

import logging
import random

import numpy as np
import torch

from utils.cpu import usable_cores
from utils.errors import InputError


def pick_device(name: str | None = None, flag: str = "--device") -> torch.device:
    """``name`` if given (``cpu``, ``cuda``, ``cuda:1``), else CUDA when available; raises InputError, naming
    ``flag`` (what the caller calls the setting), when the device is not on this machine."""
    if not name:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"{flag} {name}: not a device (cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"{flag} {name}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"{flag} {name}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                             f"numbered from 0")
    return device


def configure_threads(threads: int | None = None) -> int:
    """Use ``threads`` intra-op threads (default: every core this process may use); more than the cores is warned
    about, more than 4 a core refused (InputError)."""
    cores = usable_cores()
    if not threads:
        threads = cores
    elif threads > 4 * cores:  # e.g. 100000: each thread's stack and arena before any work
        raise InputError(f"--threads {threads}: this process may use {cores} cores (affinity mask and cgroup CPU "
                         "quota); more than 4 threads a core is refused: pass a smaller --threads")
    elif threads > cores:
        logging.getLogger(__name__).warning("--threads %d: this process may use %d cores (affinity mask and "
                                            "cgroup CPU quota); threads beyond them only wait for each other",
                                            threads, cores)
    torch.set_num_threads(threads)
    return torch.get_num_threads()


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
