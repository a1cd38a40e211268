"""The argparse number types every script shares (utils/helpers.py)."""
import argparse

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
