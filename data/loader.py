"""Read RIN-format files, locate entities and relations, and batch them as tensors.

A RIN file holds one JSON object per line (a single JSON array is accepted too):
``{"sentText": [tokens], "relationMentions": [{"em1Text": [..], "em2Text": [..],
"label": str}], "en_list": [[tokens], ..], "pos": [tags]}``. ``em1Text`` and
``em2Text`` name the LAST token of each entity (official files) or the whole
entity (files made by prepare_data.py); ``en_list`` gives whole entities.
Other keys are ignored; where a key read is missing, a key that looks like it
misspelt (``relationMention``, ``Pos``) is named in the error, or the warning.
Every repair or skip is recorded in a :class:`LoadReport` with file, line and reason.
"""
from __future__ import annotations

import difflib
import json
import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from utils.errors import InputError
from utils.files import DuplicateKeyError, json_problem, unique_keys
from utils.scorer import Triple
from utils.tagging import Span, select_non_overlapping, spans_to_tags
from utils.vocab import Labels, Vocab, canonical

log = logging.getLogger(__name__)


# similarity (difflib ratio, after lower-casing and dropping '_', '-' and spaces) from which a key present is
# taken for a misspelling of a key read that is absent: 0.8, or (n - 1)/n for a key of n < 5 letters (one
# letter changed in "pos" scores 2/3). Any one-letter slip (dropped, added, changed, swapped) reaches it
MISSPELLING_CUTOFF = 0.8
READ_KEYS = frozenset({"sentText", "relationMentions", "en_list", "pos", "em1Text", "em2Text", "label"})
UNREAD_POS = "no 'pos' key, but one that looks like it misspelt (not read: no POS tags)"  # a LoadReport reason
DUPLICATE_TRIPLE = "duplicate triple removed"  # a LoadReport reason, here and in data/convert.py
# two different mentions on one triple, e.g. the last word 'Bright', located as the en_list entity ending
# there, and 'Steve Bright' given whole
MERGED_TRIPLE = "two relation mentions located on one triple (kept once)"
NOT_FOUND = "relation argument not found"  # a LoadReport reason: its triple is dropped
# a LoadReport reason: 'capital ' is another relation type than 'capital' to the model and the scorers
SPACED_LABEL = "relation label with spaces around it (a type apart from the label without them)"
# how relation arguments are located (locate_mention), recorded in each run's config.json: 2 since 2026-12-07,
# when a word that en_list names by itself stopped being widened to a longer entity ending on it (1: earlier)
MENTION_READING = 2
EARLIER_READING = 1  # what a run that records no reading (one from before 2026-12-07) was read with


class DataError(InputError):
    """Input that cannot be read at all: the message names file, line and reason."""


TAGGED_HERE = "sentence without POS tags (tagged with spaCy, as predict.py tags text)"
PLACES_KEPT = 5  # places a LoadReport names per reason; the rest are counted


