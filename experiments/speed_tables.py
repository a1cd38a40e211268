"""The speed tables of README.md and docs/speed.md, rendered from bench.py's JSON files (``bench.py --tables``).

Each table is a generated block (utils/markdown.py) whose opening comment names a kind and its sources, one
``path: label`` per line (paths from the project root; the label names the run in the table):

* ``summary`` (README): per source, the ratios to the oracle and to the PyTorch pair scorer, the WebNLG epoch
  and the inference rate;
* ``epochs``: seconds per epoch of every variant, per source and setting, with the ratios and the compute
  floor;
* ``inference``: sentences per second of every variant on NYT test;
* ``targets``: each speed target's figure per source, met or missed (the oracle ratio under --contention, from
  one oracle batch, not judged).
"""
from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable
from pathlib import Path

from utils.errors import InputError
from utils.files import json_problem
from utils.markdown import Block, refresh
from utils.project import PROJECT_ROOT

OWNER = "`python bench.py --tables`"
DOCUMENTS = ("README.md", "docs/speed.md")  # the files whose speed tables bench.py --tables rewrites
MISSING = "-"
COMPARISONS = {">=": operator.ge, "<=": operator.le, "<": operator.lt, ">": operator.gt}
BOUND = re.compile(r"(>=|<=|<|>) (-?[0-9.]+(?:e[-+]?[0-9]+)?)")  # a target's bound as bench.py writes it (:g)


def seconds(value: float | None) -> str:
    return MISSING if value is None else f"{value:,.0f}" if value >= 1000 else f"{value:.1f}"


def rate(value: float | None) -> str:
    return MISSING if value is None else f"{value:,.0f}"


def times(value: float | None, digits: int = 2) -> str:
    return MISSING if value is None else f"{value:.{digits}f}x"


def target_figure(check: dict) -> str:
    """A target's figure with as many digits as its size calls for, and more where rounding would hide which
    side of its bound it lies on (1.0019 against "<= 1" reads 1.002, not 1.00)."""
    value, (comparison, bound) = check["value"], BOUND.fullmatch(check["bound"]).groups()
    digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2
    while COMPARISONS[comparison](round(value, digits), float(bound)) != check["met"]:
        if digits == 9:
            return f"{value!r}"
        digits += 1
    return f"{value:,.{digits}f}"


def judged(check: dict, report: dict) -> bool:
    """Whether a target's figure is judged: the oracle ratio under --contention, from one oracle batch, is not."""
    return not ("oracle" in check["target"] and under_contention(report))


def valid_target(check: object) -> bool:
    return (isinstance(check, dict) and isinstance(check.get("target"), str) and isinstance(check.get("met"), bool)
            and isinstance(check.get("value"), int | float) and isinstance(check.get("bound"), str)
            and BOUND.fullmatch(check["bound"]) is not None)


def setting_name(name: str, result: dict) -> str:
    """``nyt_partial`` with K=4 and 24 relations -> ``NYT partial (K=4, 24 rel.)``."""
    dataset, _, mode = name.partition("_")
    pretty = {"nyt": "NYT", "webnlg": "WebNLG"}.get(dataset, dataset)
    return f"{pretty} {mode} (K={result.get('rounds', '?')}, {result.get('relations', '?')} rel.)"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def sources(block: Block, root: Path, labelled: bool) -> list[tuple[str, str, dict]]:
    """(path as written, label, the JSON) for each source line of ``block`` (the lines after its kind), each
    ``path: label`` with a path inside ``root`` (no ': ' in it) and a label without '|'; the label may be left
    out where the table shows none (``labelled`` false: one run in an epochs or inference table)."""
    out = []
    lines = block.spec[1:]
    for number, line in lines:
        path, _, label = (part.strip() for part in line.partition(": "))
        where = block.where(number)
        if "|" in label or (not label and (labelled or len(lines) > 1)):
            raise InputError(f"{where}: write 'path: label', the label naming the run in the table, without '|'")
        file = (root / path).resolve()
        if not file.is_relative_to(root.resolve()):
            raise InputError(f"{where}: {path} lies outside the project; name a JSON file under it")
        if not file.is_file():
            raise InputError(f"{where}: {path} does not exist (a bench.py --json file, from the project root)")
        try:
            report = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise InputError(f"{where}: {path} is not JSON (line {error.lineno}: {json_problem(error)})") from None
        if not isinstance(report, dict) or not settings(report):
            raise InputError(f"{where}: {path} holds no timed setting (not a bench.py --json file of a timing run)")
        checks = report.get("targets", [])
        bad = [index for index, check in enumerate(checks) if not valid_target(check)] if isinstance(checks, list) \
            else ["the list itself"]
        if bad:
            raise InputError(f"{where}: {path}: its targets are not bench.py's (target, value, bound, met): entry "
                             f"{bad[0]}")
        out.append((path, label, report))
    if not out:
        raise InputError(f"{block.where()}: a generated table names no bench.py JSON file")
    return out


def settings(report: dict) -> list[tuple[str, dict]]:
    return [(name, value) for name, value in report.items() if isinstance(value, dict) and "epoch_seconds" in value]


def under_contention(report: dict) -> bool:
    return report.get("contention_processes", 0) > 0


