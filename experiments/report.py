"""results/README.md, Figure 3 and README.md's results table, rendered from the committed run summaries
(results/runs/*/).

Every number comes from a run's results.json (test and dev scores of its best checkpoint) or from
results/test_comparison.json (reproduce.py --compare_test); the paper's numbers from experiments.plan.
"""
from __future__ import annotations

import json
import logging
import math
import re
import statistics
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from scipy import stats

from data.loader import EARLIER_READING
from experiments.plan import (
    FIGURE_ROUNDS,
    PAPER_SEEDS,
    PUBLISHED,
    RUN_NAME,
    TEST_SELECTION_SEED,
    Run,
    ablations,
    paper_numbers,
    preset_rounds,
    run_dataset,
    run_match,
    run_name,
    table1_rows,
)
from experiments.presets import preset, preset_file
from experiments.settings import HYPERPARAMETERS
from model.rin import RINConfig
from model.run import epoch_records, epochs_done, read_results, recorded_sha256, run_settings
from model.training import TrainConfig
from utils.errors import InputError
from utils.files import read_json
from utils.markdown import Block, refresh
from utils.project import PROJECT_ROOT, field_defaults

log = logging.getLogger("report")
OWNER = "`python reproduce.py --report`"  # of README.md's generated results table (utils/markdown.py)


def mean_difference(differences: list[float], what: str) -> str:
    spread = statistics.stdev(differences) if len(differences) > 1 else 0.0
    return (f"Mean difference ({what}) over {len(differences)} run{'s' * (len(differences) != 1)}: "
            f"{statistics.fmean(differences):+.2f} F1, standard deviation {spread:.2f}.")


def study_runs(path: Path, flag: str, dataset: str, summarised: Mapping[str, dict]) -> tuple[dict, dict]:
    """A study file's object and its entries of ``dataset``'s runs that ``runs/`` still summarises, each from
    the checkpoint its summary selected: the file merges entries over invocations, so a run moved out of the
    report since, or trained again (another best.pt), would count on in its tables with old figures."""
    found = read_json(path)
    if not (isinstance(found, dict) and isinstance(found.get("runs"), dict)
            and all(isinstance(entry, dict) for entry in found["runs"].values())):
        raise InputError(f"{path}: not the object reproduce.py {flag} writes; remove it and run {flag} again")
    runs = {name: entry for name, entry in found["runs"].items() if run_dataset(name) == dataset}
    if gone := sorted(set(runs) - set(summarised)):
        log.info("%s: %d runs no longer in runs/ left out (%s)", path, len(gone), ", ".join(gone))
    runs = {name: entry for name, entry in runs.items() if name in summarised}
    # an entry written before entries recorded their checkpoint, beside a summary that records one, is of an
    # earlier training too (summaries record best.pt's SHA-256 since before the studies did)
    if retrained := sorted(name for name, entry in runs.items()
                           if (selected := summarised[name].get("best_pt_sha256"))
                           and entry.get("best_pt_sha256") != selected):
        many = len(retrained) != 1
        log.warning("%s: %d run%s trained again since %s decoded left out (%s): python reproduce.py %s --dataset %s "
                    "decodes %s best.pt again", path, len(retrained), "s" * many, "they were" if many else "it was",
                    ", ".join(retrained), flag, dataset, "their" if many else "its")
    return found, {name: entry for name, entry in runs.items() if name not in retrained}


def comparison_lines(dataset: str, seeds: list[int], results_dir: Path, summarised: Mapping[str, dict]) -> list[str]:
    path = results_dir / "test_comparison.json"
    if not path.exists():
        log.info("no %s (python reproduce.py --compare_test): the report leaves out the test comparisons", path)
        return []
    found, runs = study_runs(path, "--compare_test", dataset, summarised)
    if not runs:
        return []
    lines = ["", "## Test POS tags: official (Stanford) vs. ours (spaCy, as in train/dev)", "",
             "Written by `python reproduce.py --compare_test`: each finished run's best checkpoint scored on "
             "the official test file and on the same file with POS tags from our tagger (`prepare_data.py "
             "--retag_test`). Test F1 of the run's match mode (percent).", "",
             "| run | official POS | our POS | difference |", "|---|---|---|---|"]
    differences = []
    for name, entry in sorted(runs.items()):
        mode = run_match(name)
        official, retagged = 100 * entry["official"][mode], 100 * entry["retagged"][mode]
        differences.append(retagged - official)
        lines.append(f"| {name} | {official:.2f} | {retagged:.2f} | {retagged - official:+.2f} |")
    lines += ["", mean_difference(differences, "ours - official"), *reading_lines(list(runs.values()))]
    rebuilt = {name: entry for name, entry in sorted(runs.items()) if "rebuilt" in entry}
    if not rebuilt:
        return lines
    lines += ["", "## Test entity spans: the authors' vs. our recovery (same input)", "",
              "The same predictions scored twice: against the test file with our POS tags and the authors' "
              "entity spans, and against the test rebuilt from WebNLG* like train/dev (`prepare_data.py "
              f"--rebuild_test`: our POS tags and our recovered spans; {found['same_input_sentences']} of "
              f"{found['sentences']} sentences give the model identical text and tags). The difference is "
              "what the span convention alone costs in exact match; partial match scores the last tokens, "
              "which both annotations share. Exact-match F1 (percent); runs whose checkpoints were gone when "
              "this comparison was added have no entry.", "",
              "| run | authors' spans | our spans | difference |", "|---|---|---|---|"]
    differences = []
    for name, entry in rebuilt.items():
        theirs, ours = 100 * entry["retagged"]["exact"], 100 * entry["rebuilt"]["exact"]
        if run_match(name) == "exact":
            differences.append(ours - theirs)
        lines.append(f"| {name} | {theirs:.2f} | {ours:.2f} | {ours - theirs:+.2f} |")
    if differences:
        lines += ["", mean_difference(differences, "ours - authors', runs selected on exact match")]
    pairs = [(rows["RIN"].name, rows["w/o interaction"].name)
             for rows in (table1_rows(dataset, "exact", seed) for seed in seeds)]
    pairs = [(rin, flat) for rin, flat in pairs if rin in rebuilt and flat in rebuilt]
    if pairs:
        gains = {test: [100 * (rebuilt[rin][test]["exact"] - rebuilt[flat][test]["exact"]) for rin, flat in pairs]
                 for test in ("retagged", "rebuilt")}
        paper = paper_numbers(dataset)
        paper_gain = [paper.get(("exact", label), (None,) * 3)[2] for label in ("RIN", "w/o interaction")]
        lines += ["", f"What the interaction layers add in exact match (RIN minus w/o interaction, same seed, "
                  f"{len(pairs)} seed{'s' * (len(pairs) != 1)}): {statistics.fmean(gains['retagged']):+.2f} F1 on the "
                  f"authors' spans, {statistics.fmean(gains['rebuilt']):+.2f} on ours"
                  + (f" (the paper: {paper_gain[0] - paper_gain[1]:+.1f})" if None not in paper_gain else "")
                  + ". Where the two agree, the test's span convention is not what makes the gain differ from "
                  "the paper's."]
    return lines


