"""The machine a script runs on: its device, memory, CPU model and flags, the cores this process may use
(affinity and cgroup quota) and the threads it takes; seeds. Of the leaves, it loads torch (and utils/vocab.py
through it): tests/unit/test_layering.py keeps the others light."""
from __future__ import annotations

import functools
import logging
import os
import platform
import random
from pathlib import Path

import numpy as np
import torch

from utils.errors import InputError

X86_64 = ("x86_64", "amd64")  # platform.machine() of the x86-64 CPUs (Linux, Windows)


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


def available_memory() -> int | None:
    """Bytes the system can give a new allocation now (Linux's MemAvailable), None where that is unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


@functools.cache
def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags (/proc/cpuinfo's flags, or Features on ARM; empty off Linux), read once."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_model() -> str:
    """The CPU's model name with its family and model numbers (a virtual machine may call a Zen 1 and a Zen 4 both
    "AMD EPYC"), for benchmark records."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/cpuinfo").read_text().split("\n\n")[0].splitlines()
                      if ":" in line)
        fields = {key.strip(): value.strip() for key, value in fields.items()}
        if "model name" in fields:
            return f"{fields['model name']} (family {fields.get('cpu family', '?')}, model {fields.get('model', '?')})"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_quota(root: Path = Path("/")) -> float | None:
    """CPUs' worth of time this process's cgroup may use per period, the tightest along its cgroup path
    (cgroup v2 ``cpu.max``; v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``): what ``docker --cpus`` or a
    Kubernetes CPU limit sets, which the affinity mask does not show. None where no quota is set."""
    try:
        lines = (root / "proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":  # v2: one hierarchy
            bases, names = [root / "sys/fs/cgroup"], ("cpu.max",)
        elif "cpu" in controllers.split(","):  # v1: mounted as cpu,cpuacct (often also linked as cpu)
            bases, names = [root / "sys/fs/cgroup" / controllers, root / "sys/fs/cgroup/cpu"], (
                "cpu.cfs_quota_us", "cpu.cfs_period_us")
        else:
            continue
        relative = Path(path.lstrip("/"))
        for base in bases:  # the cgroup and its parents; in a container its own cgroup is the mount's root
            for folder in (base / relative, *(base / parent for parent in relative.parents)):
                try:
                    values = " ".join((folder / name).read_text() for name in names).split()
                    quota, period = float(values[0]), float(values[1])
                except (OSError, ValueError, IndexError):
                    continue
                if quota > 0 and period > 0:
                    quotas.append(quota / period)
    return min(quotas, default=None)


def affinity() -> list[int]:
    """The CPUs this process may run on (its affinity mask; every CPU where the OS has no such mask)."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def usable_cores() -> int:
    """Cores this process may use: its affinity mask, capped by its cgroup's CPU quota (rounded down, at least
    one: threads beyond the quota are throttled at every period's end while the others wait for them)."""
    cores = len(affinity())
    quota = cpu_quota()
    return cores if quota is None else max(1, min(cores, int(quota)))


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