def summary(runs: list[tuple[str, str, dict]]) -> str:
    """README: one row per run. Under --contention the oracle, timed on one batch there, is left out."""
    def ratios(result: dict, contention: bool) -> str:
        oracle = MISSING if contention else times(result.get("speedup"), 1)
        return f"{oracle} / {times(result.get('speedup_over_torch_pair_scorer'))}"

    rows = []
    for path, label, report in runs:
        nyt, webnlg = report.get("nyt_partial", {}), report.get("webnlg_partial", {})
        loaded = under_contention(report)
        rows.append([label, str(report.get("cores", MISSING)), ratios(nyt, loaded), ratios(webnlg, loaded),
                     times(nyt.get("inference_speedup_over_torch")),
                     seconds(webnlg.get("epoch_seconds")) + " s" * ("epoch_seconds" in webnlg),
                     rate(nyt.get("inference_sentences_per_second")),
                     f"`{path}`"])
    return table(["CPU and load", "cores", "NYT partial training: vs oracle / vs PyTorch scorer",
                  "WebNLG training: vs oracle / vs PyTorch scorer", "NYT test inference: vs PyTorch scorer",
                  "WebNLG epoch", "inference, sentences/s", "source"], rows)


def epochs(runs: list[tuple[str, str, dict]]) -> str:
    """Seconds per epoch of every variant; a column naming the run when there are several."""
    several = len(runs) > 1
    rows = []
    for _, label, report in runs:
        for name, r in settings(report):
            floor = r.get("compute_floor_epoch_seconds")
            rows.append([label] * several + [
                setting_name(name, r), seconds(r.get("oracle_epoch_seconds")), seconds(r["epoch_seconds"]),
                seconds(r.get("bf16_epoch_seconds")), seconds(r.get("torch_pair_scorer_epoch_seconds")),
                seconds(r.get("compiled_epoch_seconds")), seconds(r.get("fixed_threads_epoch_seconds")),
                times(r.get("speedup"), 1), times(r.get("speedup_over_torch_pair_scorer")),
                f"{r['default_over_compiled']:.2f}" if "default_over_compiled" in r else MISSING,
                f"{seconds(floor)} ({times(r.get('times_the_compute_floor'), 1)})" if floor else MISSING])
    return table(["run"] * several + [
        "setting", "oracle", "default", "`--precision bf16`", "PyTorch pair scorer", "torch.compile",
        "fixed threads (no governor)", "default vs oracle", "default vs PyTorch", "default / compile (time)",
        "compute floor (default / floor)"], rows)


def inference(runs: list[tuple[str, str, dict]]) -> str:
    """Sentences per second on NYT test, decoding included."""
    several = len(runs) > 1
    rows = []
    for _, label, report in runs:
        r = report.get("nyt_partial", {})
        if "inference_sentences_per_second" not in r:
            continue
        key = "inference_sentences_per_second"
        rows.append([label] * several + [
            rate(r[key]), rate(r.get(key + "_bf16")), rate(r.get(key + "_torch_pair_scorer")),
            rate(r.get(key + "_compiled")), rate(r.get("oracle_inference_sentences_per_second")),
            rate(r.get("inference_compute_floor_sentences_per_second")), times(r.get("inference_speedup_over_torch")),
            f"{r['inference_default_over_compiled']:.2f}" if "inference_default_over_compiled" in r else MISSING,
            first_pass(r)])
    return table(["run"] * several + [
        "default", "`--precision bf16`", "PyTorch pair scorer", "torch.compile", "oracle", "compute floor",
        "default vs PyTorch", "default / compile (time)", "torch.compile's first pass (compiling), s"], rows)


def first_pass(result: dict) -> str:
    """The compiled model's untimed first pass: over the whole test set since 2026-12-06, before that over its
    first 500 sentences (then beside eager's first 500)."""
    if "inference_compiled_warmup_seconds" in result:
        return f"{result['inference_compiled_warmup_seconds']:.1f} (whole test set)"
    if "inference_compiled_first_call_seconds" in result:
        eager = result.get("inference_eager_first_call_seconds")
        return (f"{result['inference_compiled_first_call_seconds']:.1f} (first 500 sentences"
                + (f"; eager {eager:.1f})" if eager is not None else ")"))
    return MISSING


def targets(runs: list[tuple[str, str, dict]]) -> str:
    """One row per target (as each JSON recorded it), one column per run. The oracle ratio under --contention,
    from one oracle batch, is shown but not judged."""
    names: dict[str, str] = {}
    for _, _, report in runs:
        for check in report.get("targets", []):
            names.setdefault(check["target"], check["bound"])
    rows = []
    for name, bound in names.items():
        row = [f"{name} ({bound})"]
        for _, _, report in runs:
            check = next((c for c in report.get("targets", []) if c["target"] == name), None)
            if check is None:
                row.append(MISSING)
            elif not judged(check, report):
                row.append(f"{check['value']:.1f} (one oracle batch: not judged)")
            else:
                row.append(f"{target_figure(check)} {'met' if check['met'] else '**missed**'}")
        rows.append(row)
    return table(["target"] + [label for _, label, _ in runs], rows)


KINDS: dict[str, Callable[[list[tuple[str, str, dict]]], str]] = {
    "summary": summary, "epochs": epochs, "inference": inference, "targets": targets}


def render(block: Block, root: Path | None = None) -> str:
    """The table a block's opening comment asks for, its paths taken from ``root`` (default: the project)."""
    number, kind = block.head
    if kind not in KINDS:
        raise InputError(f"{block.where(number)}: {kind!r} is no kind of speed table; use one of {', '.join(KINDS)}")
    return KINDS[kind](sources(block, root or PROJECT_ROOT, labelled=kind in ("summary", "targets")))


def refresh_documents(root: Path | None = None) -> list[Path]:
    """Rewrite every speed table of DOCUMENTS under ``root`` (default: the project) from its JSON files; the
    files that changed."""
    root = root or PROJECT_ROOT
    return [root / name for name in DOCUMENTS
            if (root / name).is_file() and refresh(root / name, OWNER, lambda block: render(block, root))]
