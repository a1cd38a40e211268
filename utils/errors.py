"""Errors a user can fix, and how every script reports them: one line on stderr and an exit status, never a
traceback (Ctrl-C, SIGTERM, a closed pipe and a failed allocation included)."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator

from utils.interrupt import ignore_from_now_on, raise_from_now_on


class InputError(ValueError):
    """Input a user can fix (a file, a flag, a run folder): the message names it and says why."""


def lines_named(numbers: list[int]) -> str:
    """The first ten line numbers, and '...' for more, for a message about the lines of a file."""
    return ", ".join(map(str, numbers[:10])) + (" ..." if len(numbers) > 10 else "")


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
        ignore_from_now_on()  # first: a press during the line below would be a traceback
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
    """How the user stopped the program, for its last line, with what the work added to it (its notes: what was
    kept, how to continue)."""
    how = "terminated (SIGTERM)" if isinstance(stop, Terminated) else "interrupted (Ctrl-C)"
    return "; ".join([how, *getattr(stop, "__notes__", ())])
