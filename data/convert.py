"""Convert published triple releases (CasRel/HRL layout) into RIN records, reporting every change.

Two kinds of release exist: whole-entity triples (NYT, WebNLG, NYT10, NYT11:
exact match) and last-word triples (NYT*, WebNLG*: partial match). Both become
RIN records whose relation mentions and ``en_list`` name whole entities
(official RIN files name only last tokens; the loader reads both); last-word
releases borrow whole entities from span sources tried in turn (the exact
release of the same sentence, the release's entity lexicon, a named-entity span
ending at the word, a noun compound ending at it, the word alone).
"""
from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from data.loader import DUPLICATE_TRIPLE, DataError, LoadReport, find_occurrences, parse_record, read_json_records
from utils.project import DATASETS_DIR
from utils.tagging import Span

MAX_ENTITY_TOKENS = 16

# Where each dataset's splits live in the release layout; "spans" = exact release used for whole entities;
# "official_train"/"official_test" = the authors' RIN-format files, "dev_size" = sentences held out of that train.
DATASETS: dict[str, dict] = {
    "nyt": {"triples": "casrel/NYT-star/{}_triples.json", "names": {"dev": "val"}, "last_word": True,
            "spans": "casrel/NYT/{}_triples.json"},
    "webnlg": {"triples": "casrel/WebNLG-star/{}_triples.json", "names": {"dev": "val"}, "last_word": True,
               "spans": "casrel/WebNLG/{}_triples.json", "official_test": "rin/webnlg/test.json"},
    "webnlg_exact": {"triples": "casrel/WebNLG/{}_triples.json", "names": {"dev": "val"}, "last_word": False},
    "nyt10": {"triples": "hrl/NYT10/{}.json", "names": {}, "last_word": False},
    "nyt11": {"triples": "hrl/NYT11/{}.json", "names": {}, "last_word": False},
    "webnlg_official": {"official_train": "rin/webnlg/train.json", "official_test": "rin/webnlg/test.json",
                        "dev_size": 500},
    "nyt_official": {"official_train": "rin/nyt/train.json", "official_test": "rin/nyt/test.json",
                     "dev_size": 5000},
}


def prepare_hint(dataset: str, folder: Path, named: bool = True) -> str:
    """How to build a dataset's ``folder``: prepare_data.py for a release (into the folder of its name), the
    user's own files otherwise (a folder named otherwise is theirs, whatever --dataset says). ``named``: the user
    gave the dataset's name (not taken from the folder's), which a remark then says is no release."""
    if dataset in DATASETS and folder.name == dataset:
        out = "" if folder.parent.resolve() == DATASETS_DIR.resolve() else f" --out {folder.parent}"
        return f"run python prepare_data.py --dataset {dataset}{out}"
    release = "" if dataset in DATASETS or not named else (f"{dataset!r} is no release prepare_data.py builds "
                                                           f"({', '.join(sorted(DATASETS))}): ")
    return (f"{release}put train.json, dev.json and test.json in RIN format into {folder} (dataset/README.md, "
            '"Your own data")')


def read_release(path: Path) -> list[dict]:
    """A CasRel/HRL release file: a JSON array (or JSON lines) of {"text", "triple_list"}, checked field by field;
    each item also says where in the file it starts ("line": "75328", or "1 (item 4)" in a one-line array)."""
    items = []
    for number, item in read_json_records(path):
        where = f"{path}:{number}"
        if not isinstance(item, dict) or "text" not in item or "triple_list" not in item:
            raise DataError(f"{where}: expected an object with 'text' and 'triple_list'")
        if not isinstance(item["text"], str):
            raise DataError(f"{where}: 'text' must be a string, not {type(item['text']).__name__}")
        triples = item["triple_list"]
        if not isinstance(triples, list) or not all(
                isinstance(t, list) and len(t) == 3 and all(isinstance(x, str) for x in t) for t in triples):
            raise DataError(f"{where}: 'triple_list' must be a list of [subject, relation, object] strings")
        items.append({"text": item["text"], "triple_list": triples, "line": number})
    return items


