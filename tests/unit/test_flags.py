"""What every script shares: the argparse number types (utils/cli.py), presets (experiments/presets.py), whole-file
writes (utils/files.py), the lock of a folder (utils/locks.py)."""
import argparse
import re
from pathlib import Path

import pytest

from experiments import presets
from utils import cli, errors, files, locks


def test_number_flags_refuse_inf_and_nan_and_take_long_integers():
    for text in ("inf", "-inf", "nan", "0", "-1"):
        with pytest.raises(argparse.ArgumentTypeError, match="is not a number > 0"):
            cli.positive_float(text)
    assert cli.positive_int("9" * 400) == int("9" * 400)  # no float conversion of an int: no OverflowError
    with pytest.raises(argparse.ArgumentTypeError, match="is not a vector size in 1..4096"):
        cli.vector_size("4097")


def test_the_settings_a_preset_gives_are_said(caplog, tmp_path):
    """A folder of one's own under a release's name (--dataset webnlg) trains with that release's Table 3
    settings: the log says which, and flags given win."""
    import logging

    from experiments.settings import parse_args, resolve_settings

    with caplog.at_level(logging.INFO):
        settings = resolve_settings(parse_args(["--dataset", "webnlg", "--data_dir", str(tmp_path), "--rounds", "3"]))
    assert (settings["rounds"], settings["lr"], settings["num_epoch"]) == (3, 5e-4, 150)
    assert "presets/webnlg.json (partial match): lr 0.0005, num_epoch 150" in caplog.text and "rounds" not in \
        caplog.text.split("presets/webnlg.json")[1].splitlines()[0]


def test_a_preset_without_the_match_mode_is_one_line(monkeypatch, tmp_path):
    """presets/NAME.json of one's own data lacking the match mode asked for: an InputError naming the file and
    the form expected (was a KeyError); a dataset without a preset gives no settings."""
    monkeypatch.setattr(presets, "PRESETS_DIR", tmp_path)
    (tmp_path / "mine.json").write_text('{"partial": {"rounds": 2, "lr": 0.001, "num_epoch": 3}}')
    assert presets.preset("mine", "partial") == {"rounds": 2, "lr": 0.001, "num_epoch": 3}
    with pytest.raises(errors.InputError, match=r"mine.json: no settings for exact match \(an object such as "
                                                 r'\{"exact": \{"rounds": 2, .*150\}\}\)$'):
        presets.preset("mine", "exact")
    assert presets.preset("other", "exact") == {}


def test_a_preset_may_leave_settings_to_the_defaults(monkeypatch, tmp_path):
    """A preset of one's own without rounds or num_epoch: the runner plans and times with the defaults train.py
    takes (was a KeyError); a key given twice (JSON keeps the last) and a preset that is a broken link are named."""
    from experiments.budget import Budget
    from experiments.plan import Run, preset_rounds
    from model.rin import RINConfig
    from model.training import TrainConfig

    monkeypatch.setattr(presets, "PRESETS_DIR", tmp_path)
    (tmp_path / "mine.json").write_text('{"partial": {"lr": 0.001}, "exact": {}}')
    assert preset_rounds("mine", "exact") == RINConfig.rounds
    budget = Budget("mine", tmp_path / "runs", tmp_path)
    assert budget.remaining_seconds(Run("mine", "partial", 1, 1), {1: 2.0}) == 2.0 * TrainConfig.num_epoch
    (tmp_path / "twice.json").write_text('{"partial": {"lr": 0.001, "lr": 0.01}}')
    with pytest.raises(errors.InputError, match="twice.json: the key 'lr' appears 2 times in one object \\(JSON "
                                                "would keep the last\\)"):
        presets.preset("twice", "partial")
    (tmp_path / "gone.json").symlink_to(tmp_path / "nowhere.json")
    with pytest.raises(errors.InputError, match="gone.json: a link to .*nowhere.json, which does not exist"):
        presets.preset("gone", "partial")


