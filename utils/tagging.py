"""BIOES entity tagging: spans <-> tag sequences.

Spans are ``(start, end)`` token offsets with ``end`` exclusive. RIN's data has
no entity types, so the tag set is just ``O B I E S``.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

TAGS: tuple[str, ...] = ("O", "B", "I", "E", "S")
Span = tuple[int, int]


def spans_to_tags(length: int, spans: Iterable[Span]) -> list[str]:
    """Tag ``length`` tokens with BIOES for non-overlapping ``spans``.

    Raises ``ValueError`` on a span that overlaps an earlier one or leaves the
    sentence: callers resolve overlaps first (see ``select_non_overlapping``).
    """
    tags = ["O"] * length
    for start, end in spans:
        if not 0 <= start < end <= length:
            raise ValueError(f"span {(start, end)} outside a sentence of {length} tokens")
        if any(tag != "O" for tag in tags[start:end]):
            raise ValueError(f"span {(start, end)} overlaps another entity")
        if end - start == 1:
            tags[start] = "S"
        else:
            tags[start] = "B"
            tags[start + 1 : end - 1] = ["I"] * (end - start - 2)
            tags[end - 1] = "E"
    return tags


def tags_to_spans(tags: Sequence[str]) -> list[Span]:
    """Decode well-formed entities (``S`` or ``B I* E``) from a tag sequence.

    Decoding is strict: a ``B`` not closed by ``E``, or a stray ``I``/``E``,
    yields no entity, so an ill-formed prediction never invents a span.
    """
    spans: list[Span] = []
    start: int | None = None  # index of the open B, if any
    for index, tag in enumerate(tags):
        if tag not in TAGS:
            raise ValueError(f"unknown BIOES tag {tag!r} at position {index}")
        if tag == "S":
            spans.append((index, index + 1))
            start = None
        elif tag == "B":
            start = index
        elif tag == "E":
            if start is not None:
                spans.append((start, index + 1))
            start = None
        elif tag == "O":
            start = None
    return spans


def select_non_overlapping(spans: Iterable[Span]) -> tuple[list[Span], list[tuple[Span, Span]]]:
    """Keep a set of spans BIOES can hold: longer spans win, then earlier ones.

    Longer spans win because the relation annotation sits on an entity's last
    token and a nested shorter span usually names a part of the longer entity
    ("York" inside "New York"). Returns the kept spans (sorted) and each
    dropped span with the kept span it collided with.
    """
    kept: list[Span] = []
    dropped: list[tuple[Span, Span]] = []
    for span in sorted(set(spans), key=lambda s: (-(s[1] - s[0]), s[0])):
        clash = next((k for k in kept if span[0] < k[1] and k[0] < span[1]), None)
        if clash is None:
            kept.append(span)
        else:
            dropped.append((span, clash))
    return sorted(kept), dropped
