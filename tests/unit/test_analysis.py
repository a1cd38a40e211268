"""evaluate --breakdown's analysis (utils/analysis.py), counted by hand."""
from utils.analysis import breakdown, breakdown_markdown, count_bucket, overlap_patterns
from utils.scorer import Extraction

A, B, C, D = (0, 1), (2, 3), (4, 6), (7, 8)


def test_overlap_patterns_and_buckets():
    assert overlap_patterns([(A, "r", B)]) == {"Normal"}
    assert overlap_patterns([(A, "r", B), (C, "r", D)]) == {"Normal"}
    assert overlap_patterns([(A, "r", B), (A, "s", B)]) == {"EntityPairOverlap"}
    assert overlap_patterns([(A, "r", B), (B, "s", A)]) == {"EntityPairOverlap"}
    assert overlap_patterns([(A, "r", B), (A, "s", C)]) == {"SingleEntityOverlap"}
    assert overlap_patterns([(A, "r", B), (A, "s", B), (B, "t", C)]) == {"EntityPairOverlap", "SingleEntityOverlap"}
    assert overlap_patterns([]) == {"NoTriples"}
    assert [count_bucket([(A, "r", B)] * 1), count_bucket([]), count_bucket([(A, str(i), B) for i in range(7)])] == [
        "1", "0", ">=5"]


def test_breakdown_scores_by_hand():
    gold = [[(A, "r", B)],  # Normal, 1 triple
            [(A, "r", B), (A, "s", B)],  # EPO, 2 triples
            [(A, "r", B), (A, "s", C)]]  # SEO, 2 triples
    predicted = [Extraction([A, B], [(A, "r", B)], [0.9]),  # right
                 Extraction([A, B], [(A, "r", B)], [0.9]),  # 1 of 2
                 Extraction([A, (3, 6)], [(A, "s", (3, 6)), (A, "t", B)], [0.9, 0.9])]  # partial-right, wrong
    result = breakdown(predicted, gold, [[A, B], [A, B], [A, B, C]], "ours")
    normal = result["overlap_pattern"]["Normal"]
    assert normal["sentences"] == 1 and normal["exact"]["f1"] == 1.0
    epo = result["overlap_pattern"]["EntityPairOverlap"]["exact"]
    assert (epo["correct"], epo["predicted"], epo["gold"]) == (1, 1, 2)
    seo = result["overlap_pattern"]["SingleEntityOverlap"]
    assert (seo["partial"]["correct"], seo["partial"]["predicted"], seo["partial"]["gold"]) == (1, 2, 2)
    assert seo["exact"]["correct"] == 0
    two = result["triples_per_sentence"]["2"]["exact"]
    assert (two["correct"], two["predicted"], two["gold"]) == (1, 3, 4)
    assert result["triples_per_sentence"]["3"]["sentences"] == 0
    relation_s = result["relation"]["s"]["partial"]
    assert (relation_s["correct"], relation_s["predicted"], relation_s["gold"]) == (1, 1, 2)
    assert result["relation"]["t"]["exact"]["predicted"] == 1 and result["relation"]["t"]["exact"]["gold"] == 0
    assert [result["relation"][r]["sentences"] for r in ("r", "s", "t")] == [3, 2, 0]  # sentences with a gold one
    assert "| s | 2 |" in breakdown_markdown(result)
    entities = result["entities"]
    assert (entities["correct"], entities["predicted"], entities["gold"]) == (5, 6, 7)


def test_sentences_without_gold_count_and_undefined_scores_print_as_such():
    """A sentence without gold triples is its own group in both tables (its false positives were counted
    nowhere); P without predictions, R without gold, and F1 without either print '-', not 0.0."""
    gold = [[(A, "r", B)], []]
    predicted = [Extraction([A, B], [(A, "r", B)], [0.9]), Extraction([C], [(C, "r", C)], [0.6])]
    result = breakdown(predicted, gold, [[A, B], []], "ours")
    for table, group in (("overlap_pattern", "NoTriples"), ("triples_per_sentence", "0")):
        empty = result[table][group]
        assert empty["sentences"] == 1 and (empty["exact"]["predicted"], empty["exact"]["gold"]) == (1, 0)
    assert sum(g["sentences"] for g in result["triples_per_sentence"].values()) == len(gold)
    lines = breakdown_markdown(result).splitlines()
    assert "| 0 | 1 | 0.0 | - | 0.0 | 0.0 | - | 0.0 |" in lines  # predicted, no gold: wrong, recall undefined
    assert "| 3 | 0 | - | - | - | - | - | - |" in lines  # no sentence at all
    assert "| 1 | 1 | 100.0 | 100.0 | 100.0 | 100.0 | 100.0 | 100.0 |" in lines
    assert "P 66.7 | R 100.0 | F1 80.0 (2 correct / 3 predicted / 2 gold)" in lines


def test_breakdown_by_strings_counts_a_repeated_mention_once():
    """By strings (as CasRel's tables count), a triple predicted at a repeated mention of the gold one is
    correct; by positions it is not. The scorer is recorded and named in the tables."""
    tokens = [["a", "b", "a", "c"]]
    gold, predicted = [[((0, 1), "r", (1, 2))]], [Extraction([(2, 3), (1, 2)], [((2, 3), "r", (1, 2))], [0.9])]
    by_strings = breakdown(predicted, gold, [[(0, 1), (1, 2)]], "strings", tokens)
    by_positions = breakdown(predicted, gold, [[(0, 1), (1, 2)]], "ours")
    for result, f1 in ((by_strings, 1), (by_positions, 0)):
        assert result["relation"]["r"]["exact"]["f1"] == result["overlap_pattern"]["Normal"]["partial"]["f1"] == f1
    assert "--scorer strings counts (strings:" in breakdown_markdown(by_strings)
    assert breakdown(predicted, gold, [[(0, 1), (1, 2)]], "official")["scorer"] == "official"