def fold(text: str) -> str:
    """Accent- and space-insensitive form: "Medellín" and "Medellin" fold alike, and so do two releases'
    tokenisations of one text ("N.J." and "N.J .")."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c) and not c.isspace())


def find_entity(tokens: Sequence[str], entity: str, end: int | None = None) -> tuple[Span | None, str]:
    """Locate ``entity`` (a string) in ``tokens``.

    Tries the exact token sequence, then a span whose tokens spell the entity
    once accents and spaces are ignored (this also bridges re-tokenisations).
    With ``end`` only spans ending there count. Returns the first span and how
    it was found (``exact``, ``folded``) or ``(None, "not found")``.
    """
    words = entity.split()
    for span in find_occurrences(tokens, words):
        if end is None or span[1] == end:
            return span, "exact"
    target = fold(entity)
    if not target:
        return None, "not found"
    for stop in range(1, len(tokens) + 1) if end is None else (end,):
        for start in range(stop - 1, max(-1, stop - 1 - MAX_ENTITY_TOKENS), -1):
            spelled = fold("".join(tokens[start:stop]))
            if spelled == target:
                return (start, stop), "folded"
            if len(spelled) >= len(target):
                break
    return None, "not found"


# (tokens, end) -> a whole-entity span ending at token end - 1 and where it came from
SpanSource = Callable[[Sequence[str], int], tuple[Span | None, str]]


def convert_sentence(text: str, triples: Sequence[Sequence[str]], last_word_release: bool, where: str,
                     report: LoadReport, span_source: SpanSource | None = None) -> dict | None:
    """One release item -> a RIN record (without POS), or ``None`` when nothing usable is left.

    Last-word releases: the relation sits on the word's FIRST occurrence, as in the
    official RIN data (its test always does, and its loader takes ``sentText.index``),
    and ``span_source(tokens, end)`` gives the whole entity ending there.
    """
    tokens = text.split()
    if not tokens:
        report.add("empty sentence dropped", where)
        return None
    unique = list(dict.fromkeys(tuple(t) for t in triples))
    for _ in range(len(triples) - len(unique)):
        report.add(DUPLICATE_TRIPLE, where)
    mentions, entities = [], []
    for subject, relation, obj in unique:
        spans = []
        for argument in (subject, obj):
            if last_word_release:
                if argument not in tokens:
                    span, how = find_entity(tokens, argument)
                    if span is None:
                        report.add("last word not among the tokens: triple dropped", where, argument)
                        spans.append(None)
                        continue
                    report.add("last word matched accent-insensitively", where, argument)
                    argument = tokens[span[1] - 1]
                if tokens.count(argument) > 1:
                    report.add("last word occurs more than once (placed on its first occurrence)", where, argument)
                end = tokens.index(argument) + 1
                span, origin = span_source(tokens, end) if span_source else (None, "word alone")
                if span is None:
                    span, origin = (end - 1, end), "word alone"
                report.add(f"entity span from {origin}", where)
            else:
                span, how = find_entity(tokens, argument)
                if span is None:
                    report.add("entity not found in the tokens: triple dropped", where, argument)
                elif how == "folded":
                    report.add("entity matched accent/space-insensitively", where, argument)
            spans.append(span)
        if None in spans:
            continue
        mentions.append({"em1Text": tokens[spans[0][0]:spans[0][1]], "em2Text": tokens[spans[1][0]:spans[1][1]],
                         "label": relation})
        entities.extend(tuple(tokens[s[0]:s[1]]) for s in spans)
    if not mentions and triples:
        report.add("sentence left without triples: dropped", where)
        return None
    return {"sentText": tokens, "relationMentions": mentions,
            "en_list": [list(e) for e in dict.fromkeys(entities)]}


class ExactReleaseSpans:
    """Whole entities of an exact-match release, looked up by sentence text."""

    def __init__(self, items: Iterable[dict]) -> None:
        self.entities: dict[str, list[str]] = {}
        for item in items:
            bucket = self.entities.setdefault(fold(item["text"]), [])
            for subject, _, obj in item["triple_list"]:
                bucket.extend(e for e in (subject, obj) if e not in bucket)

    def __call__(self, tokens: Sequence[str], end: int) -> tuple[Span | None, str]:
        candidates = self.entities.get(fold(" ".join(tokens)), [])
        for entity in sorted(candidates, key=len, reverse=True):
            span, how = find_entity(tokens, entity, end)
            if span is not None:
                return span, "exact release" + (" (accent/space-insensitive match)" if how == "folded" else "")
        return None, "word alone"


class EntityLexicon:
    """Every entity name of an exact release, for sentences the release does not cover.

    WebNLG verbalises a few thousand DBpedia entities again and again, so a name
    seen in any sentence of the release is likely the whole entity wherever its
    last word appears. The longest name ending there wins; names match accent- and
    space-insensitively.
    """

    def __init__(self, items: Iterable[dict]) -> None:
        self.names = {fold(e) for item in items for s, _, o in item["triple_list"] for e in (s, o)} - {""}

    def __call__(self, tokens: Sequence[str], end: int) -> tuple[Span | None, str]:
        for start in range(max(0, end - MAX_ENTITY_TOKENS), end):
            if fold("".join(tokens[start:end])) in self.names:
                return (start, end), "entity lexicon"
        return None, "word alone"


NOUN_COMPOUND_TAGS = frozenset({"NN", "NNS", "NNP", "NNPS", "JJ", "CD"})
NOUN_COMPOUND_MAX_TOKENS = 8


def ner_span(entity_spans: list[Span], tokens: Sequence[str], end: int) -> tuple[Span | None, str]:
    """A named-entity span ending at token ``end`` (a span source)."""
    for span in entity_spans:
        if span[1] == end:
            return span, "named-entity span"
    return None, "word alone"


def noun_compound_span(tags: Sequence[str], tokens: Sequence[str], end: int) -> tuple[Span | None, str]:
    """The run of nouns, adjectives and numbers that ends at a noun ("gram flour", "Colombian cuisine").

    The last resort before the word alone, for arguments that no release names and
    NER misses (common nouns, mostly). How well it stands in for the exact release
    where that is missing is measured on train, where it is not: see
    ``sentence_sources_vs_exact_release`` in prepare_report.json.
    """
    if not tags[end - 1].startswith("NN"):
        return None, "word alone"
    start = end - 1
    while start > 0 and tags[start - 1] in NOUN_COMPOUND_TAGS and end - start < NOUN_COMPOUND_MAX_TOKENS:
        start -= 1
    return ((start, end), "noun compound") if start < end - 1 else (None, "word alone")


def first_span(sources: Sequence[SpanSource], tokens: Sequence[str], end: int) -> tuple[Span | None, str]:
    """The span from the first source that has one ending at ``end``."""
    for source in sources:
        span, origin = source(tokens, end)
        if span is not None:
            return span, origin
    return None, "word alone"


def check_record(record: dict, where: str) -> LoadReport:
    """What the RIN loader will report on ``record`` (ambiguous positions, overlaps, ...)."""
    report = LoadReport()
    parse_record(record, where, report)
    return report


def sentence_key(record: dict, where: str = "") -> str:
    """A RIN record's sentence text, its tokens joined by spaces: what repeated texts are counted by, and the
    unit a held-out dev is drawn by (copies of one text stay together)."""
    tokens = record["sentText"]
    if isinstance(tokens, str):
        tokens = tokens.split()
    if not isinstance(tokens, list) or not all(isinstance(token, str) for token in tokens):
        raise DataError(f"{where}: sentText must be a list of strings or a string")
    return " ".join(tokens)


def split_statistics(records: Sequence[dict]) -> dict:
    """Counts of a built split, its repeated texts among them (a release quirk, kept: reported, not removed)."""
    relations = Counter(m["label"] for r in records for m in r["relationMentions"])
    return {
        "sentences": len(records),
        "repeated_texts": len(records) - len({sentence_key(r) for r in records}),
        "triples": sum(len(r["relationMentions"]) for r in records),
        "unique_triples": sum(len({(m["em1Text"][-1], m["label"], m["em2Text"][-1])
                                   for m in r["relationMentions"]}) for r in records),
        "entities": sum(len(r["en_list"]) for r in records),
        "relation_types": len(relations),
    }