def reading_lines(entries: list[dict]) -> list[str]:
    """Which mention reading scored a results file's entries (those written before it was recorded: 1)."""
    counts = Counter(entry.get("mention_reading", EARLIER_READING) for entry in entries)
    return ["", "Gold read with data/loader.py's mention " + "; ".join(
        f"{READINGS.get(version, f'reading {version}').split(' (')[0]} ({count} run{'s' * (count != 1)})"
        for version, count in sorted(counts.items(), key=str))
        + ": [NOTES-2026-12-07.md](NOTES-2026-12-07.md) says what differs."]


def published_lines(dataset: str, seeds: list[int], results: dict) -> list[str]:
    """Our exact-match test F1 beside the published figures of other models on the same release (PUBLISHED)."""
    if dataset not in PUBLISHED:
        return []
    lines = [f"## Beside published exact-match F1 on this release ({dataset})", "",
             "Their figures as published, each on its own preprocessing of the release (which differs between "
             "papers); ours: test F1, mean ± std over the "
             "seeds that finished, counted both ways (strings is the convention of the CasRel/TPLinker family).",
             "", "| model | exact F1 | counted by | source |", "|---|---|---|---|"]
    lines += [f"| {model} | {f1:.1f} | {counted or 'not checked'} | {source} |"
              for model, f1, counted, source in PUBLISHED[dataset]]
    for label in ("RIN", "w/o interaction"):
        runs = [table1_rows(dataset, "exact", seed)[label] for seed in seeds]
        rounds = runs[0].rounds
        for scorer, counted in (("strings", "strings"), ("ours", "positions")):
            values = collect(results, runs, "test", "exact", "f1", scorer)
            readings = Counter(results[run.name]["scored_with_reading"] for run in runs if run.name in results
                               and (scorer == "ours" or "string_sets" in results[run.name]))
            mixed = (" (" + ", ".join(f"{count} scored with mention reading {version or 'not recorded'}"
                                      for version, count in sorted(readings.items(), key=str)) + ")"
                     ) if len(readings) > 1 else ""
            lines.append(f"| ours: RIN{'' if label == 'RIN' else ' ' + label} (K = {rounds}), {len(values)} "
                         f"seed{'s' * (len(values) != 1)}{mixed} | {cell(values)} | {counted} | `runs/` |")
    return [*lines, ""]


def mention_lines(dataset: str, results_dir: Path, summarised: Mapping[str, dict]) -> list[str]:
    """What keeping each (subject text, relation, object text) once, at its first position, changes: per
    setting, the share of predicted triples at a repeated mention under each decoder and the test F1 of the
    run's match mode counted by positions, mean ± std over its seeds, from results/mention_study.json."""
    path = results_dir / "mention_study.json"
    if not path.exists():
        log.info("no %s (python reproduce.py --mention_study): the report leaves out repeated mentions", path)
    runs = study_runs(path, "--mention_study", dataset, summarised)[1] if path.exists() else {}
    if not runs:
        return []
    settings: dict[str, list[str]] = {}
    for name in sorted(runs):
        settings.setdefault(re.sub(r"_seed\d+$", "", name), []).append(name)
    same_strings = sum(entry["paper"]["scores"]["strings"] == entry["first_mentions"]["scores"]["strings"]
                       for entry in runs.values())
    lines = ["", "## Repeated mentions: the paper's decoder vs. each triple once at its first mention (test)", "",
             "Written by `python reproduce.py --mention_study`: each finished run's best checkpoint decodes the "
             "test split twice, with the paper's decoder (every cell above the threshold is a triple) and with "
             "`--first_mentions` (each (subject text, relation, object text) kept once, at its first position: "
             "the releases annotate first occurrences only). 'At a repeated mention': the share of predicted "
             "triples whose subject or object text occurs earlier in the sentence (with first mentions, a triple "
             "stays there when its other argument moved). F1 of the run's match mode (percent), mean ± std over "
             "the seeds; the differences are paired by run. Counted by strings, the two decodings score the same "
             f"in {same_strings} of {len(runs)} runs (a text triple counts once however often it is predicted), "
             "so only the paper decoder's strings F1 is shown.", "",
             "| setting | seeds | predicted triples (paper decoder) | at a repeated mention, paper decoder (%) "
             "| with first mentions (%) | positions F1, paper decoder | with first mentions | difference "
             "| strings F1 |", "|---|---|---|---|---|---|---|---|---|"]
    for setting, names in settings.items():
        mode = run_match(names[0])
        entries = [runs[name] for name in names]
        predicted = statistics.fmean(e["paper"]["predicted"] for e in entries)
        repeated = [cell([e[decoder]["at_repeated_mentions"] / max(e[decoder]["predicted"], 1) for e in entries])
                    for decoder in ("paper", "first_mentions")]
        paper, first = ([e[decoder]["scores"]["ours"][mode]["f1"] for e in entries]
                        for decoder in ("paper", "first_mentions"))
        strings = [e["paper"]["scores"]["strings"][mode]["f1"] for e in entries]
        lines.append(f"| {setting} | {len(names)} | {predicted:.0f} | {repeated[0]} | {repeated[1]} | {cell(paper)} "
                     f"| {cell(first)} | {cell([b - a for a, b in zip(paper, first, strict=True)], signed=True)} "
                     f"| {cell(strings)} |")
    return [*lines, *reading_lines(list(runs.values()))]


