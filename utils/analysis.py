"""Where a model wins and loses: F1 by overlap pattern, by triples per sentence, per relation, and ER scores.

Overlap patterns follow CasRel (Wei et al., 2020), on the gold triples of a
sentence, with an entity identified by its last token (the unit the partial
annotation gives): Normal (no two triples share an entity), EntityPairOverlap
(two triples share both entities), SingleEntityOverlap (two triples share
exactly one entity). A sentence can be both EPO and SEO. Sentences without gold
triples form their own group in both tables (NoTriples, 0), so that what is
predicted on them is counted somewhere. The groups are decided on the gold
triples' positions; their triples are counted by any of utils/scorer.py's
scorers (strings: as CasRel and its successors count them).
"""
from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

from utils.scorer import CONVENTIONS, MODES, Extraction, Triple, prf, score_all
from utils.tagging import Span

COUNT_BUCKETS = ("0", "1", "2", "3", "4", ">=5")
PATTERNS = ("Normal", "EntityPairOverlap", "SingleEntityOverlap", "NoTriples")


def overlap_patterns(triples: Sequence[Triple]) -> set[str]:
    """The CasRel patterns of a sentence's gold triples; NoTriples for a sentence without any."""
    if not triples:
        return {"NoTriples"}
    patterns = set()
    pairs = {(s[1] - 1, o[1] - 1) for s, _, o in triples}
    for (s1, o1), (s2, o2) in combinations(pairs, 2):
        shared = len({s1, o1} & {s2, o2})
        if {s1, o1} == {s2, o2}:
            patterns.add("EntityPairOverlap")
        elif shared == 1:
            patterns.add("SingleEntityOverlap")
    if len(pairs) < len({(s[1] - 1, r, o[1] - 1) for s, r, o in triples}):
        patterns.add("EntityPairOverlap")  # one pair in several relations
    return patterns or {"Normal"}


def count_bucket(triples: Sequence[Triple]) -> str:
    count = len({(s, r, o) for s, r, o in triples})
    return str(count) if count < 5 else ">=5"


def subset_scores(predicted: Sequence[Extraction], gold: Sequence[Sequence[Triple]], keep: Sequence[bool],
                  scorer: str, token_lists: Sequence[Sequence[str]] | None) -> dict:
    """The scores of the sentences ``keep`` marks, and how many they are."""
    chosen = [i for i, k in enumerate(keep) if k]
    tokens = None if token_lists is None else [token_lists[i] for i in chosen]
    return {"sentences": len(chosen)} | score_all([predicted[i] for i in chosen], [gold[i] for i in chosen], scorer,
                                                  tokens)


def only_relation(extraction: Extraction, relation: str) -> Extraction:
    """The extraction with only ``relation``'s triples (its entities kept: the official scorer reads them)."""
    kept = [(t, p) for t, p in zip(extraction.triples, extraction.probabilities, strict=True) if t[1] == relation]
    return Extraction(extraction.entities, [t for t, _ in kept], [p for _, p in kept])


def entity_scores(predicted: Sequence[Extraction], gold_entities: Sequence[Sequence[Span]]) -> dict:
    correct = n_pred = n_gold = 0
    for extraction, entities in zip(predicted, gold_entities, strict=True):
        pred, true = set(extraction.entities), set(entities)
        correct, n_pred, n_gold = correct + len(pred & true), n_pred + len(pred), n_gold + len(true)
    return prf(correct, n_pred, n_gold)


def breakdown(predicted: Sequence[Extraction], gold: Sequence[Sequence[Triple]],
              gold_entities: Sequence[Sequence[Span]], scorer: str,
              token_lists: Sequence[Sequence[str]] | None = None) -> dict:
    """All breakdowns in both match modes, the triples counted by ``scorer`` (``strings`` needs the tokens)."""
    patterns = [overlap_patterns(g) for g in gold]
    buckets = [count_bucket(g) for g in gold]
    relations = sorted({r for g in gold for _, r, _ in g} | {r for p in predicted for _, r, _ in p.triples})
    per_relation = {}
    for relation in relations:
        per_relation[relation] = {"sentences": sum(any(t[1] == relation for t in g) for g in gold)} | score_all(
            [only_relation(p, relation) for p in predicted], [[t for t in g if t[1] == relation] for g in gold],
            scorer, token_lists)
    return {
        "scorer": scorer,
        "overlap_pattern": {name: subset_scores(predicted, gold, [name in p for p in patterns], scorer, token_lists)
                            for name in PATTERNS},
        "triples_per_sentence": {name: subset_scores(predicted, gold, [b == name for b in buckets], scorer,
                                                     token_lists) for name in COUNT_BUCKETS},
        "relation": per_relation,
        "entities": entity_scores(predicted, gold_entities),
    }


def percent(scores: dict, key: str) -> str:
    """A P, R or F1 cell: '-' where it is undefined (nothing predicted, no gold, or neither), not 0.0."""
    undefined = {"precision": not scores["predicted"], "recall": not scores["gold"],
                 "f1": not scores["predicted"] and not scores["gold"]}[key]
    return "-" if undefined else f"{100 * scores[key]:.1f}"


def breakdown_markdown(result: dict) -> str:
    lines = [f"Scores in percent, counted as evaluate.py --scorer {result['scorer']} counts "
             f"({CONVENTIONS[result['scorer']]}); '-' where undefined: P without predictions, R without gold "
             "triples, F1 without either. A sentence can be both EntityPairOverlap and SingleEntityOverlap, so those "
             "rows need not add up to the test set.", ""]
    for title, key in (("Overlap pattern", "overlap_pattern"), ("Gold triples per sentence", "triples_per_sentence"),
                       ("Relation type", "relation")):
        lines += [f"## {title}", "", "| group | sentences | partial P | partial R | partial F1 | exact P | exact R "
                  "| exact F1 |", "|---|---|---|---|---|---|---|---|"]
        for group, scores in result[key].items():
            sentences = scores.get("sentences", "-")
            cells = " | ".join(percent(scores[m], k) for m in MODES for k in ("precision", "recall", "f1"))
            lines.append(f"| {group} | {sentences} | {cells} |")
        lines.append("")
    entities = result["entities"]
    lines += ["## Entity recognition (whole spans; gold: the tagged entities, en_list's and the relations' "
              "arguments)", "",
              f"P {100 * entities['precision']:.1f} | R {100 * entities['recall']:.1f} | "
              f"F1 {100 * entities['f1']:.1f} ({entities['correct']} correct / {entities['predicted']} predicted / "
              f"{entities['gold']} gold)",
              ""]
    return "\n".join(lines)
