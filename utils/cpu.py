"""This machine's CPU and memory, read without torch (quick to import): the CPU's model and flags, the cores this
process may use (affinity mask and cgroup quota), the memory a new allocation can have."""
from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

X86_64 = ("x86_64", "amd64")  # platform.machine() of the x86-64 CPUs (Linux, Windows)


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
