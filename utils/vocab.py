"""Word vocabulary, label sets and pretrained word vectors, stored as JSON and NumPy (UTF-8, written atomically)."""
from __future__ import annotations

import importlib.util
import io
import itertools
import json
import logging
import os
import pickle
import platform
import re
import subprocess
import sys
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
from tqdm import tqdm

from utils.cpu import X86_64, cpu_flags
from utils.errors import InputError, lines_named
from utils.files import atomic_write_bytes, read_json
from utils.project import PROJECT_ROOT
from utils.tagging import TAGS

log = logging.getLogger(__name__)

PAD, UNK = "<PAD>", "<UNK>"
PAD_ID, UNK_ID = 0, 1


def canonical(token: str) -> str:
    """``token`` in Unicode NFC without format characters (byte-order mark, zero-width space, soft hyphen), or
    as it is where nothing else is left of it."""
    kept = "".join(character for character in unicodedata.normalize("NFC", token)
                   if unicodedata.category(character) != "Cf")
    return kept or token


class Vocab:
    """Maps tokens to ids; id 0 is padding and id 1 the unknown word."""

    def __init__(self, words: Sequence[str], lower: bool = False) -> None:
        if list(words[:2]) != [PAD, UNK]:
            raise ValueError(f"a vocabulary starts with {PAD} and {UNK}")
        self.words = list(words)
        self.lower = lower
        self.index = {word: i for i, word in enumerate(self.words)}
        if len(self.index) < len(self.words):  # the index would send the word to its last id, orphaning a row
            word, first, again = repeated_words(self.words)[0]
            raise ValueError(f"the word {word!r} is listed twice (ids {first} and {again}); a vocabulary lists "
                             "each word once")

    def __len__(self) -> int:
        return len(self.words)

    def normalise(self, token: str) -> str:
        return token.lower() if self.lower else token

    def ids(self, tokens: Iterable[str]) -> list[int]:
        """Word ids; a word not in the vocabulary, and the padding token as text, are the unknown word. A word
        missing as written is looked up once more in its canonical form (:func:`canonical`): the same word
        with its accents decomposed (text from macOS or a PDF), or an invisible character inside."""
        return [UNK_ID if t == PAD else self.index.get(self.normalise(t))
                or self.index.get(self.normalise(canonical(t)), UNK_ID) for t in tokens]

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], lower: bool = False) -> Vocab:
        counts = Counter(t.lower() if lower else t for tokens in token_lists for t in tokens)
        words = sorted((w for w in counts if w not in (PAD, UNK)),  # as tokens in
                       key=lambda w: (-counts[w], w))  # the data, both are the unknown word (ids)
        return cls([PAD, UNK, *words], lower=lower)

    def save(self, path: str | Path) -> None:
        data = json.dumps({"lower": self.lower, "words": self.words}, ensure_ascii=False)
        atomic_write_bytes(Path(path), data.encode("utf-8"))

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        """A saved vocabulary; one that is not a valid one (a word listed twice, ...) is an InputError naming it."""
        data = read_json(Path(path))
        try:
            return cls(data["words"], lower=data["lower"])
        except ValueError as error:
            raise InputError(f"{path}: {error}") from None


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
        atomic_write_bytes(Path(path), json.dumps(asdict(self), indent=1, ensure_ascii=False).encode("utf-8"))

    @classmethod
    def load(cls, path: str | Path) -> Labels:
        return cls(**read_json(Path(path)))


def repeated_words(words: Iterable[str]) -> list[tuple[str, int, int]]:
    """``(word, first position, later position)`` for each word given again, positions counted from 0."""
    first: dict[str, int] = {}
    repeats = []
    for position, word in enumerate(words):
        if word in first:
            repeats.append((word, first[word], position))
        else:
            first[word] = position
    return repeats


def warn_repeated_vectors(path: str | Path, repeats: Sequence[tuple[str, int, int]], unit: str,
                          among: str = "") -> None:
    """One warning for words given more than one vector (the first was kept): how many, and the first few."""
    if repeats:
        shown = "; ".join(f"{word!r} {unit}s {first} and {again}" for word, first, again in repeats[:5])
        log.warning("%s: words%s given more than once (%d repeats): the first vector of each is kept (%s%s)", path,
                    among, len(repeats), shown, " ..." if len(repeats) > 5 else "")


