"""Predicted triples of any system, read for score.py: one item per gold sentence, in the gold file's order, in
one JSON array or as JSON objects one after another (JSON lines, or CasRel's indented test output).

An item is a JSON object with the sentence ("text", "sentText" or "tokens": a string, split on whitespace, or
its list of words) and its predicted triples under the first of these keys it has: "triple_list_pred" (CasRel's
test output), "triple_list" (CasRel's data layout), "triples" (evaluate.py's predictions). A triple is [subject,
relation, object] or {"subject", "relation", "object"}, texts with their words separated by spaces.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from data.loader import DataError, read_json_records
from utils.files import DuplicateKeyError, json_problem, unique_keys

TEXT_KEYS = ("text", "sentText", "tokens")
TRIPLE_KEYS = ("triple_list_pred", "triple_list", "triples")


@dataclass
class Predicted:
    """One sentence's predicted (subject text, relation, object text) triples; ``where`` is its file:line."""

    where: str
    tokens: list[str]
    triples: list[tuple[str, str, str]]


def read_predictions(path: str | Path) -> list[Predicted]:
    """Every item of ``path``: one JSON array, or JSON objects one after another (JSON lines, or indented
    objects as CasRel's test output writes them); a malformed one is a DataError naming its file:line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        line = path.read_bytes()[: error.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 ({error.reason})") from None
    except OSError as error:
        raise DataError(f"{path}: unreadable ({error.strerror or error})") from None
    records = read_json_records(path) if text.lstrip().startswith("[") else _objects(text, path)
    return [parse_item(item, f"{path}:{number}") for number, item in records]


def _objects(text: str, path: Path) -> Iterator[tuple[str, object]]:
    """``(line where it starts, value)`` for JSON values one after another, separated by white space."""
    decoder, position, line, counted = json.JSONDecoder(object_pairs_hook=unique_keys), 0, 1, 0
    while True:
        while position < len(text) and text[position] in " \t\n\r":
            position += 1
        if position == len(text):
            return
        line, counted = line + text.count("\n", counted, position), position  # counted once: files are long
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}:{line + text.count(chr(10), counted, error.pos)}: malformed JSON: "
                            f"{json_problem(error)}") from None
        except DuplicateKeyError as error:
            raise DataError(f"{path}:{line}: {error}") from None
        yield str(line), value


def same_sentence(words: list[str], other: list[str]) -> bool:
    """Whether two tokenisations are of one sentence: the same characters, spaces and WordPiece's '##' aside
    (CasRel writes the BERT tokens it read). Only the sentence is found so: its triples' texts are compared with
    the gold's words (score.py warns of those that are no run of them)."""
    return "".join(words).replace("##", "") == "".join(other).replace("##", "")


def parse_item(item: object, where: str) -> Predicted:
    if not isinstance(item, dict):
        raise DataError(f"{where}: a JSON {type(item).__name__}, not an object with the sentence and its triples")
    text_key = next((key for key in TEXT_KEYS if key in item), None)
    triples_key = next((key for key in TRIPLE_KEYS if key in item), None)
    if text_key is None or triples_key is None:
        lacking = " or ".join(TEXT_KEYS if text_key is None else TRIPLE_KEYS)
        raise DataError(f"{where}: no {lacking} (keys here: {', '.join(map(str, item)) or 'none'})")
    text = item[text_key]
    if isinstance(text, str):
        tokens = text.split()
    elif isinstance(text, list) and all(isinstance(token, str) and token.strip() for token in text):
        tokens = list(text)
    else:
        raise DataError(f"{where}: {text_key} is neither a string nor a list of words")
    listed = item[triples_key]
    if not isinstance(listed, list):
        raise DataError(f"{where}: {triples_key} is a {type(listed).__name__}, not a list of triples")
    return Predicted(where, tokens, [parse_triple(triple, f"{where}: {triples_key} item {index}")
                                     for index, triple in enumerate(listed, start=1)])


def parse_triple(triple: object, where: str) -> tuple[str, str, str]:
    if isinstance(triple, dict):
        missing = [key for key in ("subject", "relation", "object") if key not in triple]
        if missing:
            raise DataError(f"{where}: no {', '.join(missing)}")
        triple = [triple["subject"], triple["relation"], triple["object"]]
    if not (isinstance(triple, list) and len(triple) == 3 and all(isinstance(part, str) for part in triple)):
        raise DataError(f"{where}: {str(triple)[:80]} is not [subject, relation, object], three strings")
    subject, relation, obj = " ".join(triple[0].split()), triple[1], " ".join(triple[2].split())
    if not (subject and relation.strip() and obj):
        raise DataError(f"{where}: an empty subject, relation or object ({triple})")
    return subject, relation, obj
