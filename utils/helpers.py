"""Small shared helpers every layer may use: project paths (presets, a run's data files), flag types and one-line
errors, process-lock identity, checksums, devices, seeds, CPU flags, cores and threads, logging, and JSON and
atomic file writes."""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import fcntl
import functools
import hashlib
import json
import logging
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO

import numpy as np
import torch

from utils.interrupt import raise_from_now_on
from utils.scorer import MODES

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def project_relative(path: str | Path) -> str:
    """``path`` relative to the project root when it lies inside it, else absolute, for run configs that
    stay valid in another clone or checkout. Symlinks are kept, not followed."""
    absolute = Path(os.path.abspath(path))
    try:
        return str(absolute.relative_to(PROJECT_ROOT))
    except ValueError:
        return str(absolute)


def resolve_project_path(path: str | Path) -> Path:
    """The inverse of :func:`project_relative`: relative paths are taken from the project root."""
    path = Path(path)
    return path if path.is_absolute() else PROJECT_ROOT / path


DATASETS_DIR = PROJECT_ROOT / "dataset"  # prepared datasets, one folder each (dataset/<name>/)
PRESETS_DIR = PROJECT_ROOT / "presets"


def preset_file(dataset: str) -> Path:
    """presets/<dataset>.json: what Table 3 of the paper varies per match mode (rounds, lr, num_epoch)."""
    return PRESETS_DIR / f"{dataset}.json"


# what a preset may set for each match mode (what Table 3 varies per dataset), and the least value of each
# (lr must exceed its)
PRESET_SETTINGS = {"rounds": 0, "lr": 0.0, "num_epoch": 1}


def preset(dataset: str, match: str) -> dict:
    """The settings presets/<dataset>.json gives ``match`` ({} where the dataset has no preset). The whole file is
    checked as train.py checks its flags (a preset of one's own may be hand-written): InputError naming the file,
    the match mode and the setting otherwise; keys starting with '_' are comments."""
    path = preset_file(dataset)
    if not path.exists():
        return {}
    content = read_json(path)
    example = '{"partial": {"rounds": 2, "lr": 0.0005, "num_epoch": 150}, "exact": {...}}'
    if not isinstance(content, dict):
        raise InputError(f"{path}: a JSON {type(content).__name__}, not an object of match modes such as {example}")
    for mode, values in content.items():
        if mode.startswith("_"):
            continue
        if mode not in MODES:
            raise InputError(f"{path}: {mode!r} is no match mode ({' or '.join(MODES)}); comments go under keys "
                             "starting with '_'")
        if not isinstance(values, dict):
            raise InputError(f"{path}: {mode} is {json.dumps(values)[:40]}, not an object such as {{\"rounds\": 2, "
                             "\"lr\": 0.0005, \"num_epoch\": 150}")
        for key, value in values.items():
            if key.startswith("_"):
                continue
            least = PRESET_SETTINGS.get(key)
            if least is None:
                raise InputError(f"{path}: {mode}.{key} is no preset setting (a preset sets "
                                 f"{', '.join(PRESET_SETTINGS)}; give others as train.py flags)")
            lr = key == "lr"
            number = not isinstance(value, bool) and isinstance(value, (int, float) if lr else int)
            if (not number or isinstance(value, float) and not math.isfinite(value) or value < least
                    or lr and value <= least):
                wanted = "a number > 0" if lr else f"an integer >= {least}"
                raise InputError(f"{path}: {mode}.{key} is {json.dumps(value)[:40]}, not {wanted}")
    values = content.get(match)
    if values is None:
        raise InputError(f"{path}: no settings for {match} match (an object such as {{\"{match}\": {{\"rounds\": 2, "
                         "\"lr\": 0.0005, \"num_epoch\": 150}})")
    return values


RUN_DATA_FILES = ("train.json", "dev.json", "test.json", "vocab.json", "labels.json", "embedding.npy")


def field_defaults(settings_class: type) -> dict[str, object]:
    """The defaults a settings dataclass declares (fields without one left out): where every default lives."""
    return {f.name: f.default for f in dataclasses.fields(settings_class) if f.default is not dataclasses.MISSING}


