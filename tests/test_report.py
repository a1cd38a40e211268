"""The report: aggregates (hand-computed), effects paired by seed, the status verdicts, the figure."""
import json
import re

import pytest

from data.loader import MENTION_READING
from experiments.plan import PUBLISHED
from experiments.report import (
    READINGS,
    aggregate,
    cell,
    comparison_lines,
    data_folder,
    diff,
    effect_range,
    mention_lines,
    one_run_range,
    reading_lines,
    render_report,
    report_seeds,
    verdict,
    write_report,
)
from utils.errors import InputError
from utils.project import PROJECT_ROOT


def test_aggregate_by_hand():
    mean, std, count = aggregate([0.8, 0.9, 1.0])
    assert (round(mean, 6), round(std, 6), count) == (90.0, 10.0, 3)
    assert aggregate([0.5]) == (50.0, None, 1)
    assert cell([0.8, 0.9, 1.0]) == "90.0 ± 10.0"
    assert cell([]) == "not run yet"
    # * marks a paper figure outside the 95% range of one more run: 90 ± 4.303 * 10 * sqrt(4/3) = 90 ± 49.7
    assert diff([0.8, 0.9, 1.0], 40.0) == "+50.0 *" and diff([0.8, 0.9, 1.0], 40.4) == "+49.6"
    assert diff([0.8, 0.9, 1.0], 40.0, judged=False) == "+50.0"  # seeds of different settings: no verdict
    assert diff([0.8, 1.0], 10.0) == "+80.0"  # two seeds: too few
    assert diff([0.8], 75.0) == "+5.0"


def fake_result(folder, name, partial_f1, exact_f1, dev_gain=0.0, train_sha="a" * 64):
    run = folder / "runs" / name
    run.mkdir(parents=True)

    def scores(gain):
        return {mode: {"precision": f + gain, "recall": f + gain, "f1": f + gain}
                for mode, f in (("partial", partial_f1), ("exact", exact_f1))}
    run.joinpath("results.json").write_text(json.dumps({
        "dev": scores(dev_gain), "test": scores(0), "official_scorer": {"dev": scores(dev_gain), "test": scores(0)},
        "best_epoch": 3, "selected_on": "dev", "epochs_run": 5}))
    run.joinpath("config.json").write_text(json.dumps({"data_sha256": {"train.json": train_sha,
                                                                      "embedding.npy": "c" * 64}}))
    run.joinpath("prepare_report.json").write_text(json.dumps({"rebuilt_test_vs_official": {
        "entity_recall": 0.875, "partial_triples": {"f1": 0.95}, "exact_triples": {"f1": 0.765}}}))


