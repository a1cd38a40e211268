"""Files written whole or not at all (JSON, bytes), read with one-line errors, checked for
writability before the work, and checksummed."""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from utils.errors import InputError


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, in hex (what config.json records of the data it ran on)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


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


def write_json(path: Path, data: object) -> None:
    atomic_write_bytes(Path(path), (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def write_jsonl(path: Path, records: Iterable[object]) -> None:
    """One JSON value per line (RIN's data format, predictions), UTF-8 as it is, written whole or not at all."""
    atomic_write_bytes(Path(path), "".join(json.dumps(record, ensure_ascii=False) + "\n"
                                           for record in records).encode("utf-8"))


def json_problem(error: json.JSONDecodeError) -> str:
    """json's reason with its column: its own message stops short ("Unterminated string starting at")."""
    return f"{error.msg} column {error.colno}" if error.msg.endswith(" at") else f"{error.msg} at column {error.colno}"


class DuplicateKeyError(ValueError):
    """A JSON object that gives one key twice (raised by :func:`unique_keys`)."""


def unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """json object_pairs_hook: a key given twice is an error (json keeps the last one silently)."""
    result = dict(pairs)
    if len(result) < len(pairs):
        key, count = Counter(key for key, _ in pairs).most_common(1)[0]
        raise DuplicateKeyError(f"the key {key!r} appears {count} times in one object")
    return result


def read_json(path: Path, keys_once: bool = False) -> dict:
    """A JSON file; a missing file, a folder, malformed JSON or bytes that are not UTF-8 are an InputError naming
    the file (and line); with ``keys_once``, so is an object that gives a key twice (JSON keeps the last: in a
    hand-written file, a slip)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8").removeprefix("\ufeff"),
                          object_pairs_hook=unique_keys if keys_once else None)
    except DuplicateKeyError as error:
        raise InputError(f"{path}: {error} (JSON would keep the last); remove one") from None
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: a folder, not a JSON file") from None
    except json.JSONDecodeError as error:
        raise InputError(f"{path}:{error.lineno}: malformed JSON ({json_problem(error)})") from None
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 (byte {error.start})") from None