def settings_differences(saved: dict, current: dict, keys: Iterable[str]) -> str:
    """``key=saved (config.json: current)`` for each of ``keys`` whose values differ, joined by '; ' (empty when
    none): what a checkpoint recorded against what a run folder's config.json says now."""
    return "; ".join(f"{key}={saved.get(key)!r} (config.json: {current.get(key)!r})" for key in sorted(keys)
                     if saved.get(key) != current.get(key))


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


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, in hex (what config.json records of the data it ran on)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def data_fingerprint(data_dir: Path) -> dict[str, str]:
    """SHA-256 of every prepared file a training run reads, so a resumed run (or a report) can tell
    when the data under it was prepared again differently."""
    return {name: file_sha256(data_dir / name) for name in RUN_DATA_FILES if (data_dir / name).exists()}


class InputError(ValueError):
    """Input a user can fix (a file, a flag, a run folder): the message names it and says why."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (``prog: error: ...; see --help``) instead of the usage."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(**kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
                         ) -> tuple[argparse.Namespace, list[str]]:  # noqa: D102
        parsed, extras = super().parse_known_args(args, namespace)
        for action in self._actions:  # `--flag "$UNSET"` must not quietly mean the default (or the current folder)
            if action.option_strings and getattr(parsed, action.dest, None) == "" and action.default != "":
                self.error(f"{action.option_strings[0]}: an empty value; give one, or leave the flag out")
        return parsed, extras


def _bounded(kind: Callable[[str], float], low: float | None, high: float | None, low_open: bool, high_open: bool,
             what: str) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        below = low is not None and (value <= low if low_open else value < low)
        above = high is not None and (value >= high if high_open else value > high)
        if (isinstance(value, float) and not math.isfinite(value)) or below or above:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value

    parse.__name__ = what  # argparse names the type in its messages
    return parse


positive_int = _bounded(int, 0, None, True, False, "a positive integer")
non_negative_int = _bounded(int, 0, None, False, False, "an integer >= 0")
positive_float = _bounded(float, 0, None, True, False, "a number > 0")
non_negative_float = _bounded(float, 0, None, False, False, "a number >= 0")
dropout_rate = _bounded(float, 0, 1, False, True, "a probability in [0, 1)")
open_probability = _bounded(float, 0, 1, True, True, "a probability strictly between 0 and 1")
seed_value = _bounded(int, 0, 2**32 - 1, False, False, "a seed in [0, 2**32 - 1]")  # numpy's and torch's range
vector_size = _bounded(int, 0, 4096, True, False, "a vector size in 1..4096")  # word vectors: 50-1,000 in practice


def device_name(text: str) -> str:
    """argparse type for --device: cpu, cuda or cuda:N (availability is checked by :func:`pick_device`)."""
    try:
        device = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a device: use cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda") or (device.type == "cpu" and device.index not in (None, 0)):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device this project runs on: use cpu, cuda or cuda:N")
    return text


def folder_name(text: str) -> str:
    """argparse type for --run_id and --dataset: one plain folder name, so a run stays inside --save_dir (a run is
    named after its dataset) and a dataset inside dataset/."""
    if not text or text in (".", "..") or "/" in text or "\\" in text or text.startswith("~") or "\0" in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not a plain folder name (no '/', '..' or absolute path)")
    if text != text.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not a plain folder name (it starts or ends with a space)")
    return text


def write_problem(folder: Path) -> str | None:
    """Why nothing can be made in ``folder`` (read-only, no permission), found by making a folder there and
    removing it; None where it can."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".rin_write_test_", dir=folder))
    except OSError as error:
        return error.strerror or str(error)
    return None


