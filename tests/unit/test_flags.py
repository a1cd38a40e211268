"""What every script shares from utils/helpers.py: the argparse number types, the lock of a folder."""
import argparse
from pathlib import Path

import pytest

from utils import helpers


def test_number_flags_refuse_inf_and_nan_and_take_long_integers():
    for text in ("inf", "-inf", "nan", "0", "-1"):
        with pytest.raises(argparse.ArgumentTypeError, match="is not a number > 0"):
            helpers.positive_float(text)
    assert helpers.positive_int("9" * 400) == int("9" * 400)  # no float conversion of an int: no OverflowError
    with pytest.raises(argparse.ArgumentTypeError, match="is not a vector size in 1..4096"):
        helpers.vector_size("4097")


def test_the_settings_a_preset_gives_are_said(caplog, tmp_path):
    """A folder of one's own under a release's name (--dataset webnlg) trains with that release's Table 3
    settings: the log says which, and flags given win."""
    import logging

    import train

    with caplog.at_level(logging.INFO):
        settings = train.resolve_settings(train.parse_args(["--dataset", "webnlg", "--data_dir", str(tmp_path),
                                                            "--rounds", "3"]))
    assert (settings["rounds"], settings["lr"], settings["num_epoch"]) == (3, 5e-4, 150)
    assert "presets/webnlg.json (partial match): lr 0.0005, num_epoch 150" in caplog.text and "rounds" not in \
        caplog.text.split("presets/webnlg.json")[1].splitlines()[0]


def test_a_preset_without_the_match_mode_is_one_line(monkeypatch, tmp_path):
    """presets/NAME.json of one's own data lacking the match mode asked for: an InputError naming the file and
    the form expected (was a KeyError); a dataset without a preset gives no settings."""
    monkeypatch.setattr(helpers, "PRESETS_DIR", tmp_path)
    (tmp_path / "mine.json").write_text('{"partial": {"rounds": 2, "lr": 0.001, "num_epoch": 3}}')
    assert helpers.preset("mine", "partial") == {"rounds": 2, "lr": 0.001, "num_epoch": 3}
    with pytest.raises(helpers.InputError, match=r"mine.json: no settings for exact match \(an object such as "
                                                 r'\{"exact": \{"rounds": 2, .*150\}\}\)$'):
        helpers.preset("mine", "exact")
    assert helpers.preset("other", "exact") == {}


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="/dev/full (a device that is always full) is Linux's")
def test_a_full_disk_names_the_file_being_written(tmp_path):
    """ENOSPC names no file by itself ('[Errno 28] No space left on device'): the error names the output."""
    with pytest.raises(OSError, match="No space left on device: '/dev/full'"):
        helpers.atomic_write_bytes(Path("/dev/full"), b"x" * 100_000)
    helpers.atomic_write_bytes(tmp_path / "out.json", b"x")  # and a normal write still is one
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
    held = helpers.hold_lock(path, str)
    with pytest.raises(helpers.InputError, match=f"held by {os.getpid()}"):
        helpers.hold_lock(path, lambda pid: f"held by {pid}")
    held.close()
    path.unlink()
    real, calls = fcntl.flock, []

    def holder_lets_go_meanwhile(handle, flags):
        if not calls:
            path.unlink()  # the file just opened is gone from the path
        calls.append(os.fstat(handle.fileno()).st_ino)
        return real(handle, flags)

    monkeypatch.setattr(helpers.fcntl, "flock", holder_lets_go_meanwhile)
    handle = helpers.hold_lock(path, str)
    assert len(calls) == 2 and calls[1] == os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
    handle.close()
    monkeypatch.setattr(helpers.fcntl, "flock", lambda *args: (_ for _ in ()).throw(OSError(errno.ENOLCK, "No locks "
                                                                                             "available")))
    with pytest.raises(helpers.InputError, match="cannot be locked \\(No locks available\\)"):
        helpers.hold_lock(path, str)