@dataclass
class LoadReport:
    """Counts of every repair and skip, with the first few places each happened."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)  # the first PLACES_KEPT places of each reason
    mentions_read: int = 0  # relation mentions in the records read, kept or not

    def add(self, reason: str, where: str, detail: str = "") -> None:
        self.counts[reason] += 1
        places = self.examples.setdefault(reason, [])
        if len(places) < PLACES_KEPT:
            places.append(f"{where}: {detail}" if detail else where)

    def merge(self, other: LoadReport) -> None:
        for reason, places in other.examples.items():
            for place in places:
                if len(self.examples.setdefault(reason, [])) < PLACES_KEPT:
                    self.examples[reason].append(place)
        self.counts.update(other.counts)
        self.mentions_read += other.mentions_read

    def log(self, title: str, notes: tuple[str, ...] = ()) -> None:
        """One line per reason: a warning, except reasons starting with one of ``notes`` (where something came
        from, not a problem), logged as information."""
        for reason, count in sorted(self.counts.items()):
            level = logging.INFO if reason.startswith(notes) else logging.WARNING
            log.log(level, "%s: %d x %s, e.g. %s", title, count, reason, "; ".join(self.examples[reason]))

    def as_dict(self) -> dict:
        return {reason: {"count": count, "examples": self.examples[reason]}
                for reason, count in sorted(self.counts.items())}


@dataclass
class Sentence:
    """One sentence with gold entities (BIOES-compatible) and gold triples."""

    tokens: list[str]
    pos: list[str] | None
    entities: list[Span]
    triples: list[Triple]
    where: str = ""


def _array_items(text: str, path: Path) -> Iterator[tuple[int, object]]:
    """``(line where the item starts, item)`` for each item of a JSON array, so errors name real lines."""
    decoder = json.JSONDecoder(object_pairs_hook=unique_keys)
    position, line, counted = len(text) - len(text.lstrip()) + 1, 1, 0  # just after the "["

    def line_at(offset: int) -> int:  # lines counted incrementally: large releases hold 50,000 items
        nonlocal line, counted
        line += text.count("\n", counted, offset)
        counted = offset
        return line

    def fail(offset: int, reason: str) -> DataError:
        return DataError(f"{path}:{line_at(max(offset, counted))}: malformed JSON array: {reason}")

    def skip_space(offset: int) -> int:
        while offset < len(text) and text[offset] in " \t\n\r":
            offset += 1
        return offset

    first, index = True, 0
    while True:
        position = skip_space(position)
        if position < len(text) and text[position] == "]":
            if text[position + 1:].strip():
                raise fail(skip_space(position + 1), "text after the closing ']'")
            return
        if not first:
            if position >= len(text) or text[position] != ",":
                raise fail(position, "expected ',' or ']'")
            position = skip_space(position + 1)
        index += 1
        try:
            item, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise fail(error.pos, json_problem(error)) from None
        except DuplicateKeyError as error:  # valid JSON, but one of the values would be dropped unseen
            raise DataError(f"{path}:{line_at(position)} (item {index}): {error}") from None
        yield line_at(position), item
        position, first = end, False


def read_json_records(path: str | Path) -> Iterator[tuple[str, dict]]:
    """Yield ``(where, object)`` from a JSON-lines file or a single JSON array (a UTF-8 byte-order mark at the
    start is allowed): ``where`` is the line number, and in an array whose items share lines (``json.dump``
    writes one line) also the item, "1 (item 4)"; see :func:`position`."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a RIN-format file")
    try:
        text = path.read_text(encoding="utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        line = path.read_bytes()[: error.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 ({error.reason})") from None
    if text.lstrip().startswith("["):
        items = list(_array_items(text, path))
        shared = len({line for line, _ in items}) < len(items)
        yield from ((f"{line} (item {index})" if shared else str(line), item)
                    for index, (line, item) in enumerate(items, start=1))
        return
    for number, line in enumerate(text.split("\n"), start=1):  # not splitlines(): U+2028 may sit inside a string
        if not line.strip():
            continue
        try:
            yield str(number), json.loads(line, object_pairs_hook=unique_keys)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}:{number}: malformed JSON: {json_problem(error)} (the file holds one JSON "
                            "object per line, or one JSON array)") from None
        except DuplicateKeyError as error:
            raise DataError(f"{path}:{number}: {error}") from None


def position(where: str) -> dict[str, int]:
    """The line (and the array item, where items share lines) of a record's ``where``, "path:12" or
    "path:1 (item 4)", for output records."""
    location = where.rsplit(":", 1)[1]
    line, _, item = location.partition(" (item ")
    return {"line": int(line)} | ({"item": int(item.rstrip(")"))} if item else {})