def test_report_and_figure(tmp_path):
    for seed, f1 in ((1, 0.86), (2, 0.88)):
        fake_result(tmp_path, f"webnlg_partial_K2_seed{seed}", f1, f1 - 0.1)
        fake_result(tmp_path, f"webnlg_exact_K3_seed{seed}", f1, f1 - 0.1, dev_gain=0.05)
    fake_result(tmp_path, "webnlg_partial_K5_seed1", 0.8, 0.7, train_sha="b" * 64)
    # ablation effects are paired by seed: K0 - K3 is -3 (seed 1) and -1 (seed 2); seed 3 of w/o ER has no RIN
    fake_result(tmp_path, "webnlg_exact_K0_seed1", 0.8, 0.73)
    fake_result(tmp_path, "webnlg_exact_K0_seed2", 0.8, 0.77)
    fake_result(tmp_path, "webnlg_exact_K3_noER_seed2", 0.8, 0.79)
    fake_result(tmp_path, "webnlg_exact_K3_noER_seed3", 0.8, 0.5)
    # two sessions' epochs: (100 + 20) + (150 + 30) s = 5 min, whatever runner.json recorded
    epochs = [{"epoch": 1, "train_seconds": 100, "eval_seconds": 20}, {"epoch": 2, "train_seconds": 150,
                                                                       "eval_seconds": 30}]
    (tmp_path / "runs" / "webnlg_partial_K5_seed1" / "metrics.jsonl").write_text(
        "".join(json.dumps(e) + "\n" for e in epochs))
    path = write_report("webnlg", tmp_path)
    report = path.read_text()
    assert "| webnlg_partial_K5_seed1 | 3 | 5 | 80.0 | 70.0 | 5 |" in report
    assert "`webnlg_exact_K3_seed1` trains on webnlg with exact match" in report  # not on webnlg_exact
    assert "| partial | RIN | 2 | 87.0 ± 1.4 | 87.0 ± 1.4 | 87.0 ± 1.4 | 87.6 / 87.0 / 87.3 | -0.3 |" in report
    assert "| RIN | 2 | 77.0 ± 1.4 | 77.0 ± 1.4 | 77.0 | +0.0 | - | - |" in report
    assert "| w/o interaction | 2 | 75.0 ± 2.8 | 75.0 ± 2.8 | 74.2 | +0.8 | -2.0 ± 1.4 | -2.8 |" in report
    assert "| w/o ER | 2 | 64.5 ± 20.5 | 64.5 ± 20.5 | 76.4 | -11.9 | +1.0 (1 seed) | -0.6 |" in report
    assert ("| exact | w/o interaction | 2 | 75.0 ± 2.8 | 75.0 ± 2.8 | 75.0 ± 2.8 | 75.0 / 73.3 / 74.2 | +0.8 "
            "| -2.0 ± 1.4 | -2.8 |") in report
    # Figure 3: the curve over the seeds every K has (partial: K2 has 1 and 2, K5 only 1), beside all seeds
    assert "| K | partial F1, seed 1 | partial F1, all seeds | exact F1, seeds 1, 2 | exact F1, all seeds |" in report
    assert "| 0 | not run yet | not run yet | 75.0 ± 2.8 | 75.0 ± 2.8 |" in report
    assert "| 2 | 86.0 (1 seed) | 87.0 ± 1.4 | not run yet | not run yet |" in report
    assert "| 5 | 80.0 (1 seed) | 80.0 (1 seed) | not run yet | not run yet |" in report
    assert (tmp_path / "figure3_webnlg.png").stat().st_size > 1000
    # dev next to test (exact RIN: dev 0.05 above test), the data versions, the span-recovery ceiling
    assert "| exact | RIN | 2 | 82.0 ± 1.4 | 77.0 ± 1.4 |" in report
    assert "| partial | RIN | 2 | 87.0 ± 1.4 | 87.0 ± 1.4 |" in report
    assert f"- train.json SHA-256 `{'a' * 12}`: 8 runs" in report and f"`{'b' * 12}`: 1 run\n" in report
    assert "do not average them" in report
    assert f"- embedding.npy SHA-256 `{'c' * 12}`: 9 runs" in report and "word vectors differ" not in report
    # the status: two seeds are too few to judge (t(0.975, 1) = 12.7); cells with no run named as such
    assert "| Table 1, partial, RIN | 2 of 5 | -0.3 | 2 seeds: too few to judge |" in report
    assert "| Table 5, w/o RC | 0 of 5 | | not run yet |" in report
    # how the runs were trained, counted from their configs
    assert "- best epoch chosen on: not recorded (" in report
    # the effects judged the same way: -2.0 ± 1.4 against the paper's -2.8
    assert "| Table 1, exact, w/o interaction - RIN | 2 of 5 | -2.0 ± 1.4 | -2.8 | +0.8 | 2 seeds: too few to " \
        "judge |" in report
    assert "| Table 5, w/o ER - RIN | 1 of 5 | +1.0 (1 seed) | -0.6 | +1.6 | one seed: no spread yet |" in report
    assert "| Table 5, w/o RC - RIN | 0 of 5 | | -1.0 | | not run yet |" in report  # the paper's known all the same
    assert "the defaults (reproduce.py --train_args): not recorded (" in report  # configs without settings
    assert "87.5% of entities" in report and "76.5 exact-match F1 (95.0 partial)" in report
    # word vectors from another machine: counted and named, but not a reason to stop averaging
    config = tmp_path / "runs" / "webnlg_exact_K3_noER_seed3" / "config.json"
    config.write_text(json.dumps({"data_sha256": {"train.json": "a" * 64, "embedding.npy": "d" * 64}}))
    report = write_report("webnlg", tmp_path).read_text()
    assert f"`{'c' * 12}`: 8 runs" in report and f"- embedding.npy SHA-256 `{'d' * 12}`: 1 run\n" in report
    assert "word vectors differ between runs" in report