def check_file_path(path: str | Path, flag: str, probe: bool = True) -> None:
    """InputError naming ``flag`` when a file could not be written at ``path`` (links followed): its folder is
    missing or, with ``probe`` (which touches it), takes no files, or it is a folder. Checked before the work,
    not as an OS error after it."""
    target = Path(os.path.realpath(path))
    if not target.parent.is_dir():
        raise InputError(f"{flag} {path}: folder {target.parent} does not exist")
    if target.is_dir():
        raise InputError(f"{flag} {path}: a folder; name a file")
    # a file is written beside itself, then renamed: its folder is probed; a device or a pipe (/dev/stdout) is
    # written in place
    if probe and (not os.path.exists(path) or os.path.isfile(path)) and (problem := write_problem(target.parent)):
        raise InputError(f"{flag} {path}: cannot write in {target.parent} ({problem})")
    if probe and target.is_file():  # an immutable or append-only file (chattr +i/+a) cannot be replaced either;
        try:  # opened for writing, not written: EACCES (a read-only mode) still lets the rename replace it
            os.close(os.open(target, os.O_WRONLY))
        except PermissionError as error:
            if error.errno == errno.EPERM:
                raise InputError(f"{flag} {path}: the file cannot be replaced ({error.strerror}: immutable or "
                                 "append-only? lsattr shows it)") from None


def check_folder_path(path: str | Path, flag: str) -> None:
    """InputError naming ``flag`` when ``path`` cannot become a folder: it, or the nearest part of it that
    exists, is a file or takes no new folders (read-only, no permission), found by making one there and removing
    it. Before anything is downloaded or trained, not as an OS error at the end."""
    existing = Path(path).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{flag} {path}: {existing} is a file, not a folder")
    if problem := write_problem(existing):
        raise InputError(f"{flag} {path}: cannot make folders in {existing} ({problem})")