WIDTH_SAMPLE = 1000  # lines of a vectors file whose commonest width is taken as its vector size (+ 1 word)


# the first bytes of files that are no UTF-8 text: the compressed files vectors are downloaded as, and UTF-16 or
# UTF-32 (as Windows editors save "Unicode" text)
NOT_TEXT = {b"\x1f\x8b": "a gzip file; unpack it, or read it through a pipe: --wv_file <(zcat FILE)",
            b"PK\x03\x04": "a zip file; unpack it, or read it through a pipe: --wv_file <(unzip -p FILE)",
            b"BZh": "a bzip2 file; unpack it, or read it through a pipe: --wv_file <(bzcat FILE)",
            b"\xfd7zXZ\x00": "an xz file; unpack it, or read it through a pipe: --wv_file <(xzcat FILE)",
            b"\xff\xfe\x00\x00": "UTF-32 text; save it as UTF-8", b"\x00\x00\xfe\xff": "UTF-32 text; save it as UTF-8",
            b"\xff\xfe": "UTF-16 text; save it as UTF-8", b"\xfe\xff": "UTF-16 text; save it as UTF-8"}  # in this order
PROGRESS_LINES = 100_000  # a vectors file's progress bar moves by this many lines (glove.840B: 2.2 million)
VALUE_SEPARATOR = re.compile(r"[ \t]+")  # spaces or tabs, one or more: not the no-break spaces inside some words


def not_text_problem(start: bytes, path: str | Path) -> str | None:
    """Why a word-vector file that begins with the bytes ``start`` cannot be read as text, else None."""
    problem = next((problem for magic, problem in NOT_TEXT.items() if start.startswith(magic)), None)
    return problem and f"{path}: {problem} (a GloVe or word2vec text file)"


