"""Extract triples from your own sentences with a trained run.

    python predict.py --model_dir saved_models/webnlg_partial_K2_seed1 --text "Bananaman was created by Steve Bright ."
    python predict.py --model_dir RUN --input sentences.txt --output triples.jsonl

Input: raw sentences, one per line, or JSON lines with a "text" or "sentText"
field (a string, or a list of tokens used as they are). Raw text is tokenised
with spaCy's English tokenizer (PTB-like, like the NYT/WebNLG releases) and
POS-tagged with the spaCy model the training data was tagged with (recorded
in the run folder); --pretokenized splits on whitespace instead. Output: one
JSON line per input line, in order, with tokens, entities and triples (with
probabilities); empty lines give {"skipped": "empty sentence"}.
"""
from __future__ import annotations

import utils.interrupt  # noqa: F401  first, before torch loads: a Ctrl-C meanwhile is one line

# isort: split
import argparse
import json
import logging
import sys
from pathlib import Path

from data.spacy_tools import DEFAULT_MODEL
from model import load_extractor, speed
from model.inference import (
    CHARACTERS_PER_TOKEN,
    FIRST_MENTIONS,
    MAX_TOKENS,
    RESULT_FIELDS,
    add_decoding_arguments,
)
from model.run import check_output, check_run_folder
from utils.cli import ArgumentParser, add_machine_arguments, positive_int, setup_logging
from utils.errors import InputError, lines_named, one_line_errors
from utils.files import DuplicateKeyError, json_problem, unique_keys, write_jsonl
from utils.machine import configure_threads, pick_device