def find_occurrences(tokens: Sequence[str], phrase: Sequence[str]) -> list[Span]:
    """All spans where ``phrase`` occurs in ``tokens``."""
    width = len(phrase)
    if width == 0:
        return []
    first = phrase[0]
    return [(i, i + width) for i, token in enumerate(tokens[: len(tokens) - width + 1])
            if token == first and list(tokens[i : i + width]) == list(phrase)]


def locate_mention(mention: Sequence[str], tokens: Sequence[str], taggable: Sequence[Span],
                   entities: Sequence[Span]) -> tuple[Span | None, str | None]:
    """Find the span of a relation argument given by its last token or its whole entity.

    A whole entity is taken where it first occurs. A last token is taken at its
    FIRST occurrence, as the official RIN loader does (``sentText.index``), with
    the span ending there among the ``taggable`` entities, then among all the
    ``entities`` (``en_list``'s spans), else the word alone; a whole entity that
    is not in the sentence is located by its last word that way too. A word
    that ``en_list`` names as an entity by itself is that whole entity, the word
    alone: 'Mendrisio' in 'Accademia di Architettura di Mendrisio' is not the
    academy. Returns the span and a problem (``"repeated ..."``, ``"whole
    entity not in sentence ..."``, ``"not found"``) or ``None``.
    """
    if len(mention) > 1:
        found = find_occurrences(tokens, mention)
        if found:
            return found[0], None
    word = mention[-1]
    if word not in tokens:
        return None, "not found"
    end = tokens.index(word) + 1
    count = tokens.count(word)
    if len(mention) > 1:
        problem = f"whole entity not in sentence: located by its last word {word!r}"
    else:
        problem = f"repeated: {word!r} occurs {count} times, took the first" if count > 1 else None
    if len(mention) == 1 and (end - 1, end) in entities:
        return (end - 1, end), problem
    for pool in (taggable, entities):
        for span in pool:
            if span[1] == end:
                return span, problem
    return (end - 1, end), problem


LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def has_lone_surrogate(text: str) -> bool:
    """Whether ``text`` holds half of a UTF-16 surrogate pair: JSON's "\\ud800" escape, or bytes decoded with
    surrogateescape; no text, and no UTF-8 file can hold it."""
    return not text.isascii() and LONE_SURROGATE.search(text) is not None


def _token_list(value: object, where: str, field: str) -> list[str]:
    """A list of tokens, or a string split on whitespace; anything else is a DataError naming the field."""
    if isinstance(value, str):
        tokens = value.split()
    elif isinstance(value, list) and all(isinstance(token, str) for token in value):
        if blank := next((k for k, token in enumerate(value, start=1) if not token.strip()), None):
            raise DataError(f"{where}: {field} holds an empty or blank token (token {blank}, {value[blank - 1]!r})")
        tokens = value
    else:
        raise DataError(f"{where}: {field} must be a string or a list of strings, not {_describe(value)}")
    if has_lone_surrogate(value if isinstance(value, str) else "".join(tokens)):  # every token of NYT passes here
        odd = next(k for k, token in enumerate(tokens, start=1) if has_lone_surrogate(token))
        raise DataError(f"{where}: {field} holds a lone surrogate (token {odd}, {tokens[odd - 1]!r}): not text; "
                        "was the file written from text decoded wrongly?")
    return tokens


def _key_form(key: str) -> str:
    return re.sub(r"[\s_-]", "", key.casefold())


def _misspellings(item: dict, key: str) -> list[str]:
    """The keys of ``item`` that look like ``key`` misspelt (case, separators, a slip of a letter or two). Asked
    only where ``key`` is absent: beside it, a similar key is an extra field ("label_id" beside "label")."""
    form = _key_form(key)
    cutoff = min(MISSPELLING_CUTOFF, (len(form) - 1) / len(form))
    similarity = {other: difflib.SequenceMatcher(None, _key_form(other), form).ratio()
                  for other in item if isinstance(other, str) and other not in READ_KEYS}
    return sorted((other for other, ratio in similarity.items() if ratio >= cutoff), key=similarity.get,
                  reverse=True)


