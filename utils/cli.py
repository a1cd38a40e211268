"""What every script's command line shares: argparse that reports a bad flag in one line, checked flag types
(numbers in range, devices, folder names), the flags every computing script takes, and logging."""
from __future__ import annotations

import argparse
import logging
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path


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


DEVICE = re.compile(r"cpu(:0)?|cuda(:(0|[1-9][0-9]{0,8}))?", re.ASCII)  # as torch.device takes them


def device_problem(device: str) -> str | None:
    """Why ``device`` is not cpu, cuda or cuda:N (one line), or None; whether this machine has it is
    :func:`utils.machine.pick_device`'s to check."""
    if DEVICE.fullmatch(device):
        return None
    return f"{device!r} is not a device this project runs on: use cpu, cuda or cuda:N"


def device_name(text: str) -> str:
    """argparse type for --device (:func:`device_problem`)."""
    if problem := device_problem(text):
        raise argparse.ArgumentTypeError(problem)
    return text


def add_machine_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--device and --threads, defined once for every script that computes."""
    parser.add_argument("--device", type=device_name, help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--threads", type=positive_int, help="CPU threads (default: every core this process may "
                        "use: its affinity mask, capped by a cgroup CPU quota such as docker --cpus)")


def folder_name(text: str) -> str:
    """argparse type for --run_id and --dataset: one plain folder name, so a run stays inside --save_dir (a run is
    named after its dataset) and a dataset inside dataset/."""
    if not text or text in (".", "..") or "/" in text or "\\" in text or text.startswith("~") or "\0" in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not a plain folder name (no '/', '..' or absolute path)")
    if text != text.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not a plain folder name (it starts or ends with a space)")
    return text


def setup_logging(log_file: Path | None = None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file is not None:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S", handlers=handlers, force=True)
