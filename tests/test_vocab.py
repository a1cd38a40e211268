"""Word-vector files (GloVe, word2vec text, the authors' .npy + .pkl), vocabulary building and label sets,
and prepare_vocab.py's one-line errors and all-or-nothing writes."""
import io
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mirror import closed_port_url, make_release, plain_pickle, serve, snapshot

from data.loader import SPACED_LABEL
from utils.errors import InputError
from utils.vocab import PAD, UNK, Labels, Vocab, blas_pin, build_embedding, read_word_vectors, train_word2vec

ROOT = Path(__file__).resolve().parent.parent


def test_a_word_missing_as_written_is_looked_up_in_its_canonical_form():
    """Decomposed accents and invisible characters (BOM, zero-width space, soft hyphen) find the word; a word
    that is in the vocabulary as written keeps its own id, and an invisible character alone stays unknown."""
    vocab = Vocab([PAD, UNK, "Caf\u00e9", "Cafe\u0301x", "Oslo"])
    assert vocab.ids(["Caf\u00e9", "Cafe\u0301", "\ufeffOslo", "Os\u200blo", "Os\u00adlo", "Cafe\u0301x",
                      "\u200b", "Bergen"]) == [2, 2, 4, 4, 4, 3, 1, 1]


def test_glove_and_word2vec_text_formats(tmp_path, caplog):
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
    assert "skipped 1 lines whose width is not 3 values (lines 3)" in caplog.text
    glove.write_text("New York 0.5 0.5 0.5\nthe 0.1 0.2 0.3\nParis 1 2 3\n")  # a word with a space comes first
    vectors, dim = read_word_vectors(glove)
    assert dim == 3 and set(vectors) == {"the", "Paris"}
    assert "skipped 1 lines whose width is not 3 values (lines 1)" in caplog.text
    word2vec.write_text("2 300\nthe 0.1 0.2 0.3\nParis 1 2 3\n")  # a header that no line fits
    with pytest.raises(InputError, match=r"w2v.txt: no word vectors found: no line holds 300 values"):
        read_word_vectors(word2vec)
    glove.write_text("the 0.1 0.2 0.3\nParis 1 x 3\n")
    with pytest.raises(InputError, match=r"glove.txt:2: the vector of 'Paris' holds a value that is not a number"):
        read_word_vectors(glove)
    glove.write_text("the 0.1 0.2 0.3\nParis 1 inf 3\n")
    with pytest.raises(InputError, match=r"glove.txt:2: the vector of 'Paris' holds NaN or inf"):
        read_word_vectors(glove)


def test_a_word_with_two_vectors_keeps_the_first_with_one_warning(tmp_path, caplog):
    """GloVe and word2vec files do carry the odd duplicate (gensim keeps the first and warns): the first vector
    is kept, and one warning gives how many lines repeat a word, the first few words and their lines."""
    glove = tmp_path / "glove.txt"
    glove.write_text("the 0.1 0.2\nParis 1 2\nthe 9 9\nOslo 3 4\nParis 8 8\nthe 7 7\n")
    vectors, _ = read_word_vectors(glove)
    np.testing.assert_allclose(vectors["the"], [0.1, 0.2])
    np.testing.assert_allclose(vectors["Paris"], [1, 2])
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning == (f"{glove}: words given more than once (3 repeats): the first vector of each is kept ('the' "
                       "lines 1 and 3; 'Paris' lines 2 and 5; 'the' lines 1 and 6)")
    caplog.clear()
    vectors, _ = read_word_vectors(glove, wanted={"Paris", "Oslo"})  # only the words looked up are checked
    np.testing.assert_allclose(vectors["Paris"], [1, 2])
    assert [r.getMessage() for r in caplog.records] == [
        f"{glove}: words of the data given more than once (1 repeats): the first vector of each is kept ('Paris' "
        "lines 2 and 5)"]