def test_the_verdict_is_the_95_percent_range_of_one_more_run():
    """Five seeds with std 0.5: t(0.975, 4) * 0.5 * sqrt(1 + 1/5) = 2.776 * 0.5 * 1.095 = 1.52 either side. An
    effect (paired by seed, std 0.4 over 5 seeds) against the paper's difference of two independent runs (our
    rows' stds 0.8 and 0.7): 2.776 * sqrt(0.16 / 5 + 0.64 + 0.49) = 2.776 * 1.078 = 2.99."""
    assert round(one_run_range(0.5, 5), 4) == 1.5207
    assert round(effect_range(0.4, 5, 0.8, 0.7), 4) == 2.9929
    assert verdict(1.5, one_run_range(0.5, 5), 5) == "consistent (± 1.52)"
    assert verdict(-1.6, one_run_range(0.5, 5), 5) == "differs (± 1.52)"
    assert verdict(0.1, 0.0, 3) == "differs (± 0.00)"  # identical seeds: only the exact figure fits
    assert verdict(0.1, None, 1) == "one seed: no spread yet"
    assert verdict(30.0, 5.0, 2) == "2 seeds: too few to judge"


def test_a_cell_of_runs_on_different_data_or_hyperparameters_is_not_judged(tmp_path):
    """A spread over seeds trained on different data (or with another lr) is no spread of one setting: such a
    cell is not judged, however wide its spread; a summary copied under another seed's name is refused (it
    would count as a second seed)."""
    fake_result(tmp_path, "webnlg_partial_K2_seed1", 0.87, 0.77)
    fake_result(tmp_path, "webnlg_partial_K2_seed2", 0.05, 0.05, train_sha="b" * 64)  # other data: a wide spread
    fake_result(tmp_path, "webnlg_partial_K2_seed3", 0.87, 0.77)
    report = write_report("webnlg", tmp_path).read_text()
    assert ("| Table 1, partial, RIN | 3 of 5 | -27.6 | not judged: its runs were trained on different data or "
            "hyperparameters |") in report
    assert "| partial | RIN | 3 | 59.7 ± 47.3 | 59.7 ± 47.3 | 59.7 ± 47.3 | 87.6 / 87.0 / 87.3 | -27.6 |" in report
    (tmp_path / "runs" / "webnlg_partial_K2_seed1" / "config.json").write_text(json.dumps({
        "data_sha256": {"train.json": "a" * 64}, "settings": {"dataset": "webnlg", "match": "partial"}}))
    config = tmp_path / "runs" / "webnlg_partial_K2_seed2" / "config.json"
    config.write_text(json.dumps({"data_sha256": {"train.json": "a" * 64}, "settings": {
        "dataset": "webnlg", "match": "partial", "lr": 0.01, "run_id": "webnlg_partial_K2_seed2"}}))
    assert "| Table 1, partial, RIN | 3 of 5 | -27.6 | not judged" in write_report("webnlg", tmp_path).read_text()
    config.write_text(json.dumps({"data_sha256": {"train.json": "a" * 64}, "settings": {
        "dataset": "webnlg", "match": "partial", "lr": 0.0005, "run_id": "webnlg_partial_K2_seed2"}}))
    assert "| Table 1, partial, RIN | 3 of 5 | -27.6 | consistent (± 235.21) |" in write_report(
        "webnlg", tmp_path).read_text()  # the same data and Table 3's lr: one setting, judged (its spread is wide)
    config.write_text(config.read_text().replace('"run_id": "webnlg_partial_K2_seed2"',
                                                 '"run_id": "webnlg_partial_K2_seed1"'))
    with pytest.raises(InputError, match="the summary of run 'webnlg_partial_K2_seed1', not of "
                                         "'webnlg_partial_K2_seed2'"):
        write_report("webnlg", tmp_path)
    config.unlink()  # what is not recorded is not taken for a difference
    assert "| Table 1, partial, RIN | 3 of 5 | -27.6 | consistent (± 235.21) |" in write_report(
        "webnlg", tmp_path).read_text()