log = logging.getLogger("predict")
OUTPUT_FIELDS = {"line", "text", *RESULT_FIELDS}  # of each output line; a JSON input line's other fields join them


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(prog="predict.py", description=__doc__)
    add_decoding_arguments(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", nargs="+", action="extend", help="one or more sentences (the flag may repeat)")
    source.add_argument("--input", help="file of sentences, one per line; '-' = standard input (see --input_format)")
    parser.add_argument("--input_format", choices=("auto", "raw", "json"), default="auto",
                        help="raw: every line is a sentence; json: every line is a JSON object with a 'text' "
                        "or a 'sentText' field (a string, or a list of tokens, whose 'pos' tags are used if "
                        "given), and whose other fields (an id) are written out with its triples; auto "
                        "(default): lines that start with '{' are JSON, the others raw")
    parser.add_argument("--output", help="JSON-lines output file (default, or '-': standard output)")
    parser.add_argument("--pretokenized", action="store_true", help="split raw text on whitespace only")
    parser.add_argument("--spacy_model", help="spaCy model that tokenises and POS-tags raw text (default: the one "
                        "the run's training data was tagged with, recorded in its prepare_report.json; for runs "
                        f"on data of your own, {DEFAULT_MODEL}); 'none' = split on whitespace (models without POS "
                        "features only)")
    parser.add_argument("--first_mentions", action=argparse.BooleanOptionalAction, default=FIRST_MENTIONS,
                        help="report each (subject text, relation, object text) once per sentence, at its first "
                        "position, or (--no-first_mentions) every mention the model marks, as the paper's decoder "
                        f"and evaluate.py do (default: {'once' if FIRST_MENTIONS else 'every mention'})")
    parser.add_argument("--max_tokens", type=positive_int, default=MAX_TOKENS,
                        help=f"longer sentences are cut to this many tokens, with a warning (default {MAX_TOKENS}); "
                        f"raw text longer than {CHARACTERS_PER_TOKEN} characters a token is cut before tokenising")
    parser.add_argument("--encoding_errors", choices=("strict", "replace"), default="strict",
                        help="non-UTF-8 input: stop with the line number (strict) or replace bad bytes")
    add_machine_arguments(parser)
    speed.add_arguments(parser)
    parser.add_argument("--debug", action="store_true", help="show a full traceback on errors")
    args = parser.parse_args(argv)
    if args.text and args.input_format != parser.get_default("input_format"):
        parser.error("--input_format reads --input; --text gives the sentences themselves")
    return args


def read_sentences(path: str, errors: str, input_format: str) -> tuple[list[str | list[str]], list[dict]]:
    """Sentences from a file, one per line (any of \\n, \\r\\n, \\r ends one; a leading byte-order mark is
    dropped); JSON lines carry "text" or "sentText", and their other fields (an id) are returned beside, per
    line, to be written with its triples."""
    if path != "-" and Path(path).is_dir():
        raise InputError(f"--input {path}: is a folder, not a file of sentences")
    if path != "-" and not Path(path).exists():
        raise InputError(f"--input {path}: no such file")
    if path == "-" and sys.stdin is None:
        raise InputError("--input -: this process has no standard input (closed)")
    data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    sentences: list[str | list[str]] = []
    kept: list[dict] = []  # each line's other JSON fields
    lines, arrays = data.split(b"\n"), []
    for number, raw in enumerate(lines, start=1):
        if number == len(lines) and not raw:
            break  # the final newline
        try:
            line = raw.decode("utf-8", errors=errors)
        except UnicodeDecodeError as error:
            raise InputError(f"{path}:{number}: not UTF-8 ({error.reason} at byte {error.start}); "
                             "fix the file or pass --encoding_errors replace") from None
        line = line.removeprefix("\ufeff")  # a byte-order mark: the file's, or one of files joined by cat
        start = line.strip()[:1]  # a blank line stays a (blank) sentence in every format, as the lines align
        if start == "[" and input_format == "auto":
            arrays.append(number)
        if start and (input_format == "json" or input_format == "auto" and start == "{"):
            try:
                record = json.loads(line, object_pairs_hook=unique_keys)
            except json.JSONDecodeError as error:
                hint = ("a raw sentence that starts with '{' needs --input_format raw" if start == "{"
                        else "with --input_format json every line is a JSON object; raw lines need auto or raw")
                raise InputError(f"{path}:{number}: malformed JSON line: {json_problem(error)} ({hint})") from None
            except DuplicateKeyError as error:
                raise InputError(f"{path}:{number}: {error}") from None
            except RecursionError:
                raise InputError(f"{path}:{number}: a JSON line nested too deeply to read") from None
            fields = [f for f in ("text", "sentText") if isinstance(record, dict) and f in record]
            if len(fields) != 1:
                raise InputError(f"{path}:{number}: a JSON line needs one 'text' or 'sentText' field"
                                 + (", not both" if fields else ""))
            field = fields[0]
            text = record[field]
            if not (isinstance(text, str) or isinstance(text, list) and all(isinstance(t, str) for t in text)):
                raise InputError(f"{path}:{number}: '{field}' must be a string or a list of token strings, not "
                                 f"{type(text).__name__}")
            if isinstance(text, list) and not all(t.strip() for t in text):
                raise InputError(f"{path}:{number}: '{field}' holds an empty token (token "
                                 f"{next(i for i, t in enumerate(text, start=1) if not t.strip())})")
            tags = record.get("pos")
            if isinstance(text, list) and tags is not None and not (
                    isinstance(tags, list) and all(isinstance(tag, str) for tag in tags) and len(tags) == len(text)):
                raise InputError(f"{path}:{number}: 'pos' must be a list of tags, one per token of '{field}' "
                                 f"({len(text)}), not {str(tags)[:60]}")
            if clashes := sorted(OUTPUT_FIELDS & (record.keys() - {field})):
                raise InputError(f"{path}:{number}: field {clashes[0]!r} is one predict.py writes for each line "
                                 f"({', '.join(sorted(OUTPUT_FIELDS))}); rename it")
            sentences.append(text)
            kept.append({key: value for key, value in record.items() if key != field})
        else:
            sentences.append(line)
            kept.append({})
    if arrays:  # most likely a JSON array (not an input format), read as the raw text of its brackets
        log.warning("%s: %d line(s) start with '[' (line %d first), read as raw sentences: JSON input holds one "
                    "object per line; --input_format raw reads such lines without this warning", path, len(arrays),
                    arrays[0])
    return sentences, kept


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    setup_logging()
    with one_line_errors("predict.py", args.debug):
        return run(args)


def run(args: argparse.Namespace) -> list[dict]:
    device = pick_device(args.device)
    check_run_folder(Path(args.model_dir))  # the run, the output and the input are checked before the kernels build
    if args.output == "-":  # as --input - reads standard input
        args.output = None
    if args.output:
        check_output(Path(args.output), "--output", Path(args.model_dir),
                     None if args.input in (None, "-") else ("the --input file", Path(args.input)))
    sentences, kept = ((args.text, [{} for _ in args.text]) if args.text
                       else read_sentences(args.input, args.encoding_errors, args.input_format))
    # a RIN file's own tags are used with its tokens, as evaluate.py uses them; raw text is tagged here
    pos = [fields.get("pos") if isinstance(sentence, list) else None for sentence, fields in zip(sentences, kept,
                                                                                                    strict=True)]
    if untagged := sum(isinstance(s, str) and "pos" in fields for s, fields in zip(sentences, kept, strict=True)):
        log.warning("%s: %d lines carry 'pos' tags for a text string, which are not read (tags go with a list of "
                    "tokens): spaCy tags their tokens", args.input, untagged)
    speed.configure_for(device, args.pair_kernel, args.precision, args.thread_policy)
    configure_threads(args.threads)
    if not sentences:
        log.warning("%s holds no sentences: nothing to extract", args.input)
    extractor = load_extractor(args.model_dir, device=args.device, threshold=args.threshold,
                               batch_size=args.batch_size, max_tokens=args.max_tokens,
                               pretokenized=args.pretokenized, first_mentions=args.first_mentions,
                               spacy_model=args.spacy_model)
    results = extractor.extract(sentences, progress=len(sentences) > 1000, pos=pos)
    skipped = [i + 1 for i, r in enumerate(results) if "skipped" in r]
    if skipped:
        log.warning("%d empty sentences (lines %s): output records say 'skipped'", len(skipped), lines_named(skipped))
    records = [{"line": i + 1, **fields, "text": s if isinstance(s, str) else " ".join(s)} | r
               for i, (s, fields, r) in enumerate(zip(sentences, kept, results, strict=True))]
    if args.output:
        write_jsonl(Path(args.output), records)
    elif records:  # no input sentences: no output lines, not an empty one
        print("\n".join(json.dumps(record, ensure_ascii=False) for record in records))
    log.info("%d sentences, %d triples, %.0f sentences/s (tokenizer: %s)", len(results),
             sum(len(r["triples"]) for r in results), extractor.last_rate, extractor.tokenizer)
    return results


if __name__ == "__main__":
    main()
