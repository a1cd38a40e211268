"""What the data scripts share on the command line: argparse errors and expected failures as one line each."""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from typing import NoReturn

from data.loader import DataError
from utils.helpers import InputError


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (no usage block), so scripts and tests can rely on it."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {' '.join(message.split())}", file=sys.stderr)
        raise SystemExit(2)


def _message(error: BaseException) -> str:
    if isinstance(error, OSError) and error.filename and str(error.filename) not in str(error):
        return f"{error.filename}: {error.strerror or error}"
    return str(error)


@contextlib.contextmanager
def cli_errors(program: str, debug: bool = False) -> Iterator[None]:
    """Expected failures (bad data, I/O, JSON, checksums, downloads) as ``program: error: ...`` lines and exit 1.

    Each line of the message stays one line (a download failure lists one line per missing file);
    ``debug`` re-raises so that the traceback shows.
    """
    try:
        yield
    except (InputError, DataError, OSError, UnicodeError, json.JSONDecodeError) as error:
        if debug:
            raise
        for line in _message(error).splitlines() or [type(error).__name__]:
            print(f"{program}: error: {' '.join(line.split())}", file=sys.stderr)
        raise SystemExit(1) from None
