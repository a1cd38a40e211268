"""Score a trained run on a split (or any RIN-format file) and write its predictions.

    python evaluate.py --model_dir saved_models/webnlg_partial_K2_seed1 --split test
    python evaluate.py --model_dir RUN --data my.json --out my_predictions.jsonl --scorer official

Prints P/R/F1 in both match modes, counted by positions (RIN's scorer; or
--scorer official) and by strings (CasRel/TPLinker/PRGC); writes one JSON line
per scored sentence, in input order: its line in the input, tokens, predicted
triples (with probabilities), entities and gold (empty sentences are skipped and
counted in the load report), and every scorer's figures to <out>_scores.json.
"""
from __future__ import annotations

import utils.interrupt  # noqa: F401  first, before torch loads: a Ctrl-C meanwhile is one line

# isort: split
import argparse
import logging
import os
from pathlib import Path

from data.loader import load_split, position
from model import load_run, speed
from model.inference import add_decoding_arguments, extract, run_tools
from model.run import check_output, check_run_folder, recorded_data_dir, recorded_sha256
from utils.analysis import breakdown, breakdown_markdown
from utils.cli import ArgumentParser, add_machine_arguments, setup_logging
from utils.errors import InputError, one_line_errors
from utils.files import atomic_write_bytes, file_sha256, read_json, write_json, write_jsonl
from utils.machine import configure_threads, pick_device
from utils.scorer import CONVENTIONS, SCORERS, keep_first_mentions, repeated_mention_count, score_all, triple_record