def load_results(results_dir: Path) -> dict[str, dict]:
    """Each finished run's results.json (plus its wall time and what it was trained on), by run name; a damaged
    summary, or one copied under another run's name, is an InputError naming the file."""
    found = {}
    for folder in sorted((results_dir / "runs").glob("*")):
        if (folder / "results.json").exists():
            found[folder.name] = read_results(folder / "results.json", advice=DAMAGED)
            found[folder.name]["trained_on"] = trained_on(folder)
            found[folder.name]["scored_with_reading"] = mention_reading(folder)
            # wall time of every epoch (training + dev/test evaluation), summed over all sessions; runner.json
            # only holds invocations that ended normally, not those cut off by the end of a session
            metrics = folder / "metrics.jsonl"
            epochs = epoch_records(metrics) if metrics.exists() else []
            found[folder.name]["wall_seconds"] = (sum(e.get("train_seconds", 0) + e.get("eval_seconds", 0)
                                                      for e in epochs) or None)
    return found


DAMAGED = "restore the file, or remove its run folder"


def mention_reading(folder: Path) -> int | str | None:
    """The mention reading (data/loader.py MENTION_READING) a run summary was scored with: results.json's (a run
    resumed across a change of reading records both there), else config.json's, 1 before it was recorded; None
    without either file."""
    summary, config = folder / "results.json", folder / "config.json"
    return (read_json(summary).get("mention_reading") if summary.exists() else None) or (
        read_json(config).get("mention_reading", EARLIER_READING) if config.exists() else None)


def trained_on(folder: Path) -> tuple[str | None, str | None]:
    """What the runs averaged in one cell must share: their training data (train.json's SHA-256) and their
    hyperparameters other than Table 3's and the defaults, each None where the summary does not record it; a
    summary whose config.json names another run (a folder copied as another seed) is refused."""
    config_file = folder / "config.json"
    if not config_file.exists():
        return None, None
    settings = run_settings(config_file, advice=DAMAGED)
    if settings.get("run_id", folder.name) != folder.name:
        raise InputError(f"{config_file}: the summary of run {settings['run_id']!r}, not of {folder.name!r} (copied "
                         f"under another name?); {DAMAGED}")
    train_digest = recorded_sha256(read_json(config_file), "train.json")
    return train_digest, json.dumps(other_hyperparameters(settings), sort_keys=True) if settings else None


def mixed(results: dict, runs: list[Run]) -> bool:
    """Whether the finished ``runs`` are known to have been trained on different data or hyperparameters (not
    recorded counts as neither): then they are no seeds of one setting."""
    known = [results[run.name]["trained_on"] for run in runs if run.name in results]
    return any(len({values[i] for values in known} - {None}) > 1 for i in range(2))


def aggregate(values: list[float]) -> tuple[float | None, float | None, int]:
    """Mean and sample standard deviation (n - 1) in percent; std is None below two values."""
    if not values:
        return None, None, 0
    percent = [100 * v for v in values]
    std = statistics.stdev(percent) if len(percent) > 1 else None
    return statistics.fmean(percent), std, len(percent)


def cell(values: list[float], signed: bool = False) -> str:
    mean, std, count = aggregate(values)
    if mean is None:
        return "not run yet"
    shown = f"{round(mean, 1) + 0.0:+.1f}" if signed else f"{mean:.1f}"  # + 0.0: no "-0.0"
    return f"{shown} ± {std:.1f}" if std is not None else f"{shown} (1 seed)"


LEAST_SEEDS = 3  # fewer cannot judge: with 2, t(0.975, 1) = 12.7 makes any gap 'consistent'


def one_run_range(std: float, count: int) -> float:
    """Half-width of the 95% prediction interval of one more run of ours, t(0.975, n - 1) * std * sqrt(1 + 1/n):
    the paper's figure is one run (or a mean of unknown size), so it is judged as one more draw would be. A
    bare std would call about a third of our own next runs 'different'."""
    return float(stats.t.ppf(0.975, count - 1)) * std * math.sqrt(1 + 1 / count)


def effect_range(differences_std: float, count: int, row_std: float, rin_std: float) -> float:
    """Half-width of the 95% interval for our mean effect (a row minus RIN, paired by seed) against the paper's
    difference of two figures, taken as two independent runs: t(0.975, n - 1) * sqrt(s_d^2 / n + s_row^2 +
    s_RIN^2). Our pairing by seed cancels much of the spread (the rows of one seed move together); the paper's
    two runs need not have shared a seed, so their spread counts whole."""
    return float(stats.t.ppf(0.975, count - 1)) * math.sqrt(differences_std ** 2 / count + row_std ** 2
                                                             + rin_std ** 2)


def diff(values: list[float], paper: float | None, judged: bool = True) -> str:
    """Our mean minus the paper's figure, with * where the status section would say 'differs' (``judged``: the
    runs are seeds of one setting)."""
    mean, std, count = aggregate(values)
    if mean is None or paper is None:
        return ""
    differs = judged and std is not None and count >= LEAST_SEEDS and abs(mean - paper) > one_run_range(std, count)
    return f"{mean - paper:+.1f}{' *' if differs else ''}"


