"""Exclusive locks on files that name their holder (pid, boot, start time), so a lock left by a dead process, or
one whose pid was reused, is told from a live one."""
from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

from utils.errors import InputError


def process_alive(pid: str | int) -> bool:
    """Whether ``pid`` names a live process on this machine (another user's too), as a lock or a temporary
    folder recorded it; empty, garbage, 0 or negative (which os.kill takes for a process group) is none."""
    try:
        number = int(pid)
        if number <= 0:
            return False
        os.kill(number, 0)
    except (ValueError, OverflowError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _boot_and_start(pid: int) -> tuple[str, str] | None:
    """This boot's id and the start time of process ``pid`` (Linux /proc; None elsewhere or when it is gone)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return boot, stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the command's "(name)"


def process_identity() -> str:
    """What a lock file records of its holder, this process: its pid and, on Linux, the boot and the process's
    start time, so that a pid reused after a reboot, or by a later process, is not the holder."""
    pid = os.getpid()
    found = _boot_and_start(pid)
    return f"{pid} {found[0]} {found[1]}" if found else str(pid)


def hold_lock(path: Path, in_use: Callable[[str], str]) -> IO[str]:
    """An exclusive lock (flock) on ``path``, created if missing, that names this process (process_identity)
    until the returned handle is closed; InputError ``in_use(pid)`` while another process holds it. Its holder
    may remove the file before closing it: a lock taken on a file no longer at ``path`` is taken again."""
    while True:
        try:
            handle = open(path, "a+", encoding="utf-8", errors="replace")
        except OSError as error:
            raise InputError(f"{path}: cannot be opened to lock it ({error.strerror or error})") from None
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                raise InputError(in_use((handle.read().split() or ["unknown"])[0])) from None
            except OSError as error:  # e.g. ENOLCK on a network file system
                raise InputError(f"{path}: cannot be locked ({error.strerror or error})") from None
            try:
                same = os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                handle.seek(0)
                handle.truncate()
                handle.write(process_identity())
                handle.flush()
                return handle
        except BaseException:
            handle.close()
            raise
        handle.close()


def holder_alive(identity: str) -> bool:
    """Whether the process a lock file names (:func:`process_identity`, or a bare pid) is still running."""
    pid, *recorded = identity.split() or [""]
    if not process_alive(pid):
        return False
    if not recorded:
        return True
    found = _boot_and_start(int(pid))
    if found is None:  # no /proc here, where the pid is all there is to go on; or the process has just ended
        return not Path("/proc/self/stat").exists()
    return list(found) == recorded