log = logging.getLogger("evaluate")
DEFAULT_SPLIT = "test"
# predicted triples in one sentence beyond which evaluate.py warns (the releases' sentences hold at most a few dozen)
MANY_TRIPLES = 1000
# files written beside --out, named after it (the breakdown only with --breakdown)
SIBLINGS = {"scores": "_scores.json", "breakdown": "_breakdown.json", "breakdown_md": "_breakdown.md"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(prog="evaluate.py", description=__doc__)
    add_decoding_arguments(parser)
    parser.add_argument("--split", help=f"split of the run's dataset (default {DEFAULT_SPLIT})")
    parser.add_argument("--data", help="a RIN-format file to score instead of a split of the run's dataset")
    parser.add_argument("--out", help="predictions file (default: <model_dir>/predictions_<split>.jsonl; with --data "
                        "DIR/NAME.json, <model_dir>/predictions_DIR_NAME.jsonl)")
    parser.add_argument("--scorer", choices=SCORERS, default="ours",
                        help="the count printed beside the strings count (sets of (subject text, relation, object "
                        "text) per sentence, as CasRel/TPLinker/PRGC count): ours (unique triples by position, "
                        "default), official (the official repository's cell counting), or strings (that count "
                        "alone); the _scores.json file has all three")
    parser.add_argument("--first_mentions", action="store_true",
                        help="keep each (subject text, relation, object text) once, at its first position (the "
                        "releases' convention); off by default, so scores are the paper's decoder's")
    parser.add_argument("--breakdown", action="store_true", help="also F1 by overlap pattern, triples per "
                        "sentence and relation, and ER scores: <out>_breakdown.json and .md, the triples counted as "
                        "--scorer counts them (strings: as CasRel, TPLinker and PRGC report these tables)")
    parser.add_argument("--spacy_model", help="spaCy model that POS-tags the sentences of the data that come "
                        "without tags, for a model that reads tags (default: the one the run's data was tagged with, "
                        "as predict.py)")
    add_machine_arguments(parser)
    speed.add_arguments(parser)
    parser.add_argument("--debug", action="store_true", help="show a full traceback on errors")
    args = parser.parse_args(argv)
    if args.split and args.data:
        parser.error(f"--split {args.split} and --data {args.data}: give one (--data scores a file of its own)")
    args.split = args.split or DEFAULT_SPLIT
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    setup_logging()
    with one_line_errors("evaluate.py", args.debug):
        return run(args)


def run(args: argparse.Namespace) -> dict:
    check_run_folder(Path(args.model_dir))  # a wrong folder and a missing one are told before the kernels build
    if args.out == "-":
        raise InputError("--out -: evaluate.py writes files (the predictions, <out>_scores.json beside them); name "
                         "a file")
    if args.out:  # (--out is checked again below, against the data)
        check_output(Path(args.out), "--out", Path(args.model_dir))
    device = pick_device(args.device)
    speed.configure_for(device, args.pair_kernel, args.precision, args.thread_policy)
    configure_threads(args.threads)
    model_dir = Path(args.model_dir)
    model, vocab, labels, config = load_run(model_dir, device)
    path = Path(args.data) if args.data else recorded_data_dir(model_dir, config) / f"{args.split}.json"
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a RIN-format file")
    if not args.data and not path.parent.is_dir():
        state = "is a file now" if path.parent.exists() else "is gone"
        raise InputError(f"{path.parent}, the data folder this run trained on (its config.json), {state}: move it "
                         "back, or name the file to score with --data")
    if not path.is_file():
        splits = sorted(f.stem for f in path.parent.glob("*.json") if f.stem in ("train", "dev", "test"))
        raise InputError(f"{path} does not exist" + ("" if args.data else f": the run's data has the splits "
                                                     f"{', '.join(splits) or 'none'}; for a file of your own, pass "
                                                     "--data FILE"))
    # a file of one's own is named by its path, beside the split names: --data other/test.json is not the test split
    name = str(path) if args.data else args.split
    default_out = (f"predictions_{path.absolute().parent.name}_{path.stem}.jsonl" if args.data
                   else f"predictions_{name}.jsonl")
    out = Path(args.out) if args.out else model_dir / default_out
    earlier = out.with_name(out.stem + SIBLINGS["scores"])
    if args.data and not args.out and earlier.is_file():  # a/x/test.json and b/x/test.json: one default name
        earlier_scores = read_json(earlier)
        scored = earlier_scores.get("data") if isinstance(earlier_scores, dict) else None
        if isinstance(scored, str) and Path(scored).is_absolute() and Path(scored).resolve() != path.resolve():
            raise InputError(f"{out} holds the predictions for {scored}: name a file for those of {path} with --out")
    flag = "--out" if args.out else "the default output (--out names another)"
    check_output(out, flag, model_dir, (f"the data file {path}", path))
    if out.exists() and not Path(os.path.realpath(out)).is_file():
        raise InputError(f"--out {out}: not a regular file (evaluate.py writes {out.stem}_scores.json beside it); "
                         "name a file")
    for suffix in SIBLINGS.values():
        check_output(out.with_name(out.stem + suffix), flag, model_dir, (f"the data file {path}", path))
    recorded = recorded_sha256(config, path.name) if not args.data else None
    if recorded and file_sha256(path) != recorded:
        log.warning("%s differs from the %s this run was trained and scored with (config.json 'data_sha256'): "
                    "its scores will differ from results.json", path, path.name)
    tagged_here = []

    def tag(token_lists: list[list[str]]) -> list[list[str]]:  # sentences without tags, as predict.py tags text
        log.info("%s: %d sentences without POS tags, which this model reads: tagging them with spaCy", path,
                 len(token_lists))
        try:
            tools = run_tools(model_dir, needs_pos=True, pretokenized=True, spacy_model=args.spacy_model,
                              flag="--spacy_model")
        except InputError as error:
            raise InputError(f"{path}: {len(token_lists)} sentences without POS tags, which this model reads, and "
                             f"{error}; or tag the file as dataset/README.md shows ('Your own data')") from None
        tagged_here.append(tools.name)
        return [pos for pos, _ in tools.tag(token_lists, progress="POS-tag")]

    split = load_split(path, vocab, labels, scored=True, tag=tag if model.config.pos_dim > 0 else None)
    if args.spacy_model and not tagged_here:
        log.warning("--spacy_model %s is not used: %s", args.spacy_model, "every sentence came with its POS tags"
                    if model.config.pos_dim > 0 else "this model takes no POS tags")
    if not split.sentences:
        raise InputError(f"{path}: no sentences to score")
    if not any(split.gold):
        log.warning("%s: no gold triples: recall and F1 will be 0 whatever the model predicts", path)
    extractions = extract(model, split.examples, labels, device, args.batch_size, args.threshold, progress=True)
    if crowded := [(s.where, len(e.triples)) for s, e in zip(split.sentences, extractions, strict=True)
                   if len(e.triples) > MANY_TRIPLES]:
        log.warning("%d sentences have more than %d predicted triples (%s: %d): the model marks most pairs above the "
                    "threshold, as an undertrained checkpoint does; time, memory and the predictions file grow with "
                    "them", len(crowded), MANY_TRIPLES, *max(crowded, key=lambda item: item[1]))
    tokens = [sentence.tokens for sentence in split.sentences]
    if args.first_mentions:
        extractions = [keep_first_mentions(e, t) for e, t in zip(extractions, tokens, strict=True)]
    scores = {scorer: score_all(extractions, split.gold, scorer, tokens) for scorer in SCORERS}
    for scorer in dict.fromkeys((args.scorer, "strings")):
        for mode, result in scores[scorer].items():
            print(f"{name} {mode:7s} ({scorer}): P {result['precision']:.4f}  R {result['recall']:.4f}  "
                  f"F1 {result['f1']:.4f}  ({result['correct']} correct / {result['predicted']} predicted / "
                  f"{result['gold']} gold)")
    write_jsonl(out, ({
        **position(sentence.where),
        "tokens": sentence.tokens,
        "triples": [triple_record(sentence.tokens, t, p)
                    for t, p in zip(extraction.triples, extraction.probabilities, strict=True)],
        "entities": [[s, e] for s, e in extraction.entities],
        "gold": [triple_record(sentence.tokens, t) for t in sentence.triples],
    } for sentence, extraction in zip(split.sentences, extractions, strict=True)))
    scored = {"model_dir": str(model_dir.absolute()), "best_pt_sha256": file_sha256(model_dir / "best.pt"),
              "data": str(path.absolute()), "threshold": args.threshold, "first_mentions": args.first_mentions,
              "pos_tagged_here_with": tagged_here[0] if tagged_here else None}
    write_json(out.with_name(out.stem + SIBLINGS["scores"]), {
        **scored, "scores": scores, "conventions": CONVENTIONS,
        "predicted_triples": sum(len(e.triples) for e in extractions),
        "predicted_at_repeated_mentions": repeated_mention_count(extractions, tokens),
        "load_report": split.report.as_dict()})
    if args.breakdown:
        result = breakdown(extractions, split.gold, [s.entities for s in split.sentences], args.scorer, tokens)
        write_json(out.with_name(out.stem + SIBLINGS["breakdown"]), scored | result)
        markdown = (f"{model_dir} (best.pt SHA-256 {scored['best_pt_sha256'][:12]}) on {path}, threshold "
                    f"{args.threshold}{', first mentions' if args.first_mentions else ''}\n\n"
                    + breakdown_markdown(result))
        atomic_write_bytes(out.with_name(out.stem + SIBLINGS["breakdown_md"]), markdown.encode("utf-8"))
        print(markdown)
    log.info("predictions: %s", out)
    return scores


if __name__ == "__main__":
    main()
