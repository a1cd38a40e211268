import pytest

from utils.tagging import select_non_overlapping, spans_to_tags, tags_to_spans


@pytest.mark.parametrize("length, spans", [(6, [(0, 3), (4, 5)]), (3, []), (1, [(0, 1)]), (4, [(0, 2), (2, 4)])])
def test_round_trip(length, spans):
    tags = spans_to_tags(length, spans)
    assert len(tags) == length
    assert tags_to_spans(tags) == spans


def test_tags_spelled_out():
    assert spans_to_tags(6, [(0, 3), (4, 5)]) == ["B", "I", "E", "O", "S", "O"]


@pytest.mark.parametrize("tags, spans", [
    ("B I O E".split(), []),  # broken by O
    ("I E".split(), []),  # no B
    ("B B E".split(), [(1, 3)]),  # second B restarts
    ("B S E".split(), [(1, 2)]),  # S closes nothing, E has no open B
    ("E S B".split(), [(1, 2)]),  # stray E, unfinished B
    ("B I I E S".split(), [(0, 4), (4, 5)]),
])
def test_invalid_sequences_decode_strictly(tags, spans):
    assert tags_to_spans(tags) == spans


def test_unknown_tag_is_an_error():
    with pytest.raises(ValueError, match="unknown BIOES tag"):
        tags_to_spans(["O", "X"])


def test_overlapping_spans_are_refused():
    with pytest.raises(ValueError, match="overlaps"):
        spans_to_tags(5, [(0, 3), (2, 4)])
    with pytest.raises(ValueError, match="outside"):
        spans_to_tags(2, [(1, 3)])


def test_longer_span_wins_overlap():
    kept, dropped = select_non_overlapping([(1, 2), (0, 3), (3, 4), (2, 5)])
    assert kept == [(0, 3), (3, 4)]  # equal lengths: the earlier span wins
    assert sorted(dropped) == [((1, 2), (0, 3)), ((2, 5), (0, 3))]
    kept, dropped = select_non_overlapping([(0, 1), (0, 3), (5, 6)])
    assert kept == [(0, 3), (5, 6)]
    assert dropped == [((0, 1), (0, 3))]
