"""Imported first by every script, before torch (seconds to load): until the script's work begins, a Ctrl-C ends
it at once with one line, not a traceback through the import machinery (a KeyboardInterrupt raised there can
even be swallowed, in an import lock's callback, and the script go on). From :func:`raise_from_now_on`, which
utils.errors.one_line_errors calls, Ctrl-C raises KeyboardInterrupt again, so that the work can clean up
before its own one line, after which (:func:`ignore_from_now_on`) Ctrl-C is ignored while the program ends.
Only where one of the scripts is the program (not in a notebook or a test session that imports one), and not
with ``--debug``, which keeps Python's traceback."""
import os
import signal
import sys
import threading
from pathlib import Path

SCRIPTS_FOLDER = Path(__file__).resolve().parent.parent


def _stop_at_once(signum: int, frame: object) -> None:
    print(f"{os.path.basename(sys.argv[0])}: interrupted (Ctrl-C)", file=sys.stderr, flush=True)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)  # ended by the signal, as Python ends on Ctrl-C: status 130 in a shell


def raise_from_now_on() -> None:
    """Ctrl-C raises KeyboardInterrupt again (Python's own handler), where this module had taken it over."""
    if signal.getsignal(signal.SIGINT) is _stop_at_once:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def ignore_from_now_on() -> None:
    """The program is ending after its one line: a Ctrl-C pressed again (several in a row are common) is ignored,
    not a traceback from the cleanup at exit (threads, tqdm's monitor, torch's libraries)."""
    if (TAKEN_OVER and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
        signal.signal(signal.SIGINT, signal.SIG_IGN)


TAKEN_OVER = bool(sys.argv and sys.argv[0].endswith(".py") and Path(sys.argv[0]).resolve().parent == SCRIPTS_FOLDER
                  and "--debug" not in sys.argv
                  and signal.getsignal(signal.SIGINT) is signal.default_int_handler)  # not ignored (nohup &)
if TAKEN_OVER:
    signal.signal(signal.SIGINT, _stop_at_once)
