"""Bad flags, bad files and bad run folders: one line naming the flag, file or line, a non-zero exit, and
nothing created or changed. Two trainings on one run folder: one runs, the other is refused."""
from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import UNWRITABLE, small_model

import evaluate
import predict
import train
from data.loader import MENTION_READING
from experiments import settings
from experiments.settings import parse_args, resume_settings
from model import load_run, speed
from model.inference import decode_batches, extract
from model.run import epoch_records
from utils.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
FAST = ["--num_epoch", "1", "--lr", "0.005", "--rounds", "1", "--threads", "1"]
pytestmark = pytest.mark.slow


def snapshot(*folders: Path) -> dict:
    """Every file under ``folders`` with its size and modification time."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for folder in folders if folder.exists()
            for p in sorted(folder.rglob("*"))}


def fails_cleanly(main, argv: list[str], capsys, *names: str, watched: tuple[Path, ...] = ()) -> str:
    """Run a CLI's main(argv): it must exit non-zero with one error line that names each of ``names``, print no
    traceback, and leave ``watched`` as it was. Returns the error line."""
    before = snapshot(*watched)
    with pytest.raises(SystemExit) as raised:
        main(argv)
    captured = capsys.readouterr()
    code = raised.value.code
    text = code if isinstance(code, str) else captured.err
    assert code not in (0, None), text
    errors = [line for line in text.splitlines() if "error:" in line]
    assert len(errors) == 1, text
    assert "Traceback" not in captured.err + captured.out
    for name in names:
        assert name in errors[0], (name, errors[0])
    assert snapshot(*watched) == before, "files were created or changed"
    return errors[0]


@pytest.fixture
def workspace(synthetic_data, tmp_path):
    """A private copy of the prepared data and an empty run folder root."""
    data = tmp_path / "data"
    shutil.copytree(synthetic_data, data)
    save = tmp_path / "runs"
    save.mkdir()
    return data, save


BAD_TRAIN_FLAGS = [
    (["--batch_size", "-1"], "--batch_size"), (["--batch_size", "0"], "--batch_size"),
    (["--num_epoch", "0"], "--num_epoch"), (["--eval_batch_size", "0"], "--eval_batch_size"),
    (["--pos_dim", "-1"], "--pos_dim"), (["--early_stop", "-1"], "--early_stop"), (["--lr", "0"], "--lr"),
    (["--lr", "nan"], "--lr"), (["--lr", "inf"], "--lr"), (["--rounds", "-1"], "--rounds"),
    (["--threads", "-1"], "--threads"),
    (["--threads", "0"], "--threads"), (["--device", "foo"], "--device"), (["--device", "meta"], "--device"),
    (["--device", "cuda:01"], "--device"), (["--device", "cuda:\u0663"], "--device"),
    (["--input_dropout", "1.5"], "--input_dropout"), (["--word_dropout", "-0.1"], "--word_dropout"),
    (["--max_grad_norm", "-1"], "--max_grad_norm"), (["--run_id", "../../x"], "--run_id"),
    (["--run_id", "/tmp/abs"], "--run_id"), (["--run_id", "."], "--run_id"), (["--run_id", ".."], "--run_id"),
    (["--precision", "fp16"], "fp16"), (["--precision", "fp8"], "--precision"),
    (["--pair_kernel", "fast"], "--pair_kernel"), (["--match", "both"], "--match"),
    (["--seed", "-1"], "--seed"), (["--seed", str(2**32)], "--seed"),
    (["--deterministic", "--thread_policy", "adaptive"], "--thread_policy fixed"),
    (["--save_dir", ""], "--save_dir: an empty value"), (["--resume", ""], "--resume: an empty value"),
    (["--data_dir", ""], "--data_dir: an empty value"),
]


@pytest.mark.parametrize(("flags", "named"), BAD_TRAIN_FLAGS, ids=[" ".join(f) for f, _ in BAD_TRAIN_FLAGS])
def test_train_refuses_bad_flags_before_writing(workspace, capsys, flags, named):
    data, save = workspace
    fails_cleanly(train.main, ["--dataset", "synthetic", "--data_dir", str(data), "--save_dir", str(save),
                               *FAST, *flags], capsys, named, watched=(data, save))


def test_train_refuses_a_device_this_machine_lacks(workspace, capsys):
    data, save = workspace
    if torch.cuda.is_available():
        flags, named = ["--device", f"cuda:{torch.cuda.device_count()}"], "cuda"
    else:
        flags, named = ["--device", "cuda"], "CUDA is not available"
    fails_cleanly(train.main, ["--dataset", "synthetic", "--data_dir", str(data), "--save_dir", str(save),
                               *FAST, *flags], capsys, named, watched=(data, save))


def test_a_model_too_large_for_memory_is_one_line_before_any_work(workspace, capsys, monkeypatch):
    """Sizes typed with zeros too many: counted before the model is built (which on Linux may wake the
    out-of-memory killer, and it may pick another process); an allocation failing anyway is one line too, while
    other RuntimeErrors stay tracebacks (bugs)."""
    data, save = workspace
    flags = ["--dataset", "synthetic", "--data_dir", str(data), "--save_dir", str(save), *FAST]
    with monkeypatch.context() as patch:  # before the kernels build (~30 s on a first use)
        patch.setattr(speed, "configure_for", lambda *a: pytest.fail("the kernels were set up first"))
        fails_cleanly(train.main, [*flags, "--rnn_hidden", "100000000"], capsys, "training needs", "parameters take",
                      "choose smaller --rnn_hidden", watched=(data, save))
    # rounds add activations, not parameters: counted on the most tokens a step takes, once the data is read
    fails_cleanly(train.main, [*flags, "--rounds", "100000000", "--save_dir", str(save / "new" / "runs")], capsys,
                  "training needs", "the activations a step over", "keeps for its 100000000 rounds",
                  "choose smaller --rounds", watched=(data, save))
    assert not (save / "new").exists()  # the folders train.py made for the run are gone with it
    monkeypatch.setattr(train, "available_memory", lambda: 10_000)  # 10 kB free: even the default sizes
    fails_cleanly(train.main, flags, capsys, "0.0 GiB free", watched=(data, save))
    monkeypatch.undo()

    def allocation_fails(*args):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] data. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 176000000000 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(train, "build_model", allocation_fails)
    fails_cleanly(train.main, flags, capsys, "out of memory ([enforce fail", "176000000000 bytes",
                  "smaller sizes or batches", watched=(data, save))
    for error in (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),  # a GPU's, as raised
                  RuntimeError("CUDA error: out of memory"), RuntimeError("CUBLAS_STATUS_ALLOC_FAILED when calling "
                                                                           "cublasCreate(handle)")):
        monkeypatch.setattr(train, "build_model", lambda *args, error=error: (_ for _ in ()).throw(error))
        fails_cleanly(train.main, flags, capsys, "out of memory", str(error)[:20], watched=(data, save))
    monkeypatch.setattr(train, "build_model", lambda *args: (_ for _ in ()).throw(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        train.main(flags)


def test_train_on_a_data_dir_names_its_dataset(workspace, capsys):
    data, save = workspace  # else the run would be named, and set up by the preset, as webnlg
    fails_cleanly(train.main, ["--data_dir", str(data), "--save_dir", str(save), *FAST], capsys,
                  "give --dataset NAME too", watched=(data, save))


def test_data_without_pos_tags_names_the_run_without_pos(workspace):
    data, save = workspace
    labels = json.loads((data / "labels.json").read_text())
    (data / "labels.json").write_text(json.dumps({**labels, "pos": labels["pos"][:2]}))  # <PAD>, <UNK> only
    train.main(["--dataset", "synthetic", "--data_dir", str(data), "--save_dir", str(save), *FAST])
    (run,) = save.iterdir()
    config = json.loads((run / "config.json").read_text())
    assert run.name == "synthetic_partial_K1_noPOS_seed1"
    assert config["settings"]["pos_dim"] == config["model"]["pos_dim"] == 0


def test_dev_and_test_sentences_without_pos_tags_are_said(workspace, capsys):
    """Scored on <UNK> tags here, tagged by spaCy in evaluate.py: the two would differ, so the run says so."""
    data, save = workspace
    lines = (data / "dev.json").read_text().splitlines()
    lines[0] = json.dumps({key: value for key, value in json.loads(lines[0]).items() if key != "pos"})
    (data / "dev.json").write_text("\n".join(lines) + "\n")
    train.main(["--dataset", "synthetic", "--data_dir", str(data), "--save_dir", str(save), "--pos_dim", "4", *FAST])
    err = capsys.readouterr().err
    assert f"dev.json: 1 of its {len(lines)} sentences have no POS tags: this run scores them on <UNK> tags" in err
    assert err.count("have no POS tags") == 1  # test.json has all its tags


def test_pos_features_asked_for_on_data_without_pos_tags_are_refused(workspace, capsys):
    """As the runner asks for a table's runs: RIN with POS, not a run renamed w/o POS."""
    data, save = workspace
    labels = json.loads((data / "labels.json").read_text())
    (data / "labels.json").write_text(json.dumps({**labels, "pos": labels["pos"][:2]}))
    fails_cleanly(train.main, ["--dataset", "synthetic", "--data_dir", str(data), "--save_dir", str(save), *FAST,
                               "--pos_dim", "10"], capsys, "--pos_dim 10:", "has no POS tags", watched=(data, save))


