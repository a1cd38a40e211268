"""Decode triples from model outputs and score them, by positions (ours, the official counting) or by strings.

Two conventions count a correct triple differently; each score says which it used:

* positions (RIN's official code, SPN): our scorer compares unique triples per
  sentence, partial match keyed by (last subject token, relation, last object
  token) positions, exact match by (subject span, relation, object span). The
  official RIN counting (``official_score``) counts relation cells (i, j, r)
  and, in exact mode, accepts a correct cell only when the predicted tags
  contain both gold entities exactly.
* strings (CasRel, TPLinker, PRGC): sets of (subject text, relation, object
  text) per sentence; partial match compares the last words, as the NYT* and
  WebNLG* releases annotate them, exact match the whole entity texts. A triple
  predicted at a repeated mention counts once here, and where the annotation
  has it, at whichever occurrence.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from utils.tagging import Span, tags_to_spans

Triple = tuple[Span, str, Span]  # (subject span, relation, object span)
MODES = ("partial", "exact")
SCORERS = ("ours", "official", "strings")
CONVENTIONS = {
    "ours": "positions: unique (subject, relation, object) per sentence by token positions (RIN's scorer)",
    "official": "positions: relation cells (i, j, r) as the official RIN code counts them",
    "strings": "strings: sets of (subject text, relation, object text) per sentence (CasRel, TPLinker, PRGC); "
               "partial = last words",
}


@dataclass
class Extraction:
    """What the model found in one sentence."""

    entities: list[Span]
    triples: list[Triple]
    probabilities: list[float]


def decode(tags: Sequence[str], cells: Iterable[tuple[int, int, int, float]], relations: Sequence[str]
           ) -> Extraction:
    """Turn predicted tags and cells (i, j, relation id, probability) into triples.

    Each cell is one triple; its subject is the predicted entity ending at token
    i, or token i alone when none ends there; likewise the object at token j.
    """
    entities = tags_to_spans(tags)
    ending_at = {end - 1: (start, end) for start, end in entities}
    triples, probabilities = [], []
    for i, j, relation, probability in sorted(cells):
        triples.append((ending_at.get(i, (i, i + 1)), relations[relation], ending_at.get(j, (j, j + 1))))
        probabilities.append(float(probability))
    return Extraction(entities=entities, triples=triples, probabilities=probabilities)


def unknown_mode(mode: str) -> ValueError:
    return ValueError(f"unknown match mode {mode!r}; use one of {MODES}")


def triple_key(triple: Triple, mode: str) -> tuple:
    subject, relation, obj = triple
    if mode == "partial":
        return subject[1] - 1, relation, obj[1] - 1
    if mode == "exact":
        return subject, relation, obj
    raise unknown_mode(mode)


def prf(correct: int, predicted: int, gold: int) -> dict[str, float | int]:
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1,
            "correct": correct, "predicted": predicted, "gold": gold}


def score(predicted: Sequence[Iterable[Triple]], gold: Sequence[Iterable[Triple]], mode: str
          ) -> dict[str, float | int]:
    """Micro P/R/F1 over unique triples per sentence."""
    if mode not in MODES:
        raise unknown_mode(mode)
    return micro_prf(({triple_key(t, mode) for t in pred_triples}, {triple_key(t, mode) for t in gold_triples})
                     for pred_triples, gold_triples in zip(predicted, gold, strict=True))


def rates(scores: dict) -> dict[str, float]:
    """Precision, recall and F1 of one mode's scores, without the counts (what results.json keeps)."""
    return {key: scores[key] for key in ("precision", "recall", "f1")}


def micro_prf(sentences: Iterable[tuple[set, set]]) -> dict[str, float | int]:
    """Micro P/R/F1 over each sentence's (predicted keys, gold keys)."""
    correct = n_predicted = n_gold = 0
    for pred_keys, gold_keys in sentences:
        correct += len(pred_keys & gold_keys)
        n_predicted += len(pred_keys)
        n_gold += len(gold_keys)
    return prf(correct, n_predicted, n_gold)


def official_score(predicted: Sequence[Extraction], gold: Sequence[Iterable[Triple]], mode: str
                   ) -> dict[str, float | int]:
    """The official repository's counting: relation cells (i, j, r).

    A predicted cell is correct when a gold triple has the same last tokens and
    relation; in exact mode that gold triple's two entity spans must also be
    among the predicted entities.
    """
    if mode not in MODES:
        raise unknown_mode(mode)
    correct = n_predicted = n_gold = 0
    for extraction, gold_triples in zip(predicted, gold, strict=True):
        gold_triples = list(gold_triples)
        gold_cells = {triple_key(t, "partial") for t in gold_triples}
        pred_cells = {triple_key(t, "partial") for t in extraction.triples}
        entities = set(extraction.entities)
        for cell in pred_cells & gold_cells:
            if mode == "partial" or any(triple_key(t, "partial") == cell and t[0] in entities and t[2] in entities
                                        for t in gold_triples):
                correct += 1
        n_predicted += len(pred_cells)
        n_gold += len(gold_cells)
    return prf(correct, n_predicted, n_gold)


