"""The experiment runner: plans, skips, resumes, aggregates and reports."""
import json
import os
import shutil
import subprocess
import sys

import pytest
from synthetic import write_synthetic_dataset

import prepare_vocab
import reproduce


def names(plan):
    return [run.name for run in plan.runs]


def test_plans_each_table():
    table1 = names(reproduce.plan_runs("1", "webnlg", [1, 2]))
    assert table1[:4] == ["webnlg_partial_K2_seed1", "webnlg_partial_K0_seed1", "webnlg_exact_K3_seed1",
                          "webnlg_exact_K0_seed1"]
    assert len(table1) == 4 * 2 + 4 and table1[-1] == "webnlg_exact_K0_testsel_seed1"
    table5 = names(reproduce.plan_runs("5", "webnlg", [3]))
    assert table5 == ["webnlg_exact_K3_seed3", "webnlg_exact_K3_noER_seed3", "webnlg_exact_K3_noRC_seed3",
                      "webnlg_exact_K0_seed3", "webnlg_exact_K3_noPOS_seed3"]
    figure = names(reproduce.plan_runs("fig3", "webnlg", [1]))
    assert len(figure) == 18 and "webnlg_partial_K8_seed1" in figure
    everything = names(reproduce.plan_runs("all", "webnlg", [1]))
    # Table 1 (4) + Table 5's ablations (3) + Figure 3's other K (18 - 4) + test-selected (4): shared runs once
    assert len(everything) == len(set(everything)) == 4 + 3 + 14 + 4
    nyt = reproduce.plan_runs("5", "nyt", [1]).runs[0]
    assert nyt.rounds == 7 and "--rounds" in nyt.train_args()


def test_only_narrows_the_plan(tmp_path, capsys):
    common = ["--table", "1", "--seeds", "2", "--dry_run", "--save_dir", str(tmp_path / "runs"),
              "--results_dir", str(tmp_path / "results")]
    plan = reproduce.main([*common, "--only", "*_K0_*", "webnlg_partial_K2_seed2"])
    # test-selected runs are planned for seed 1 only, so continuing with later seeds adds none
    assert names(plan) == ["webnlg_partial_K2_seed2", "webnlg_partial_K0_seed2", "webnlg_exact_K0_seed2"]
    assert capsys.readouterr().out.count("todo ") == 3
    with pytest.raises(SystemExit, match="no planned run"):
        reproduce.main([*common, "--only", "*_K9_*"])


def test_aggregate_by_hand():
    mean, std, count = reproduce.aggregate([0.8, 0.9, 1.0])
    assert (round(mean, 6), round(std, 6), count) == (90.0, 10.0, 3)
    assert reproduce.aggregate([0.5]) == (50.0, None, 1)
    assert reproduce.cell([0.8, 0.9, 1.0]) == "90.0 ± 10.0"
    assert reproduce.cell([]) == "not run yet"
    assert reproduce.diff([0.8, 0.9, 1.0], 75.0) == "+15.0 (> 1 std)"
    assert reproduce.diff([0.8, 0.9, 1.0], 85.0) == "+5.0"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = write_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), sizes=(120, 30, 30))
    prepare_vocab.main(["--data_dir", str(folder), "--wv_file", "none"])
    return folder


