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

import argparse
import json
import logging
import sys
from pathlib import Path

from model import load_extractor, speed
from utils.helpers import configure_threads, setup_logging

log = logging.getLogger("predict")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True, help="run folder written by train.py")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", nargs="+", help="one or more sentences")
    source.add_argument("--input", help="file of sentences (raw lines or JSON lines); '-' = standard input")
    parser.add_argument("--output", help="JSON-lines output file (default: standard output)")
    parser.add_argument("--threshold", type=float, default=0.5, help="relation probability threshold (default 0.5)")
    parser.add_argument("--pretokenized", action="store_true", help="split raw text on whitespace only")
    parser.add_argument("--max_tokens", type=int, default=300,
                        help="longer sentences are truncated to this many tokens, with a warning (default 300)")
    parser.add_argument("--encoding_errors", choices=("strict", "replace"), default="strict",
                        help="non-UTF-8 input: stop with the line number (strict) or replace bad bytes")
    parser.add_argument("--batch_size", type=int, default=100, help="sentences per batch (default 100)")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    speed.add_arguments(parser)
    return parser.parse_args(argv)


def read_sentences(path: str, errors: str) -> list[str | list[str]]:
    """Sentences from a file, one per line; JSON lines may carry "text"/"sentText"."""
    data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    sentences: list[str | list[str]] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if number == len(data.split(b"\n")) and not raw:
            break  # the final newline
        try:
            line = raw.decode("utf-8", errors=errors).rstrip("\r")
        except UnicodeDecodeError as error:
            raise SystemExit(f"{path}:{number}: not UTF-8 ({error.reason} at byte {error.start}); "
                             "fix the file or pass --encoding_errors replace") from None
        if line.lstrip().startswith("{"):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise SystemExit(f"{path}:{number}: malformed JSON line: {error.msg}") from None
            text = record.get("text", record.get("sentText"))
            if text is None:
                raise SystemExit(f"{path}:{number}: JSON line without a 'text' or 'sentText' field")
            sentences.append(text)
        else:
            sentences.append(line)
    return sentences


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    setup_logging()
    configure_threads(args.threads)
    speed.configure(kernel=args.pair_kernel, precision=args.precision)
    try:
        extractor = load_extractor(args.model_dir, device=args.device, threshold=args.threshold,
                                   batch_size=args.batch_size, max_tokens=args.max_tokens,
                                   pretokenized=args.pretokenized)
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        raise SystemExit(str(error)) from None
    sentences = args.text if args.text else read_sentences(args.input, args.encoding_errors)
    results = extractor.extract(sentences, progress=len(sentences) > 1000)
    skipped = [i + 1 for i, r in enumerate(results) if "skipped" in r]
    if skipped:
        log.warning("%d empty sentences (lines %s): output records say 'skipped'", len(skipped),
                    ", ".join(map(str, skipped[:20])) + (" ..." if len(skipped) > 20 else ""))
    lines = [json.dumps({"line": i + 1, "text": s if isinstance(s, str) else " ".join(s)} | r, ensure_ascii=False)
             for i, (s, r) in enumerate(zip(sentences, results, strict=True))]
    if args.output:
        Path(args.output).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    else:
        print("\n".join(lines))
    log.info("%d sentences, %d triples, %.0f sentences/s (tokenizer: %s)", len(results),
             sum(len(r["triples"]) for r in results), extractor.last_rate, extractor.tokenizer)
    return results


if __name__ == "__main__":
    main()