def test_the_authors_vocabulary_with_a_repeated_word_warns(tmp_path, caplog):
    from utils.vocab import read_official_vectors

    np.save(tmp_path / "embedding.npy", np.arange(6, dtype=np.float32).reshape(3, 2))
    (tmp_path / "vocab.pkl").write_bytes(plain_pickle(["<PAD>", "Paris", "Paris"]))
    vectors, _ = read_official_vectors(tmp_path / "embedding.npy", tmp_path / "vocab.pkl")
    np.testing.assert_array_equal(vectors["Paris"], [2, 3])
    assert ("vocab.pkl: words given more than once (1 repeats): the first vector of each is kept ('Paris' rows 1 "
            "and 2)") in caplog.text


def test_a_word_listed_twice_in_vocab_json_is_refused(tmp_path):
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps({"lower": False, "words": [PAD, UNK, "Paris", "Oslo", "Paris"]}))
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}: the word 'Paris' is listed twice \(ids 2 and 4\)"):
        Vocab.load(path)
    with pytest.raises(ValueError, match="'Oslo' is listed twice"):
        Vocab([PAD, UNK, "Oslo", "Oslo"])


def test_the_tokens_of_padding_and_unknown_words_in_data_are_the_unknown_word():
    vocab = Vocab.build([["a", UNK, "b", PAD]])
    assert vocab.words == [PAD, UNK, "a", "b"] and vocab.ids([UNK, PAD, "b"]) == [vocab.index[UNK]] * 2 + [3]


def test_embedding_rows_from_vectors_or_noise():
    vocab = Vocab.build([["Paris", "is", "big"]])
    matrix, found = build_embedding(vocab, {"paris": np.ones(3, np.float32)}, 3, seed=0)
    assert found == 1  # "Paris" found through its lower-cased form
    np.testing.assert_array_equal(matrix[vocab.index["Paris"]], np.ones(3))
    np.testing.assert_array_equal(matrix[0], np.zeros(3))  # padding row
    assert np.abs(matrix[vocab.index["big"]]).max() <= 0.1


@pytest.mark.skipif(not blas_pin(), reason="the vectors are pinned to OpenBLAS's AVX2 kernels only on x86-64 "
                                           "Linux CPUs with AVX2 + FMA")
def test_word2vec_vectors_are_the_avx2_kernels_on_every_x86_cpu(tmp_path):
    """train_word2vec gives the AVX2 kernels' vectors. It can fail only on an AVX-512 CPU, where OpenBLAS
    picks its AVX-512 kernels by itself, which give other vectors (checked on a Zen 4)."""
    rng = random.Random(0)
    words = [f"w{i}" for i in range(60)]
    sentences = [[rng.choice(words) for _ in range(12)] for _ in range(200)]
    (tmp_path / "job.json").write_text(json.dumps({"sentences": sentences, "dim": 100, "seed": 1}))
    code = f"from utils.vocab import word2vec_job; word2vec_job({str(tmp_path)!r})"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, **blas_pin()}, check=True)
    words_out = json.loads((tmp_path / "words.json").read_text())
    expected = dict(zip(words_out, np.load(tmp_path / "vectors.npy"), strict=True))
    vectors = train_word2vec(sentences, 100, 1)
    assert vectors.keys() == expected.keys()
    assert all(np.array_equal(vectors[w], expected[w]) for w in words)