def _misspelt_hint(item: dict, key: str) -> str:
    """For an error on a missing ``key``: the key present that was probably meant, if any, or the CasRel format
    (``text``, ``triple_list``) that the releases come in."""
    if key == "sentText" and {"text", "triple_list"} <= item.keys():
        return (" (a CasRel-format record, text and triple_list: prepare_data.py converts the releases; for data "
                "of your own, RIN records as dataset/README.md, 'Your own data', shows)")
    wrapped = [name for name, value in item.items() if isinstance(value, list) and value
               and all(isinstance(entry, dict) for entry in value)]
    if key == "sentText" and len(item) == 1 and wrapped:
        return (f" (the records sit in a list under {wrapped[0]!r}: the file holds one record object per line, or "
                "one JSON array of them)")
    near = _misspellings(item, key)
    return f" (is {near[0]!r} a misspelling of it?)" if near else ""


def _not_found_hint(phrase: Sequence[str], tokens: Sequence[str]) -> str:
    """For a phrase not found in ``tokens``: a note when it is there as one token with spaces (a string argument
    is split on them), in another Unicode form (decomposed accents) or with invisible characters (zero-width
    space, soft hyphen), which look the same in print."""
    if len(phrase) > 1 and " ".join(phrase) in {" ".join(token.split()) for token in tokens}:  # any spaces
        return (f" as written (the sentence has {' '.join(phrase)!r} as one token, and a string is split on spaces: "
                "give it as a list of that one token)")

    def visible(words: Sequence[str]) -> list[str]:  # a token of invisible characters only is left out too
        return [canonical(word) for word in words
                if not all(c.isspace() or unicodedata.category(c) == "Cf" for c in word)]

    if find_occurrences(visible(tokens), visible(phrase)):
        return (" as written (the sentence has it in another Unicode form or with invisible characters, which "
                "print alike: write both the same way)")
    return ""


def _words(tokens: Sequence[str], span: Span) -> str:
    return " ".join(tokens[span[0]:span[1]])


def _triple_text(triple: tuple[str, str, str]) -> str:
    return f"{triple[0]!r} {triple[1]} {triple[2]!r}"


def _describe(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, bytes) else repr(value)
    return f"{type(value).__name__} {text[:60]}"