def collect(results: dict, runs: list[Run], split: str, mode: str, metric: str, scorer: str = "ours") -> list[float]:
    key = {"ours": None, "official": "official_scorer", "strings": "string_sets"}[scorer]
    out = []
    for run in runs:
        result = results.get(run.name)
        if result is not None and (key is None or key in result):  # runs before string sets have none
            scores = result[split] if key is None else result[key][split]
            out.append(scores[mode][metric])
    return out


def paired_effects(results: dict, runs: list[Run], rin_runs: list[Run], mode: str, scorer: str = "ours") -> list[float]:
    """Test F1 of each run minus that of RIN with the same seed, over the seeds where both finished: a row's
    effect, in which an offset common to both runs (our annotation's on exact match) cancels."""
    pairs = [[run, rin] for run, rin in zip(runs, rin_runs, strict=True) if run.name in results and rin.name in results]
    scores = (collect(results, pair, "test", mode, "f1", scorer) for pair in pairs)
    return [pair[0] - pair[1] for pair in scores if len(pair) == 2]  # both runs scored under ``scorer``


def effect_cells(results: dict, runs: list[Run], rin_runs: list[Run], mode: str, paper: float | None,
                 paper_rin: float | None, scorer: str = "ours") -> tuple[str, str]:
    """The 'ours - RIN' and 'paper - RIN' cells of a row; "-" on RIN's own row."""
    if runs == rin_runs:
        return "-", "-"
    paper_effect = "-" if paper is None or paper_rin is None else f"{paper - paper_rin:+.1f}"
    return cell(paired_effects(results, runs, rin_runs, mode, scorer), signed=True), paper_effect


MIXED = "not judged: its runs were trained on different data or hyperparameters"


def verdict(gap: float, half_width: float | None, count: int) -> str:
    """'consistent' or 'differs', with the half-width of the range it was judged by."""
    if half_width is None:
        return "one seed: no spread yet"
    if count < LEAST_SEEDS:
        return f"{count} seeds: too few to judge"
    return f"{'differs' if abs(gap) > half_width else 'consistent'} (± {half_width:.2f})"


def status_lines(dataset: str, seeds: list[int], results: dict) -> list[str]:
    """Each cell of Tables 1 and 5 against the paper: consistent (inside the 95% range of one more of our runs),
    differs, or not judged yet; then each row's effect (its F1 minus RIN's) against the paper's difference, with
    the spreads of both rows counted (:func:`effect_range`)."""
    paper = paper_numbers(dataset)
    cells = [(f"Table 1, {match}, {label}", [table1_rows(dataset, match, s)[label] for s in seeds], match,
              paper.get((match, label), (None,) * 3)[2], [table1_rows(dataset, match, s)["RIN"] for s in seeds],
              paper.get((match, "RIN"), (None,) * 3)[2])
             for match in ("partial", "exact") for label in ("RIN", "w/o interaction")]
    cells += [(f"Table 5, {label}", [ablations(dataset, s)[label] for s in seeds], "exact",
               paper.get(("table5", label)), [ablations(dataset, s)["RIN"] for s in seeds],
               paper.get(("table5", "RIN"))) for label in ("w/o ER", "w/o RC", "w/o POS")]
    lines = ["## Status against the paper", "",
             "Test F1 of our scorer. 'consistent' means the paper's figure could be one more run of ours: it lies "
             "inside the 95% prediction interval of our seeds, mean ± t(0.975, n - 1) · std · √(1 + 1/n) (the ± "
             f"shown; judged from {LEAST_SEEDS} seeds on); 'differs' means outside it. In the tables below, * after "
             "a difference from the paper (any counting) marks the same 'differs'. With a dozen verdicts at 95% "
             "each, one 'differs' among them is about as likely as not by chance alone.", "",
             "| cell | seeds | ours - paper | verdict |", "|---|---|---|---|"]
    effects = ["", "Each row's effect: its test F1 minus that of RIN with the same seed (ours: mean ± std over the "
               "seeds where both finished) against the paper's difference of its two figures, judged as two "
               "independent runs: 95% range t(0.975, n - 1) · √(std_effect² / n + std_row² + std_RIN²), the row's "
               "and RIN's spreads over their seeds.", "",
               "| effect | seed pairs | ours | paper | ours - paper | verdict |", "|---|---|---|---|---|---|"]
    for title, runs, match, paper_f1, rin_runs, paper_rin in cells:
        mean, std, count = aggregate(collect(results, runs, "test", match, "f1"))
        planned = planned_seeds(results, runs)
        if mean is None:
            lines.append(f"| {title} | 0 of {planned} | | not run yet |")
        elif paper_f1 is None:
            lines.append(f"| {title} | {count} of {planned} | | the paper has no number here |")
        else:
            gap = mean - paper_f1
            judged = MIXED if mixed(results, runs) else verdict(
                gap, None if std is None else one_run_range(std, count), count)
            lines.append(f"| {title} | {count} of {planned} | {gap:+.1f} | {judged} |")
        if rin_runs == runs:
            continue
        differences = paired_effects(results, runs, rin_runs, match)
        mean, std, count = aggregate(differences)
        pairs = planned_seeds(results, runs, rin_runs)
        if mean is None:
            known = "" if paper_f1 is None or paper_rin is None else f"{paper_f1 - paper_rin:+.1f}"
            effects.append(f"| {title} - RIN | 0 of {pairs} | | {known} | | not run yet |")
            continue
        if paper_f1 is None or paper_rin is None:
            effects.append(f"| {title} - RIN | {count} of {pairs} | {cell(differences, signed=True)} | | | "
                           "the paper has no number here |")
            continue
        gap = mean - (paper_f1 - paper_rin)
        row_std, rin_std = (aggregate(collect(results, group, "test", match, "f1"))[1] for group in (runs, rin_runs))
        spread = None if None in (std, row_std, rin_std) else effect_range(std, count, row_std, rin_std)
        judged = MIXED if mixed(results, runs + rin_runs) else verdict(gap, spread, count)
        effects.append(f"| {title} - RIN | {count} of {pairs} | {cell(differences, signed=True)} "
                       f"| {paper_f1 - paper_rin:+.1f} | {gap:+.1f} | {judged} |")
    return [*lines, *effects, ""]