def test_runs_skips_and_resumes(data_dir, tmp_path, capsys):
    common = ["--table", "1", "--dataset", "webnlg", "--seeds", "1", "--data_dir", str(data_dir),
              "--save_dir", str(tmp_path / "runs"), "--results_dir", str(tmp_path / "results"),
              "--train_args", "--num_epoch 1 --eval_batch_size 50", "--jobs", "2"]
    reproduce.main([*common, "--max_runs", "3"])
    finished = sorted(p.parent.name for p in (tmp_path / "runs").glob("*/results.json"))
    assert finished == sorted(["webnlg_partial_K2_seed1", "webnlg_partial_K0_seed1", "webnlg_exact_K3_seed1"])
    summary = tmp_path / "results" / "runs" / "webnlg_partial_K2_seed1"
    assert {p.name for p in summary.iterdir()} == {"config.json", "metrics.jsonl", "results.json", "runner.json"}
    assert not list((tmp_path / "results" / "runs").glob("*/best.pt"))

    # an interrupted run (results.json not yet written) is resumed, a finished one is not touched
    for folder in (tmp_path / "runs", tmp_path / "results" / "runs"):
        (folder / "webnlg_partial_K0_seed1" / "results.json").unlink()
    before = (tmp_path / "runs" / "webnlg_partial_K2_seed1" / "results.json").stat().st_mtime_ns
    plan = reproduce.main([*common, "--max_runs", "1"])
    assert len(plan.runs) == 8
    runner = json.loads((tmp_path / "results" / "runs" / "webnlg_partial_K0_seed1" / "runner.json").read_text())
    assert [i["resumed"] for i in runner["invocations"]] == [False, True]
    assert all(i["exit_code"] == 0 for i in runner["invocations"])
    assert (tmp_path / "runs" / "webnlg_partial_K2_seed1" / "results.json").stat().st_mtime_ns == before
    report = (tmp_path / "results" / "README.md").read_text()
    assert "| partial | RIN | 1 |" in report and "not run yet" in report
    assert "| Table 1, partial, RIN | 1 of 5 |" in report  # a runner for seed 1 reports against the paper's five

    # the test comparison: every finished run scored on the official test, a retagged copy and a rebuilt one
    records = [json.loads(line) for line in (data_dir / "test.json").read_text().splitlines()]
    for record in records:
        record["pos"] = ["NN"] * len(record["pos"])  # a deliberately poor tagger
    retagged, rebuilt = tmp_path / "retagged_test.json", tmp_path / "rebuilt_test.json"
    retagged.write_text("".join(json.dumps(r) + "\n" for r in records))
    for record in records:  # another span convention: every entity is its last word alone
        record["en_list"] = [entity[-1:] for entity in record["en_list"]]
        for mention in record["relationMentions"]:
            mention["em1Text"], mention["em2Text"] = mention["em1Text"][-1:], mention["em2Text"][-1:]
    rebuilt.write_text("".join(json.dumps(r) + "\n" for r in records))
    reproduce.main([*common[:4], "--save_dir", str(tmp_path / "runs"), "--results_dir", str(tmp_path / "results"),
                    "--compare_test", "--retagged_test", str(retagged), "--rebuilt_test", str(rebuilt)])
    comparison = json.loads((tmp_path / "results" / "test_comparison.json").read_text())
    assert comparison["same_input_sentences"] == comparison["sentences"] == len(records)
    assert sorted(comparison["runs"]) == finished
    for entry in comparison["runs"].values():
        assert set(entry) == {"official", "retagged", "rebuilt"} and 0 <= entry["retagged"]["partial"] <= 1
        assert entry["rebuilt"]["partial"] == entry["retagged"]["partial"]  # same last words, same input
        assert entry["rebuilt"]["exact"] != entry["retagged"]["exact"]
    report = (tmp_path / "results" / "README.md").read_text()
    assert "## Test POS tags" in report and "## Test entity spans" in report

    # a fresh clone has the committed summaries but no checkpoints: finished runs are not redone
    shutil.rmtree(tmp_path / "runs")
    reproduce.main([*common, "--max_runs", "0", "--dry_run"])
    assert capsys.readouterr().out.count("done ") == 3