def test_interaction_gain_on_both_span_conventions(tmp_path):
    def entry(retagged, rebuilt):
        return {"official": {"partial": 0.9, "exact": retagged}, "retagged": {"partial": 0.9, "exact": retagged},
                "rebuilt": {"partial": 0.9, "exact": rebuilt}}
    runs = {"webnlg_exact_K3_seed1": entry(0.75, 0.85), "webnlg_exact_K0_seed1": entry(0.73, 0.84),
            "webnlg_exact_K3_seed2": entry(0.76, 0.86), "webnlg_exact_K0_seed2": entry(0.72, 0.80),
            "webnlg_exact_K0_seed3": entry(0.10, 0.10)}  # no RIN partner: left out
    (tmp_path / "test_comparison.json").write_text(json.dumps(
        {"runs": runs, "same_input_sentences": 3, "sentences": 3}))
    lines = "\n".join(comparison_lines("webnlg", [1, 2, 3], tmp_path, runs))
    # gains: authors' spans +2 and +4, ours +1 and +6
    assert ("(RIN minus w/o interaction, same seed, 2 seeds): +3.00 F1 on the authors' spans, +3.50 on ours "
            "(the paper: +2.8)") in lines
    lines = "\n".join(comparison_lines("webnlg", [1, 2, 3], tmp_path,
                                     {name: {} for name in runs if name != "webnlg_exact_K0_seed2"}))
    assert "webnlg_exact_K0_seed2 |" not in lines and "same seed, 1 seed): +2.00 F1 on the authors' spans" in lines


def test_report_covers_every_finished_seed(tmp_path):
    fake_result(tmp_path, "webnlg_exact_K3_seed7", 0.8, 0.7)
    fake_result(tmp_path, "nyt_exact_K7_seed9", 0.8, 0.7)
    fake_result(tmp_path, "webnlg_exact_exact_K3_seed11", 0.8, 0.7)  # dataset webnlg_exact, not webnlg
    (tmp_path / "runs" / "webnlg_partial_K2_seed8").mkdir()  # unfinished: no results.json
    assert report_seeds("webnlg", tmp_path) == [1, 2, 3, 4, 5, 7]
    assert report_seeds("nyt", tmp_path) == [1, 2, 3, 4, 5, 9]


def test_renamed_datasets_take_the_papers_column(tmp_path, monkeypatch):
    """webnlg_official is set beside the paper's WebNLG numbers; webnlg_exact, which the paper has no RIN numbers
    for, renders with ours alone; neither mixes in the other dataset's runs."""
    from experiments import plan, report

    rounds = {"partial": 2, "exact": 3}
    for module in (plan, report):  # the presets of webnlg_official come from another change; not needed here
        monkeypatch.setattr(module, "preset_rounds", lambda dataset, match: rounds[match])
    fake_result(tmp_path, "webnlg_official_partial_K2_seed1", 0.86, 0.7)
    fake_result(tmp_path, "webnlg_exact_partial_K2_seed1", 0.5, 0.4)
    official = render_report("webnlg_official", report_seeds("webnlg_official", tmp_path), tmp_path)
    assert "| RIN | 1 | 86.0 (1 seed) | 86.0 (1 seed) | 86.0 (1 seed) | 87.6 / 87.0 / 87.3 | -1.3 |" in official
    assert "1 finished runs" in official and "webnlg_exact_partial_K2_seed1" not in official
    exact = render_report("webnlg_exact", report_seeds("webnlg_exact", tmp_path), tmp_path)
    assert "| partial | RIN | 1 | 50.0 (1 seed) | 50.0 (1 seed) | 50.0 (1 seed) | - / - / - |  |" in exact
    assert "## Status against the paper" not in exact and "The paper reports no figures on this dataset" in exact
    assert "## Table 5" not in exact and "## Selection on dev" not in exact  # no run of theirs finished
    fake_result(tmp_path, "webnlg_exact_exact_K3_noER_seed1", 0.5, 0.4)
    assert "## Table 5 (webnlg_exact" in render_report("webnlg_exact", [1], tmp_path)


def test_the_report_keeps_every_dataset_with_runs(tmp_path):
    """A runner started for one dataset rewrites results/README.md with every dataset's tables, each from its
    own runs only (training-data checksums included)."""
    fake_result(tmp_path, "webnlg_partial_K2_seed1", 0.86, 0.76)
    fake_result(tmp_path, "webnlg_exact_exact_K0_seed1", 0.5, 0.4, train_sha="b" * 64)
    fake_result(tmp_path, "toy_partial_K2_seed1", 0.5, 0.4)  # a dataset without presets/toy.json: left out
    unfinished = tmp_path / "runs" / "nyt_partial_K4_seed1"  # a dataset whose only run is unfinished
    unfinished.mkdir()
    (unfinished / "metrics.jsonl").write_text('{"epoch": 1}\n')
    report = write_report("webnlg_exact", tmp_path).read_text()
    assert "toy" not in report
    nyt, report = report.split("# Reproduction: webnlg\n")
    assert nyt.startswith("# Reproduction: nyt\n") and "- nyt_partial_K4_seed1: 1 epochs done" in nyt
    webnlg, webnlg_exact = ("# Reproduction: webnlg\n" + report).split("# Reproduction: webnlg_exact\n")
    assert webnlg.startswith("# Reproduction: webnlg\n")
    assert "webnlg_partial_K2_seed1" in webnlg and "webnlg_exact_exact_K0_seed1" not in webnlg
    assert "webnlg_exact_exact_K0_seed1" in webnlg_exact and "webnlg_partial_K2_seed1" not in webnlg_exact
    assert "train.json SHA-256 `aaaaaaaaaaaa`: 1 run" in webnlg and "bbbbbbbbbbbb" not in webnlg