def code_commit() -> str:
    """The checked-out commit (short), with ``+changes`` when tracked files other than results and markdown
    differ from it (a benchmark writing into results/ leaves the code as committed); ``unknown`` outside a git
    clone. Recorded beside measured figures, so each can be traced to the code that gave it."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                                  timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "unknown"
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude,glob)results/**",
                  ":(exclude,glob)**/*.md")
    return commit + ("+changes" if changed else "")


def pick_device(name: str | None = None) -> torch.device:
    """``name`` if given (``cpu``, ``cuda``, ``cuda:1``), else CUDA when available; raises InputError when the
    device is not on this machine."""
    if not name:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {name}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                             f"numbered from 0")
    return device


class ErrorExit(SystemExit):
    """Exit status 1 after the error lines were printed; ``str()`` is the message, for callers that catch it."""

    def __init__(self, message: str) -> None:
        super().__init__(1)
        self.message = message

    def __str__(self) -> str:
        return self.message


class Terminated(KeyboardInterrupt):
    """SIGTERM (kill, SLURM's time limit), raised where the program is, so that it stops as for Ctrl-C: context
    managers and ``finally`` clean up (temporary folders, busy processes, children) instead of a dead process."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


@contextlib.contextmanager
def one_line_errors(program: str, debug: bool = False) -> Iterator[None]:
    """Turn the errors a user can fix (bad input, files, run folders, downloads) into ``program: error: ...`` on
    stderr and exit status 1: one line, or one per line of a message that lists several items (every file a
    download misses), and likewise a failed allocation (:func:`out_of_memory`); Ctrl-C into one line and exit
    status 130, SIGTERM likewise (:class:`Terminated`, status 143); a closed pipe into a quiet exit status 141.
    A traceback only for bugs, or for everything with ``debug``."""
    if threading.current_thread() is threading.main_thread():
        raise_from_now_on()  # the script's work begins: Ctrl-C raises, and is one line below, after cleaning up
    catch_sigterm = (threading.current_thread() is threading.main_thread()
                     and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)
    if catch_sigterm:
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    except BrokenPipeError:  # the reader went away (predict.py ... | head): quiet, with SIGPIPE's status as for cat
        if debug:
            raise
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:  # so the flush at exit does not fail again
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        finally:
            os.close(devnull)
        raise SystemExit(141) from None  # 128 + SIGPIPE
    except (InputError, OSError, UnicodeError, json.JSONDecodeError) as error:
        if debug:
            raise
        if isinstance(error, OSError) and error.filename and str(error.filename) not in str(error):
            message = f"{error.filename}: {error.strerror or error}"
        else:
            message = str(error) or type(error).__name__
        lines = [f"{program}: error: {' '.join(line.split())}" for line in message.splitlines() if line.strip()]
        print("\n".join(lines), file=sys.stderr)
        raise ErrorExit("\n".join(lines)) from None
    except (MemoryError, RuntimeError) as error:  # torch's allocators raise RuntimeErrors, most of them bugs
        if debug or not out_of_memory(error):
            raise
        reason = " ".join((str(error) or type(error).__name__).split())[:300]
        line = f"{program}: error: out of memory ({reason}): smaller sizes or batches, or a larger machine"
        print(line, file=sys.stderr)
        raise ErrorExit(line) from None
    except KeyboardInterrupt as stop:
        if debug:
            raise
        print(f"{program}: {interruption(stop)}", file=sys.stderr)
        raise SystemExit(143 if isinstance(stop, Terminated) else 130) from None
    finally:
        if catch_sigterm and signal.getsignal(signal.SIGTERM) is _raise_terminated:  # not one set since
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is an allocation that failed: Python's, torch's CPU allocator's or a GPU's."""
    text = str(error)
    return (isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError"
            or any(sign in text for sign in ("can't allocate memory", "CUDA error: out of memory", "_ALLOC_FAILED")))


def interruption(stop: KeyboardInterrupt) -> str:
    """How the user stopped the program, for its last line."""
    return "terminated (SIGTERM)" if isinstance(stop, Terminated) else "interrupted (Ctrl-C)"


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
    """Use ``threads`` intra-op threads (default: every core this process may use; more is warned about)."""
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


def setup_logging(log_file: Path | None = None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file is not None:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S", handlers=handlers, force=True)


def temporary_name(path: Path) -> Path:
    """A sibling of ``path`` private to this process, so two processes never write one temporary file."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a folder be opened
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def atomic_write_bytes(path: Path, data: bytes, keep_previous: Path | None = None) -> None:
    """Write ``data`` to a private temporary file, fsync it, then rename it over ``path``, so a kill or a crash
    never leaves half a file. With ``keep_previous``, the old ``path`` is first renamed to it. A symbolic link's
    target is replaced (the link stays; not with ``keep_previous``). A path that exists but is no regular file
    (/dev/null, a FIFO), or that names one of this process's streams (/dev/stdout, /proc/self/fd/1, maybe a
    redirected file), is appended to in place: renaming over it would replace the device, or the file the
    shell opened."""
    path = Path(path)
    try:
        if path.exists() and (not path.is_file() or str(path.absolute()).startswith(("/dev/", "/proc/"))):
            with open(path, "ab") as handle:
                handle.write(data)
            return
        target = path if keep_previous is not None else Path(os.path.realpath(path))
        tmp = temporary_name(target)
        try:
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            if keep_previous is not None and target.exists():
                os.replace(target, keep_previous)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as error:  # a full disk names no file by itself: name the one being written
        if error.filename is None or str(error.filename).startswith(str(Path(os.path.realpath(path)).parent)):
            raise OSError(error.errno, error.strerror, str(path)) from None
        raise
    _fsync_folder(target.parent)


def to_cpu(value: object) -> object:
    """``value`` with every tensor in it (nested in dicts, lists and tuples) copied to the CPU."""
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, dict):
        return {key: to_cpu(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(to_cpu(item) for item in value)
    return value


def atomic_torch_save(obj: object, path: Path, keep_previous: Path | None = None) -> None:
    """torch.save through :func:`atomic_write_bytes`, with every tensor on the CPU: a GPU run's checkpoint loads
    anywhere, without map_location, as a CPU run's does."""
    import io

    buffer = io.BytesIO()
    torch.save(to_cpu(obj), buffer)
    atomic_write_bytes(path, buffer.getvalue(), keep_previous)


def write_json(path: Path, data: object) -> None:
    atomic_write_bytes(Path(path), (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def json_problem(error: json.JSONDecodeError) -> str:
    """json's reason with its column: its own message stops short ("Unterminated string starting at")."""
    return f"{error.msg} column {error.colno}" if error.msg.endswith(" at") else f"{error.msg} at column {error.colno}"


def read_json(path: Path) -> dict:
    """A JSON file; a missing file, a folder, malformed JSON or bytes that are not UTF-8 are an InputError naming
    the file (and line)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8").removeprefix("\ufeff"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: a folder, not a JSON file") from None
    except json.JSONDecodeError as error:
        raise InputError(f"{path}:{error.lineno}: malformed JSON ({json_problem(error)})") from None
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 (byte {error.start})") from None