@pytest.mark.parametrize(("content", "said"), [
    ('[1]', "a JSON list, not an object of match modes"),
    ('{"parital": {}}', "'parital' is no match mode (partial or exact)"),
    ('{"partial": 3}', "partial is 3, not an object"),
    ('{"partial": {"num_epochs": 2}}', "partial.num_epochs is no preset setting (a preset sets rounds, lr, num_epoch"),
    ('{"partial": {"batch_size": 10}}', "partial.batch_size is no preset setting"),
    ('{"partial": {"lr": -1}}', "partial.lr is -1, not a number > 0"),
    ('{"partial": {"lr": "fast"}}', 'partial.lr is "fast", not a number > 0'),
    ('{"partial": {"lr": 0}}', "partial.lr is 0, not a number > 0"),
    ('{"partial": {"lr": Infinity}}', "partial.lr is Infinity, not a number > 0"),
    ('{"partial": {"num_epoch": 1.5}}', "partial.num_epoch is 1.5, not an integer >= 1"),
    ('{"partial": {"num_epoch": 0}}', "partial.num_epoch is 0, not an integer >= 1"),
    ('{"partial": {"num_epoch": true}}', "partial.num_epoch is true, not an integer >= 1"),
    ('{"partial": {"rounds": "two"}}', 'partial.rounds is "two", not an integer >= 0'),
    ('{"partial": {"rounds": 2}, "exact": {"rounds": -1}}', "exact.rounds is -1, not an integer >= 0"),
])
def test_a_hand_written_preset_is_checked_as_the_flags_are(monkeypatch, tmp_path, content, said):
    """Every mode of the file, whichever is asked for: a mistake is one line naming the file and the setting,
    never a traceback mid-run or a key silently ignored."""
    monkeypatch.setattr(presets, "PRESETS_DIR", tmp_path)
    (tmp_path / "mine.json").write_text(content)
    with pytest.raises(errors.InputError, match=re.escape(f"mine.json: {said}")):
        presets.preset("mine", "partial")


def test_train_says_which_built_in_defaults_it_takes(monkeypatch, tmp_path, caplog):
    import logging

    from experiments.settings import parse_args, resolve_settings

    monkeypatch.setattr(presets, "PRESETS_DIR", tmp_path)
    (tmp_path / "mine.json").write_text('{"_source": "mine", "partial": {"_why": "a test", "rounds": 1, "lr": 1}}')
    with caplog.at_level(logging.INFO):
        settings = resolve_settings(parse_args(["--dataset", "mine", "--data_dir", str(tmp_path)]))
    assert (settings["rounds"], settings["lr"], settings["num_epoch"]) == (1, 1, 100)
    assert "mine.json (partial match) sets no num_epoch: built-in defaults --num_epoch 100" in caplog.text
    with caplog.at_level(logging.INFO):
        resolve_settings(parse_args(["--dataset", "other", "--data_dir", str(tmp_path), "--lr", "0.1"]))
    assert "no preset " in caplog.text and "built-in defaults --rounds 4, --num_epoch 100" in caplog.text


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="/dev/full (a device that is always full) is Linux's")
def test_a_full_disk_names_the_file_being_written(tmp_path):
    """ENOSPC names no file by itself ('[Errno 28] No space left on device'): the error names the output."""
    with pytest.raises(OSError, match="No space left on device: '/dev/full'"):
        files.atomic_write_bytes(Path("/dev/full"), b"x" * 100_000)
    files.atomic_write_bytes(tmp_path / "out.json", b"x")  # and a normal write still is one
    assert (tmp_path / "out.json").read_bytes() == b"x"