def parse_record(record: dict, where: str, report: LoadReport, scored: bool = False) -> Sentence | None:
    """Turn one RIN JSON object into a :class:`Sentence`; ``None`` when skipped. Every field is type-checked:
    a wrong type is a :class:`DataError` naming ``where`` (file:line) and the field. A relation argument that is
    not in the sentence drops its triple (counted), except in ``scored`` gold, where dropping it would raise
    recall: a DataError there, as is a whole entity that is not in the sentence (its exact span is unknown) and
    an empty sentence with gold mentions (skipped, and counted, elsewhere).
    A missing key's error names a key that looks like it misspelt (for ``pos``, optional, it is counted). A
    triple given twice, or a mention located on a triple another mention gave, is kept once and counted: the
    scorers count unique triples, and now so do gold lists and triple counts."""
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    for key in ("sentText", "relationMentions", "en_list"):
        if key not in record:
            raise DataError(f"{where}: missing field {key!r}{_misspelt_hint(record, key)}")
    if "pos" not in record and (near := _misspellings(record, "pos")):
        report.add(UNREAD_POS, where, repr(near[0]))
    tokens = _token_list(record["sentText"], where, "sentText")
    if not isinstance(record["relationMentions"], list):
        raise DataError(f"{where}: relationMentions must be a list, not {_describe(record['relationMentions'])}")
    if not isinstance(record["en_list"], list):
        raise DataError(f"{where}: en_list must be a list, not {_describe(record['en_list'])}")
    report.mentions_read += len(record["relationMentions"])
    if not tokens:
        if scored and record["relationMentions"]:  # skipped, its gold would be missing from recall's count
            count = len(record["relationMentions"])
            raise DataError(f"{where}: an empty sentence with {count} gold relation mention{'s' * (count > 1)}, "
                            "which cannot be scored; fix or remove it")
        report.add("empty sentence skipped", where)
        return None
    pos = record.get("pos")
    if pos is not None:
        if not isinstance(pos, list) or not all(isinstance(tag, str) for tag in pos):
            raise DataError(f"{where}: pos must be a list of strings, not {_describe(pos)}")
        if len(pos) != len(tokens):
            raise DataError(f"{where}: {len(pos)} POS tags for {len(tokens)} tokens")

    entity_spans: list[Span] = []
    for entity in record["en_list"]:
        entity = _token_list(entity, where, "an en_list entity")
        if not entity:  # [] names no words: nothing to tag, said as what it is
            report.add("empty en_list entity (skipped)", where)
            continue
        found = find_occurrences(tokens, entity)
        if not found:
            report.add("en_list entity not in sentence", where, " ".join(entity) + _not_found_hint(entity, tokens))
        entity_spans.extend(found)
    taggable, dropped_entities = select_non_overlapping(entity_spans)

    seen: dict[Triple, tuple[str, str, str]] = {}  # each triple kept, with the mention that first gave it
    mentions: set[tuple[str, str, str]] = set()  # (subject, relation, object) as given, located or not
    for mention in record["relationMentions"]:
        try:
            first, second, label = mention["em1Text"], mention["em2Text"], mention["label"]
        except KeyError as missing:
            raise DataError(f"{where}: relation mention without {missing.args[0]!r}"
                            f"{_misspelt_hint(mention, missing.args[0])}: {mention}") from None
        except TypeError:
            raise DataError(f"{where}: relation mention without em1Text/em2Text/label: {mention}") from None
        if not isinstance(label, str) or not label.strip():
            raise DataError(f"{where}: a relation label must be a non-blank string, not {_describe(label)}")
        if label != label.strip():
            report.add(SPACED_LABEL, where, repr(label))
        spans, words, problems = [], [], []
        for name, argument in (("em1Text", first), ("em2Text", second)):
            argument = _token_list(argument, where, name)
            if not argument:
                raise DataError(f"{where}: {name} is empty ({label})")
            span, problem = locate_mention(argument, tokens, taggable, entity_spans)
            unlocated = span is None or bool(problem and problem.startswith("whole entity"))
            hint = _not_found_hint(argument, tokens) if unlocated else ""
            if scored and unlocated:
                raise DataError(f"{where}: {name} {' '.join(argument)!r} ({label}) is not in the sentence{hint}, so "
                                "this gold triple cannot be scored; fix or remove it")
            if problem:
                problems.append((NOT_FOUND if span is None else f"relation argument {problem.split(':')[0]}",
                                 f"{' '.join(argument)!r} ({label}){hint}"))
            spans.append(span)
            words.append(" ".join(argument))
        triple, given = (spans[0], label, spans[1]), (words[0], label, words[1])
        if given in mentions:  # the same mention again: its problems were counted with the first
            report.add(DUPLICATE_TRIPLE, where, _triple_text(given))
            continue
        mentions.add(given)
        for reason, detail in problems:
            report.add(reason, where, detail)
        if None in spans:
            continue  # counted above as NOT_FOUND
        if triple in seen:
            located = (_words(tokens, triple[0]), label, _words(tokens, triple[2]))
            report.add(MERGED_TRIPLE, where, f"{_triple_text(seen[triple])} and {_triple_text(given)} both at "
                                             f"{_triple_text(located)}")
            continue
        seen[triple] = given
    triples = list(seen)

    kept, dropped = select_non_overlapping(taggable + [s for t in triples for s in (t[0], t[2])])
    dropped = list(dict.fromkeys(dropped + dropped_entities))
    for subject, label, obj in triples:
        if subject not in kept or obj not in kept:
            report.add("relation argument inside a longer entity (its tags cannot be learned)", where, label)
    for span, winner in dropped:
        report.add("overlapping entity dropped from BIOES tags", where,
                   f"{_words(tokens, span)!r} lost to {_words(tokens, winner)!r}")
    return Sentence(tokens=list(tokens), pos=pos, entities=kept, triples=triples, where=where)