def test_estimated_core_hours_by_hand(tmp_path):
    assert reproduce.estimated_core_hours([reproduce.Run("webnlg", "exact", 0, 1)], "webnlg", tmp_path) is None
    for name, rounds, epochs in (("webnlg_a", 0, [(8, 2), (18, 2), (25, 5)]), ("webnlg_b", 2, [(35, 5)]),
                                 ("nyt_c", 2, [(900, 100)])):  # another dataset's runs do not count
        folder = tmp_path / "runs" / name
        folder.mkdir(parents=True)
        folder.joinpath("results.json").write_text("{}")
        folder.joinpath("config.json").write_text(json.dumps({"settings": {"rounds": rounds}}))
        folder.joinpath("metrics.jsonl").write_text("".join(
            json.dumps({"train_seconds": train, "eval_seconds": evaluation}) + "\n" for train, evaluation in epochs))
    # medians 20 s (K=0) and 40 s (K=2): K=4 lies on their line at 60 s; WebNLG presets run 150 epochs
    todo = [reproduce.Run("webnlg", "partial", 4, 1), reproduce.Run("webnlg", "exact", 0, 1)]
    assert abs(reproduce.estimated_core_hours(todo, "webnlg", tmp_path) - 150 * (60 + 20) / 3600) < 1e-9


def test_a_run_is_claimed_by_one_runner_at_a_time(tmp_path):
    lock = tmp_path / "runner.lock"
    assert reproduce.claim(tmp_path) and lock.read_text() == str(os.getpid())
    assert not reproduce.claim(tmp_path)  # held by a live process (this one)
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.write_text(finished.stdout.strip())  # left behind by a runner that is gone
    assert reproduce.claim(tmp_path) and lock.read_text() == str(os.getpid())


def fake_result(folder, name, partial_f1, exact_f1, dev_gain=0.0, train_sha="a" * 64):
    run = folder / "runs" / name
    run.mkdir(parents=True)

    def scores(gain):
        return {mode: {"precision": f + gain, "recall": f + gain, "f1": f + gain}
                for mode, f in (("partial", partial_f1), ("exact", exact_f1))}
    run.joinpath("results.json").write_text(json.dumps({
        "dev": scores(dev_gain), "test": scores(0), "official_scorer": {"dev": scores(dev_gain), "test": scores(0)},
        "best_epoch": 3, "selected_on": "dev", "epochs_run": 5}))
    run.joinpath("config.json").write_text(json.dumps({"data_sha256": {"train.json": train_sha}}))
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
    path = reproduce.write_report("webnlg", [1, 2], tmp_path)
    report = path.read_text()
    assert "| webnlg_partial_K5_seed1 | 3 | 5 | 80.0 | 70.0 | 5 |" in report
    assert "| partial | RIN | 2 | 87.0 ± 1.4 | 87.0 ± 1.4 | 87.0 ± 1.4 | 87.6 / 87.0 / 87.3 | -0.3 |" in report
    assert "| RIN | 2 | 77.0 ± 1.4 | 77.0 ± 1.4 | 77.0 | +0.0 | - | - |" in report
    assert "| w/o interaction | 2 | 75.0 ± 2.8 | 75.0 ± 2.8 | 74.2 | +0.8 | -2.0 ± 1.4 | -2.8 |" in report
    assert "| w/o ER | 2 | 64.5 ± 20.5 | 64.5 ± 20.5 | 76.4 | -11.9 | +1.0 (1 seed) | -0.6 |" in report
    assert ("| exact | w/o interaction | 2 | 75.0 ± 2.8 | 75.0 ± 2.8 | 75.0 ± 2.8 | 75.0 / 73.3 / 74.2 | +0.8 "
            "| -2.0 ± 1.4 | -2.8 |") in report
    assert "| 5 | 80.0 (1 seed) | not run yet |" in report
    assert (tmp_path / "figure3_webnlg.png").stat().st_size > 1000
    # dev next to test (exact RIN: dev 0.05 above test), the data versions, the span-recovery ceiling
    assert "| exact | RIN | 2 | 82.0 ± 1.4 | 77.0 ± 1.4 |" in report
    assert "| partial | RIN | 2 | 87.0 ± 1.4 | 87.0 ± 1.4 |" in report
    assert f"- train.json SHA-256 `{'a' * 12}`: 8 runs" in report and f"`{'b' * 12}`: 1 run\n" in report
    assert "do not average them" in report
    # the status: two seeds judged against one std, cells with no run named as such
    assert "| Table 1, partial, RIN | 2 of 5 | -0.3 | reproduced |  |" in report
    assert "| Table 5, w/o RC | 0 of 5 | | not run yet | |" in report
    # the effects judged the same way: -2.0 ± 1.4 against the paper's -2.8 is within one std
    assert "| Table 1, exact, w/o interaction - RIN | 2 of 5 | -2.0 ± 1.4 | -2.8 | +0.8 | reproduced |" in report
    assert "| Table 5, w/o ER - RIN | 1 of 5 | +1.0 (1 seed) | -0.6 | +1.6 | one seed: no spread yet |" in report
    assert "| Table 5, w/o RC - RIN | 0 of 5 | | | | not run yet |" in report
    assert "87.5% of entities" in report and "76.5 exact-match F1 (95.0 partial)" in report


