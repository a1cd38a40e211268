"""The runner's time accounting: how long the runs to do take at worst, from the epoch times of earlier runs, and
which of them --hours lets start."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from experiments.plan import Run, run_dataset
from experiments.presets import preset
from model.run import epoch_records, epochs_done, run_settings
from model.training import TrainConfig
from utils.files import read_json


def epoch_medians(dataset: str, results_dir: Path) -> dict[int, float]:
    """Seconds one epoch (training + evaluation) of a ``dataset`` run takes, per K = rounds: the median over the
    epochs of the dataset's runs with that K in ``results_dir``/runs (unfinished ones too); empty before any
    epoch has been timed."""
    seconds: dict[int, list[float]] = {}
    for folder in (results_dir / "runs").glob(f"{dataset}_*"):
        files = [folder / name for name in ("config.json", "metrics.jsonl")]
        if run_dataset(folder.name) in (dataset, None) and all(f.exists() for f in files):
            rounds = run_settings(files[0]).get("rounds")
            if type(rounds) is not int:
                continue  # no K recorded: its epochs time no K
            for epoch in epoch_records(files[1]):
                seconds.setdefault(rounds, []).append(epoch["train_seconds"] + epoch.get("eval_seconds", 0))
    return {rounds: statistics.median(values) for rounds, values in seconds.items()}


def start_seconds(dataset: str, results_dir: Path) -> float:
    """Seconds one train.py invocation of a ``dataset`` run spends outside its epochs (start, data, kernels,
    the final dev and test scores): the median, over the runs whose runner.json holds every invocation (its
    wall time covers their epochs), of that wall time less the epochs' time, per invocation; 0 before any."""
    spent = []
    for folder in (results_dir / "runs").glob(f"{dataset}_*"):
        runner, metrics = folder / "runner.json", folder / "metrics.jsonl"
        if run_dataset(folder.name) not in (dataset, None) or not (runner.exists() and metrics.exists()):
            continue
        invocations = read_json(runner).get("invocations", [])
        wall = sum(entry.get("wall_seconds", 0) for entry in invocations)
        epochs = sum(epoch["train_seconds"] + epoch.get("eval_seconds", 0) for epoch in epoch_records(metrics))
        if invocations and wall >= epochs:  # else invocations cut off with a session are missing from it
            spent.append((wall - epochs) / len(invocations))
    return statistics.median(spent) if spent else 0.0


def epoch_seconds(rounds: int, medians: dict[int, float]) -> float | None:
    """Seconds one epoch with K = ``rounds`` takes: its median, else a straight line in K through the ``medians``
    of the other K; None with fewer than two to draw it through (an epoch's time grows with K, so one K's
    time says little of another's)."""
    if rounds in medians:
        return medians[rounds]
    if len(medians) < 2:
        return None
    slope, intercept = statistics.linear_regression(list(medians), list(medians.values()))
    return intercept + slope * rounds


def duration(seconds: float) -> str:
    """Hours to a tenth, or minutes below a tenth of an hour (a quick run's 0.0 h said nothing)."""
    return f"{seconds / 3600:.1f} h" if seconds >= 360 else f"{seconds / 60:.1f} min"


@dataclass(frozen=True)
class Budget:
    """The time accounting of one dataset's runs: trained under ``save_dir``, their epochs timed by the summaries
    in ``results_dir``/runs, each ``num_epoch`` epochs at most (--train_args' --num_epoch; None: the preset's),
    none to run past ``deadline`` (a time.time(); None: no --hours)."""

    dataset: str
    save_dir: Path
    results_dir: Path
    num_epoch: int | None = None
    deadline: float | None = None

    def remaining_seconds(self, run: Run, medians: dict[int, float], start: float = 0.0) -> float | None:
        """Seconds ``run`` still needs at worst: every epoch not yet in its metrics.jsonl (early stopping ends
        many sooner), and ``start`` seconds of one invocation's own (start_seconds); None when its epoch time
        cannot be estimated (see epoch_seconds)."""
        epochs = self.num_epoch or preset(run.dataset, run.match).get("num_epoch", TrainConfig.num_epoch)
        left = max(0, epochs - epochs_done(self.save_dir / run.name))
        per_epoch = epoch_seconds(run.rounds, medians) if left else 0.0
        return None if per_epoch is None else left * per_epoch + start

    def core_hours(self, todo: list[Run]) -> tuple[float, int]:
        """Core-hours the runs ``todo`` whose epochs can be timed take at worst, and how many cannot be timed
        yet. The epoch times are read afresh at each call: runs finishing meanwhile time more epochs."""
        medians, start = epoch_medians(self.dataset, self.results_dir), start_seconds(self.dataset, self.results_dir)
        needed = [self.remaining_seconds(run, medians, start) for run in todo]
        return sum(seconds for seconds in needed if seconds is not None) / 3600, needed.count(None)

    def untimed(self, run: Run, medians: dict[int, float]) -> str:
        """Why the time ``run`` needs cannot be estimated, for a line of the log."""
        if not medians:
            return f"no epoch of a {run.dataset} run timed in {self.results_dir / 'runs'} yet"
        return f"{run.dataset} epochs timed only at K={next(iter(medians))}, none at K={run.rounds}"

    def untimed_runs(self, todo: list[Run]) -> tuple[list[Run], str]:
        """The runs of ``todo`` whose time cannot be estimated, and why the first cannot."""
        medians = epoch_medians(self.dataset, self.results_dir)
        blind = [run for run in todo if self.remaining_seconds(run, medians) is None]
        return blind, self.untimed(blind[0], medians) if blind else ""

    def over_time(self, run: Run, now: float | None = None) -> str | None:
        """Why ``run``, started at ``now`` (default: now), must not start under --hours, else None: it could, at
        worst, run past the deadline, or its time cannot be estimated (no epochs timed to go by), so it cannot
        be vouched for."""
        if self.deadline is None:
            return None
        medians = epoch_medians(self.dataset, self.results_dir)
        needed = self.remaining_seconds(run, medians, start_seconds(self.dataset, self.results_dir))
        if needed is None:
            return f"cannot be timed: {self.untimed(run, medians)}"
        left = max(0.0, self.deadline - (time.time() if now is None else now))
        return f"needs up to {duration(needed)}, {duration(left)} left of --hours" if needed > left else None

    def dry_run_verdicts(self, todo: list[Run], jobs: int) -> dict[Run, str | None]:
        """over_time for each run to do as a real start would meet it: the runs taken in order by ``jobs`` slots,
        each starting when a slot frees at worst (after every epoch of the run before), so a dry run under
        --hours skips what the runner, at worst, would."""
        free = [time.time()] * jobs  # when each slot is free
        medians, start = epoch_medians(self.dataset, self.results_dir), start_seconds(self.dataset, self.results_dir)
        verdicts = {}
        for run in todo:
            begins = min(free)
            verdicts[run] = self.over_time(run, now=begins)
            if verdicts[run] is None and self.deadline is not None:
                free[free.index(begins)] = begins + (self.remaining_seconds(run, medians, start) or 0.0)
        return verdicts