def annotation_lines(results_dir: Path, names: list[str]) -> list[str]:
    """Which prepared data the finished runs trained on (train.json and word-vector checksums) and how far its
    entity-span recovery agrees with the official test (prepare_data.py's rebuilt-test comparison)."""
    # what a second version of each file means for the tables
    meaning = {"train.json": "**the runs above were trained on differently prepared data: do not average them**",
               "embedding.npy": "the word vectors differ between runs (e.g. word2vec trained on an AVX-512 CPU before "
                                "prepare_vocab.py pinned OpenBLAS's AVX2 kernels, see dataset/README.md): part of "
                                "a run's random initialisation, like its seed"}
    versions = {file: Counter() for file in meaning}
    agreement = None
    for name in names:
        folder = results_dir / "runs" / name
        config = read_json(folder / "config.json") if (folder / "config.json").exists() else {}
        for file, counts in versions.items():
            counts[(recorded_sha256(config, file) or "not recorded")[:12]] += 1
        if (folder / "prepare_report.json").exists():
            agreement = read_json(folder / "prepare_report.json").get("rebuilt_test_vs_official") or agreement
    if not names:
        return []
    lines = ["## Training data and its entity spans", ""]
    for file, counts in versions.items():
        lines += [f"- {file} SHA-256 `{digest}`: {count} run{'s' * (count != 1)}"
                  for digest, count in sorted(counts.items())]
        lines += [f"- {meaning[file]}"] if len(counts) > 1 else []
    if agreement:
        exact = agreement.get("exact_triples", {}).get("f1")
        lines += ["", f"The same span recovery applied to WebNLG* test agrees with the official test annotation on "
                  f"{100 * agreement['entity_recall']:.1f}% of entities"
                  + (f"; scored as predictions against the official test, the rebuilt triples reach "
                     f"{100 * exact:.1f} exact-match F1 ({100 * agreement['partial_triples']['f1']:.1f} partial): "
                     "the exact-match ceiling of a model that learned our train annotation perfectly"
                     if exact is not None else "")
                  + ". Rebuilt with `prepare_data.py`; see `rebuilt_test_vs_official` in a run's "
                  "prepare_report.json."]
    return [*lines, ""]


def data_folder(recorded: str) -> str:
    """A run's data folder as the project names it: runs from before train.py recorded project-relative paths
    hold the absolute path of the clone they ran in (e.g. /home/x/rin/dataset/webnlg)."""
    path = Path(recorded)
    return f"dataset/{path.name}" if path.is_absolute() and path.parent.name == "dataset" else recorded


def other_hyperparameters(settings: dict) -> dict:
    """The settings of a run that differ from its preset (presets/<dataset>.json: Table 3's lr and epochs) and
    the defaults (TrainConfig, RINConfig: batch, clipping, dropout, sizes); K and the ablations are in its name."""
    defaults = field_defaults(TrainConfig) | field_defaults(RINConfig)
    expected = {key: defaults[key] for key in HYPERPARAMETERS}
    expected |= {key: value for key, value in preset(settings.get("dataset"), settings.get("match")).items()
                 if key in expected}
    return {key: settings[key] for key, value in expected.items()  # None: not given (emb_dim: the vectors' size)
            if settings.get(key) is not None and settings[key] != value}


# what each version of the loader's reading of relation arguments means for exact-match scores
READINGS = {1: "reading 1, before 2026-12-07 (in whole-entity files a word that en_list names by itself could be "
               "widened to the longer entity ending on it; what that changed, dataset by dataset: "
               "[NOTES-2026-12-07.md](NOTES-2026-12-07.md))",
            2: "reading 2, since 2026-12-07"}


def protocol_lines(results_dir: Path, names: list[str]) -> list[str]:
    """How the finished runs were trained, counted from their configs: which split chose the checkpoint, the
    early-stopping patience, the datasets. Why numbers may differ from the paper's is for the dated notes."""
    hyper = "hyperparameters other than Table 3's and the defaults (reproduce.py --train_args)"
    reading = "relation arguments located by (data/loader.py MENTION_READING)"
    counts: dict[str, Counter] = {"best epoch chosen on": Counter(), "early-stopping patience (epochs; 0 = none)":
                                  Counter(), "data": Counter(), hyper: Counter(), reading: Counter()}
    for name in names:
        path = results_dir / "runs" / name / "config.json"
        version = mention_reading(path.parent)
        counts[reading][READINGS.get(version, "not recorded" if version is None else f"reading {version} (resumed "
                                     "across a change of reading: [NOTES-2026-12-07.md](NOTES-2026-12-07.md))")] += 1
        if not path.exists():  # a summary without its config.json: nothing else of how it was trained is known
            for what in counts.keys() - {reading}:
                counts[what]["not recorded"] += 1
            continue
        settings = run_settings(path, advice=DAMAGED)
        counts["best epoch chosen on"][settings.get("select_on", "not recorded")] += 1
        counts["early-stopping patience (epochs; 0 = none)"][str(settings.get("early_stop", "not recorded"))] += 1
        counts["data"][data_folder(settings.get("data_dir", "not recorded"))] += 1
        counts[hyper][", ".join(f"{key} {value}" for key, value in other_hyperparameters(settings).items())
                      or ("none" if settings else "not recorded")] += 1
    lines = ["How the runs below were trained, from their config.json (interpretation and history: the dated "
             "NOTES files beside this report):", ""]
    for what, counter in counts.items():
        lines.append(f"- {what}: " + ", ".join(f"{value} ({count} run{'s' * (count != 1)})"
                                              for value, count in sorted(counter.items())))
    return lines