def test_train_on_a_data_dir_that_is_a_file(workspace, capsys):
    data, save = workspace
    fails_cleanly(train.main, ["--dataset", "synthetic", "--data_dir", str(data / "train.json"), "--save_dir",
                               str(save), *FAST], capsys, "a file, not a data folder", watched=(data, save))


def test_train_refuses_a_save_dir_under_a_file(workspace, capsys):
    data, save = workspace
    (save / "afile").write_text("x\n")
    fails_cleanly(train.main, ["--dataset", "synthetic", "--data_dir", str(data), "--save_dir",
                               str(save / "afile" / "runs"), *FAST], capsys, "--save_dir",
                  "afile is a file, not a folder", watched=(data, save))


@pytest.mark.skipif(not UNWRITABLE.is_dir(), reason="needs Linux's /sys/kernel to stand for a read-only place")
def test_train_refuses_a_save_dir_where_no_folder_can_be_made(workspace, capsys):
    data, save = workspace
    fails_cleanly(train.main, ["--dataset", "synthetic", "--data_dir", str(data), "--save_dir",
                               str(UNWRITABLE / "runs"), *FAST], capsys, "--save_dir",
                  f"cannot make folders in {UNWRITABLE}", watched=(data, save))


def test_train_on_a_missing_dataset_leaves_nothing(tmp_path, capsys):
    fails_cleanly(train.main, ["--dataset", "nosuch", "--save_dir", str(tmp_path), *FAST], capsys,
                  "'nosuch' is no release prepare_data.py builds", "Your own data", watched=(tmp_path,))
    assert not any(tmp_path.iterdir())


def test_resume_by_run_name_suggests_its_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(settings, "PROJECT_ROOT", tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "saved_models" / "smoke").mkdir(parents=True)
    (tmp_path / "saved_models" / "smoke" / "config.json").write_text("{}")
    fails_cleanly(train.main, ["--resume", "smoke"], capsys, "--resume smoke: not a run folder (no config.json); "
                  f"did you mean --resume {tmp_path / 'saved_models' / 'smoke'}?", watched=(tmp_path,))


def test_resume_of_a_missing_folder(tmp_path, capsys):
    fails_cleanly(train.main, ["--resume", str(tmp_path / "nonexistent")], capsys, "nonexistent",
                  watched=(tmp_path,))
    (tmp_path / "config.json").write_text("{\n  x")
    fails_cleanly(train.main, ["--resume", str(tmp_path)], capsys, "config.json:2: malformed JSON",
                  watched=(tmp_path,))


BAD_RECORDS = {
    "sentText as an int": ({"sentText": 5, "relationMentions": [], "en_list": []}, "sentText"),
    "en_list null": ({"sentText": ["a", "b"], "relationMentions": [], "en_list": None}, "en_list"),
    "null label": ({"sentText": ["a", "b"], "en_list": [["a"], ["b"]],
                    "relationMentions": [{"em1Text": ["a"], "em2Text": ["b"], "label": None}]}, "label"),
    "pos as a string": ({"sentText": ["a", "b"], "relationMentions": [], "en_list": [], "pos": "NN NN"}, "pos"),
    "entity as a number": ({"sentText": ["a", "b"], "relationMentions": [], "en_list": [3]}, "en_list"),
    "argument as a dict": ({"sentText": ["a", "b"], "en_list": [],
                            "relationMentions": [{"em1Text": {"x": 1}, "em2Text": ["b"], "label": "r"}]}, "em1Text"),
    "a list, not an object": (["a", "b"], "JSON object"),
    "a blank token": ({"sentText": ["a", " ", "b"], "relationMentions": [], "en_list": []},
                      "sentText holds an empty or blank token (token 2, ' ')"),
    "a blank label": ({"sentText": ["a", "b"], "en_list": [],
                       "relationMentions": [{"em1Text": ["a"], "em2Text": ["b"], "label": "  "}]}, "non-blank"),
}


@pytest.mark.parametrize("case", list(BAD_RECORDS))
def test_train_names_the_file_and_line_of_a_bad_record(workspace, capsys, case):
    data, save = workspace
    record, named = BAD_RECORDS[case]
    lines = (data / "train.json").read_text().splitlines()
    lines[2] = json.dumps(record)
    (data / "train.json").write_text("\n".join(lines) + "\n")
    fails_cleanly(train.main, ["--dataset", "synthetic", "--data_dir", str(data), "--save_dir", str(save), *FAST],
                  capsys, "train.json:3", named, watched=(data, save))


@pytest.mark.parametrize(("content", "named"), [(b"", "no training sentences"), (b"{bad json\n", "train.json:1"),
                                                (b'{"sentText": "caf\xe9"}\n', "train.json:1: not UTF-8")])
def test_train_refuses_an_empty_or_unreadable_split(workspace, capsys, content, named):
    data, save = workspace
    (data / "train.json").write_bytes(content)
    fails_cleanly(train.main, ["--dataset", "synthetic", "--data_dir", str(data), "--save_dir", str(save), *FAST],
                  capsys, named, watched=(data, save))


def test_train_refuses_labels_older_than_its_training_data(workspace, capsys):
    """vocab_report.json records the train.json the files were built from; in a folder prepared before it did,
    a relation type labels.json lacks still shows that they are older."""
    data, save = workspace
    lines = (data / "train.json").read_text().splitlines()
    record = next(json.loads(line) for line in lines if json.loads(line)["relationMentions"])
    record["relationMentions"][0]["label"] = "brandNewRel"
    (data / "train.json").write_text("\n".join([*lines, json.dumps(record)]) + "\n")
    flags = ["--dataset", "synthetic", "--data_dir", str(data), "--save_dir", str(save), *FAST]
    fails_cleanly(train.main, flags, capsys, "train.json changed since vocab.json, embedding.npy and labels.json "
                  "were built from it", "prepare_vocab.py", watched=(data, save))
    report = json.loads((data / "vocab_report.json").read_text())
    del report["train_sha256"]
    (data / "vocab_report.json").write_text(json.dumps(report))
    fails_cleanly(train.main, flags, capsys, "1 triples of relation types that labels.json lacks", "brandNewRel",
                  "prepare_vocab.py", watched=(data, save))


def test_a_test_split_that_repeats_train_is_said(workspace, capsys):
    data, save = workspace
    shutil.copy(data / "train.json", data / "test.json")
    train.main(["--dataset", "synthetic", "--data_dir", str(data), "--save_dir", str(save), *FAST, "--num_epoch", "1"])
    err = capsys.readouterr().err
    sentences = re.search(r"train: (\d+) sentences", err).group(1)
    assert f"test.json: {sentences} of its {sentences} sentences are also in train.json" in err


def test_a_dev_split_that_is_the_test_split_is_refused_and_an_overlap_said(workspace, capsys):
    """Choosing the best epoch on a dev.json that holds test.json's sentences is choosing it on test, while the
    run would say dev: refused (--select_on test says so in the run's name); a partial overlap is said."""
    data, save = workspace
    shutil.copy(data / "test.json", data / "dev.json")
    flags = ["--dataset", "synthetic", "--data_dir", str(data), "--save_dir", str(save), *FAST, "--num_epoch", "1"]
    fails_cleanly(train.main, flags, capsys, "dev.json: every sentence of it is in test.json", "--select_on test",
                  watched=(data, save))
    lines = (data / "test.json").read_text().splitlines()
    (data / "dev.json").write_text("\n".join(lines[:2]) + "\n")  # a part of test: chosen on test all the same
    fails_cleanly(train.main, flags, capsys, "dev.json: every sentence of it is in test.json", watched=(data, save))
    (data / "dev.json").write_text((data / "train.json").read_text() + "\n".join(lines[:2]) + "\n")  # 2 of test's
    train.main(flags)
    assert "sentences are also in test.json: the best epoch is partly chosen on test" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["file", "folder"])
def test_a_stray_prepare_report_is_refused_before_it_is_copied_into_the_run(workspace, capsys, damage):
    """predict.py reads the run's copy for its spaCy model: a damaged one failed there, in a file the user never
    wrote (a folder failed the copy with Errno 21)."""
    data, save = workspace
    stray = data / "prepare_report.json"
    stray.write_text("not json{") if damage == "file" else stray.mkdir()
    fails_cleanly(train.main, ["--dataset", "synthetic", "--data_dir", str(data), "--save_dir", str(save), *FAST],
                  capsys, "prepare_report.json", watched=(data, save))


def test_train_refuses_a_selection_split_without_triples_it_could_predict(workspace, capsys):
    """Dev F1 would be 0 at every epoch and best.pt the first epoch's, silently."""
    data, save = workspace
    lines = [json.loads(line) for line in (data / "dev.json").read_text().splitlines()]
    (data / "dev.json").write_text("".join(json.dumps(r | {"relationMentions": []}) + "\n" for r in lines))
    fails_cleanly(train.main, ["--dataset", "synthetic", "--data_dir", str(data), "--save_dir", str(save), *FAST],
                  capsys, "dev.json: no triple of a relation type train.json has", watched=(data, save))


