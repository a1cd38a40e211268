"""The paper's experiments as data: how a run is named, which runs each table needs, the paper's numbers.

Shared by the runner (reproduce.py), which trains the planned runs, and the report (experiments/report.py), which
finds each table cell's runs by the same names.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from experiments.presets import preset
from model.rin import RINConfig
from model.training import TrainConfig

FIGURE_ROUNDS = range(0, 9)
TEST_SELECTION_SEED = 1  # the one seed per Table 1 setting also trained with --select_on test
PAPER_SEEDS = (1, 2, 3, 4, 5)  # our seeds per table cell (the report judges the paper's figure as one run)

# The paper's numbers (percent), WebNLG columns. Table 1: (P, R, F1); Table 5: exact-match F1.
PAPER = {
    "webnlg": {
        ("partial", "RIN"): (87.6, 87.0, 87.3), ("partial", "w/o interaction"): (84.9, 86.3, 85.6),
        ("exact", "RIN"): (77.3, 76.8, 77.0), ("exact", "w/o interaction"): (75.0, 73.3, 74.2),
        ("table5", "RIN"): 77.0, ("table5", "w/o ER"): 76.4, ("table5", "w/o RC"): 76.0,
        ("table5", "w/o interaction"): 74.2, ("table5", "w/o POS"): 76.6,
    },
    "nyt": {
        ("partial", "RIN"): (None, None, 87.3), ("partial", "w/o interaction"): (None, None, 83.5),
        ("exact", "RIN"): (None, None, 84.7), ("exact", "w/o interaction"): (None, None, 76.9),
        ("table5", "RIN"): 84.7, ("table5", "w/o ER"): 83.9, ("table5", "w/o RC"): 77.3,
        ("table5", "w/o interaction"): 76.9, ("table5", "w/o POS"): 84.1,
    },
}
# Datasets whose test set is the paper's, under another preparation: their runs are set beside that column.
# webnlg_exact (the exact-match WebNLG release) has no RIN numbers in the paper.
PAPER_COLUMNS = {"webnlg_official": "webnlg", "nyt_official": "nyt"}


# Published exact-match F1 on a dataset's release by models without a pretrained language model, set beside
# ours: (model, F1, how its code counts a correct triple or None where we have not checked, where it comes from).
# Each paper preprocessed the release its own way.
PUBLISHED = {
    "webnlg_exact": [
        ("ETL-Span (BiLSTM, GloVe)", 83.1, None,
         "Yu et al., ECAI 2020, as its camera-ready reports it (earlier arXiv versions give other figures), "
         "on its own preprocessing of WebNLG"),
        ("TPLinker-BiLSTM (GloVe trained on the data)", 86.4, "strings",
         "Wang et al., COLING 2020, as quoted to us; not yet checked against the paper's Table 2, which we "
         "could not read where these runs were made"),
    ],
}


def paper_numbers(dataset: str) -> dict:
    """The paper's numbers for ``dataset``'s tables; empty where the paper reports none (the report then shows
    ours alone)."""
    return PAPER.get(PAPER_COLUMNS.get(dataset, dataset), {})


# run_name's layout, read back
RUN_NAME = re.compile(r"(?P<dataset>.+)_(?P<match>partial|exact)_K\d+(?:_[A-Za-z]+)*_seed(?P<seed>\d+)")


def run_dataset(name: str) -> str | None:
    """The dataset of a run folder named by run_name (``webnlg_exact_exact_K3_seed1`` -> ``webnlg_exact``), None
    for another name: a glob on ``webnlg_*`` also finds the runs of webnlg_exact and webnlg_official."""
    found = RUN_NAME.fullmatch(name)
    return found.group("dataset") if found else None


def run_match(name: str) -> str:
    """The match mode of a run folder named by run_name (``webnlg_exact_partial_K2_seed1`` -> ``partial``)."""
    found = RUN_NAME.fullmatch(name)
    if not found:
        raise ValueError(f"{name!r} is not a run name of the form <dataset>_<match>_K<rounds>[_...]_seed<seed>")
    return found.group("match")


def run_name(dataset: str, match: str, rounds: int, seed: int, no_er_feedback: bool = False,
             no_rc_feedback: bool = False, pos_dim: int = RINConfig.pos_dim,
             select_on: str = TrainConfig.select_on) -> str:
    """A run folder name that spells out its settings, e.g. ``webnlg_exact_K3_noER_seed2``."""
    ablations = "".join(tag for on, tag in ((no_er_feedback, "_noER"), (no_rc_feedback, "_noRC"),
                                            (pos_dim == 0, "_noPOS"), (select_on == "test", "_testsel")) if on)
    return f"{dataset}_{match}_K{rounds}{ablations}_seed{seed}"


@dataclass(frozen=True)
class Run:
    """One training: its settings and its name."""

    dataset: str
    match: str
    rounds: int
    seed: int
    no_er_feedback: bool = False
    no_rc_feedback: bool = False
    pos_dim: int = RINConfig.pos_dim  # a run without --pos_dim has the network's default
    select_on: str = TrainConfig.select_on  # and without --select_on, training's

    @property
    def name(self) -> str:
        return run_name(self.dataset, self.match, self.rounds, self.seed, self.no_er_feedback,
                        self.no_rc_feedback, self.pos_dim, self.select_on)

    def train_args(self) -> list[str]:
        args = ["--dataset", self.dataset, "--match", self.match, "--rounds", str(self.rounds),
                "--seed", str(self.seed), "--pos_dim", str(self.pos_dim), "--select_on", self.select_on]
        return args + ["--no_er_feedback"] * self.no_er_feedback + ["--no_rc_feedback"] * self.no_rc_feedback


@dataclass
class Plan:
    runs: list[Run] = field(default_factory=list)

    def add(self, run: Run) -> None:
        if run not in self.runs:
            self.runs.append(run)


def preset_rounds(dataset: str, match: str) -> int:
    """K for ``match`` on ``dataset``: its preset's, else the network's default (as train.py takes it)."""
    return preset(dataset, match).get("rounds", RINConfig.rounds)


def ablations(dataset: str, seed: int) -> dict[str, Run]:
    """Table 5's rows (exact match)."""
    rounds = preset_rounds(dataset, "exact")
    return {"RIN": Run(dataset, "exact", rounds, seed),
            "w/o ER": Run(dataset, "exact", rounds, seed, no_er_feedback=True),
            "w/o RC": Run(dataset, "exact", rounds, seed, no_rc_feedback=True),
            "w/o interaction": Run(dataset, "exact", 0, seed),
            "w/o POS": Run(dataset, "exact", rounds, seed, pos_dim=0)}


def table1_rows(dataset: str, match: str, seed: int) -> dict[str, Run]:
    return {"RIN": Run(dataset, match, preset_rounds(dataset, match), seed),
            "w/o interaction": Run(dataset, match, 0, seed)}


def plan_runs(table: str, dataset: str, seeds: list[int]) -> Plan:
    """Every run ``table`` needs; seed-major, so each setting gets its first seed early."""
    plan = Plan()
    for seed in seeds:
        if table in ("1", "all"):
            for match in ("partial", "exact"):
                for run in table1_rows(dataset, match, seed).values():
                    plan.add(run)
        if table in ("5", "all"):
            for run in ablations(dataset, seed).values():
                plan.add(run)
        if table in ("fig3", "all"):
            for match in ("partial", "exact"):
                for rounds in FIGURE_ROUNDS:
                    plan.add(Run(dataset, match, rounds, seed))
    # what the official protocol (selection on test) adds: one seed per setting, never more with later seeds
    if table in ("1", "all") and TEST_SELECTION_SEED in seeds:
        for match in ("partial", "exact"):
            for run in table1_rows(dataset, match, TEST_SELECTION_SEED).values():
                plan.add(Run(**{**run.__dict__, "select_on": "test"}))
    return plan