def test_interaction_gain_on_both_span_conventions(tmp_path):
    def entry(retagged, rebuilt):
        return {"official": {"partial": 0.9, "exact": retagged}, "retagged": {"partial": 0.9, "exact": retagged},
                "rebuilt": {"partial": 0.9, "exact": rebuilt}}
    runs = {"webnlg_exact_K3_seed1": entry(0.75, 0.85), "webnlg_exact_K0_seed1": entry(0.73, 0.84),
            "webnlg_exact_K3_seed2": entry(0.76, 0.86), "webnlg_exact_K0_seed2": entry(0.72, 0.80),
            "webnlg_exact_K0_seed3": entry(0.10, 0.10)}  # no RIN partner: left out
    (tmp_path / "test_comparison.json").write_text(json.dumps(
        {"runs": runs, "same_input_sentences": 3, "sentences": 3}))
    lines = "\n".join(reproduce.comparison_lines("webnlg", [1, 2, 3], tmp_path))
    # gains: authors' spans +2 and +4, ours +1 and +6
    assert ("(RIN minus w/o interaction, same seed, 2 seeds): +3.00 F1 on the authors' spans, +3.50 on ours "
            "(the paper: +2.8)") in lines


def test_report_covers_every_finished_seed(tmp_path):
    fake_result(tmp_path, "webnlg_exact_K3_seed7", 0.8, 0.7)
    fake_result(tmp_path, "nyt_exact_K7_seed9", 0.8, 0.7)
    fake_result(tmp_path, "webnlg_exact_exact_K3_seed11", 0.8, 0.7)  # dataset webnlg_exact, not webnlg
    (tmp_path / "runs" / "webnlg_partial_K2_seed8").mkdir()  # unfinished: no results.json
    assert reproduce.report_seeds("webnlg", [6], tmp_path) == [1, 2, 3, 4, 5, 6, 7]
    assert reproduce.report_seeds("nyt", [1], tmp_path) == [1, 2, 3, 4, 5, 9]


def test_commit_summary_commits_in_the_results_repository(tmp_path, monkeypatch):
    """--commit from a runner whose code lies elsewhere (a scratch worktree) commits where the results are."""
    for variable in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(variable, "runner@test")
    repo = tmp_path / "checkout"
    folder = repo / "results" / "runs" / "webnlg_exact_K0_seed9"
    folder.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-q", "--allow-empty", "-m", "start"], check=True)
    (folder / "results.json").write_text("{}")
    (repo / "unrelated.txt").write_text("not a run summary")
    reproduce.commit_summary(folder, folder.name)
    log = subprocess.run(["git", "-C", str(repo), "log", "-1", "--name-only", "--format=%s"],
                         capture_output=True, text=True).stdout
    assert log.split() == ["results:", "webnlg_exact_K0_seed9", "results/runs/webnlg_exact_K0_seed9/results.json"]