def repeat_a_word(folder: Path) -> None:
    vocab = json.loads((folder / "vocab.json").read_text())
    vocab["words"][-1] = vocab["words"][-2]
    (folder / "vocab.json").write_text(json.dumps(vocab))


def test_train_refuses_a_vocabulary_that_lists_a_word_twice(workspace, capsys):
    data, save = workspace
    repeat_a_word(data)
    error = fails_cleanly(train.main, ["--dataset", "synthetic", "--data_dir", str(data), "--save_dir", str(save),
                                       *FAST], capsys, "is listed twice", "prepare_vocab.py", watched=(data, save))
    assert f"error: {data / 'vocab.json'}: the word" in error and "unreadable" not in error  # the file named once


@pytest.mark.parametrize("select_on", ["dev", "test"])
def test_train_refuses_an_empty_selection_split(workspace, capsys, select_on):
    data, save = workspace
    (data / f"{select_on}.json").write_bytes(b"")
    fails_cleanly(train.main, ["--dataset", "synthetic", "--data_dir", str(data), "--save_dir", str(save), *FAST,
                               "--select_on", select_on], capsys, f"{select_on}.json: no sentences to choose",
                  watched=(data, save))


def test_train_refuses_an_empty_test_split(workspace, capsys):
    """results.json would give it scores of 0, which a script reading the file takes for a run that scored 0."""
    data, save = workspace
    (data / "test.json").write_bytes(b"")
    fails_cleanly(train.main, ["--dataset", "synthetic", "--data_dir", str(data), "--save_dir", str(save), *FAST],
                  capsys, "test.json: no sentences to score the chosen epoch on", watched=(data, save))


def test_resume_refuses_changed_flags_and_accepts_free_ones(workspace, capsys):
    data, save = workspace
    train.main(["--dataset", "synthetic", "--data_dir", str(data), "--save_dir", str(save), "--run_id", "r", *FAST])
    again = ["--dataset", "synthetic", "--data_dir", str(data), "--save_dir", str(save), "--run_id", "r", *FAST]
    fails_cleanly(train.main, again, capsys, "r exists: continue it with --resume", watched=(data,))
    fails_cleanly(train.main, [*again, "--lr", "0.01"], capsys, "r exists, a run with other settings (lr 0.005 "
                  "there, 0.01 here): pick another --run_id (or continue that run as it was: --resume",
                  watched=(data,))
    built = json.loads((save / "r" / "config.json").read_text())["model"]["emb_dim"]  # embedding.npy's size
    fails_cleanly(train.main, [*again, "--emb_dim", str(built)], capsys, "r exists: continue it with --resume",
                  watched=(data,))
    line = fails_cleanly(train.main, ["--resume", str(save / "r"), "--lr", "0.1", "--seed", "7"], capsys,
                         "--lr 0.1", "--seed 7", watched=(data, save))
    assert "the run has 0.005" in line
    train.main(["--resume", str(save / "r"), "--threads", "1", "--pair_kernel", "torch", "--lr", "0.005"])
    resumed = resume_settings(parse_args(["--resume", str(save / "r"), "--compile", "--deterministic"]), save / "r")
    assert resumed["compile"] and resumed["deterministic"]  # how it computes, not what: free as well
    # a size the data gave (emb_dim: embedding.npy's) is the one the model was built with
    resume_settings(parse_args(["--resume", str(save / "r"), "--emb_dim", str(built)]), save / "r")
    with pytest.raises(InputError, match=f"--emb_dim {built + 1} \\(the run has {built}\\)"):
        resume_settings(parse_args(["--resume", str(save / "r"), "--emb_dim", str(built + 1)]), save / "r")


def test_a_run_from_before_the_speed_settings_resumes_with_their_built_in_defaults(workspace, monkeypatch):
    """A config.json without pair_kernel, precision or thread_policy ran with the built-in defaults, whatever
    this shell's $RIN_PAIR_KERNEL or $RIN_THREAD_POLICY say now."""
    data, save = workspace
    train.main(["--dataset", "synthetic", "--data_dir", str(data), "--save_dir", str(save), "--run_id", "r", *FAST])
    config = json.loads((save / "r" / "config.json").read_text())
    for key in ("pair_kernel", "precision", "thread_policy"):
        del config["settings"][key]
    (save / "r" / "config.json").write_text(json.dumps(config))
    monkeypatch.setattr(speed, "DEFAULTS", speed.Speed(kernel="torch", thread_policy="fixed"))  # the environment's
    resumed = resume_settings(parse_args(["--resume", str(save / "r")]), save / "r")
    assert (resumed["pair_kernel"], resumed["precision"], resumed["thread_policy"]) == ("auto", "fp32", "adaptive")


def test_resume_takes_the_same_folders_written_another_way(workspace, capsys, monkeypatch):
    """The training command run again with --resume: its --data_dir and --save_dir, relative or through '..', are
    the run's own folders, not 'flags that differ'."""
    data, save = workspace
    monkeypatch.chdir(data.parent)
    flags = ["--dataset", "synthetic", "--data_dir", data.name, "--save_dir", f"../{save.parent.name}/{save.name}",
             "--run_id", "r", *FAST]
    first = train.main(flags)
    assert json.loads((save / "r" / "config.json").read_text())["settings"]["save_dir"] == str(save)  # no '..'
    assert train.main([*flags, "--resume", str(save / "r")])["test"] == first["test"]
    fails_cleanly(train.main, [*flags[:2], "--data_dir", "elsewhere", "--resume", str(save / "r")], capsys,
                  "--data_dir elsewhere (the run has", watched=(data, save))
    (data.parent / "linked").symlink_to(data)  # the same folder through a link; the run folder moved elsewhere
    shutil.copytree(save / "r", data.parent / "moved" / "r")
    moved = train.main(["--resume", str(data.parent / "moved" / "r"), "--data_dir", "linked", "--save_dir", "moved"])
    assert moved["test"] == first["test"]


def test_resume_without_checkpoints_never_starts_over(workspace, capsys):
    data, save = workspace
    train.main(["--dataset", "synthetic", "--data_dir", str(data), "--save_dir", str(save), "--run_id", "r", *FAST])
    for name in ("last.pt", "last_prev.pt"):
        (save / "r" / name).unlink(missing_ok=True)
    fails_cleanly(train.main, ["--resume", str(save / "r")], capsys, "no last.pt or last_prev.pt",
                  watched=(data, save))
    for name in ("results.json", "metrics.jsonl"):  # a copy of a run's config and best.pt alone: never overwritten
        (save / "r" / name).unlink()
    fails_cleanly(train.main, ["--resume", str(save / "r")], capsys, "no last.pt or last_prev.pt",
                  watched=(data, save))


def test_resume_refuses_a_foreign_checkpoint_and_a_damaged_config_or_log(workspace, capsys):
    """Each damage stops the resume with one line before the run's files are written (its train.log records the
    attempt); undone, the run resumes."""
    data, save = workspace
    common = ["--dataset", "synthetic", "--data_dir", str(data), "--save_dir", str(save), *FAST]
    train.main([*common, "--run_id", "r"])
    train.main([*common, "--run_id", "other", "--seed", "2"])
    run = save / "r"
    original = {name: (run / name).read_bytes() for name in ("last.pt", "config.json", "metrics.jsonl")}
    config = json.loads(original["config.json"])

    deleted = object()

    def settings_edit(part="settings", **changes):
        edited = {key: value for key, value in dict(config[part], **changes).items() if value is not deleted}
        return lambda: (run / "config.json").write_text(json.dumps(config | {part: edited}))

    for spoil, named in (
            (lambda: shutil.copy(save / "other" / "last.pt", run / "last.pt"),
             "last.pt was saved with run_id='other' (config.json: 'r'); seed=2 (config.json: 1): it comes from "
             "another run, or config.json was edited"),
            (settings_edit(lr=0.004), "lr=0.005 (config.json: 0.004)"),
            (settings_edit(no_er_feedback="false"), "settings 'no_er_feedback' is \"false\", not of type bool"),
            (settings_edit(precision="fp64"), "settings 'precision' is \"fp64\", none of fp32, bf16, fp16"),
            (lambda: (run / "config.json").write_text("[]"), "config.json: a JSON list, not a run's config"),
            (settings_edit(num_epoch="3"), "settings 'num_epoch' is \"3\", not of type int"),
            (settings_edit(compile=1), "settings 'compile' is 1, not of type bool"),
            (settings_edit(rnn_hidden=0), "the run's settings (config.json): rnn_hidden = 0: not an integer >= 1"),
            (settings_edit(lr=deleted), "the settings lack 'lr'"),
            # recorded by other code (a branch with another setting): refused, never dropped from the network
            (settings_edit(relation_pool="mean"), "config.json: settings this code does not have: relation_pool "
                                                  "(written by other code: another branch or version?)"),
            (settings_edit("model", relation_pool="mean"), "config.json: model settings this code does not have: "
                                                           "relation_pool (written by other code"),
            (lambda: write_metrics_without_records(run, "garbage\n"), "metrics.jsonl:1: not the record of epoch 1"),
            (lambda: write_metrics_without_records(run, ""), "0 epoch records for the 1 epochs in last.pt")):
        spoil()
        spoiled = {name: (run / name).read_bytes() for name in (*original, "best.pt")}
        fails_cleanly(train.main, ["--resume", str(run)], capsys, named, watched=(data, save / "other"))
        assert {name: (run / name).read_bytes() for name in spoiled} == spoiled
        for name, content in original.items():
            (run / name).write_bytes(content)
    train.main(["--resume", str(run)])  # the same run, undamaged, resumes (and ends at once: it is finished)
    # a model setting missing from the settings (a run older than it) is the one its network was built with
    older = {key: value for key, value in config["settings"].items() if key != "word_dropout"}
    (run / "config.json").write_text(json.dumps(config | {"settings": older,
                                                           "model": config["model"] | {"word_dropout": 0.07}}))
    assert resume_settings(parse_args(["--resume", str(run)]), run)["word_dropout"] == 0.07
    # recorded nowhere (a setting added to the network since, so in no identity last.pt saved either): its
    # default, said, as evaluate.py reads such a run; the run resumes (and ends at once: it is finished)
    model = {key: value for key, value in config["model"].items() if key != "word_dropout"}
    (run / "config.json").write_text(json.dumps(config | {"settings": older, "model": model}))
    state = torch.load(run / "last.pt", weights_only=True)
    del state["run"]["word_dropout"]
    torch.save(state, run / "last.pt")
    capsys.readouterr()
    train.main(["--resume", str(run)])
    assert "records no word_dropout (the run is older than it): resuming with the default word_dropout=0.04" in (
        capsys.readouterr().err)


