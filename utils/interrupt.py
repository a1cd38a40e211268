"""Imported first by every script, before torch (seconds to load): a Ctrl-C that reaches the top level ends in
one line and exit status 130, as one inside the scripts' work does (utils.helpers.one_line_errors), not in a
traceback through the import machinery. Only where one of the scripts is the program (not in a notebook or a
test session that imports one), and not with ``--debug``, which keeps Python's traceback."""
import os
import sys
from pathlib import Path

SCRIPTS_FOLDER = Path(__file__).resolve().parent.parent


def _one_line(kind: type[BaseException], error: BaseException, traceback: object) -> None:
    if not issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, traceback)  # type: ignore[arg-type]
        return
    print(f"{os.path.basename(sys.argv[0])}: interrupted (Ctrl-C)", file=sys.stderr)


if sys.argv and sys.argv[0] and Path(sys.argv[0]).resolve().parent == SCRIPTS_FOLDER and "--debug" not in sys.argv:
    sys.excepthook = _one_line