def selection_lines(dataset: str, results: dict, always: bool) -> list[str]:
    """Test F1 of the runs selected on dev beside their twins selected on test; left out unless ``always`` or
    some twin has finished."""
    pairs = [(match, label, run, Run(**{**run.__dict__, "select_on": "test"})) for match in ("partial", "exact")
             for label, run in table1_rows(dataset, match, TEST_SELECTION_SEED).items()]
    if not always and not any(test_run.name in results for *_, test_run in pairs):
        return []
    lines = ["", f"## Selection on dev vs. on test (the official code's protocol), seed {TEST_SELECTION_SEED}, "
             "test F1", "", "Each column is its own training run with the same seed.", "",
             "| match | model | selected on dev | selected on test |", "|---|---|---|---|"]
    for match, label, run, test_run in pairs:
        lines.append(f"| {match} | {label} | {cell(collect(results, [run], 'test', match, 'f1'))} | "
                     f"{cell(collect(results, [test_run], 'test', match, 'f1'))} |")
    return lines


def ablation_lines(dataset: str, seeds: list[int], results: dict, paper: dict) -> list[str]:
    """Table 5 (exact match); left out where the paper has no numbers and no ablation run has finished."""
    only_ablations = [ablations(dataset, s)[label] for s in seeds for label in ("w/o ER", "w/o RC", "w/o POS")]
    if not paper and not any(run.name in results for run in only_ablations):
        return []
    lines = ["", f"## Table 5 ({dataset}, exact match F1)", "",
             "| model | seeds | F1 (ours) | F1 (official counting) | paper | diff | ours - RIN | paper - RIN |",
             "|---|---|---|---|---|---|---|---|"]
    rin_runs = [ablations(dataset, s)["RIN"] for s in seeds]
    for label in ("RIN", "w/o ER", "w/o RC", "w/o interaction", "w/o POS"):
        runs = [ablations(dataset, s)[label] for s in seeds]
        ours = collect(results, runs, "test", "exact", "f1")
        official = collect(results, runs, "test", "exact", "f1", "official")
        reference = paper.get(("table5", label))
        effects = effect_cells(results, runs, rin_runs, "exact", reference, paper.get(("table5", "RIN")))
        lines.append(f"| {label} | {len(ours)} | {cell(ours)} | {cell(official)} | "
                     f"{'-' if reference is None else reference} | {diff(ours, reference, not mixed(results, runs))} | "
                     f"{' | '.join(effects)} |")
    return lines