def write_metrics_without_records(run: Path, metrics: str) -> None:
    """metrics.jsonl damaged, beside a last.pt from before the epoch records were kept in it."""
    state = torch.load(run / "last.pt", weights_only=True)
    del state["progress"]["records"]
    torch.save(state, run / "last.pt")
    (run / "metrics.jsonl").write_text(metrics)


@pytest.mark.parametrize("damage", ["garbage\n", "", None])
def test_resume_writes_a_damaged_metrics_file_again_from_last_checkpoint(workspace, capsys, damage):
    data, save = workspace
    common = ["--dataset", "synthetic", "--data_dir", str(data), "--save_dir", str(save), *FAST]
    finished = train.main([*common, "--run_id", "r", "--num_epoch", "2"])
    metrics = save / "r" / "metrics.jsonl"
    original = metrics.read_bytes()
    if damage is None:
        metrics.unlink()
    else:
        metrics.write_text(damage)
    assert train.main(["--resume", str(save / "r")]) == finished
    assert "metrics.jsonl is damaged or missing epochs of last.pt: written again" in capsys.readouterr().err
    assert metrics.read_bytes() == original


def test_a_last_checkpoint_from_before_the_records_were_kept_resumes(workspace, monkeypatch):
    data, save = workspace
    train_epoch = train.train_epoch

    def stopped_in_epoch_2(*args, desc: str, **kwargs):
        if desc == "epoch 2":
            raise KeyboardInterrupt
        return train_epoch(*args, desc=desc, **kwargs)

    monkeypatch.setattr(train, "train_epoch", stopped_in_epoch_2)
    with pytest.raises(SystemExit):
        train.main(["--dataset", "synthetic", "--data_dir", str(data), "--save_dir", str(save), *FAST,
                    "--num_epoch", "2", "--run_id", "r"])
    monkeypatch.setattr(train, "train_epoch", train_epoch)
    metrics = save / "r" / "metrics.jsonl"
    write_metrics_without_records(save / "r", metrics.read_text())
    assert train.main(["--resume", str(save / "r")])["epochs_run"] == 2
    assert [json.loads(line)["epoch"] for line in metrics.read_text().splitlines()] == [1, 2]


def test_a_lost_best_checkpoint_is_refused_before_training(tmp_path):
    """best.pt holds an epoch before last.pt's and is gone: the run cannot finish as it should."""
    model = small_model(30, 2, pair_hidden=20)
    data = {"vocab.json": "a" * 64, "labels.json": "b" * 64}  # the run's fingerprint: best.pt carries it
    with pytest.raises(InputError, match=r"best.pt is missing: the weights of the run's best epoch \(1\) are lost"):
        train.save_best_again(tmp_path, model, {"epoch": 2, "best_epoch": 1}, data)
    (tmp_path / "best.pt").write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(InputError, match=r"best.pt: unreadable .*: the weights of the run's best epoch \(1\) are lost"):
        train.save_best_again(tmp_path, model, {"epoch": 2, "best_epoch": 1}, data)
    train.save_best_again(tmp_path, model, {"epoch": 2, "best_epoch": 2}, data)  # last.pt's own weights: written again
    assert (tmp_path / "best.pt").is_file()
    kept, rng = (tmp_path / "best.pt").read_bytes(), torch.get_rng_state()
    train.save_best_again(tmp_path, model, {"epoch": 3, "best_epoch": 2}, data)  # readable: kept, and checked with
    assert (tmp_path / "best.pt").read_bytes() == kept  # no draw from the run's random stream
    assert torch.equal(torch.get_rng_state(), rng)
    with pytest.raises(InputError, match=r"best.pt was trained on another labels.json than this run's"):
        train.save_best_again(tmp_path, model, {"epoch": 3, "best_epoch": 2}, data | {"labels.json": "c" * 64})


def test_a_dataset_name_cannot_leave_the_run_folders(workspace, capsys):
    data, save = workspace
    for name in ("../escape", "a/b", "", " padded"):
        fails_cleanly(train.main, ["--dataset", name, "--data_dir", str(data), "--save_dir", str(save), *FAST],
                      capsys, "--dataset", watched=(data, save.parent))


def test_a_non_finite_loss_stops_the_run(workspace, capsys, monkeypatch):
    """Stopped before its first epoch is saved, a new run leaves no folder: the same command runs again."""
    data, save = workspace
    flags = ["--dataset", "synthetic", "--data_dir", str(data), "--save_dir", str(save), "--run_id", "nan", *FAST]
    monkeypatch.setattr(train, "train_epoch", lambda *args, **kwargs: {"er_loss": 1.0, "rc_loss": float("nan"),
                                                                       "train_seconds": 1.0})
    fails_cleanly(train.main, flags, capsys, "epoch 1: the training loss is not finite")
    assert not (save / "nan").exists()
    embedding = np.load(data / "embedding.npy")
    embedding[3:] = np.nan
    np.save(data / "embedding.npy", embedding)
    fails_cleanly(train.main, flags, capsys, "embedding.npy: ", "rows hold NaN or inf (the first: row 3")
    assert not (save / "nan").exists()
    for shape, dtype in (((embedding.shape[0],), np.float32), (embedding.shape + (1,), np.float32),
                         (embedding.shape, np.int64)):  # one value per word, a 3-d array, integers
        np.save(data / "embedding.npy", np.zeros(shape, dtype=dtype))
        fails_cleanly(train.main, flags, capsys, f"embedding.npy: {np.dtype(dtype)} values of shape {shape}, not "
                      "one float vector per word", watched=(data, save))
    np.save(data / "embedding.npy", np.zeros((0, embedding.shape[1]), dtype=np.float32))
    fails_cleanly(train.main, flags, capsys, f"{data / 'embedding.npy'} has 0 rows for",
                  f"run python prepare_vocab.py --dataset synthetic --data_dir {data} again", watched=(data, save))


def test_ctrl_c_names_the_command_that_continues(workspace, capsys, monkeypatch):
    data, save = workspace
    flags = ["--dataset", "synthetic", "--data_dir", str(data), "--save_dir", str(save), "--run_id", "stop", *FAST]
    real_train_epoch, calls = train.train_epoch, []

    def interrupted_at(epoch):
        def train_epoch(*args, **kwargs):
            calls.append(1)
            if len(calls) == epoch:
                raise KeyboardInterrupt
            return real_train_epoch(*args, **kwargs)
        return train_epoch

    monkeypatch.setattr(train, "train_epoch", interrupted_at(1))
    with pytest.raises(SystemExit) as stopped:
        train.main(flags)
    err = capsys.readouterr().err
    assert stopped.value.code == 130 and "Traceback" not in err
    assert err.endswith("train.py: interrupted (Ctrl-C); before its first epoch was saved; nothing kept: run the same "
                        "command again\n")
    assert not (save / "stop").exists()  # the same command can run again
    calls.clear()
    monkeypatch.setattr(train, "train_epoch", interrupted_at(2))
    with pytest.raises(SystemExit) as stopped:
        train.main([*flags[:-len(FAST)], *FAST[2:], "--num_epoch", "2"])
    err = capsys.readouterr().err
    assert stopped.value.code == 130 and "Traceback" not in err
    assert err.endswith(f"its finished epochs are saved: continue with python train.py --resume {save / 'stop'}\n")


SIGTERM_IN_A_TEMPORARY_FOLDER = """
import os, signal, sys, tempfile, time
from utils.errors import one_line_errors
with one_line_errors("prog"):
    with tempfile.TemporaryDirectory() as folder:
        print(folder, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # the handler raises at once: never slept out
"""