def read_word_vectors(path: str | Path, wanted: set[str] | None = None) -> tuple[dict[str, np.ndarray], int]:
    """Read GloVe (``word v1 .. vd``) or word2vec text (same, after a ``count dim`` header), its values
    separated by spaces or tabs; a pipe (``<(zcat glove.txt.gz)``) as well as a file.

    Keeps only ``wanted`` words when given, so a 5 GB GloVe file costs little
    memory. The vector size is the header's, else the most common width of the
    first lines: lines of another width are counted and skipped (glove.840B has
    a few words containing spaces, and the first line can be one), unless they are
    more than 1% (not one file of vectors); so are lines that are not UTF-8 (word2vec
    cuts long words inside a character), never read as words with replacement
    characters that match nothing. A word given twice
    keeps its first vector, with one warning for all such lines, as gensim's
    reader does: downloaded files can carry the odd duplicate, and refusing
    them would mean editing a 5 GB file by hand.
    """
    vectors: dict[str, np.ndarray] = {}
    lines: dict[str, int] = {}  # where each kept word was read
    bad, undecodable, repeats, fitting, count = [], [], [], 0, None
    with open(path, "rb") as binary:
        if problem := not_text_problem(binary.peek(6)[:6], path):  # peek: a pipe is read once
            raise InputError(problem)

        def decoded() -> Iterator[str | None]:  # line by line: a line that is not UTF-8 is None, and counted
            for number, raw in enumerate(binary, start=1):
                try:
                    yield raw.decode("utf-8").removeprefix("\ufeff") if number == 1 else raw.decode("utf-8")
                except UnicodeDecodeError:
                    yield None

        text = decoded()
        first = list(itertools.islice(text, WIDTH_SAMPLE))
        header = first[0].split() if first and first[0] else []
        if len(header) == 2 and all(p.isdigit() for p in header):  # word2vec: "count dim"
            count, dim, first[0] = int(header[0]), int(header[1]), ""
        else:
            widths = Counter(len(VALUE_SEPARATOR.split(line.rstrip())) - 1 for line in first if line and line.strip())
            dim = widths.most_common(1)[0][0] if widths else 0
        progress = tqdm(desc=f"read {path}", unit=" lines", unit_scale=True, mininterval=2.0,
                        disable=None, leave=False)
        for number, line in enumerate(itertools.chain(first, text), start=1):
            if number % PROGRESS_LINES == 0:
                progress.update(PROGRESS_LINES)
            if line is None:  # word2vec.c cuts long words inside a character: the odd such line is skipped
                undecodable.append(number)
                continue
            if not line.strip():
                continue  # the header, or a blank line
            parts = VALUE_SEPARATOR.split(line.rstrip())
            if len(parts) != dim + 1:
                bad.append(number)
                continue
            fitting += 1
            if parts[0] in lines:
                repeats.append((parts[0], lines[parts[0]], number))
                continue
            if wanted is None or parts[0] in wanted:
                try:
                    vector = np.asarray(parts[1:], dtype=np.float32)
                except ValueError:
                    raise InputError(f"{path}:{number}: the vector of {parts[0]!r} holds a value that is not a "
                                     "number (word2vec binary files are not read: convert them to text)") from None
                if not np.isfinite(vector).all():
                    raise InputError(f"{path}:{number}: the vector of {parts[0]!r} holds NaN or inf")
                vectors[parts[0]] = vector
                lines[parts[0]] = number
        progress.close()
    read = fitting + len(bad) + len(undecodable)
    tolerated = max(10, read // 100)  # glove.840B's words with spaces are a few in millions
    if len(undecodable) > tolerated:
        raise InputError(f"{path}: {len(undecodable)} of its {read} lines are not UTF-8 (lines "
                         f"{lines_named(undecodable)}): convert the file from its encoding (iconv -f ENCODING -t "
                         "utf-8)")
    if dim == 0:
        raise InputError(f"{path}: no word vectors found")
    if not fitting:
        raise InputError(f"{path}: no word vectors found: no line holds {dim} values (the header's size)")
    if len(bad) > tolerated:
        raise InputError(f"{path}: {len(bad)} of its {read} lines do not hold {dim} values (lines {lines_named(bad)}): "
                         f"not one file of {dim}-d vectors")
    for skipped, why in ((bad, f"whose width is not {dim} values"), (undecodable, "that are not UTF-8")):
        if skipped:
            log.warning("%s: skipped %d lines %s (lines %s)", path, len(skipped), why, lines_named(skipped))
    if count is not None and count != read:
        log.warning("%s: its header announces %d vectors and it holds %d: %s", path, count, read,
                    "cut short?" if read < count else "a wrong header?")
    warn_repeated_vectors(path, repeats, "line", "" if wanted is None else " of the data")
    return vectors, dim


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles builtin containers, strings and numbers only: no global is ever looked up.

    Every way a pickle can run code (a class to build, a function to call on REDUCE,
    an extension code, a persistent id) goes through ``find_class`` or ``persistent_load``,
    and both refuse.
    """

    def find_class(self, module: str, name: str) -> NoReturn:
        raise pickle.UnpicklingError(f"it refers to {module}.{name}")

    def persistent_load(self, pid: object) -> NoReturn:
        raise pickle.UnpicklingError("it uses a persistent id")


PLAIN_TYPES = (list, tuple, dict, set, frozenset, str, int, float, bool, type(None))


def _check_plain(value: object) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) not in PLAIN_TYPES:
            raise pickle.UnpicklingError(f"it holds a {type(item).__name__}")
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)


def load_plain_pickle(path: str | Path) -> object:
    """Read a pickle that may only hold builtin containers, strings and numbers (the authors' vocab.pkl).

    Anything else, and above all anything that would import or call, is refused with
    one line (InputError) before it can run.
    """
    data = Path(path).read_bytes()
    try:
        value = _PlainUnpickler(io.BytesIO(data)).load()
        _check_plain(value)
    except Exception as error:  # any failure to read untrusted bytes is a refusal
        raise InputError(f"{path}: refused: not a plain pickle of lists and strings ({error}); nothing in it "
                         f"was run") from None
    return value


def read_official_vectors(embedding_path: str | Path, vocab_path: str | Path) -> tuple[dict[str, np.ndarray], int]:
    """The authors' vectors: ``embedding.npy`` (rows, no pickled objects) and ``vocab.pkl`` (the word of each row).

    Returns the same ``{word: vector}`` and dimension as :func:`read_word_vectors`; a word
    listed twice keeps its first row, with a warning as there.
    """
    try:
        matrix = np.load(embedding_path, allow_pickle=False)
    except ValueError as error:
        raise InputError(f"{embedding_path}: not a plain .npy array ({error})") from None
    if matrix.ndim != 2 or not np.issubdtype(matrix.dtype, np.floating):
        raise InputError(f"{embedding_path}: expected a 2-d float matrix, found shape {matrix.shape} {matrix.dtype}")
    words = load_plain_pickle(vocab_path)
    if not isinstance(words, list | tuple) or not all(isinstance(word, str) for word in words):
        raise InputError(f"{vocab_path}: expected a list of words (the word of each row of {embedding_path})")
    if len(words) != matrix.shape[0]:
        raise InputError(f"{vocab_path}: {len(words)} words for the {matrix.shape[0]} rows of {embedding_path}")
    vectors: dict[str, np.ndarray] = {}
    for word, row in zip(words, matrix.astype(np.float32), strict=True):
        vectors.setdefault(word, row)
    warn_repeated_vectors(vocab_path, repeated_words(words), "row")
    return vectors, int(matrix.shape[1])


def blas_pin() -> dict[str, str]:
    """The environment that pins OpenBLAS to its AVX2 kernels, which every x86-64 CPU with AVX2 and FMA runs
    (AVX-512 ones included); empty where they do not run or the CPU's flags are unknown (off Linux)."""
    if platform.machine().lower() in X86_64 and {"avx2", "fma"} <= cpu_flags():
        return {"OPENBLAS_CORETYPE": "Haswell"}
    return {}


def train_word2vec(sentences: Sequence[Sequence[str]], dim: int, seed: int) -> dict[str, np.ndarray]:
    """Train skip-gram vectors on the given sentences (gensim, one worker: deterministic for a seed).

    gensim's updates go through OpenBLAS, whose AVX-512 kernels sum in another order than its AVX2 ones, so
    the same call wrote different vectors on the two CPU classes. Where blas_pin applies, training runs in a
    child Python with it (OpenBLAS reads it when loaded), so AVX2 and AVX-512 machines write the same file.
    """
    if importlib.util.find_spec("gensim") is None:
        raise InputError("training word2vec vectors needs gensim (pip install -r requirements.txt); "
                         "or give --wv_file")
    pin = blas_pin()
    with tempfile.TemporaryDirectory() as folder:
        job = Path(folder)
        (job / "job.json").write_text(json.dumps({"sentences": [list(s) for s in sentences], "dim": dim, "seed": seed}))
        if pin:
            code = f"from utils.vocab import word2vec_job; word2vec_job({folder!r})"
            child = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env={**os.environ, **pin},
                                   capture_output=True, text=True, errors="replace")
            if child.returncode != 0:
                how = (f"killed by signal {-child.returncode}" + (", out of memory?" if child.returncode == -9 else "")
                       if child.returncode < 0 else f"exit status {child.returncode}")
                last = (child.stderr.strip().splitlines() or ["no output"])[-1]
                raise InputError(f"word2vec training in a child process failed ({how}): {last}")
        else:
            word2vec_job(folder)
        words = json.loads((job / "words.json").read_text())
        matrix = np.load(job / "vectors.npy")
    return dict(zip(words, matrix, strict=True))


def word2vec_job(folder: str) -> None:
    """Train what job.json in ``folder`` asks for; write words.json and vectors.npy beside it."""
    from gensim.models import Word2Vec

    logging.getLogger("gensim").setLevel(logging.WARNING)
    job = json.loads((Path(folder) / "job.json").read_text())
    model = Word2Vec(sentences=job["sentences"], vector_size=job["dim"], window=5, min_count=1, sg=1, epochs=10,
                     seed=job["seed"], workers=1)
    (Path(folder) / "words.json").write_text(json.dumps(list(model.wv.index_to_key)))
    np.save(Path(folder) / "vectors.npy", model.wv.vectors.astype(np.float32))


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
