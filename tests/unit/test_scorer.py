"""Scorers on hand-built cases, counts worked out by hand in the comments."""
import pytest

from utils.scorer import (
    Extraction,
    decode,
    is_repeated_mention,
    keep_first_mentions,
    official_score,
    score,
    score_all,
    triple_record,
)

RELATIONS = ["born_in", "lives_in", "works_for"]


def test_decode_uses_predicted_entities_or_the_token_alone():
    tags = ["B", "E", "O", "S", "O", "B", "I", "E"]
    cells = [(1, 3, 0, 0.9), (1, 7, 1, 0.8), (4, 3, 2, 0.6)]  # token 4 ends no entity
    extraction = decode(tags, cells, RELATIONS)
    assert extraction.entities == [(0, 2), (3, 4), (5, 8)]
    assert extraction.triples == [((0, 2), "born_in", (3, 4)), ((0, 2), "lives_in", (5, 8)),
                                  ((4, 5), "works_for", (3, 4))]
    assert extraction.probabilities == [0.9, 0.8, 0.6]


def test_overlapping_triples_partial_and_exact():
    # Sentence 1: one entity (0,2) in three triples, one pair (0,2)-(3,4) in two relations.
    gold = [[((0, 2), "born_in", (3, 4)), ((0, 2), "lives_in", (3, 4)), ((0, 2), "works_for", (5, 8))],
            [((1, 2), "born_in", (4, 6))]]
    predicted = [[((0, 2), "born_in", (3, 4)),  # right
                  ((1, 2), "lives_in", (3, 4)),  # right last tokens, wrong subject span
                  ((0, 2), "lives_in", (3, 4)),  # duplicate key in partial mode with the line above
                  ((0, 2), "born_in", (5, 8))],  # wrong relation
                 [((1, 2), "born_in", (5, 6))]]  # last tokens right, object span wrong
    partial = score(predicted, gold, "partial")
    # partial keys: s1 {(1,born,3), (1,lives,3), (1,born,7)} vs gold {(1,born,3),(1,lives,3),(1,works,7)}: 2 correct
    #               s2 {(1,born,5)} vs {(1,born,5)}: 1 correct.  predicted 4, gold 4
    assert (partial["correct"], partial["predicted"], partial["gold"]) == (3, 4, 4)
    assert partial["precision"] == partial["recall"] == partial["f1"] == 0.75
    exact = score(predicted, gold, "exact")
    # exact: s1 correct (0,2)born(3,4) and (0,2)lives(3,4); s2 wrong. predicted 4 + 1 = 5, gold 4
    assert (exact["correct"], exact["predicted"], exact["gold"]) == (2, 5, 4)
    assert exact["precision"] == pytest.approx(0.4)
    assert exact["recall"] == pytest.approx(0.5)
    assert exact["f1"] == pytest.approx(2 * 0.4 * 0.5 / 0.9)


def test_official_counting_by_hand():
    gold = [[((0, 2), "born_in", (3, 4)), ((0, 2), "lives_in", (3, 4)), ((5, 8), "works_for", (0, 2))]]
    # predicted entities get (0,2) right but (3,4) wrong: it is predicted as (2,4)
    extraction = Extraction(entities=[(0, 2), (2, 4), (6, 8)],
                            triples=[((0, 2), "born_in", (2, 4)), ((0, 2), "lives_in", (2, 4)),
                                     ((6, 8), "works_for", (0, 2)), ((0, 2), "works_for", (6, 8))],
                            probabilities=[1.0] * 4)
    partial = official_score([extraction], gold, "partial")
    # cells: (1,born,3) ok, (1,lives,3) ok, (7,works,1) ok, (1,works,7) wrong -> 3 / 4 / 3
    assert (partial["correct"], partial["predicted"], partial["gold"]) == (3, 4, 3)
    exact = official_score([extraction], gold, "exact")
    # exact needs both gold entities among the predicted ones: (3,4) is missing and (5,8) is missing -> 0
    assert (exact["correct"], exact["predicted"], exact["gold"]) == (0, 4, 3)
    fixed = Extraction(entities=[(0, 2), (3, 4), (5, 8)], triples=extraction.triples, probabilities=[1.0] * 4)
    assert official_score([fixed], gold, "exact")["correct"] == 3


def test_empty_predictions_and_gold_give_zero_not_an_error():
    result = score([[]], [[]], "partial")
    assert result["f1"] == 0.0 and result["predicted"] == result["gold"] == 0


def test_unknown_mode_and_scorer():
    with pytest.raises(ValueError):
        score([[]], [[]], "fuzzy")
    with pytest.raises(ValueError):
        score_all([], [], scorer="nope")


def test_triple_record():
    tokens = "created by Steve Bright".split()
    record = triple_record(tokens, ((0, 1), "creator", (2, 4)), 0.91234567)
    assert record == {"subject": "created", "subject_span": [0, 1], "relation": "creator",
                      "object": "Steve Bright", "object_span": [2, 4], "probability": 0.912346}


# ---------------------------------------------------------------- the strings convention (CasRel, TPLinker, PRGC)

TOKENS = "Apollo 12 crew flew Apollo 12 from Florida".split()
FIRST, SECOND, FLORIDA = (0, 2), (4, 6), (7, 8)


def test_strings_count_each_text_triple_once_whatever_its_position():
    gold = [[(FIRST, "launch_site", FLORIDA)]]
    both_copies = [[(FIRST, "launch_site", FLORIDA), (SECOND, "launch_site", FLORIDA)]]
    strings = score_all([Extraction([], both_copies[0], [0.9, 0.8])], gold, "strings", [TOKENS])
    assert (strings["exact"]["correct"], strings["exact"]["predicted"], strings["exact"]["gold"]) == (1, 1, 1)
    positions = score_all([Extraction([], both_copies[0], [0.9, 0.8])], gold, "ours")
    assert (positions["exact"]["correct"], positions["exact"]["predicted"]) == (1, 2)
    assert positions["exact"]["precision"] == 0.5 and strings["exact"]["precision"] == 1.0
    second_only = score_all([Extraction([], [(SECOND, "launch_site", FLORIDA)], [0.8])], gold, "strings", [TOKENS])
    assert second_only["exact"]["f1"] == 1.0  # the text is right, wherever it was found


def test_strings_partial_match_compares_last_words():
    gold = [[((0, 2), "r", FLORIDA)]]
    predicted = [Extraction([], [((1, 2), "r", FLORIDA)], [0.9])]  # "12" alone: same last word, wrong span
    scores = score_all(predicted, gold, "strings", [TOKENS])
    assert scores["partial"]["f1"] == 1.0 and scores["exact"]["f1"] == 0.0
    with pytest.raises(ValueError, match="tokens"):
        score_all(predicted, gold, "strings")


def test_repeated_mentions_and_keeping_the_first():
    assert not is_repeated_mention(TOKENS, FIRST) and is_repeated_mention(TOKENS, SECOND)
    assert is_repeated_mention(TOKENS, (5, 6)) and not is_repeated_mention(TOKENS, FLORIDA)
    extraction = Extraction([], [(SECOND, "r", FLORIDA), (FIRST, "r", FLORIDA), (FIRST, "s", FLORIDA)],
                            [0.7, 0.9, 0.6])
    kept = keep_first_mentions(extraction, TOKENS)
    assert kept.triples == [(FIRST, "r", FLORIDA), (FIRST, "s", FLORIDA)] and kept.probabilities == [0.9, 0.6]