def test_sigterm_unwinds_like_ctrl_c(workspace):
    """kill (or SLURM's time limit) sends SIGTERM, which killed the process where it stood: temporary folders (a
    word2vec job's, holding every sentence) stayed behind. It now unwinds as Ctrl-C does, with status 143, and
    train.py says how to continue (in child processes: a regression would otherwise kill the test session)."""
    ended = subprocess.run([sys.executable, "-c", SIGTERM_IN_A_TEMPORARY_FOLDER], cwd=ROOT, capture_output=True,
                           text=True, timeout=60)
    assert (ended.returncode, ended.stderr) == (143, "prog: terminated (SIGTERM)\n")
    assert not Path(ended.stdout.strip()).exists()
    data, save = workspace
    command = [sys.executable, str(ROOT / "train.py"), "--dataset", "synthetic", "--data_dir", str(data),
               "--save_dir", str(save), "--run_id", "term", *FAST, "--num_epoch", "200"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    metrics, deadline = save / "term" / "metrics.jsonl", time.time() + 120
    while time.time() < deadline and process.poll() is None and not (
            (save / "term" / "last.pt").exists() and metrics.exists() and metrics.read_text()):  # epoch 1 saved
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    err = process.communicate(timeout=60)[1]
    assert process.returncode == 143 and "Traceback" not in err, err
    assert err.endswith(f"train.py: terminated (SIGTERM); its finished epochs are saved: continue with python "
                        f"train.py --resume {save / 'term'}\n")


def test_a_run_resumed_across_a_change_of_mention_reading_says_so(workspace, capsys, monkeypatch):
    """Its early epochs were scored (and the best one chosen) under the old reading: results.json, which the
    report reads, records both, and the resume warns."""
    data, save = workspace
    flags = ["--dataset", "synthetic", "--data_dir", str(data), "--save_dir", str(save), "--run_id", "old", *FAST]
    real_train_epoch, calls = train.train_epoch, []

    def interrupted_at_two(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_train_epoch(*args, **kwargs)

    monkeypatch.setattr(train, "train_epoch", interrupted_at_two)
    with pytest.raises(SystemExit):
        train.main([*flags[:-len(FAST)], *FAST[2:], "--num_epoch", "2"])
    config = json.loads((save / "old" / "config.json").read_text())
    assert config.pop("mention_reading") == MENTION_READING
    (save / "old" / "config.json").write_text(json.dumps(config))  # as a run begun before it was recorded
    capsys.readouterr()
    results = train.main(["--resume", str(save / "old")])
    assert results["mention_reading"] == f"1 then {MENTION_READING}"
    assert "began with the loader's mention reading 1 and goes on with" in capsys.readouterr().err


def test_resume_falls_back_to_the_previous_checkpoint(workspace, capsys):
    data, save = workspace
    flags = ["--dataset", "synthetic", "--data_dir", str(data), "--save_dir", str(save), "--num_epoch", "2",
             "--lr", "0.005", "--rounds", "1", "--threads", "1", "--run_id", "r"]
    first = train.main(flags)
    run_dir = save / "r"
    assert (run_dir / "last_prev.pt").exists()
    metrics = epoch_records(run_dir / "metrics.jsonl", timings=False)

    for damage, said in ((lambda: (run_dir / "last.pt").unlink(), "last.pt is missing: trying the previous"),
                         (lambda: (run_dir / "last.pt").write_bytes((run_dir / "last.pt").read_bytes()[:100]),
                          "last.pt is unreadable")):  # gone, or a crash while writing it
        damage()
        (run_dir / "results.json").unlink()
        capsys.readouterr()
        again = train.main(["--resume", str(run_dir), "--threads", "1"])  # epoch 2 again, from epoch 1's state
        assert said in capsys.readouterr().err
        assert again["test"] == first["test"] and again["best_epoch"] == first["best_epoch"]
        assert epoch_records(run_dir / "metrics.jsonl", timings=False) == metrics
    # the damaged last.pt was set aside, not kept as last_prev.pt, so the fallback works a second time
    assert (run_dir / "last.pt.unreadable").is_file()
    (run_dir / "last.pt").unlink()
    (run_dir / "results.json").unlink()
    assert train.main(["--resume", str(run_dir), "--threads", "1"])["test"] == first["test"]


def test_resume_restores_the_runs_own_vocabulary_and_labels(workspace, capsys):
    """The copies evaluate.py and predict.py read: a damaged or missing one is copied again from the data."""
    data, save = workspace
    train.main(["--dataset", "synthetic", "--data_dir", str(data), "--save_dir", str(save), *FAST, "--run_id", "r"])
    run_dir = save / "r"
    (run_dir / "vocab.json").unlink()
    labels = json.loads((run_dir / "labels.json").read_text())
    (run_dir / "labels.json").write_text(json.dumps(labels | {"relations": labels["relations"][::-1]}))
    capsys.readouterr()
    train.main(["--resume", str(run_dir)])
    err = capsys.readouterr().err
    for name in ("vocab.json", "labels.json"):
        assert f"{name} was missing or differed from the run's data: copied again" in err
        assert (run_dir / name).read_bytes() == (data / name).read_bytes()
    evaluate.main(["--model_dir", str(run_dir)])


def test_two_trainings_on_one_run_folder(workspace):
    """Started together: one trains, the other stops with one line; the folder holds one consistent run."""
    data, save = workspace
    common = [sys.executable, str(ROOT / "train.py"), "--dataset", "synthetic", "--data_dir", str(data),
              "--save_dir", str(save), "--run_id", "same", "--num_epoch", "3", "--lr", "0.005", "--rounds", "1",
              "--threads", "1"]
    processes = [subprocess.Popen([*common, "--seed", str(seed)], cwd=ROOT, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    outcomes = [(p.wait(timeout=300), p.stderr.read()) for p in processes]
    codes = sorted(code for code, _ in outcomes)
    assert codes[0] == 0 and codes[1] != 0, outcomes
    winner = next(seed for seed, (code, _) in zip((1, 2), outcomes, strict=True) if code == 0)
    loser_err = next(err for code, err in outcomes if code != 0)
    assert "Traceback" not in loser_err
    assert "in use by another train.py" in loser_err or "exists, a run with other settings (seed" in loser_err
    run_dir = save / "same"
    assert json.loads((run_dir / "config.json").read_text())["settings"]["seed"] == winner
    epochs = [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]


# ---------------------------------------------------------------- bad run folders and inference flags

def spoiled_run(trained_run, tmp_path, spoil) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run[0], run_dir)
    spoil(run_dir)
    return run_dir


def reverse_relations(run_dir: Path) -> None:
    labels = json.loads((run_dir / "labels.json").read_text())
    labels["relations"].reverse()
    (run_dir / "labels.json").write_text(json.dumps(labels))


def edit_model_settings(**edits: object):
    """A spoiler that changes config.json's model settings, as a hand edit would."""
    def spoil(run_dir: Path) -> None:
        config = json.loads((run_dir / "config.json").read_text())
        config["model"].update(edits)
        (run_dir / "config.json").write_text(json.dumps(config))
    return spoil


def rewrite_model_config(run_dir: Path, edit) -> None:
    """best.pt again, with ``edit(model_config)`` recorded beside the same weights, as a run of before best.pt's
    checksum was recorded in results.json (else that check would refuse the file first)."""
    state = torch.load(run_dir / "best.pt", weights_only=True)
    torch.save({"model": state["model"], "model_config": edit(state["model_config"])}, run_dir / "best.pt")
    results = json.loads((run_dir / "results.json").read_text())
    del results["best_pt_sha256"]
    (run_dir / "results.json").write_text(json.dumps(results))


def test_a_model_setting_added_since_the_run_was_saved_takes_its_default(trained_run, tmp_path, capsys):
    """A best.pt recorded before RINConfig had word_dropout: config.json gets the default, and so does it."""
    run_dir = spoiled_run(trained_run, tmp_path, lambda d: rewrite_model_config(
        d, lambda settings: {key: value for key, value in settings.items() if key != "word_dropout"}))
    predict.main(["--model_dir", str(run_dir), "--text", "Anna Smith was born in Oslo ."])
    assert json.loads(capsys.readouterr().out)["text"] == "Anna Smith was born in Oslo ."


def rewrite_weights(run_dir: Path, name: str, edit) -> None:
    """best.pt again, with weight ``name`` replaced by ``edit(weight)``."""
    state = torch.load(run_dir / "best.pt", weights_only=True)
    state["model"][name] = edit(state["model"][name])
    torch.save(state, run_dir / "best.pt")


def best_of_a_run_on_other_words(run_dir: Path) -> None:
    """best.pt of a run of the same sizes on another vocabulary, in a folder without results.json (its checksum
    of best.pt is the other guard)."""
    state = torch.load(run_dir / "best.pt", weights_only=True)
    state["data_sha256"]["vocab.json"] = "0" * 64
    torch.save(state, run_dir / "best.pt")
    (run_dir / "results.json").unlink()


def test_damaged_records_beside_the_weights_are_one_line(trained_run, tmp_path, capsys):
    """evaluate.py reads the data folder from config.json's settings; predict.py the spaCy model from
    prepare_report.json: a damaged one is named, not a KeyError or AttributeError traceback."""
    def drop_settings(run_dir: Path) -> None:
        config = json.loads((run_dir / "config.json").read_text())
        (run_dir / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k != "settings"}))

    run_dir = spoiled_run(trained_run, tmp_path, drop_settings)
    fails_cleanly(evaluate.main, ["--model_dir", str(run_dir)], capsys,
                  "config.json: records no data folder (settings.data_dir)", "--data", watched=(run_dir,))
    (run_dir / "prepare_report.json").write_text(json.dumps({"spacy_model": 5}))
    fails_cleanly(predict.main, ["--model_dir", str(run_dir), "--text", "Anna Smith was born in Oslo ."], capsys,
                  "prepare_report.json: 'spacy_model' is 5, not a model name", watched=(run_dir,))


def test_a_run_whose_data_folder_is_gone_says_so(trained_run, tmp_path, capsys):
    def move_data(run_dir: Path) -> None:
        config = json.loads((run_dir / "config.json").read_text())
        config["settings"]["data_dir"] = str(tmp_path / "moved_away")
        (run_dir / "config.json").write_text(json.dumps(config))

    run_dir = spoiled_run(trained_run, tmp_path, move_data)
    fails_cleanly(evaluate.main, ["--model_dir", str(run_dir)], capsys, f"{tmp_path / 'moved_away'}, the data folder "
                  "this run trained on (its config.json), is gone", "--data", watched=(run_dir,))
    fails_cleanly(train.main, ["--resume", str(run_dir)], capsys, f"{tmp_path / 'moved_away'}, the data folder "
                  f"this run trains on (its config.json), is gone: move it back to resume {run_dir}",
                  watched=(run_dir,))


def grow_vocabulary(run_dir: Path) -> None:
    vocab = json.loads((run_dir / "vocab.json").read_text())
    vocab["words"] += ["extra1", "extra2"]
    (run_dir / "vocab.json").write_text(json.dumps(vocab))


BAD_RUNS = {
    "missing best.pt": (lambda d: (d / "best.pt").unlink(), "missing best.pt"),
    "corrupt best.pt": (lambda d: (d / "best.pt").write_bytes(b"hello\n"),
                        "best.pt: unreadable or not this run's checkpoint (not a PyTorch checkpoint file)"),
    "truncated best.pt": (lambda d: (d / "best.pt").write_bytes((d / "best.pt").read_bytes()[:500]), "best.pt"),
    "reversed relations": (reverse_relations, "labels.json differs"),
    "larger vocabulary": (grow_vocabulary, "vocab.json differs"),
    "a word listed twice": (repeat_a_word, "vocab.json: the word"),
    "malformed config.json": (lambda d: (d / "config.json").write_text("{"), "config.json:1: malformed JSON"),
    "config.json a list": (lambda d: (d / "config.json").write_text("[1, 2]"), "config.json: a JSON list"),
    "config.json with a mistyped size": (
        lambda d: (d / "config.json").write_text(json.dumps(
            (c := json.loads((d / "config.json").read_text())) | {"model": c["model"] | {"rnn_hidden": "fifty"}})),
        "rnn_hidden = 'fifty': not an integer >= 1"),
    "config.json with other rounds": (edit_model_settings(rounds=3),  # every K fits the same weights
                                      "best.pt was trained with rounds=2 (config.json: 3): config.json was edited"),
    "config.json without ER feedback": (edit_model_settings(er_feedback=False),
                                        "er_feedback=True (config.json: False)"),
    "config.json of other code": (edit_model_settings(relation_pool="mean"),  # never dropped unread
                                  "config.json: model settings this code does not have: relation_pool (written by "
                                  "other code: another branch or version?); use the code that trained the run"),
    "config.json without the model": (
        lambda d: (d / "config.json").write_text(json.dumps(
            {k: v for k, v in json.loads((d / "config.json").read_text()).items() if k != "model"})),
        "config.json: no 'model' object"),
    "best.pt with settings that are no object": (lambda d: rewrite_model_config(d, lambda settings: [1]),
                                                 "best.pt: unreadable or not this run's checkpoint (its model_config "
                                                 "is a list"),
    "checksums that are no object": (
        lambda d: (d / "config.json").write_text(json.dumps(json.loads((d / "config.json").read_text())
                                                            | {"data_sha256": [1]})), "data_sha256 is a list"),
    "best.pt holding a list": (lambda d: torch.save([1, 2], d / "best.pt"), "it holds a list, not weights"),
    "best.pt of another seed": (lambda d: rewrite_weights(d, "word_embedding.weight", lambda w: w + 0.01),
                                "best.pt is not the checkpoint this run selected"),  # same sizes and settings
    "best.pt of a run on other words": (best_of_a_run_on_other_words,
                                         "best.pt was trained on another vocab.json than this run's"),
    "best.pt of another vocabulary": (lambda d: rewrite_weights(d, "word_embedding.weight", lambda w: w[:-1]),
                                      "size mismatch for word_embedding.weight"),  # torch's second line
    "config.json of another format": (
        lambda d: (d / "config.json").write_text(json.dumps(json.loads((d / "config.json").read_text())
                                                            | {"run_format": 0})), "run format 0"),
}


@pytest.mark.parametrize("case", list(BAD_RUNS))
def test_bad_run_folders_are_refused(trained_run, tmp_path, capsys, case):
    spoil, named = BAD_RUNS[case]
    run_dir = spoiled_run(trained_run, tmp_path, spoil)
    out = tmp_path / "out.jsonl"
    fails_cleanly(evaluate.main, ["--model_dir", str(run_dir), "--out", str(out)], capsys, named,
                  watched=(run_dir,))
    fails_cleanly(predict.main, ["--model_dir", str(run_dir), "--text", "Anna Smith was born in Oslo ."], capsys,
                  named, watched=(run_dir,))
    assert not out.exists()


def test_evaluate_refuses_bad_flags_and_paths(trained_run, tmp_path, capsys, monkeypatch):
    run_dir = spoiled_run(trained_run, tmp_path, lambda d: None)
    with monkeypatch.context() as patch:  # a missing --out folder is told before the kernels build (~30 s first)
        patch.setattr(speed, "configure_for", lambda *a: pytest.fail("the kernels were set up first"))
        fails_cleanly(evaluate.main, ["--model_dir", str(run_dir), "--out", str(tmp_path / "no" / "p.jsonl")],
                      capsys, "folder", str(tmp_path / "no"))
        for script, given in ((evaluate, []), (predict, ["--text", "A b ."])):  # and so is no run folder
            patch.setattr(speed, "configure_for", lambda *a: pytest.fail("the kernels were set up first"))
            fails_cleanly(script.main, ["--model_dir", str(tmp_path / "nosuch"), *given], capsys,
                          "nosuch: no such run folder")
            fails_cleanly(script.main, ["--model_dir", str(tmp_path), *given], capsys,
                          "is not a finished run folder: missing config.json, vocab.json, labels.json, best.pt")
    watched = (run_dir, tmp_path)
    for flags, named in ((["--threshold", "0"], "--threshold"), (["--threshold", "1"], "--threshold"),
                         (["--batch_size", "0"], "--batch_size"), (["--device", "foo"], "--device"),
                         (["--threads", "-1"], "--threads"), (["--out", str(tmp_path / "no" / "p.jsonl")], "no"),
                         (["--data", str(tmp_path / "none.json")], "none.json"),
                         (["--split", "valid"], "valid.json does not exist: the run's data has the splits dev, test, "
                                                "train"),
                         (["--data", str(tmp_path)], "is a folder"),
                         (["--split", "dev", "--data", str(tmp_path / "x.json")], "--split dev and --data"),
                         (["--out", "-"], "--out -: evaluate.py writes files")):
        fails_cleanly(evaluate.main, ["--model_dir", str(run_dir), *flags], capsys, named, watched=watched)
    fails_cleanly(evaluate.main, ["--model_dir", str(tmp_path / "nosuch")], capsys, "nosuch", watched=watched)
    empty, unlocatable = tmp_path / "empty.json", tmp_path / "unlocatable.json"
    empty.write_text("\n")
    record = {"sentText": "Anna Smith was born in Oslo .", "en_list": [], "relationMentions": [
        {"em1Text": "Anna Smith", "em2Text": "Oslo", "label": "born_in"},
        {"em1Text": "Anna Smith", "em2Text": "Bergen", "label": "born_in"}]}  # not in the sentence
    unlocatable.write_text(json.dumps(record) + "\n")
    for data, named in ((empty, "empty.json: no sentences to score"),
                        (unlocatable, "unlocatable.json:1: em2Text 'Bergen' (born_in) is not in the sentence")):
        out = tmp_path / f"{data.stem}.jsonl"
        fails_cleanly(evaluate.main, ["--model_dir", str(run_dir), "--data", str(data), "--out", str(out)], capsys,
                      named, watched=(run_dir,))
        assert not out.exists()
    fails_cleanly(evaluate.main, ["--model_dir", str(run_dir), "--out", str(tmp_path)], capsys, "a folder",
                  watched=watched)
    same = tmp_path / "same.json"
    same.write_text(json.dumps(record | {"relationMentions": []}) + "\n")
    fails_cleanly(evaluate.main, ["--model_dir", str(run_dir), "--data", str(same), "--out", str(same)], capsys,
                  "is the data file", watched=watched)
    for name in ("config.json", "best.pt", "vocab.json", "runner.lock"):  # the run's own, directly or linked
        fails_cleanly(evaluate.main, ["--model_dir", str(run_dir), "--out", str(run_dir / name)], capsys,
                      f"is the run's own {name}", watched=watched)
    (tmp_path / "link.json").symlink_to(run_dir / "labels.json")
    fails_cleanly(evaluate.main, ["--model_dir", str(run_dir), "--out", str(tmp_path / "link.json")], capsys,
                  "is the run's own labels.json", watched=watched)
    data_dir = Path(json.loads((run_dir / "config.json").read_text())["settings"]["data_dir"])
    for name in ("train.json", "vocab_report.json"):  # the files of the data it trained on, not only the split
        fails_cleanly(evaluate.main, ["--model_dir", str(run_dir), "--out", str(data_dir / name)], capsys,
                      f"is the {name} of the data this run trained on", watched=(*watched, data_dir))
    (run_dir / "predictions_dev.jsonl").mkdir()  # the default output, not named by the user: said so
    fails_cleanly(evaluate.main, ["--model_dir", str(run_dir), "--split", "dev"], capsys,
                  "the default output (--out names another)", "predictions_dev.jsonl: a folder", watched=watched)
    (run_dir / "predictions_dev.jsonl").rmdir()
    moved = tmp_path / "moved_data"  # known by its checksums wherever it lies now
    shutil.copytree(data_dir, moved)
    fails_cleanly(evaluate.main, ["--model_dir", str(run_dir), "--data", str(moved / "test.json"), "--out",
                                  str(moved / "dev.json")], capsys, "is the dev.json of the data this run trained on",
                  watched=(*watched, moved))
    with pseudo_terminal() as device:
        fails_cleanly(evaluate.main, ["--model_dir", str(run_dir), "--out", device], capsys, "not a regular file",
                      watched=watched)
    for flag in ("--out", "--data", "--split"):
        fails_cleanly(evaluate.main, ["--model_dir", str(run_dir), flag, ""], capsys, f"{flag}: an empty value",
                      watched=watched)


def test_evaluate_warns_when_a_split_changed_since_training(trained_run, tmp_path, capsys):
    run_dir = spoiled_run(trained_run, tmp_path, lambda d: None)
    data = tmp_path / "data"
    shutil.copytree(json.loads((run_dir / "config.json").read_text())["settings"]["data_dir"], data)
    config = json.loads((run_dir / "config.json").read_text())
    config["settings"]["data_dir"] = str(data)
    (run_dir / "config.json").write_text(json.dumps(config))
    evaluate.main(["--model_dir", str(run_dir), "--split", "test"])
    assert "differs from" not in capsys.readouterr().err
    lines = (data / "test.json").read_text().splitlines()
    (data / "test.json").write_text("\n".join(lines[:2]) + "\n")
    evaluate.main(["--model_dir", str(run_dir), "--split", "test"])
    assert "test.json differs from the test.json this run was trained and scored with" in capsys.readouterr().err


def test_evaluate_names_a_file_of_ones_own_by_its_path(trained_run, tmp_path, capsys):
    """--data other/test.json is not the run's test split: its predictions go beside, not over, the split's
    predictions_test.jsonl, and its scores are printed under its path; a one-line array's items keep their index."""
    run_dir = spoiled_run(trained_run, tmp_path, lambda d: None)
    evaluate.main(["--model_dir", str(run_dir), "--split", "test"])
    split_predictions = (run_dir / "predictions_test.jsonl").read_bytes()
    other = tmp_path / "other"
    other.mkdir()
    data_dir = Path(json.loads((run_dir / "config.json").read_text())["settings"]["data_dir"])
    records = [json.loads(line) for line in (data_dir / "test.json").read_text().splitlines()[:3]]
    (other / "test.json").write_text(json.dumps(records))  # as json.dump writes it: one line
    capsys.readouterr()
    evaluate.main(["--model_dir", str(run_dir), "--data", str(other / "test.json")])
    assert (run_dir / "predictions_test.jsonl").read_bytes() == split_predictions
    written = [json.loads(line) for line in (run_dir / "predictions_other_test.jsonl").read_text().splitlines()]
    assert [(r["line"], r["item"]) for r in written] == [(1, 1), (1, 2), (1, 3)]
    assert f"{other / 'test.json'} partial (ours): P" in capsys.readouterr().out


def test_evaluate_warns_on_sentences_crowded_with_predictions(trained_run, tmp_path, capsys, monkeypatch):
    """An undertrained checkpoint marks most pairs: on long sentences that is hundreds of thousands of triples,
    minutes and gigabytes; evaluate.py says so (here with the limit lowered to 0 for a trained model)."""
    run_dir = spoiled_run(trained_run, tmp_path, lambda d: None)
    evaluate.main(["--model_dir", str(run_dir)])
    assert "predicted triples" not in capsys.readouterr().err
    monkeypatch.setattr(evaluate, "MANY_TRIPLES", 0)
    evaluate.main(["--model_dir", str(run_dir)])
    assert re.search(r"WARNING \d+ sentences have more than 0 predicted triples \(.*test.json:\d+: \d+\): the model "
                     "marks most pairs", capsys.readouterr().err)


def test_predict_refuses_bad_input_and_flags(trained_run, tmp_path, capsys):
    run_dir = trained_run[0]
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"text": "Anna Smith was born in Oslo ."}\n{"text": 5}\n')
    no_text = tmp_path / "no_text.jsonl"
    no_text.write_text('["Anna", "Smith"]\n{"words": "x"}\n')
    null_text = tmp_path / "null_text.jsonl"
    null_text.write_text('{"sentText": null}\n')
    blank_token = tmp_path / "blank_token.jsonl"
    blank_token.write_text('{"text": ["Anna", " ", "Smith"]}\n')
    watched = (run_dir, tmp_path)
    cases = ((["--input", str(tmp_path)], "is a folder"), (["--input", str(bad_json)], "bad.jsonl:2"),
             (["--input", str(null_text)], "null_text.jsonl:1: 'sentText' must be a string or a list of token "
                                           "strings, not NoneType"),
             (["--input", str(blank_token)], "blank_token.jsonl:1: 'text' holds an empty token (token 2)"),
             (["--input", str(bad_json), "--output", str(bad_json)], "is the --input file"),
             (["--input", str(no_text)], "no_text.jsonl:2"), (["--input", str(tmp_path / "absent.txt")], "absent.txt"),
             (["--text", "x", "--output", str(tmp_path / "missing" / "o.jsonl")], "missing"),
             (["--text", "x", "--threshold", "0"], "--threshold"),
             (["--text", "x", "--batch_size", "0"], "--batch_size"),
             (["--text", "x", "--max_tokens", "0"], "--max_tokens"), (["--text", "x", "--precision", "fp16"], "fp16"),
             (["--text", "x", "--output", str(run_dir / "best.pt")], "is the run's own best.pt"),
             (["--text", "x", "--spacy_model", ""], "--spacy_model: an empty value"),
             # the shell hands over bytes that are not UTF-8 as lone surrogates (written out: invalid JSON)
             (["--text", "fine .", "Anna Smith born in Paris \udcff ."], "sentence 2 holds a lone surrogate"))
    if Path("/proc/self").is_dir():  # a folder that takes no files (root writes through permissions)
        cases += ((["--text", "x", "--output", "/proc/nope.jsonl"], "--output /proc/nope.jsonl: cannot write in "),)
    for flags, named in cases:
        fails_cleanly(predict.main, ["--model_dir", str(run_dir), *flags], capsys, named, watched=watched)


