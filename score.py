"""Score another system's predicted triples against a RIN-format gold file, counted by strings.

    python score.py --predictions casrel_test_result.json --gold dataset/webnlg/test.json
    python score.py --predictions my_system.jsonl --gold dataset/webnlg_exact/test.json --out my_scores.json

CasRel, TPLinker and PRGC count sets of (subject text, relation, object text) per sentence; this counts any
system's output so on the gold our runs are scored on, as evaluate.py's strings figures count ours: partial
match by the last words, exact match by the whole texts. The predictions file holds one item per gold sentence,
in the gold file's order (one JSON array, or objects one after another: JSON lines, or CasRel's indented test
output): the sentence ("text", "sentText" or "tokens") and its triples ("triple_list_pred" as CasRel's test output
writes them, "triple_list", or "triples" as evaluate.py writes them), a triple [subject, relation, object] or an
object with those keys. Each item must hold the gold sentence's characters (tokenised otherwise, as CasRel's
WordPiece text is, it is still found): a file out of order or of another test set stops with the first item that
differs. Triple texts are compared with the gold's words joined by spaces; arguments that are no run of the gold
sentence's words, and relations the gold never names, are counted in a warning.
"""
from __future__ import annotations

import utils.interrupt  # noqa: F401  first, before torch loads: a Ctrl-C meanwhile is one line

# isort: split
import argparse
import logging
from pathlib import Path

from data.loader import Sentence, load_sentences
from data.predictions import Predicted, read_predictions, same_sentence
from utils.cli import ArgumentParser, setup_logging
from utils.errors import InputError, one_line_errors
from utils.files import check_file_path, write_json
from utils.scorer import CONVENTIONS, MODES, micro_prf, text_key, text_triple_key

log = logging.getLogger("score")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(prog="score.py", description=__doc__)
    parser.add_argument("--predictions", required=True, help="the system's predicted triples, one item per gold "
                        "sentence in the gold file's order (layouts above)")
    parser.add_argument("--gold", required=True, help="RIN-format gold file, e.g. dataset/webnlg/test.json")
    parser.add_argument("--out", help="also write the scores, with both files' paths, to this JSON file")
    parser.add_argument("--debug", action="store_true", help="show a full traceback on errors")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    setup_logging()
    with one_line_errors("score.py", args.debug):
        return run(args)


def run(args: argparse.Namespace) -> dict:
    if args.out:
        check_file_path(args.out, "--out")
        if Path(args.out).resolve() in {Path(args.predictions).resolve(), Path(args.gold).resolve()}:
            raise InputError(f"--out {args.out}: one of the files scored; name another")
    for flag, path in (("--predictions", args.predictions), ("--gold", args.gold)):
        if not Path(path).is_file():
            raise InputError(f"{flag} {path}: {'a folder, not a file' if Path(path).is_dir() else 'no such file'}")
    gold, report = load_sentences(args.gold, scored=True)
    report.log(args.gold)  # what was repaired or skipped in the gold, as evaluate.py says it
    if not gold:
        raise InputError(f"{args.gold}: no sentences to score")
    predicted = read_predictions(args.predictions)
    for item, sentence in zip(predicted, gold, strict=False):  # the first item out of place, before any count
        if not same_sentence(item.tokens, sentence.tokens):
            raise InputError(f"{item.where}: its words differ from the gold sentence at {sentence.where} "
                             f"({' '.join(item.tokens)[:60]!r} against {' '.join(sentence.tokens)[:60]!r}): "
                             "another test set, another order, a sentence missing, or cased or normalised otherwise?")
    if len(predicted) != len(gold):
        raise InputError(f"{args.predictions}: {len(predicted)} items for the {len(gold)} sentences of {args.gold}, "
                         f"the first {min(len(predicted), len(gold))} alike; one item per gold sentence, in its order "
                         "(the gold's load report above lists any record it skipped)")
    warn_unmatchable(predicted, gold)
    scores = {mode: micro_prf(({text_triple_key(triple, mode) for triple in item.triples},
                               {text_key(sentence.tokens, triple, mode) for triple in sentence.triples})
                              for item, sentence in zip(predicted, gold, strict=True)) for mode in MODES}
    for mode, result in scores.items():
        print(f"{mode:7s} (strings): P {result['precision']:.4f}  R {result['recall']:.4f}  F1 {result['f1']:.4f}  "
              f"({result['correct']} correct / {result['predicted']} predicted / {result['gold']} gold)")
    if args.out:
        write_json(Path(args.out), {"predictions": str(Path(args.predictions).absolute()),
                                    "gold": str(Path(args.gold).absolute()), "scores": {"strings": scores},
                                    "conventions": {"strings": CONVENTIONS["strings"]}})
    return {"strings": scores}


def warn_unmatchable(predicted: list[Predicted], gold: list[Sentence]) -> None:
    """Say what can never count as correct, counted, rather than let it lower the scores unexplained: predicted
    subjects or objects that are no run of their gold sentence's words (tokenised, cased or normalised otherwise
    than the gold; partial match, by last words, may still take some), and relations the gold never names."""
    outside, unknown = [], []
    relations = {relation for sentence in gold for _, relation, _ in sentence.triples}
    for item, sentence in zip(predicted, gold, strict=True):
        outside += [f"{item.where}: {text!r}" for subject, _, obj in item.triples for text in (subject, obj)
                    if not is_run(sentence.tokens, text.split())]
        unknown += [f"{item.where}: {relation!r}" for _, relation, _ in item.triples if relation not in relations]
    if outside:
        log.warning("%d predicted subjects and objects are no run of their gold sentence's words, never correct in "
                    "exact match (tokenised, cased or normalised otherwise than the gold?), e.g. %s", len(outside),
                    "; ".join(outside[:3]))
    if unknown:
        log.warning("%d predicted triples name relations the gold never uses (named otherwise, or absent from this "
                    "test set?), e.g. %s", len(unknown), "; ".join(unknown[:3]))


def is_run(words: list[str], parts: list[str]) -> bool:
    """Whether ``parts`` occur as consecutive words of ``words`` (linear in the sentence per argument, not every
    span of it built: long sentences of one's own data stay cheap)."""
    return any(words[start:start + len(parts)] == parts for start in range(len(words) - len(parts) + 1))


if __name__ == "__main__":
    main()