def load_sentences(path: str | Path, scored: bool = False) -> tuple[list[Sentence], LoadReport]:
    """Read a RIN file; raise :class:`DataError` on unreadable input, report the rest (see parse_record for
    ``scored``)."""
    report = LoadReport()
    sentences = []
    for number, record in read_json_records(path):
        sentence = parse_record(record, f"{path}:{number}", report, scored)
        if sentence is not None:
            sentences.append(sentence)
    return sentences, report


@dataclass
class Example:
    """A sentence as id arrays; ``cells`` holds (i, j, relation id) for every gold triple."""

    word_ids: np.ndarray
    pos_ids: np.ndarray
    tag_ids: np.ndarray
    cells: np.ndarray


UNKNOWN_RELATION = "relation type unknown to the model (kept as gold, cannot be predicted)"  # a LoadReport reason


def encode(sentences: Sequence[Sentence], vocab: Vocab, labels: Labels, report: LoadReport | None = None
           ) -> list[Example]:
    """Map sentences to ids; a relation unknown to ``labels`` stays gold but gets no cell."""
    tag_index = {tag: i for i, tag in enumerate(labels.tags)}
    relation_index = {rel: i for i, rel in enumerate(labels.relations)}
    known_pos, tagged_labels = set(labels.pos), len(labels.pos) > 2  # beyond padding and <UNK>
    examples = []
    for sentence in sentences:
        if report is not None and tagged_labels:  # a model with POS features reads these as <UNK>
            if sentence.pos is None:
                report.add("sentence without POS tags (read as <UNK> by a model with POS features)", sentence.where)
            else:
                for tag in dict.fromkeys(t for t in sentence.pos if t not in known_pos):
                    report.add("POS tag unknown to the model (read as <UNK>)", sentence.where, tag)
        cells = []
        for subject, relation, obj in sentence.triples:
            if relation not in relation_index:
                if report is not None:
                    report.add(UNKNOWN_RELATION, sentence.where, relation)
                continue
            cells.append((subject[1] - 1, obj[1] - 1, relation_index[relation]))
        tags = spans_to_tags(len(sentence.tokens), sentence.entities)
        examples.append(Example(
            word_ids=np.asarray(vocab.ids(sentence.tokens), dtype=np.int64),
            pos_ids=np.asarray(labels.pos_ids(sentence.pos, len(sentence.tokens)), dtype=np.int64),
            tag_ids=np.asarray([tag_index[t] for t in tags], dtype=np.int64),
            cells=np.asarray(sorted(set(cells)), dtype=np.int64).reshape(-1, 3),
        ))
    return examples


@dataclass
class Batch:
    """Padded tensors for a batch; ``mask`` marks real tokens."""

    word_ids: torch.Tensor  # (B, n)
    pos_ids: torch.Tensor  # (B, n)
    tag_ids: torch.Tensor  # (B, n)
    mask: torch.Tensor  # (B, n) bool
    lengths: torch.Tensor  # (B,)
    relation_cells: torch.Tensor | None  # (P, 4) int64: (sentence, i, j, relation) of each positive cell, unique


