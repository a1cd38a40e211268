"""The authors' vocab.pkl and embedding.npy: read without ever running code from the files.

The pickles here are assembled opcode by opcode, so no test pickles anything itself.
"""
import numpy as np
import pytest
from mirror import plain_pickle

from data.fetch import SHARED
from utils.errors import InputError
from utils.vocab import load_plain_pickle, read_official_vectors


def short(text: str) -> bytes:
    return b"\x8c" + bytes([len(text)]) + text.encode()


def malicious(marker) -> dict[str, bytes]:
    """Pickles that would run ``touch marker`` if anything looked their globals up."""
    command = f"touch {marker}"
    return {
        "GLOBAL + REDUCE": b"cos\nsystem\n(S'" + command.encode() + b"'\ntR.",
        "STACK_GLOBAL + REDUCE": b"\x80\x04" + short("os") + short("system") + b"\x93" + short(command) + b"\x85R.",
        "INST": b"(S'" + command.encode() + b"'\nios\nsystem\n.",
        "inside a list": b"\x80\x02](X\x01\x00\x00\x00acos\nsystem\n(S'" + command.encode() + b"'\ntRe.",
        "a builtin class": b"\x80\x02c__builtin__\nset\n]\x85R.",
    }


def test_plain_list_of_words_loads(tmp_path):
    path = tmp_path / "vocab.pkl"
    path.write_bytes(plain_pickle(["<PAD>", "<UNK>", "Medellín", "1,800"]))
    assert load_plain_pickle(path) == ["<PAD>", "<UNK>", "Medellín", "1,800"]


@pytest.mark.parametrize("kind", sorted(malicious("x")))
def test_malicious_pickle_is_refused_and_never_run(tmp_path, kind):
    marker = tmp_path / "ran"
    path = tmp_path / "vocab.pkl"
    path.write_bytes(malicious(marker)[kind])
    with pytest.raises(InputError) as error:
        load_plain_pickle(path)
    message = str(error.value)
    assert message.startswith(f"{path}: refused") and "\n" not in message
    assert not marker.exists()


@pytest.mark.parametrize("data", [b"", b"\x80\x02]", b"\x80\x03C\x03abc.", b"not a pickle"],
                         ids=["empty", "truncated", "bytes", "text"])
def test_anything_but_plain_data_is_refused(tmp_path, data):
    path = tmp_path / "vocab.pkl"
    path.write_bytes(data)
    with pytest.raises(InputError, match="refused"):
        load_plain_pickle(path)


def test_official_vectors_pair_words_with_rows(tmp_path):
    matrix = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.save(tmp_path / "embedding.npy", matrix)
    (tmp_path / "vocab.pkl").write_bytes(plain_pickle(["<PAD>", "Paris", "Oslo", "Paris"]))
    vectors, dim = read_official_vectors(tmp_path / "embedding.npy", tmp_path / "vocab.pkl")
    assert dim == 3 and set(vectors) == {"<PAD>", "Paris", "Oslo"}
    np.testing.assert_array_equal(vectors["Paris"], matrix[1])  # a repeated word keeps its first row
    (tmp_path / "vocab.pkl").write_bytes(plain_pickle(["a", "b"]))
    with pytest.raises(InputError, match="2 words for the 4 rows"):
        read_official_vectors(tmp_path / "embedding.npy", tmp_path / "vocab.pkl")


def test_an_npy_of_pickled_objects_is_refused(tmp_path):
    path = tmp_path / "embedding.npy"
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "|O", "fortran_order": False, "shape": (1,)})
        handle.write(b"cos\nsystem\n(S'true'\ntR.")
    (tmp_path / "vocab.pkl").write_bytes(plain_pickle(["a"]))
    with pytest.raises(InputError, match="not a plain .npy array"):
        read_official_vectors(path, tmp_path / "vocab.pkl")


@pytest.mark.skipif(not (SHARED / "rin/webnlg/vocab.pkl").exists(), reason="the authors' vocab.pkl is not here")
def test_the_authors_vocabularies_load():
    for folder, size in (("webnlg", 5930), ("nyt", 90762)):
        words = load_plain_pickle(SHARED / "rin" / folder / "vocab.pkl")
        assert isinstance(words, list) and len(words) == size and words[:2] == ["<PAD>", "<UNK>"]