def test_hold_lock_refuses_a_held_lock_and_retakes_one_its_holder_removed(tmp_path, monkeypatch):
    """train.py and prepare_data.py lock with hold_lock: a lock another process holds is one line naming it; a
    lock file its holder removed (prepare_data.py does, before letting go) between our open and our flock is
    taken again on the file now at the path, never held on the removed one; a file system without locks is one
    line too."""
    import errno
    import fcntl
    import os

    path = tmp_path / "x.lock"
    held = locks.hold_lock(path, str)
    with pytest.raises(errors.InputError, match=f"held by {os.getpid()}"):
        locks.hold_lock(path, lambda pid: f"held by {pid}")
    held.close()
    path.unlink()
    real, calls = fcntl.flock, []

    def holder_lets_go_meanwhile(handle, flags):
        if not calls:
            path.unlink()  # the file just opened is gone from the path
        calls.append(os.fstat(handle.fileno()).st_ino)
        return real(handle, flags)

    monkeypatch.setattr(locks.fcntl, "flock", holder_lets_go_meanwhile)
    handle = locks.hold_lock(path, str)
    assert len(calls) == 2 and calls[1] == os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
    handle.close()
    monkeypatch.setattr(locks.fcntl, "flock", lambda *args: (_ for _ in ()).throw(OSError(errno.ENOLCK, "No locks "
                                                                                             "available")))
    with pytest.raises(errors.InputError, match="cannot be locked \\(No locks available\\)"):
        locks.hold_lock(path, str)


def test_every_setting_of_the_network_has_a_flag_that_builds_it(tmp_path):
    """MODEL_KEYS are RINConfig's fields less the data's sizes and the ablation switches: each must have a train.py
    flag of its name, and the flags (a non-default value for each, and each switch) must reach the network built,
    so a field added to RINConfig without a flag, or a switch mapped the wrong way, fails here."""
    import numpy as np
    import torch

    import train
    from experiments.settings import DATA_SIZES, MODEL_KEYS, NET, SWITCHES, parse_args, resolve_settings
    from model.rin import RINConfig
    from utils.vocab import PAD, UNK, Labels, Vocab

    assert set(MODEL_KEYS) | set(DATA_SIZES) | set(SWITCHES) == set(NET) | {"vocab_size", "num_pos", "num_tags",
                                                                            "num_relations"}
    other = {key: NET[key] + 1 if isinstance(NET[key], int) else NET[key] / 2 for key in MODEL_KEYS}
    vocab, embedding = Vocab([PAD, UNK, "word"]), np.zeros((3, 6), dtype=np.float32)
    labels = Labels(relations=["r1", "r2"], pos=["<PAD>", "<UNK>", "NN"], tags=["O", "S"])
    for flags, expected in (
            ([f"--{key}={value}" for key, value in other.items()], other | {"er_feedback": True, "rc_feedback": True}),
            *(([f"--{flag}"], {field: False, **{f: True for f in SWITCHES if f != field}})
              for field, flag in SWITCHES.items())):
        settings = resolve_settings(parse_args(["--data_dir", str(tmp_path), "--dataset", "own", *flags]))
        _, built = train.build_model(settings, vocab, labels, embedding, torch.device("cpu"), [])
        assert {key: built[key] for key in expected} == expected, flags
        assert RINConfig.from_dict(built).to_dict() == built


def test_a_field_added_to_the_network_is_checked_by_its_type():
    """RINConfig checks each value by its field's annotation, so a field of another type (an extension's str)
    gets its own message, not an integer's; a recorded field this code lacks is refused by name."""
    import dataclasses
    import typing

    from model.rin import RINConfig

    @dataclasses.dataclass
    class Extended(RINConfig):
        relation_pool: typing.Literal["max", "mean"] = "max"
        label: str = "x"
        cap: int | None = None

    sizes = {"vocab_size": 3, "num_pos": 3, "num_tags": 2, "num_relations": 2}
    assert Extended(**sizes, relation_pool="mean", cap=3).relation_pool == "mean"
    for field, value, wanted in (("relation_pool", "sum", "one of 'max', 'mean'"), ("label", 3, "of type str"),
                                 ("cap", True, "of type int | None")):
        with pytest.raises(ValueError, match=re.escape(f"{field} = {value!r}: not {wanted}")):
            Extended(**sizes, **{field: value})
    with pytest.raises(ValueError, match="model settings this code does not have: relation_pool .written by other "
                                         "code: another branch or version.."):
        RINConfig.from_dict({**sizes, "relation_pool": "mean"})