def test_word2vec_without_gensim_or_with_a_failing_child_says_so(monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gensim" else find_spec(name, *a))
    with pytest.raises(InputError, match="needs gensim.*--wv_file"):
        train_word2vec([["a", "b"]], 4, 1)
    monkeypatch.undo()
    if blas_pin():  # the child process runs only where the pin applies
        monkeypatch.setattr(sys, "executable", "false")
        with pytest.raises(InputError, match=r"child process failed \(exit status 1\): no output"):
            train_word2vec([["a", "b"]], 4, 1)


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
    import prepare_vocab
    from data.synthetic import write_synthetic_dataset

    data = write_synthetic_dataset(tmp_path / "d", sizes=(30, 5, 5))
    stats = prepare_vocab.main(["--dataset", "nyt10", "--data_dir", str(data), "--wv_file", "none"])
    assert np.load(data / "embedding.npy").shape == (stats["vocab_size"], 300)  # nyt10 defaults to 300-d
    glove = tmp_path / "g.txt"
    glove.write_text("Oslo 1 1 1 1\nyesterday 2 2 2 2\nZurich 3 3 3 3\n")
    capsys.readouterr()
    stats = prepare_vocab.main(["--data_dir", str(data), "--wv_file", str(glove)])
    assert np.load(data / "embedding.npy").shape[1] == 4 and stats["pretrained_rows"] == 2
    assert f"only 2 of the {stats['vocab_size']} vocabulary words" in capsys.readouterr().err  # said, not hidden
    with pytest.raises(SystemExit) as stop:
        prepare_vocab.main(["--data_dir", str(data), "--wv_file", str(glove), "--wv_dim", "100"])
    assert stop.value.code == 1 and "holds 4-d" in capsys.readouterr().err
    glove.write_text("Oslo 1 1 1 1\nyesterday 2 2 2 2\nOslo 3 3 3 3\n")  # --wv_file with a word given twice
    prepare_vocab.main(["--data_dir", str(data), "--wv_file", str(glove)])
    vocab, embedding = Vocab.load(data / "vocab.json"), np.load(data / "embedding.npy")
    np.testing.assert_array_equal(embedding[vocab.index["Oslo"]], np.ones(4))  # the first vector
    assert "words of the data given more than once (1 repeats)" in capsys.readouterr().err


def read_tokens(folder):
    return [t for line in (folder / "train.json").read_text(encoding="utf-8").splitlines()
            for t in json.loads(line)["sentText"]]


@pytest.fixture
def small_data(tmp_path):
    from data.synthetic import write_synthetic_dataset

    return write_synthetic_dataset(tmp_path / "d", sizes=(30, 5, 5))


def official_release(tmp_path, words, vocab_pickle=None):
    """The authors' embedding.npy and vocab.pkl for ``words`` (row i = i + 0.5), as a release with its manifest."""
    buffer = io.BytesIO()
    np.save(buffer, np.arange(len(words), dtype=np.float32)[:, None].repeat(4, 1) + 0.5)
    files = {"rin/webnlg/embedding.npy": buffer.getvalue(), "rin/webnlg/vocab.pkl": vocab_pickle or plain_pickle(words)}
    return make_release(tmp_path / "release", files)


def official_vectors(data_dir: Path) -> list[str]:
    """prepare_vocab.py flags for the authors' WebNLG vectors on ``data_dir`` (a folder not named webnlg)."""
    return ["--dataset", "webnlg", "--data_dir", str(data_dir), "--wv_file", "official"]


def test_official_vectors_from_a_folder_and_from_the_mirror(small_data, tmp_path, monkeypatch):
    import prepare_vocab

    words = ["<PAD>", "<UNK>", *sorted(set(read_tokens(small_data)))[:5], "unseen"]
    release = official_release(tmp_path, words)
    stats = prepare_vocab.main([*official_vectors(small_data), "--source", str(release.source),
                                "--manifest", str(release.manifest)])
    assert stats["pretrained_rows"] == 5 and "the authors' vectors" in stats["vectors"]
    vocab, embedding = Vocab.load(small_data / "vocab.json"), np.load(small_data / "embedding.npy")
    assert embedding.shape == (len(vocab), 4)
    for row, word in enumerate(words[2:7], start=2):
        np.testing.assert_array_equal(embedding[vocab.index[word]], np.full(4, row + 0.5))
    monkeypatch.setattr("data.fetch.SHARED", tmp_path / "no_shared")
    with serve(release.mirror) as server:  # no --source, no ../shared: downloaded and verified
        again = prepare_vocab.main([*official_vectors(small_data), "--manifest",
                                    str(release.manifest), "--base_url", server.base_url, "--cache",
                                    str(tmp_path / "cache")])
    assert again == stats and (tmp_path / "cache" / "rin/webnlg/vocab.pkl").exists()


def test_a_malicious_vocab_pickle_is_refused_and_nothing_written(small_data, tmp_path, capsys):
    import prepare_vocab

    marker = tmp_path / "ran"
    release = official_release(tmp_path, ["a"], b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    before = snapshot(small_data)
    with pytest.raises(SystemExit) as stop:
        prepare_vocab.main([*official_vectors(small_data), "--source", str(release.source),
                            "--manifest", str(release.manifest)])
    assert stop.value.code == 1
    [line] = [x for x in capsys.readouterr().err.splitlines() if "error:" in x]
    assert "vocab.pkl: refused" in line and "os.system" in line
    assert not marker.exists() and snapshot(small_data) == before


def test_outputs_are_replaced_together_or_not_at_all(small_data, monkeypatch, capsys):
    import prepare_vocab

    prepare_vocab.main(["--data_dir", str(small_data), "--wv_file", "none"])
    before = snapshot(small_data)

    def disk_full(self, path):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(prepare_vocab.Labels, "save", disk_full)
    with pytest.raises(SystemExit):
        prepare_vocab.main(["--data_dir", str(small_data), "--wv_file", "none", "--seed", "2"])
    assert "No space left on device" in capsys.readouterr().err
    assert snapshot(small_data) == before  # vocab.json and embedding.npy were written first, yet are unchanged


@pytest.mark.slow
def test_non_ascii_words_under_the_c_locale(small_data):
    """LC_ALL=C once crashed and left a 0-byte vocab.json beside the old embedding.npy."""
    path = small_data / "train.json"
    path.write_text(path.read_text(encoding="utf-8").replace("Paris", "Medellín"), encoding="utf-8")
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0",
           "PYTHONIOENCODING": "ascii"}
    done = subprocess.run([sys.executable, str(ROOT / "prepare_vocab.py"), "--data_dir", str(small_data),
                           "--wv_file", "none"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Medellín" in Vocab.load(small_data / "vocab.json").words


def test_missing_nyt_train_points_to_the_readme(small_data, capsys):
    import prepare_vocab

    (small_data / "train.json").unlink()
    (small_data / "prepare_report.json").write_text('{"dataset": "nyt"}')  # as prepare_data.py leaves it
    with pytest.raises(SystemExit):
        prepare_vocab.main(["--dataset", "nyt", "--data_dir", str(small_data), "--wv_file", "none"])
    [line] = capsys.readouterr().err.splitlines()
    assert "dataset/README.md" in line and "nyt_official" in line
    assert line.count("--dataset nyt") == line.count("--dataset nyt_official")  # not the command that cannot help
    # a folder of one's own, or prepare_data.py's --out root where the dataset's folder was meant
    (small_data / "prepare_report.json").unlink()
    with pytest.raises(SystemExit):
        prepare_vocab.main(["--data_dir", str(small_data), "--wv_file", "none"])
    [line] = capsys.readouterr().err.splitlines()
    assert "without its training split" not in line and "Your own data" in line
    (small_data / "webnlg").mkdir()
    (small_data / "webnlg" / "train.json").write_text("")
    with pytest.raises(SystemExit):
        prepare_vocab.main(["--data_dir", str(small_data), "--wv_file", "none"])
    assert f"pass --data_dir {small_data / 'webnlg'}" in capsys.readouterr().err


BAD_VOCAB_RUNS = [  # (flags or a file to break, what the one error line must name)
    (["--wv_dim", "0"], "--wv_dim"),
    (["--wv_dim", "many"], "--wv_dim"),
    (["--wv_dim", "100000000"], "--wv_dim"),
    (["--wv_file", "/nonexistent/glove.txt"], "/nonexistent/glove.txt"),
    (["--data_dir", "/nonexistent/data"], "/nonexistent/data"),
    (["--dataset", "nyt10", "--wv_file", "official"], "--wv_file official"),
    (["--seed", "one"], "--seed"),
    (["--cache", "/tmp/c", "--manifest", "m.json"], "--cache, --manifest: only for --wv_file official"),
    ({"train.json": '{"sentText": ["a"], "relationMentions": []}\n'}, "train.json:1: missing field 'en_list'"),
    ({"dev.json": '{"sentText": ["a"]\n'}, "dev.json:1: malformed JSON"),
    ({"train.json": ""}, "train.json: no sentences"),
    ({"glove.txt": "\n"}, "glove.txt: no word vectors"),
    # dev and test read as train.py reads them: a gold triple that cannot be scored stops here, not at training
    ({"dev.json": '{"sentText": ["a", "b"], "relationMentions": [{"em1Text": ["zz"], "em2Text": ["b"], "label": '
                  '"r"}], "en_list": [["b"]]}\n'}, "dev.json:1: em1Text 'zz' (r) is not in the sentence"),
    ({"train.json": '{"sentText": ["a", "\\ud800"], "relationMentions": [], "en_list": []}\n'},
     "train.json:1: sentText holds a lone surrogate (token 2"),
    ({"train.json": '{"sentText": ["a", "b", "c"], "en_list": [["a"], ["b"]], "relationMentions": ['
                    '{"em1Text": ["a"], "em2Text": ["b"], "label": "r"}, {"em1Text": ["x"], "em2Text": ["y"], '
                    '"label": "r"}, {"em1Text": ["u"], "em2Text": ["v"], "label": "r"}]}\n'},
     "train.json: only 1 of its 3 relation mentions were kept as triples (4 of their arguments are not in"),
    ({"glove.txt": "".join(f"w{k} 0.1 0.2\ncaf\xe9{k} 0.1 0.2\n" for k in range(12)).encode("latin-1")},
     "glove.txt: 12 of its 24 lines are not UTF-8 (lines 2, 4, 6"),
    # the most 1% of lines may have another width (glove.840B: words with spaces), never more
    ({"glove.txt": "".join(f"w{k} 0.1 0.2\n" for k in range(1088)) + "x 1 2 3\n" * 12},
     "glove.txt: 12 of its 1100 lines do not hold 2 values"),
]


def test_what_a_vectors_file_may_hold_and_what_is_said(small_data, capsys):
    """Said, not refused: a word2vec header announcing more vectors than the file holds (a download cut short),
    at most 1% of lines of another width or not UTF-8 (word2vec cuts long words inside a character), and a
    dev.json without sentences (train.py needs one to choose the best epoch on). A byte-order mark, CRLF line
    ends and blank lines are read as nothing."""
    import prepare_vocab

    lines = [f"w{k} 0.1 0.2" for k in range(1089)] + ["x 1 2 3"] * 11
    (small_data / "glove.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    prepare_vocab.main(["--data_dir", str(small_data), "--wv_file", str(small_data / "glove.txt")])
    assert "skipped 11 lines whose width is not 2 values" in capsys.readouterr().err
    (small_data / "glove.txt").write_bytes(b"\xef\xbb\xbf5 2\r\na 0.1 0.2\r\n\r\ncaf\xe9 0.1 0.2\r\nc 0.5 0.6\r\n"
                                           b"\r\n")
    (small_data / "dev.json").write_text("")
    prepare_vocab.main(["--data_dir", str(small_data), "--wv_file", str(small_data / "glove.txt")])
    err = capsys.readouterr().err  # (setup_logging's own handler: caplog does not see it)
    assert "skipped 1 lines that are not UTF-8 (lines 4)" in err
    assert "its header announces 5 vectors and it holds 3: cut short?" in err
    assert f"{small_data / 'dev.json'}: no sentences (train.py needs dev" in err
    assert read_word_vectors(small_data / "glove.txt")[0].keys() == {"a", "c"}
    report = json.loads((small_data / "vocab_report.json").read_text())  # how it was built, what was repaired
    assert report["settings"] == {"wv_file": str(small_data / "glove.txt"), "wv_dim": 2, "lower": False, "seed": 1}
    assert set(report["load_reports"]) == {"train", "dev", "test"}


def test_an_output_that_cannot_be_replaced_leaves_all_four_as_they_were(small_data, capsys):
    import prepare_vocab

    prepare_vocab.main(["--data_dir", str(small_data), "--wv_file", "none"])
    (small_data / "embedding.npy").unlink()
    (small_data / "embedding.npy").mkdir()
    before = snapshot(small_data)
    with pytest.raises(SystemExit):
        prepare_vocab.main(["--data_dir", str(small_data), "--wv_file", "none", "--lower"])
    assert "embedding.npy: not a file, so it cannot be replaced" in capsys.readouterr().err
    assert snapshot(small_data) == before  # vocab.json was replaced (lower-cased) ahead of the failing rename


@pytest.mark.parametrize("change,named", BAD_VOCAB_RUNS, ids=[str(named) for _, named in BAD_VOCAB_RUNS])
def test_bad_flags_and_files_give_one_line_and_change_nothing(small_data, capsys, change, named):
    import prepare_vocab

    prepare_vocab.main(["--data_dir", str(small_data), "--wv_file", "none"])
    flags = ["--data_dir", str(small_data), "--wv_file", "none"]
    if isinstance(change, dict):
        for name, text in change.items():
            if isinstance(text, bytes):
                (small_data / name).write_bytes(text)
            else:
                (small_data / name).write_text(text, encoding="utf-8")
        if "glove.txt" in change:
            flags[-1] = str(small_data / "glove.txt")
    else:
        flags += change
    before = snapshot(small_data)
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        prepare_vocab.main(flags)
    assert stop.value.code != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    [line] = [x for x in err.splitlines() if "error:" in x]
    assert named in line
    assert snapshot(small_data) == before


def test_official_vectors_offline_give_one_line_per_file(small_data, tmp_path, monkeypatch, capsys):
    import prepare_vocab

    release = official_release(tmp_path, ["a"])
    monkeypatch.setattr("data.fetch.SHARED", tmp_path / "no_shared")
    before = snapshot(small_data)
    with pytest.raises(SystemExit) as stop:
        prepare_vocab.main([*official_vectors(small_data), "--manifest", str(release.manifest),
                            "--base_url", closed_port_url(), "--cache", str(tmp_path / "cache")])
    assert stop.value.code == 1
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("prepare_vocab.py: error:")]
    assert [("embedding.npy" in x, "vocab.pkl" in x) for x in lines] == [(True, False), (False, True)]
    assert all("download it by hand to" in x and "--source DIR" in x for x in lines)
    assert snapshot(small_data) == before


def test_prepare_vocab_refuses_training_data_without_triples_and_records_its_checksum(tmp_path, capsys):
    """labels.json would list no relation type (a model that can extract nothing, trained without a word); the
    checksum of the train.json it read lets train.py refuse files built from another."""
    import prepare_vocab
    from data.synthetic import write_synthetic_dataset
    from utils.files import file_sha256

    data = write_synthetic_dataset(tmp_path / "d", sizes=(30, 5, 5))
    stats = prepare_vocab.main(["--data_dir", str(data), "--wv_file", "none"])
    assert stats["train_sha256"] == file_sha256(data / "train.json")
    records = [json.loads(line) for line in (data / "train.json").read_text().splitlines()]
    (data / "train.json").write_text("".join(json.dumps(r | {"relationMentions": []}) + "\n" for r in records))
    before = {name: (data / name).read_bytes() for name in ("vocab.json", "labels.json", "vocab_report.json")}
    with pytest.raises(SystemExit) as stop:
        prepare_vocab.main(["--data_dir", str(data), "--wv_file", "none"])
    assert stop.value.code == 1 and "train.json: no relation triples" in capsys.readouterr().err
    assert {name: (data / name).read_bytes() for name in before} == before  # nothing replaced


def test_a_split_missing_from_a_folder_of_ones_own_is_not_sent_to_prepare_data(tmp_path, capsys):
    """prepare_data.py --dataset webnlg (the default name) would fill dataset/webnlg, not this folder."""
    import prepare_vocab

    (tmp_path / "mine").mkdir()
    for name in ("train.json", "dev.json"):
        (tmp_path / "mine" / name).write_text("")
    with pytest.raises(SystemExit):
        prepare_vocab.main(["--data_dir", str(tmp_path / "mine"), "--wv_file", "none"])
    error = capsys.readouterr().err
    assert "test.json is missing: put train.json, dev.json and test.json in RIN format into" in error
    assert "prepare_data.py" not in error


def test_a_data_folder_alone_names_its_dataset(tmp_path, capsys, monkeypatch):
    """--data_dir without --dataset: dataset/nyt10's copy elsewhere gets nyt10's 300-d vectors, one's own folder
    the model's size; the authors' vectors are refused for a folder name they do not cover, saying why."""
    import prepare_vocab
    from data.synthetic import write_synthetic_dataset
    from model.rin import RINConfig

    for name, dim in (("nyt10", 300), ("mine", RINConfig.emb_dim)):
        data = write_synthetic_dataset(tmp_path / name, sizes=(30, 5, 5))
        prepare_vocab.main(["--data_dir", str(data), "--wv_file", "none"])
        assert np.load(data / "embedding.npy").shape[1] == dim
    with pytest.raises(SystemExit):
        prepare_vocab.main(["--data_dir", str(tmp_path / "mine"), "--wv_file", "official"])
    assert "not 'mine' (the --data_dir folder's name; give --dataset)" in capsys.readouterr().err
    monkeypatch.setattr(prepare_vocab, "DATASETS_DIR", tmp_path / "datasets")  # neither flag: the default dataset
    with pytest.raises(SystemExit):
        prepare_vocab.main(["--wv_file", "none"])
    assert (f"{tmp_path / 'datasets' / prepare_vocab.DEFAULT_DATASET / 'train.json'} is missing: run python "
            f"prepare_data.py --dataset {prepare_vocab.DEFAULT_DATASET} --out") in capsys.readouterr().err


def test_a_data_folder_that_takes_no_files_is_refused_before_the_work(small_data, monkeypatch, capsys):
    """A read-only --data_dir stops at once, naming it (root writes anywhere: the write probe is stood in for)."""
    import prepare_vocab

    monkeypatch.setattr(prepare_vocab, "write_problem", lambda folder: "Read-only file system")
    monkeypatch.setattr(prepare_vocab, "train_word2vec", lambda *args: pytest.fail("word2vec trained first"))
    with pytest.raises(SystemExit):
        prepare_vocab.main(["--data_dir", str(small_data)])
    assert capsys.readouterr().err == (f"prepare_vocab.py: error: {small_data}: cannot write vocab.json, "
                                       "embedding.npy, labels.json, vocab_report.json there (Read-only file system); "
                                       "copy the folder to a place you can write and pass it as --data_dir\n")


def test_relation_labels_that_print_alike_are_said(tmp_path, capsys):
    """'situé_à' in NFC and in NFD, 'born_in' and 'born_in ': two types each to the model, which no table shows."""
    import prepare_vocab
    from data.synthetic import write_synthetic_dataset

    data = write_synthetic_dataset(tmp_path / "d", sizes=(30, 5, 5))
    records = [json.loads(line) for line in (data / "train.json").read_text().splitlines()]
    labels = ["situ\u00e9_\u00e0", "situe\u0301_a\u0300", "born_in", "born_in "]
    for number, record in enumerate(r for r in records if r["relationMentions"]):
        record["relationMentions"][0]["label"] = labels[number % 4]
    (data / "train.json").write_text("".join(json.dumps(r) + "\n" for r in records))
    dev = [json.loads(line) for line in (data / "dev.json").read_text().splitlines()]
    spaced = next(number for number, record in enumerate(dev, 1) if record["relationMentions"])
    dev[spaced - 1]["relationMentions"][0]["label"] = " works_for"  # alone: no look-alike, still its own type
    (data / "dev.json").write_text("".join(json.dumps(r) + "\n" for r in dev))
    prepare_vocab.main(["--data_dir", str(data), "--wv_file", "none"])
    err = capsys.readouterr().err
    assert "the relation labels 'born_in', 'born_in ' differ only in Unicode form or spaces" in err
    assert err.count("differ only in Unicode form or spaces") == 2
    assert re.search(rf"train.json: \d+ x {re.escape(SPACED_LABEL)}, e.g. \S+train.json:\d+: 'born_in '", err)
    assert f"dev.json: 1 x {SPACED_LABEL}, e.g. {data / 'dev.json'}:{spaced}: ' works_for'" in err


def test_tab_separated_vectors_a_byte_order_mark_and_compressed_files(tmp_path):
    """Tabs instead of spaces and a leading byte-order mark read as the same vectors (the mark was part of the
    first word); a compressed file is refused by its first bytes, whatever its name."""
    import gzip

    path = tmp_path / "vectors.txt"
    for text in ("\ufeffthe 0.1 0.2 0.3\nParis 1 2 3\n", "the\t0.1\t0.2\t0.3\nParis\t1\t2\t3\n",
                 "\ufeff2 3\nthe\t0.1\t0.2\t0.3\nParis\t1\t2\t3\n", "1 3\nthe\t0.1\t0.2\t0.3\n",
                 "the 0.1 0.2 0.3\t\nParis 1 2 3\t\n", "the\t0.1 0.2  0.3\r\nParis  1 2 3\r\n"):  # mixed, CRLF
        path.write_text(text, encoding="utf-8")
        vectors, dim = read_word_vectors(path)
        assert dim == 3 and set(vectors) - {"Paris"} == {"the"}  # a word2vec header is no line of values
        np.testing.assert_allclose(vectors["the"], [0.1, 0.2, 0.3])
    path.write_bytes(gzip.compress(b"the 0.1 0.2 0.3\n"))
    with pytest.raises(InputError, match=r"vectors.txt: a gzip file; unpack it, or read it through a pipe"):
        read_word_vectors(path)
    pipe_read, pipe_write = os.pipe()  # a pipe (<(zcat ...)) is read once: its first bytes are peeked, not consumed
    os.write(pipe_write, b"the 0.1 0.2 0.3\n")
    os.close(pipe_write)
    assert sorted(read_word_vectors(f"/dev/fd/{pipe_read}")[0]) == ["the"]
    os.close(pipe_read)
    utf16 = tmp_path / "notepad.txt"
    for encoding in ("utf-16", "utf-32"):
        utf16.write_text("the 0.1 0.2 0.3\n", encoding=encoding)
        with pytest.raises(InputError, match=rf"notepad.txt: {encoding.upper()} text; save it as UTF-8"):
            read_word_vectors(utf16)
    data = tmp_path / "data"
    data.mkdir()
    prepared = subprocess.run([sys.executable, str(ROOT / "prepare_vocab.py"), "--data_dir", str(data),
                               "--wv_file", str(path)], capture_output=True, text=True)
    assert prepared.returncode == 2
    assert f"error: --wv_file {path}: a gzip file; unpack it, or" in prepared.stderr.splitlines()[-1]
