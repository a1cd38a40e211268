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