def render_report(dataset: str, seeds: list[int], results_dir: Path) -> str:
    results = load_results(results_dir)
    own = sorted(name for name in results if run_dataset(name) == dataset)
    paper = paper_numbers(dataset)
    lines = [f"# Reproduction: {dataset}", "",
             "Generated by `python reproduce.py --report`; every number below is read from the run summaries "
             "in `runs/` (test split, best checkpoint selected on **dev** F1 of the run's match mode unless "
             "said otherwise). Mean ± sample standard deviation over the seeds that have finished; "
             "'(1 seed)' means no spread yet. Scores in percent. The 'ours - RIN' columns hold a row's effect "
             "rather than its score (its F1 minus RIN's, paired by seed; see the effect table below).", "",
             *protocol_lines(results_dir, own), ""]
    if paper:
        lines += status_lines(dataset, seeds, results)
    else:
        lines += ["The paper reports no figures on this dataset, so its tables below show ours alone; sections "
                  "with no finished run (ablations, selection on test) are left out.", ""]
    lines += published_lines(dataset, seeds, results)
    lines += annotation_lines(results_dir, own)
    titles = {"ours": "our scorer (positions: unique triples)", "official": "the official cell counting",
              "strings": "strings: sets of (subject, relation, object) texts, CasRel/TPLinker/PRGC"}
    for scorer, title in titles.items():
        lines += [f"## Table 1 ({dataset}), {title}", ""]
        if scorer == "strings":
            scored = sum("string_sets" in results[name] for name in own)
            lines += [f"{scored} of {len(own)} finished runs carry string-set scores (runs trained before "
                      "train.py wrote them have none; 'not run yet' below means no such run). The paper counts by "
                      "positions, so 'F1 diff' and its * set two countings side by side: strings score about 2 F1 "
                      "higher on the same predictions ([NOTES-2026-12-07-strings.md](NOTES-2026-12-07-strings.md)).",
                      ""]
        lines += [
                  "| match | model | seeds | P | R | F1 | paper P / R / F1 | F1 diff | ours - RIN | paper - RIN |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for match in ("partial", "exact"):
            rin_runs = [table1_rows(dataset, match, s)["RIN"] for s in seeds]
            for label in ("RIN", "w/o interaction"):
                runs = [table1_rows(dataset, match, s)[label] for s in seeds]
                values = {m: collect(results, runs, "test", match, m, scorer) for m in ("precision", "recall", "f1")}
                reference = paper.get((match, label), (None, None, None))
                shown = " / ".join("-" if v is None else f"{v:.1f}" for v in reference)
                effects = effect_cells(results, runs, rin_runs, match, reference[2],
                                       paper.get((match, "RIN"), (None,) * 3)[2], scorer)
                lines.append(f"| {match} | {label} | {len(values['f1'])} | {cell(values['precision'])} | "
                             f"{cell(values['recall'])} | {cell(values['f1'])} | {shown} | "
                             f"{diff(values['f1'], reference[2], not mixed(results, runs))} | "
                             f"{' | '.join(effects)} |")
        lines.append("")
    lines += ["## Dev vs. test, F1 of the run's match mode", "",
              "Dev entity spans come from the same annotation as train; test spans are those of the test file "
              "(for webnlg, the authors' own annotation).", "",
              "| match | model | seeds | dev F1 | test F1 |", "|---|---|---|---|---|"]
    for match in ("partial", "exact"):
        for label in ("RIN", "w/o interaction"):
            runs = [table1_rows(dataset, match, s)[label] for s in seeds]
            dev, test = (collect(results, runs, split, match, "f1") for split in ("dev", "test"))
            lines.append(f"| {match} | {label} | {len(test)} | {cell(dev)} | {cell(test)} |")
    lines += selection_lines(dataset, results, always=bool(paper))
    lines += ablation_lines(dataset, seeds, results, paper)
    curves = {match: figure_scores(dataset, match, seeds, results) for match in ("partial", "exact")}
    common = {match: common_seeds(scores) for match, scores in curves.items()}
    figure = draw_figure(dataset, curves, common, results_dir)
    lines += ["", f"## Figure 3 ({dataset}): F1 against the number of interaction layers K", "",
              "Test F1 of each match mode's own runs. The lines join the mean over the seeds that every K drawn "
              "has finished, so each step in K compares the same seeds; the hollow markers are the mean ± std "
              "over every finished seed of a K, which some K (those of Tables 1 and 5) have more of.", ""]
    lines += [f"![F1 against K]({figure.name})", ""] if figure else ["No finished runs for the figure yet.", ""]
    lines += [f"| K | partial F1, {seed_list(common['partial'])} | partial F1, all seeds "
              f"| exact F1, {seed_list(common['exact'])} | exact F1, all seeds |", "|---|---|---|---|---|"]
    for rounds in FIGURE_ROUNDS:
        cells = []
        for match in ("partial", "exact"):
            scores = curves[match].get(rounds, {})
            cells += [cell([scores[s] for s in common[match] if s in scores]), cell(list(scores.values()))]
        lines.append(f"| {rounds} | {' | '.join(cells)} |")
    lines += comparison_lines(dataset, seeds, results_dir, results)
    lines += mention_lines(dataset, results_dir, results)
    finished = own
    running = sorted(p.name for p in (results_dir / "runs").glob(f"{dataset}_*")
                     if run_dataset(p.name) == dataset and p.name not in results and (p / "metrics.jsonl").exists())
    if running:
        lines += ["", "## Unfinished runs",
                  "(resumed from saved_models/ where that folder survives; a fresh clone restarts them)", ""]
        for name in running:
            lines.append(f"- {name}: {epochs_done(results_dir / 'runs' / name)} epochs done")
    walls = [results[r]["wall_seconds"] for r in finished if results[r].get("wall_seconds")]
    lines += ["", "## Runs", "", f"{len(finished)} finished runs; wall time per run (its epochs' training and "
              "evaluation, summed over sessions; threads per run in each run's runner.json) "
              + (f"{min(walls) / 60:.0f}-{max(walls) / 60:.0f} min." if walls else "not recorded.") + " A run is "
              "named `<dataset>_<match>_K<rounds>[_noER|_noRC|_noPOS|_testsel]_seed<seed>` (experiments/plan.py "
              f"run_name): `{run_name(dataset, 'exact', 3, 1)}` trains on {dataset} with exact match.", "",
              "| run | best epoch | epochs run | test partial F1 | test exact F1 | wall min |",
              "|---|---|---|---|---|---|"]
    for name in finished:
        r = results[name]
        wall = f"{r['wall_seconds'] / 60:.0f}" if r.get("wall_seconds") else "-"
        lines.append(f"| {name} | {r['best_epoch']} | {r.get('epochs_run', '-')} "
                     f"| {100 * r['test']['partial']['f1']:.1f} | {100 * r['test']['exact']['f1']:.1f} | {wall} |")
    return "\n".join(lines) + "\n"


def figure_scores(dataset: str, match: str, seeds: list[int], results: dict) -> dict[int, dict[int, float]]:
    """Figure 3's finished runs of one match mode: K -> {seed: test F1 of that match mode}."""
    found: dict[int, dict[int, float]] = {}
    for rounds in FIGURE_ROUNDS:
        for seed in seeds:
            score = collect(results, [Run(dataset, match, rounds, seed)], "test", match, "f1")
            if score:
                found.setdefault(rounds, {})[seed] = score[0]
    return found


def common_seeds(scores: dict[int, dict[int, float]]) -> list[int]:
    """The seeds every K with a finished run has: a curve over them compares the same seeds at each K."""
    seed_sets = [set(by_seed) for by_seed in scores.values()]
    return sorted(set.intersection(*seed_sets)) if seed_sets else []


def seed_list(seeds: list[int]) -> str:
    if not seeds:
        return "no seed in common"
    return f"seed{'s' * (len(seeds) > 1)} {', '.join(map(str, seeds))}"


def draw_figure(dataset: str, curves: dict[str, dict[int, dict[int, float]]], common: dict[str, list[int]],
                results_dir: Path) -> Path | None:
    """Per match mode: a line through the mean over the seeds all K share, hollow markers with error bars for
    the mean ± std over every finished seed of each K (so a run off the line still shows), and the paper's
    Table 1 points (its K = 0 and preset K)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    paper = paper_numbers(dataset)
    for match, colour in (("partial", "tab:blue"), ("exact", "tab:red")):
        scores, seeds = curves[match], common[match]
        if seeds:
            xs = sorted(scores)
            ax.plot(xs, [aggregate([scores[k][s] for s in seeds])[0] for k in xs], marker="o", color=colour,
                    label=f"ours, {match}, {seed_list(seeds)}")
        spread = {k: aggregate(list(by_seed.values())) for k, by_seed in scores.items()}
        if spread:
            xs = sorted(spread)
            ax.errorbar(xs, [spread[k][0] for k in xs], yerr=[spread[k][1] or 0.0 for k in xs], fmt="o", mfc="none",
                        color=colour, capsize=3, label=f"ours, {match}, all seeds (mean ± std)")
        paper_points = [(0, paper.get((match, "w/o interaction"), (None,) * 3)[2]),
                        (preset_rounds(dataset, match), paper.get((match, "RIN"), (None,) * 3)[2])]
        paper_points = [(k, v) for k, v in paper_points if v is not None]
        if paper_points:
            xs, ys = zip(*paper_points, strict=True)
            ax.scatter(xs, ys, marker="*", s=120, color=colour, label=f"paper, {match} (Tables 1/5)")
    if not any(curves.values()):
        plt.close(fig)
        return None
    ax.set_xticks(list(FIGURE_ROUNDS))  # the whole range of Figure 3, so the values of K not yet run show
    ax.set_xlabel("interaction layers K")
    ax.set_ylabel("test F1 (%)")
    ax.set_title(f"{dataset}: F1 against K")
    ax.legend(fontsize=7)
    path = results_dir / f"figure3_{dataset}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def planned_seeds(results: dict, runs: list[Run], rin_runs: list[Run] | None = None) -> int:
    """The seeds a row (``runs``, one per report seed) is measured against: the paper's five, and any other seed
    it has finished (an effect row: with its RIN run), so one cell's extra seeds leave the others complete."""
    return sum(run.seed in PAPER_SEEDS or run.name in results and (rin_runs is None or rin.name in results)
               for run, rin in zip(runs, rin_runs or runs, strict=True))


def report_seeds(dataset: str, results_dir: Path) -> list[int]:
    """The seeds a report covers: the paper's five and every seed with a finished summary, whichever seeds the
    runner that writes it was asked for (a seed that never finished would only add 'not run yet' cells)."""
    finished = {int(found.group("seed")) for folder in (results_dir / "runs").glob(f"{dataset}_*/results.json")
                if (found := RUN_NAME.fullmatch(folder.parent.name)) and found.group("dataset") == dataset}
    return sorted(set(PAPER_SEEDS) | finished)


def headline_table(dataset: str, results_dir: Path) -> str:
    """README.md's results table: test F1 of Table 1's rows and Table 5's ablations, mean ± std over the report's
    seeds, beside the paper's: by our scorer (the paper's counting), and by strings (CasRel's, TPLinker's and
    PRGC's) over the runs that carry string-set scores."""
    seeds, results, paper = report_seeds(dataset, results_dir), load_results(results_dir), paper_numbers(dataset)

    def ours(runs: list[Run], match: str) -> str:
        scores, planned = collect(results, runs, "test", match, "f1"), planned_seeds(results, runs)
        return cell(scores) + (f" ({len(scores)} of {planned} seeds)" if 1 < len(scores) < planned
                               else f" ({len(scores)} seeds)" if len(scores) > len(PAPER_SEEDS) else "")

    def strings(runs: list[Run], match: str) -> str:
        scores = collect(results, runs, "test", match, "f1", "strings")
        return f"{cell(scores)}{f' ({len(scores)} seeds)' if len(scores) > 1 else ''}" if scores else "-"

    lines = [f"| setting (Table 1 / Table 5) | paper | ours (mean ± std, {len(PAPER_SEEDS)} seeds unless said) | ours, "
             "counted by strings |", "|---|---|---|---|"]
    for match in ("partial", "exact"):
        for label in ("RIN", "w/o interaction"):
            runs = [table1_rows(dataset, match, seed)[label] for seed in seeds]
            name = f"{label} (K={runs[0].rounds})" if label == "RIN" else label
            reference = paper.get((match, label), (None,) * 3)[2]
            lines.append(f"| {match} match, {name} | {'-' if reference is None else reference} | "
                         f"{ours(runs, match)} | {strings(runs, match)} |")
    labels = ("w/o ER", "w/o RC", "w/o POS")
    references = " / ".join(str(paper.get(("table5", label), "-")) for label in labels)
    runs = [[ablations(dataset, seed)[label] for seed in seeds] for label in labels]
    lines.append(f"| exact match, {' / '.join(labels)} | {references} | "
                 f"{' / '.join(ours(r, 'exact') for r in runs)} | {' / '.join(strings(r, 'exact') for r in runs)} |")
    return "\n".join(lines) + "\n"


def refresh_readme(results_dir: Path, readme: Path = PROJECT_ROOT / "README.md") -> bool:
    """Rewrite README.md's results table (a generated block naming its dataset) from ``results_dir``; whether it
    changed."""
    def render(block: Block) -> str:
        number, dataset = block.head
        if not preset_file(dataset).exists():
            raise InputError(f"{block.where(number)}: {dataset!r} is no dataset with a preset (presets/NAME.json)")
        return headline_table(dataset, results_dir)

    return readme.is_file() and refresh(readme, OWNER, render)


def write_report(dataset: str, results_dir: Path) -> Path:
    """results/README.md: the report of every dataset with runs in results/runs (in name order), so a runner
    started for one dataset keeps the others' tables; of ``dataset`` alone, all 'not run yet', where none has."""
    results_dir.mkdir(parents=True, exist_ok=True)
    found = {run_dataset(folder.name) for folder in (results_dir / "runs").glob("*") if folder.is_dir()} - {None}
    datasets = []
    for name in sorted(found):
        if preset_file(name).exists():
            datasets.append(name)
        else:
            log.warning("results/runs holds runs of %s, which has no presets/%s.json: left out of the report",
                        name, name)
    if dataset not in datasets:
        log.info("%s has no runs in %s%s", dataset, results_dir / "runs",
                 ": its tables are left out of the report" if datasets else "")
        datasets = datasets or [dataset]
    reports = [render_report(name, report_seeds(name, results_dir), results_dir) for name in datasets]
    path = results_dir / "README.md"
    path.write_text("\n".join(reports), encoding="utf-8")
    log.info("wrote %s (%s)", path, ", ".join(sorted(datasets)))
    if results_dir.resolve() == (PROJECT_ROOT / "results").resolve() and refresh_readme(results_dir):
        log.info("rewrote the results table of README.md")
    return path


