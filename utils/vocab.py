"""Word vocabulary, label sets and pretrained word vectors, stored as JSON and NumPy."""
from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from utils.tagging import TAGS

log = logging.getLogger(__name__)

PAD, UNK = "<PAD>", "<UNK>"
PAD_ID, UNK_ID = 0, 1


class Vocab:
    """Maps tokens to ids; id 0 is padding and id 1 the unknown word."""

    def __init__(self, words: Sequence[str], lower: bool = False) -> None:
        if list(words[:2]) != [PAD, UNK]:
            raise ValueError(f"a vocabulary starts with {PAD} and {UNK}")
        self.words = list(words)
        self.lower = lower
        self.index = {word: i for i, word in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def normalise(self, token: str) -> str:
        return token.lower() if self.lower else token

    def ids(self, tokens: Iterable[str]) -> list[int]:
        return [self.index.get(self.normalise(t), UNK_ID) for t in tokens]

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], lower: bool = False, min_count: int = 1) -> Vocab:
        counts = Counter(t.lower() if lower else t for tokens in token_lists for t in tokens)
        words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        return cls([PAD, UNK, *words], lower=lower)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"lower": self.lower, "words": self.words}, ensure_ascii=False))

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        data = json.loads(Path(path).read_text())
        return cls(data["words"], lower=data["lower"])


@dataclass
class Labels:
    """Relation types, POS tags (0 = padding, 1 = unknown) and BIOES tags of a dataset."""

    relations: list[str]
    pos: list[str]
    tags: list[str]

    def pos_ids(self, tags: Sequence[str] | None, length: int) -> list[int]:
        if tags is None:
            return [UNK_ID] * length
        index = {tag: i for i, tag in enumerate(self.pos)}
        return [index.get(tag, UNK_ID) for tag in tags]

    @classmethod
    def build(cls, relations: Iterable[str], pos_tags: Iterable[str]) -> Labels:
        return cls(relations=sorted(set(relations)), pos=[PAD, UNK, *sorted(set(pos_tags))], tags=list(TAGS))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1, ensure_ascii=False))

    @classmethod
    def load(cls, path: str | Path) -> Labels:
        return cls(**json.loads(Path(path).read_text()))


def read_word_vectors(path: str | Path, wanted: set[str] | None = None) -> tuple[dict[str, np.ndarray], int]:
    """Read GloVe (``word v1 .. vd``) or word2vec text (same, after a ``count dim`` header).

    Keeps only ``wanted`` words when given, so a 5 GB GloVe file costs little
    memory. Lines whose width differs from the first vector's are counted and
    skipped (glove.840B has a few words containing spaces).
    """
    vectors: dict[str, np.ndarray] = {}
    dim, bad = 0, 0
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.rstrip("\n").rstrip().split(" ")
            if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec header
            if dim == 0:
                dim = len(parts) - 1
            if len(parts) != dim + 1:
                bad += 1
                continue
            if wanted is None or parts[0] in wanted:
                vectors[parts[0]] = np.asarray(parts[1:], dtype=np.float32)
    if dim == 0:
        raise ValueError(f"{path}: no word vectors found")
    if bad:
        log.warning("%s: skipped %d lines whose width is not %d values", path, bad, dim)
    return vectors, dim


def train_word2vec(sentences: Sequence[Sequence[str]], dim: int, seed: int, workers: int = 1
                   ) -> dict[str, np.ndarray]:
    """Train skip-gram vectors on the given sentences (gensim)."""
    from gensim.models import Word2Vec

    logging.getLogger("gensim").setLevel(logging.WARNING)
    model = Word2Vec(sentences=[list(s) for s in sentences], vector_size=dim, window=5, min_count=1,
                     sg=1, epochs=10, seed=seed, workers=workers)
    return {word: model.wv[word].astype(np.float32) for word in model.wv.index_to_key}


def build_embedding(vocab: Vocab, vectors: dict[str, np.ndarray], dim: int, seed: int) -> tuple[np.ndarray, int]:
    """Embedding matrix for ``vocab``: pretrained rows where found, small uniform noise elsewhere.

    A word is found by its exact form, then its lower-cased form. Returns the
    matrix and how many vocabulary words were found.
    """
    rng = np.random.default_rng(seed)
    matrix = rng.uniform(-0.1, 0.1, size=(len(vocab), dim)).astype(np.float32)
    matrix[PAD_ID] = 0.0
    found = 0
    for i, word in enumerate(vocab.words[2:], start=2):
        vector = vectors.get(word)
        if vector is None:
            vector = vectors.get(word.lower())
        if vector is not None:
            matrix[i] = vector
            found += 1
    return matrix, found