def text_key(tokens: Sequence[str], triple: Triple, mode: str) -> tuple[str, str, str]:
    """(subject text, relation, object text): the last words in partial match, the whole entities in exact."""
    (s_start, s_end), relation, (o_start, o_end) = triple
    if mode == "partial":
        return tokens[s_end - 1], relation, tokens[o_end - 1]
    if mode == "exact":
        return " ".join(tokens[s_start:s_end]), relation, " ".join(tokens[o_start:o_end])
    raise unknown_mode(mode)


def text_triple_key(triple: tuple[str, str, str], mode: str) -> tuple[str, str, str]:
    """text_key for a triple given as texts (another system's output): the last words in partial match, the whole
    texts in exact; words separated by single spaces, as text_key joins tokens."""
    subject, relation, obj = triple
    if mode == "partial":
        return subject.split()[-1], relation, obj.split()[-1]
    if mode == "exact":
        return " ".join(subject.split()), relation, " ".join(obj.split())
    raise unknown_mode(mode)


def string_score(predicted: Sequence[Iterable[Triple]], gold: Sequence[Iterable[Triple]],
                 token_lists: Sequence[Sequence[str]], mode: str) -> dict[str, float | int]:
    """Micro P/R/F1 over sets of (subject text, relation, object text) per sentence."""
    return micro_prf(({text_key(tokens, t, mode) for t in pred_triples},
                      {text_key(tokens, t, mode) for t in gold_triples})
                     for pred_triples, gold_triples, tokens in zip(predicted, gold, token_lists, strict=True))


def score_all(predicted: Sequence[Extraction], gold: Sequence[Iterable[Triple]], scorer: str = "ours",
              token_lists: Sequence[Sequence[str]] | None = None) -> dict[str, dict]:
    """Both match modes with one scorer: ``ours`` or ``official`` (positions), ``strings`` (needs the tokens)."""
    gold = [list(g) for g in gold]
    if scorer == "official":
        return {mode: official_score(predicted, gold, mode) for mode in MODES}
    if scorer == "ours":
        return {mode: score([p.triples for p in predicted], gold, mode) for mode in MODES}
    if scorer == "strings":
        if token_lists is None:
            raise ValueError("the strings scorer needs each sentence's tokens")
        return {mode: string_score([p.triples for p in predicted], gold, token_lists, mode) for mode in MODES}
    raise ValueError(f"unknown scorer {scorer!r}; use one of {SCORERS}")


def is_repeated_mention(tokens: Sequence[str], span: Span) -> bool:
    """Whether the entity text at ``span`` occurs earlier in the sentence (the annotation marks first ones)."""
    start, end = span
    phrase, width = list(tokens[start:end]), end - start
    return any(list(tokens[i:i + width]) == phrase for i in range(start))


def repeated_mention_count(predicted: Sequence[Extraction], token_lists: Sequence[Sequence[str]]) -> int:
    """How many predicted triples have their subject or object at a repeated mention."""
    return sum(is_repeated_mention(tokens, triple[0]) or is_repeated_mention(tokens, triple[2])
               for extraction, tokens in zip(predicted, token_lists, strict=True) for triple in extraction.triples)


def keep_first_mentions(extraction: Extraction, tokens: Sequence[str]) -> Extraction:
    """Each (subject text, relation, object text) once, at its first position: the releases' own convention."""
    seen: set[tuple[str, str, str]] = set()
    triples, probabilities = [], []
    for triple, probability in sorted(zip(extraction.triples, extraction.probabilities, strict=True)):
        key = text_key(tokens, triple, "exact")
        if key not in seen:
            seen.add(key)
            triples.append(triple)
            probabilities.append(probability)
    return Extraction(entities=extraction.entities, triples=triples, probabilities=probabilities)


def triple_record(tokens: Sequence[str], triple: Triple, probability: float | None = None) -> dict:
    """A triple as JSON: strings are the span's tokens joined by spaces; spans end-exclusive."""
    (s_start, s_end), relation, (o_start, o_end) = triple
    record = {"subject": " ".join(tokens[s_start:s_end]), "subject_span": [s_start, s_end], "relation": relation,
              "object": " ".join(tokens[o_start:o_end]), "object_span": [o_start, o_end]}
    if probability is not None:
        record["probability"] = round(probability, 6)
    return record