def test_a_dataset_without_runs_adds_no_section_unless_no_dataset_has_any(tmp_path):
    """`reproduce.py --report --dataset nyt` beside webnlg runs only: the report is webnlg's, as it was; in a
    fresh results folder the dataset asked for gets its tables, every cell 'not run yet'."""
    fresh = write_report("nyt", tmp_path / "fresh").read_text()
    assert fresh.startswith("# Reproduction: nyt\n") and "| Table 1, partial, RIN | 0 of 5 | | not run yet |" in fresh
    fake_result(tmp_path, "webnlg_partial_K2_seed1", 0.86, 0.76)
    before = write_report("webnlg", tmp_path).read_text()
    assert write_report("nyt", tmp_path).read_text() == before and "# Reproduction: nyt" not in before


def test_the_strings_convention_has_its_own_table(tmp_path):
    """Runs that carry string-set scores get a row in the strings table; older runs without them are left out."""
    fake_result(tmp_path, "webnlg_partial_K2_seed1", 0.86, 0.76)
    fake_result(tmp_path, "webnlg_partial_K2_seed2", 0.88, 0.78)
    path = tmp_path / "runs" / "webnlg_partial_K2_seed2" / "results.json"
    result = json.loads(path.read_text())
    result["string_sets"] = {split: {mode: {"precision": 0.9, "recall": 0.9, "f1": 0.9} for mode in result[split]}
                             for split in ("dev", "test")}
    path.write_text(json.dumps(result))
    report = write_report("webnlg", tmp_path).read_text()
    strings = report[report.index("## Table 1 (webnlg), strings"):]
    assert "| partial | RIN | 1 | 90.0 (1 seed) | 90.0 (1 seed) | 90.0 (1 seed) |" in strings
    assert "| partial | RIN | 2 | 87.0 ± 1.4 |" in report[:report.index("## Table 1 (webnlg), strings")]