def test_predict_checks_its_files_before_the_kernels_build(trained_run, tmp_path, capsys, monkeypatch):
    """Building the fused kernels takes about 30 s on a first use: a bad --input or --output is told before."""
    monkeypatch.setattr(speed, "configure_for", lambda *a: pytest.fail("the kernels were set up first"))
    for flags, named in ((["--input", str(tmp_path / "absent.txt")], "absent.txt"),
                         (["--text", "x", "--output", str(tmp_path / "missing" / "o.jsonl")], "missing")):
        fails_cleanly(predict.main, ["--model_dir", str(trained_run[0]), *flags], capsys, named)


@contextlib.contextmanager
def pseudo_terminal() -> Iterator[str]:
    """A character device of the test's own to write to (not /dev/null: the tests may run as root, and a
    regression would replace it for the whole machine; /dev/pts refuses new files, so one fails safely)."""
    reader, writer = os.openpty()
    try:
        yield os.ttyname(writer)
    finally:
        os.close(reader)
        os.close(writer)


def test_predict_writes_through_links_and_into_devices(trained_run, tmp_path, capsys):
    """A link stays a link (its target gets the lines); a device stays a device; a redirected /dev/stdout is
    appended to; every --text counts."""
    target, link = tmp_path / "target.jsonl", tmp_path / "link.jsonl"
    target.write_text("old\n")
    link.symlink_to(target)
    texts = ["--text", "Anna Smith was born in Oslo .", "--text", "Oslo is in Norway ."]
    predict.main(["--model_dir", str(trained_run[0]), *texts, "--output", str(link)])
    assert link.is_symlink() and [json.loads(line)["line"] for line in target.read_text().splitlines()] == [1, 2]
    with pseudo_terminal() as device:
        predict.main(["--model_dir", str(trained_run[0]), *texts, "--output", device])
        assert stat.S_ISCHR(os.stat(device).st_mode)
    log = tmp_path / "log.txt"
    log.write_text("earlier\n")
    script = (f"import sys; sys.argv = ['predict.py', '--model_dir', {str(trained_run[0])!r}, '--text', 'Oslo .', "
              "'--output', '/dev/stdout']; import predict; predict.main()")
    with log.open("a") as handle:
        subprocess.run([sys.executable, "-c", script], cwd=ROOT, stdout=handle, stderr=subprocess.DEVNULL, check=True)
    lines = log.read_text().splitlines()
    assert lines[0] == "earlier" and json.loads(lines[1])["text"] == "Oslo ."
    piped = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(piped.stdout)["text"] == "Oslo ."  # /dev/stdout a pipe: no folder to probe, written in place


