"""Word-vector files (GloVe and word2vec text), vocabulary building and label sets."""
import numpy as np
import pytest

from utils.vocab import PAD, UNK, Labels, Vocab, build_embedding, read_word_vectors


def test_glove_and_word2vec_text_formats(tmp_path):
    glove = tmp_path / "glove.txt"
    glove.write_text("the 0.1 0.2 0.3\nParis 1 2 3\nbad line 1 2 3\n")
    word2vec = tmp_path / "w2v.txt"
    word2vec.write_text("2 3\nthe 0.1 0.2 0.3\nParis 1 2 3\n")
    for path in (glove, word2vec):
        vectors, dim = read_word_vectors(path)
        assert dim == 3 and set(vectors) == {"the", "Paris"}
        np.testing.assert_allclose(vectors["Paris"], [1, 2, 3])
    vectors, _ = read_word_vectors(glove, wanted={"Paris"})
    assert set(vectors) == {"Paris"}


def test_embedding_rows_from_vectors_or_noise():
    vocab = Vocab.build([["Paris", "is", "big"]])
    matrix, found = build_embedding(vocab, {"paris": np.ones(3, np.float32)}, 3, seed=0)
    assert found == 1  # "Paris" found through its lower-cased form
    np.testing.assert_array_equal(matrix[vocab.index["Paris"]], np.ones(3))
    np.testing.assert_array_equal(matrix[0], np.zeros(3))  # padding row
    assert np.abs(matrix[vocab.index["big"]]).max() <= 0.1


def test_vocab_and_labels_round_trip(tmp_path):
    vocab = Vocab.build([["A", "b", "b"]], lower=True)
    assert vocab.words[:2] == [PAD, UNK] and vocab.ids(["B", "zzz"]) == [2, 1]
    vocab.save(tmp_path / "v.json")
    again = Vocab.load(tmp_path / "v.json")
    assert again.words == vocab.words and again.lower
    labels = Labels.build(["r2", "r1", "r1"], ["NN", "DT"])
    assert labels.relations == ["r1", "r2"] and labels.pos == [PAD, UNK, "DT", "NN"]
    assert labels.pos_ids(["NN", "XX"], 2) == [3, 1] and labels.pos_ids(None, 2) == [1, 1]
    labels.save(tmp_path / "l.json")
    assert Labels.load(tmp_path / "l.json") == labels
    with pytest.raises(ValueError):
        Vocab(["a", "b"])


def test_prepare_vocab_dimensions(tmp_path, capsys):
    from synthetic import write_synthetic_dataset

    import prepare_vocab

    data = write_synthetic_dataset(tmp_path / "d", sizes=(30, 5, 5))
    stats = prepare_vocab.main(["--dataset", "nyt10", "--data_dir", str(data), "--wv_file", "none"])
    assert np.load(data / "embedding.npy").shape == (stats["vocab_size"], 300)  # nyt10 defaults to 300-d
    glove = tmp_path / "g.txt"
    glove.write_text("Oslo 1 1 1 1\nyesterday 2 2 2 2\nZurich 3 3 3 3\n")
    stats = prepare_vocab.main(["--data_dir", str(data), "--wv_file", str(glove)])
    assert np.load(data / "embedding.npy").shape[1] == 4 and stats["pretrained_rows"] == 2
    with pytest.raises(SystemExit) as stop:
        prepare_vocab.main(["--data_dir", str(data), "--wv_file", str(glove), "--wv_dim", "100"])
    assert stop.value.code == 1 and "holds 4-d" in capsys.readouterr().err