def mention_entry(predicted, repeated, positions_f1, strings_f1, kept, first_f1, first_strings_f1=None):
    def decoder(count, at_repeated, f1, strings):
        return {"predicted": count, "at_repeated_mentions": at_repeated,
                "scores": {"ours": {"exact": {"f1": f1}}, "strings": {"exact": {"f1": strings}}}}
    return {"paper": decoder(predicted, repeated, positions_f1, strings_f1),
            "first_mentions": decoder(kept, kept // 20, first_f1, first_strings_f1 or strings_f1)}


def test_the_repeated_mention_study_by_hand(tmp_path, caplog):
    runs = {"webnlg_exact_exact_K3_seed1": mention_entry(100, 10, 0.80, 0.84, 90, 0.83),
            "webnlg_exact_exact_K3_seed2": mention_entry(200, 10, 0.78, 0.82, 190, 0.79, 0.5),
            "webnlg_exact_partial_K2_seed1": mention_entry(100, 20, 0.9, 0.6, 80, 0.95),  # scored in partial
            "webnlg_exact_K3_seed1": mention_entry(100, 50, 0.5, 0.5, 50, 0.5)}  # dataset webnlg: not in this table
    runs["webnlg_exact_partial_K2_seed1"]["paper"]["scores"]["ours"]["partial"] = {"f1": 0.7}
    runs["webnlg_exact_partial_K2_seed1"]["first_mentions"]["scores"]["ours"]["partial"] = {"f1": 0.75}
    for decoder in ("paper", "first_mentions"):
        runs["webnlg_exact_partial_K2_seed1"][decoder]["scores"]["strings"]["partial"] = {"f1": 0.6}
    (tmp_path / "mention_study.json").write_text(json.dumps({"runs": runs}))
    lines = "\n".join(mention_lines("webnlg_exact", tmp_path, runs))
    # repeated: 10% and 5% (first mentions: 4/90 and 9/190); positions 80 -> 83 and 78 -> 79: +3 and +1
    assert ("| webnlg_exact_exact_K3 | 2 | 150 | 7.5 ± 3.5 | 4.6 ± 0.2 | 79.0 ± 1.4 | 81.0 ± 2.8 | +2.0 ± 1.4 "
            "| 83.0 ± 1.4 |") in lines
    assert ("| webnlg_exact_partial_K2 | 1 | 100 | 20.0 (1 seed) | 5.0 (1 seed) | 70.0 (1 seed) | 75.0 (1 seed) "
            "| +5.0 (1 seed) | 60.0 (1 seed) |") in lines
    assert "score the same in 2 of 3 runs" in lines  # seed 2's strings F1 differs (made up)
    assert "webnlg_exact_K3 |" not in lines
    assert mention_lines("nyt", tmp_path, runs) == []
    # the file merges entries over invocations: a run moved out of runs/ since is left out of its tables
    lines = "\n".join(mention_lines("webnlg_exact", tmp_path,
                                   {name: {} for name in runs if name != "webnlg_exact_exact_K3_seed2"}))
    assert "| webnlg_exact_exact_K3 | 1 | 100 | 10.0 (1 seed) |" in lines
    # and so is a run trained again since it was decoded (its summary selected another best.pt)
    runs["webnlg_exact_exact_K3_seed1"]["best_pt_sha256"] = "1a2b"
    (tmp_path / "mention_study.json").write_text(json.dumps({"runs": runs}))
    summaries = {name: {} for name in runs} | {"webnlg_exact_exact_K3_seed1": {"best_pt_sha256": "1a2b"}}
    assert "| webnlg_exact_exact_K3 | 2 | 150 |" in "\n".join(mention_lines("webnlg_exact", tmp_path, summaries))
    summaries["webnlg_exact_exact_K3_seed1"]["best_pt_sha256"] = "3c4d"
    lines = "\n".join(mention_lines("webnlg_exact", tmp_path, summaries))
    assert "| webnlg_exact_exact_K3 | 1 | 200 |" in lines, lines
    assert ("1 run trained again since it was decoded left out (webnlg_exact_exact_K3_seed1): python "
            "reproduce.py --mention_study --dataset webnlg_exact decodes its best.pt again") in caplog.text
    # an entry from before entries recorded their checkpoint, beside a summary that records one: of an earlier
    # training too (summaries recorded it first)
    summaries["webnlg_exact_exact_K3_seed2"]["best_pt_sha256"] = "5e6f"
    assert "| webnlg_exact_exact_K3 |" not in "\n".join(mention_lines("webnlg_exact", tmp_path, summaries))
    for damaged in ({"runs": 5}, [], {"runs": {"webnlg_exact_exact_K3_seed1": []}}):
        (tmp_path / "mention_study.json").write_text(json.dumps(damaged))
        with pytest.raises(InputError, match="mention_study.json: not the object reproduce.py --mention_study "
                                             "writes; remove it and run --mention_study again"):
            mention_lines("webnlg_exact", tmp_path, runs)


def test_published_figures_stand_beside_both_counts(tmp_path):
    fake_result(tmp_path, "webnlg_exact_exact_K0_seed1", 0.9, 0.80)
    fake_result(tmp_path, "webnlg_exact_exact_K0_seed2", 0.9, 0.82)
    path = tmp_path / "runs" / "webnlg_exact_exact_K0_seed1" / "results.json"
    result = json.loads(path.read_text())
    scores = {"precision": 0.85, "recall": 0.85, "f1": 0.85}
    result["string_sets"] = {split: {"partial": scores, "exact": scores} for split in ("dev", "test")}
    path.write_text(json.dumps(result))
    report = render_report("webnlg_exact", [1, 2], tmp_path)
    published = report[report.index("## Beside published"):report.index("## Training data")]
    for model, f1, counted, _ in PUBLISHED["webnlg_exact"]:
        assert f"| {model} | {f1:.1f} | {counted or 'not checked'} |" in published
    assert "| ours: RIN w/o interaction (K = 0), 2 seeds | 81.0 ± 1.4 | positions |" in published
    assert "| ours: RIN w/o interaction (K = 0), 1 seed | 85.0 (1 seed) | strings |" in published
    assert "| ours: RIN (K = 3), 0 seeds | not run yet | positions |" in published
    assert "## Beside published" not in render_report("webnlg", [1], tmp_path)
    # seeds scored with different mention readings (one trained again since): the row says how many each
    config = tmp_path / "runs" / "webnlg_exact_exact_K0_seed2" / "config.json"
    config.write_text(json.dumps(json.loads(config.read_text()) | {"mention_reading": 2}))
    published = render_report("webnlg_exact", [1, 2], tmp_path)
    assert ("| ours: RIN w/o interaction (K = 0), 2 seeds (1 scored with mention reading 1, 1 scored with mention "
            "reading 2) | 81.0 ± 1.4 | positions |") in published
    assert "| ours: RIN w/o interaction (K = 0), 1 seed | 85.0 (1 seed) | strings |" in published  # seed 1's only


def test_a_damaged_summary_is_named(tmp_path):
    fake_result(tmp_path, "webnlg_partial_K2_seed1", 0.9, 0.8)
    metrics = tmp_path / "runs" / "webnlg_partial_K2_seed1" / "metrics.jsonl"
    metrics.write_text('{"train_seconds": 1}\n{"train_sec\n')  # cut off mid-line
    with pytest.raises(InputError, match=r"metrics.jsonl:2: malformed JSON"):
        render_report("webnlg", [1], tmp_path)
    metrics.unlink()
    run = tmp_path / "runs" / "webnlg_partial_K2_seed1"
    results = json.loads((run / "results.json").read_text())
    metrics.write_text('{"train_seconds": 1}\n[1]\n')
    with pytest.raises(InputError, match=r"metrics.jsonl:2: not an epoch record"):
        render_report("webnlg", [1], tmp_path)
    metrics.unlink()
    for damaged, named in (([], "results.json: a JSON list, not a run summary"),
                           ({"dev": {}}, "results.json: best_epoch is None, not an epoch"),
                           ({**results, "dev": []}, "results.json: dev.partial.precision is None, not a score"),
                           ({**results, "test": {**results["test"], "exact": {**results["test"]["exact"],
                                                                            "f1": "high"}}},
                            "results.json: test.exact.f1 is 'high', not a score in [0, 1]")):
        (run / "results.json").write_text(json.dumps(damaged))
        with pytest.raises(InputError, match=re.escape(named)):
            render_report("webnlg", [1], tmp_path)
    (run / "results.json").write_text(json.dumps(results))
    (run / "config.json").write_text("[1, 2]")
    with pytest.raises(InputError, match=r"config.json: not a run's config.json \(its settings are no object\)"):
        render_report("webnlg", [1], tmp_path)


def test_data_folders_of_older_runs_are_named_as_the_project_names_them():
    assert data_folder("/home/x/rin/dataset/webnlg_exact") == "dataset/webnlg_exact"
    assert data_folder("dataset/webnlg") == "dataset/webnlg"
    assert data_folder("/data/my_corpus") == "/data/my_corpus"  # the user's own folder stays as it was


def test_each_run_says_how_its_relation_arguments_were_located(tmp_path):
    """Runs from before MENTION_READING was recorded count as reading 1, whose note the report links."""
    fake_result(tmp_path, "webnlg_partial_K2_seed1", 0.9, 0.8)
    fake_result(tmp_path, "webnlg_partial_K2_seed2", 0.9, 0.8)
    config = tmp_path / "runs" / "webnlg_partial_K2_seed2" / "config.json"
    config.write_text(json.dumps(json.loads(config.read_text()) | {"mention_reading": MENTION_READING}))
    text = render_report("webnlg", [1, 2], tmp_path)
    line = next(line for line in text.splitlines() if line.startswith("- relation arguments located by"))
    assert f"{READINGS[1]} (1 run)" in line and f"{READINGS[MENTION_READING]} (1 run)" in line
    assert "(NOTES-2026-12-07.md)" in READINGS[1] and (PROJECT_ROOT / "results/NOTES-2026-12-07.md").is_file()


def test_results_files_say_which_reading_scored_each_entry():
    """mention_study.json and test_comparison.json keep entries of runs whose checkpoints are gone: re-scoring
    the others after a change of reading mixes readings, which the report then says."""
    (line,) = [line for line in reading_lines([{"paper": {}}, {"mention_reading": MENTION_READING}]) if line]
    assert f"reading 1, before 2026-12-07 (1 run); reading {MENTION_READING}, since 2026-12-07 (1 run)" in line