def collate(examples: Sequence[Example], device: torch.device, with_targets: bool = True) -> Batch:
    """Pad a batch with vectorised NumPy; the relation targets as a list of positive cells on ``device``."""
    lengths = np.fromiter((len(e.word_ids) for e in examples), dtype=np.int64, count=len(examples))
    size, width = len(examples), int(lengths.max())
    words = np.zeros((size, width), dtype=np.int64)
    pos = np.zeros((size, width), dtype=np.int64)
    tags = np.zeros((size, width), dtype=np.int64)
    for row, example in enumerate(examples):
        n = len(example.word_ids)
        words[row, :n], pos[row, :n], tags[row, :n] = example.word_ids, example.pos_ids, example.tag_ids
    mask = np.arange(width)[None, :] < lengths[:, None]

    def as_tensor(array: np.ndarray) -> torch.Tensor:  # pinned and asynchronous where the device is a GPU
        tensor = torch.from_numpy(array)
        return tensor.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else tensor.to(device)

    cells = None
    if with_targets:  # each example's cells are unique, so the batch's are
        rows = np.repeat(np.arange(size), [len(e.cells) for e in examples])
        cells = as_tensor(np.column_stack([rows, np.concatenate([e.cells for e in examples])]).astype(np.int64))
    return Batch(word_ids=as_tensor(words), pos_ids=as_tensor(pos), tag_ids=as_tensor(tags),
                 mask=as_tensor(mask), lengths=as_tensor(lengths), relation_cells=cells)


def bucketed_batches(lengths: Sequence[int], batch_size: int, generator: torch.Generator | None
                     ) -> list[list[int]]:
    """Group indices into batches of similar length, every index exactly once.

    With a generator (training) the order inside equal lengths and the order of
    the batches are shuffled; without one (evaluation) it is deterministic.
    """
    lengths_t = torch.as_tensor(list(lengths), dtype=torch.float64)
    if generator is not None:
        jitter = torch.rand(len(lengths_t), generator=generator, dtype=torch.float64)
        order = torch.argsort(lengths_t + jitter, stable=True).tolist()
    else:
        order = torch.argsort(lengths_t, stable=True).tolist()
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if generator is not None:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    return batches


def memory_parts(batch: Sequence[int], lengths: Sequence[int], values_per_cell: int, budget: int
                 ) -> list[list[int]]:
    """``batch`` cut into consecutive parts whose pair tensors (sentences x n x n x ``values_per_cell``, n the
    part's longest sentence) hold at most ``budget`` values, at least one sentence each: memory bounded by the
    budget, not by the batch size times the longest sentence squared."""
    size = part_size(max(lengths[i] for i in batch), values_per_cell, budget)
    return [list(batch[k:k + size]) for k in range(0, len(batch), size)]


def part_size(longest: int, values_per_cell: int, budget: int) -> int:
    """Sentences of up to ``longest`` tokens whose pair tensors hold at most ``budget`` values (at least one)."""
    return max(1, budget // (longest ** 2 * max(1, values_per_cell)))


@dataclass
class Split:
    """One data split: sentences with gold triples, their id arrays, and what loading reported."""

    sentences: list[Sentence]
    examples: list[Example]
    report: LoadReport

    @property
    def gold(self) -> list[list[Triple]]:
        return [s.triples for s in self.sentences]


def load_split(path: str | Path, vocab: Vocab, labels: Labels, scored: bool = False,
               tag: Callable[[list[list[str]]], list[list[str]]] | None = None) -> Split:
    """Read and encode a RIN file; what was repaired or skipped is logged and kept in ``report``. ``scored``:
    its gold is scored (dev, test), so every gold triple must be locatable. ``tag``, where given, POS-tags the
    sentences that come without tags (counted)."""
    sentences, report = load_sentences(path, scored)
    if tag and (untagged := [sentence for sentence in sentences if sentence.pos is None]):
        for sentence, pos in zip(untagged, tag([sentence.tokens for sentence in untagged]), strict=True):
            sentence.pos = pos
            report.add(TAGGED_HERE, sentence.where)
    examples = encode(sentences, vocab, labels, report)
    split = Split(sentences, examples, report)
    report.log(f"{path}")
    return split
