"""A real one-node SLURM cluster on localhost for the tests: munged, slurmctld and slurmd with a minimal
slurm.conf, every file (key, state, spool, logs, sockets) in one temporary folder, on free ports, so it
touches no system configuration and two test sessions on one machine do not meet."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scancel", "scontrol", "sinfo")
CRED_EXPIRE = 20  # seconds; see write_config


def why_unavailable() -> str | None:
    """Why no cluster can start here (packages absent, not root), else None."""
    missing = [tool for tool in (*DAEMONS, *CLIENTS) if shutil.which(tool) is None]
    if missing:
        return (f"SLURM is not installed ({', '.join(missing)} missing): apt-get install -y slurm-wlm munge "
                "(as root; .ci/run does it)")
    if os.geteuid() != 0:
        return "slurmd must run as root to start jobs, and this test runs as another user"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Cluster:
    """Start with start(), stop with stop(); ``env`` holds SLURM_CONF for the clients (sbatch, squeue...)."""

    def __init__(self, folder: Path, cpus: int = 2) -> None:
        self.folder = folder
        self.cpus = cpus
        self.conf = folder / "slurm.conf"
        self.env = {"SLURM_CONF": str(self.conf)}

    def write_config(self) -> None:
        folder = self.folder
        for name in ("state", "spool", "log"):
            (folder / name).mkdir(parents=True, exist_ok=True)
        key = folder / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        self.conf.write_text("\n".join([
            f"ClusterName=rintest{os.getpid()}",
            "SlurmctldHost=localhost",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            # a requeued job waits cred_expire seconds before it starts again (default 120): until then slurmd
            # refuses to launch it ("Job credential revoked", and the job ends with exit code 1)
            f"AuthInfo=socket={folder / 'munge.sock'},cred_expire={CRED_EXPIRE}",
            f"SlurmctldPort={free_port()}",
            f"SlurmdPort={free_port()}",
            f"StateSaveLocation={folder / 'state'}",
            f"SlurmdSpoolDir={folder / 'spool'}",
            f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
            f"SlurmdPidFile={folder / 'slurmd.pid'}",
            f"SlurmctldLogFile={folder / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={folder / 'log' / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "ReturnToService=2",
            "MpiDefault=none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "SchedulerParameters=sched_interval=1",
            "MinJobAge=600",
            "KillWait=5",
            f"NodeName=localhost CPUs={self.cpus} RealMemory=4000 State=UNKNOWN",
            "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
            ""]))

    def start(self, timeout: float = 60.0) -> None:
        """Start the three daemons and wait until the node takes jobs; RuntimeError (with the logs) if not."""
        self.write_config()
        folder, env = self.folder, {**os.environ, **self.env}
        subprocess.run(["munged", "--force", f"--key-file={folder / 'munge.key'}", f"--socket={folder / 'munge.sock'}",
                        f"--pid-file={folder / 'munged.pid'}", f"--log-file={folder / 'log' / 'munged.log'}",
                        f"--seed-file={folder / 'munge.seed'}"], check=True, env=env, capture_output=True)
        subprocess.run(["slurmctld", "-i"], check=True, env=env, capture_output=True)
        subprocess.run(["slurmd", "-N", "localhost"], check=True, env=env, capture_output=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            state = subprocess.run(["sinfo", "--noheader", "--format=%t"], env=env, capture_output=True, text=True)
            if state.stdout.strip() in ("idle", "mix", "alloc"):
                return
            time.sleep(0.5)
        raise RuntimeError(f"the test cluster did not come up within {timeout:.0f} s:\n{self.logs()}")

    def logs(self) -> str:
        logs = sorted((self.folder / "log").glob("*"))
        return "\n".join(f"--- {path.name}\n{path.read_text()[-6000:]}" for path in logs)

    def stop(self) -> None:
        """Cancel what is left, then end the daemons this cluster started (by the pids in their pid files)."""
        env = {**os.environ, **self.env}
        subprocess.run(["scancel", "--full", "--quiet", "--partition=debug"], env=env, capture_output=True)
        for name in ("slurmd", "slurmctld", "munged"):
            pid_file = self.folder / f"{name}.pid"
            if not pid_file.exists():
                continue
            pid = int(pid_file.read_text().split()[0])
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            for _ in range(100):  # up to 10 s
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