TORCH_FREE_HELP = ("gpu_check.py",)  # scripts whose --help loads no torch (the model loads when a check trains)


def test_a_light_scripts_help_loads_no_torch():
    for script in TORCH_FREE_HELP:
        done = subprocess.run([sys.executable, "-X", "importtime", str(ROOT / script), "--help"], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "usage:" in done.stdout
        assert not re.search(r"\|\s+torch$", done.stderr, re.M), f"{script} --help imports torch"


@pytest.mark.parametrize("script", sorted(path.name for path in ROOT.glob("*.py") if path.name not in TORCH_FREE_HELP))
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="waits for torch to load by reading Linux /proc")
def test_ctrl_c_while_the_libraries_load_ends_in_one_line(script):
    """Torch takes a second or more to import: a Ctrl-C then (a user who ran the wrong command) is one line, not
    a traceback through importlib, as every script imports utils/interrupt.py before anything else."""
    imports = [node for node in ast.parse((ROOT / script).read_text()).body
               if isinstance(node, ast.Import | ast.ImportFrom) and getattr(node, "module", "") != "__future__"]
    assert ast.unparse(imports[0]) == "import utils.interrupt"
    process = subprocess.Popen([sys.executable, str(ROOT / script), "--help"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, cwd=ROOT)
    maps = Path(f"/proc/{process.pid}/maps")
    deadline = time.monotonic() + 30
    while process.poll() is None and time.monotonic() < deadline:  # interrupted while torch loads, whatever the load
        with contextlib.suppress(OSError):
            if "libtorch" in maps.read_text():
                break
        time.sleep(0.01)
    if process.poll() is not None:
        pytest.skip(f"{script} had loaded its libraries before the test saw torch load: nothing to interrupt")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert err == f"{script}: interrupted (Ctrl-C)\n"
    assert process.returncode == -signal.SIGINT  # as Python ends on Ctrl-C: status 130 in a shell


def test_ctrl_c_pressed_again_and_again_is_still_one_line(workspace):
    """Several Ctrl-C in a row (a user who means it) end the training with its one line: the presses that land
    while the program cleans up at exit are ignored, not tracebacks from threads and libraries shutting down."""
    data, save = workspace
    process = subprocess.Popen([sys.executable, str(ROOT / "train.py"), "--dataset", "synthetic", "--data_dir",
                                str(data), "--save_dir", str(save), "--run_id", "r", "--num_epoch", "200",
                                "--threads", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               cwd=ROOT)
    log, deadline = save / "r" / "train.log", time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:  # into the second epoch
        if log.exists() and "epoch 1:" in log.read_text():
            break
        time.sleep(0.05)
    for _ in range(5):
        process.send_signal(signal.SIGINT)
        time.sleep(0.01)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "train.py: interrupted (Ctrl-C)" in err and "Traceback" not in err and "Exception ignored" not in err


def test_ctrl_c_ends_in_one_line(trained_run, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(predict, "load_extractor", interrupted)
    with pytest.raises(SystemExit) as raised:
        predict.main(["--model_dir", str(trained_run[0]), "--text", "x"])
    assert raised.value.code == 130 and capsys.readouterr().err == "predict.py: interrupted (Ctrl-C)\n"


# ---------------------------------------------------------------- bounded decoding memory

def test_decoding_memory_is_bounded(trained_run, monkeypatch):
    """Batches are split so that no decoding step holds more than DECODE_CELLS pair logits, a longer sentence
    is scored a block of rows at a time, and neither changes a prediction."""
    from model import inference

    lengths = [300] * 100 + [5] * 50
    for batch in decode_batches(lengths, batch_size=100, relations=170):
        cells = len(batch) * max(lengths[i] for i in batch) ** 2 * 170
        assert cells <= inference.DECODE_CELLS or len(batch) == 1
    model, vocab, labels, config = load_run(trained_run[0])
    from data.loader import load_split
    from utils.project import resolve_project_path

    split = load_split(resolve_project_path(config["settings"]["data_dir"]) / "test.json", vocab, labels)
    whole = extract(model, split.examples, labels, torch.device("cpu"))
    monkeypatch.setattr(inference, "DECODE_CELLS", 3 * 12 ** 2 * len(labels.relations))
    assert max(map(len, decode_batches([len(e.word_ids) for e in split.examples], 100, len(labels.relations)))) <= 3
    split_up = extract(model, split.examples, labels, torch.device("cpu"))
    assert [e.triples for e in whole] == [e.triples for e in split_up]
    # below one sentence's logits, rows are scored a few at a time: the same triples and probabilities
    monkeypatch.setattr(inference, "DECODE_CELLS", 2 * 12 * len(labels.relations))
    scored, predict = [], type(model).predict

    def spy(self, word_ids, *args):  # no call may score more cells than the budget
        scored.append(word_ids.shape[0] * word_ids.shape[1] ** 2 * len(labels.relations))
        return predict(self, word_ids, *args)

    monkeypatch.setattr(type(model), "predict", spy)
    by_rows = extract(model, split.examples, labels, torch.device("cpu"))
    assert max(scored, default=0) <= inference.DECODE_CELLS
    assert [e.triples for e in whole] == [e.triples for e in by_rows]
    assert [e.probabilities for e in whole] == [pytest.approx(e.probabilities, abs=1e-5) for e in by_rows]


def test_deterministic_training_runs_and_is_recorded(workspace):
    data, save = workspace
    try:
        train.main(["--dataset", "synthetic", "--data_dir", str(data), "--save_dir", str(save), "--run_id", "d",
                    "--deterministic", *FAST])
    finally:
        torch.use_deterministic_algorithms(False)
    settings = json.loads((save / "d" / "config.json").read_text())["settings"]
    assert settings["deterministic"] is True and settings["thread_policy"] == "fixed"  # what ran is what is saved


def test_utf8_files_under_a_c_locale(workspace):
    """Text files are read and written as UTF-8 whatever the locale."""
    data, save = workspace
    env = os.environ | {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": "ascii"}
    lines = (data / "train.json").read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[0])
    record["sentText"][0] = "Zoë"
    lines[0] = json.dumps(record, ensure_ascii=False)
    (data / "train.json").write_text("\n".join(lines) + "\n", encoding="utf-8")
    prepared = subprocess.run([sys.executable, str(ROOT / "prepare_vocab.py"), "--data_dir", str(data), "--wv_file",
                               "none"], cwd=ROOT, env=env, capture_output=True, text=True, encoding="utf-8",
                              errors="replace", timeout=300)  # train.json changed: its vocabulary again
    assert prepared.returncode == 0, prepared.stderr[-2000:]
    done = subprocess.run([sys.executable, str(ROOT / "train.py"), "--dataset", "synthetic", "--data_dir", str(data),
                           "--save_dir", str(save), "--run_id", "c", *FAST], cwd=ROOT, env=env, capture_output=True,
                          text=True, encoding="utf-8", errors="replace", timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_evaluate_never_writes_over_its_data_and_predict_writes_dash_to_stdout(trained_run, tmp_path, capsys):
    """evaluate.py's <out>_scores.json beside --out is checked against --data as --out is; predict.py --output -
    means standard output, as --input - means standard input."""
    run_dir = spoiled_run(trained_run, tmp_path, lambda d: None)
    data = tmp_path / "q_scores.json"
    data.write_text(json.dumps({"sentText": "Anna Smith was born in Oslo .", "relationMentions": []}) + "\n")
    fails_cleanly(evaluate.main, ["--model_dir", str(run_dir), "--data", str(data), "--out", str(tmp_path / "q.jsonl")],
                  capsys, "is the data file", watched=(run_dir, tmp_path))
    predict.main(["--model_dir", str(run_dir), "--text", "Anna Smith was born in Oslo .", "--output", "-"])
    assert json.loads(capsys.readouterr().out.splitlines()[0])["line"] == 1
    assert not (Path.cwd() / "-").exists()
