"""The experiment runner: plans, skips, resumes, claims runs and commits their summaries."""
import argparse
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import run_summary

import prepare_vocab
import reproduce
from data.loader import MENTION_READING
from data.synthetic import write_synthetic_dataset
from experiments import launch, report, studies
from experiments import plan as experiments
from experiments.budget import Budget
from utils.errors import ErrorExit, InputError
from utils.files import file_sha256
from utils.locks import process_identity
from utils.project import DATASETS_DIR


def names(plan):
    return [run.name for run in plan.runs]


def test_plans_each_table():
    table1 = names(experiments.plan_runs("1", "webnlg", [1, 2]))
    assert table1[:4] == ["webnlg_partial_K2_seed1", "webnlg_partial_K0_seed1", "webnlg_exact_K3_seed1",
                          "webnlg_exact_K0_seed1"]
    assert len(table1) == 4 * 2 + 4 and table1[-1] == "webnlg_exact_K0_testsel_seed1"
    table5 = names(experiments.plan_runs("5", "webnlg", [3]))
    assert table5 == ["webnlg_exact_K3_seed3", "webnlg_exact_K3_noER_seed3", "webnlg_exact_K3_noRC_seed3",
                      "webnlg_exact_K0_seed3", "webnlg_exact_K3_noPOS_seed3"]
    figure = names(experiments.plan_runs("fig3", "webnlg", [1]))
    assert len(figure) == 18 and "webnlg_partial_K8_seed1" in figure
    everything = names(experiments.plan_runs("all", "webnlg", [1]))
    # Table 1 (4) + Table 5's ablations (3) + Figure 3's other K (18 - 4) + test-selected (4): shared runs once
    assert len(everything) == len(set(everything)) == 4 + 3 + 14 + 4
    nyt = experiments.plan_runs("5", "nyt", [1]).runs[0]
    assert nyt.rounds == 7 and "--rounds" in nyt.train_args()


def test_only_narrows_the_plan(tmp_path, capsys):
    common = ["--table", "1", "--seeds", "2", "--dry_run", "--save_dir", str(tmp_path / "runs"),
              "--results_dir", str(tmp_path / "results")]
    plan = reproduce.main([*common, "--only", "*_K0_*", "webnlg_partial_K2_seed2"])
    # test-selected runs are planned for seed 1 only, so continuing with later seeds adds none
    assert names(plan) == ["webnlg_partial_K2_seed2", "webnlg_partial_K0_seed2", "webnlg_exact_K0_seed2"]
    assert capsys.readouterr().out.count("todo ") == 3
    with pytest.raises(ErrorExit, match="no planned run"):
        reproduce.main([*common, "--only", "*_K9_*"])
    with pytest.raises(ErrorExit, match=r"--only \*_K9_\*: no planned run of table 1 matches"):  # one of several
        reproduce.main([*common, "--only", "*_K0_*", "*_K9_*"])
    plan = reproduce.main([*common, "--only", "*_K0_*", "--only", "webnlg_partial_K2_seed2", "--seeds", "3"])
    assert sorted(names(plan)) == sorted(["webnlg_partial_K2_seed2", *(f"webnlg_{cell}_K0_seed{seed}" for seed in (2, 3)
                                                                       for cell in ("partial", "exact"))])  # both


def test_a_dry_run_says_when_a_real_start_would_refuse_its_folders(tmp_path, capsys):
    taken = tmp_path / "a_file"
    taken.write_text("")
    common = ["--table", "1", "--seeds", "2", "--save_dir", str(taken), "--results_dir", str(tmp_path / "results")]
    reproduce.main([*common, "--dry_run"])
    captured = capsys.readouterr()
    assert captured.out.count("todo ") == 4  # seed 2: no test-selected runs
    assert f"a real start would stop here: --save_dir {taken}: {taken} is a file, not a folder" in captured.err
    with pytest.raises(ErrorExit, match="is a file, not a folder"):
        reproduce.main(common)


def test_a_run_folder_trained_otherwise_is_not_counted_as_the_tables(tmp_path, capsys):
    """A quick train.py run under a planned run's name (here 2 epochs instead of the preset's 150) is refused,
    naming what differs, instead of being counted as finished or resumed as the table's run."""
    common = ["--table", "1", "--seeds", "1", "--dry_run", "--save_dir", str(tmp_path / "runs"),
              "--results_dir", str(tmp_path / "results"), "--only", "webnlg_partial_K2_seed1"]
    plan = reproduce.main(common)
    planned = reproduce.resolve_settings_of(plan.runs[0], reproduce.parse_args(common))
    run_dir = tmp_path / "runs" / "webnlg_partial_K2_seed1"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"settings": planned | {"threads": 1, "device": "cuda"}}))
    reproduce.main(common)  # how a run was run (threads, device) is not what it computes: still the table's
    (run_dir / "config.json").write_text(json.dumps({"settings": planned | {"num_epoch": 2}}))
    capsys.readouterr()
    with pytest.raises(ErrorExit, match="webnlg_partial_K2_seed1: num_epoch 2 \\(planned: 150\\)"):
        reproduce.main(common)
    # a dry run lists the plan first, the refused run among it, then refuses as a start would
    assert capsys.readouterr().out == "refused webnlg_partial_K2_seed1 (trained with other settings: see below)\n"
    with pytest.raises(ErrorExit, match="num_epoch 2"):  # a SLURM dry run refuses before printing the array
        reproduce.main([*common, "--executor", "slurm"])
    # a run resumes in its own precision: one begun in bf16 is not the fp32 run this runner would start
    (run_dir / "config.json").write_text(json.dumps({"settings": planned | {"precision": "bf16"}}))
    with pytest.raises(ErrorExit, match="webnlg_partial_K2_seed1: precision bf16 \\(planned: fp32\\)"):
        reproduce.main(common)
    # a summary in --results_dir counts as finished: one of an earlier sweep with other settings is refused too
    summary = tmp_path / "results" / "runs" / "webnlg_partial_K2_seed1"
    summary.mkdir(parents=True)
    shutil.move(run_dir / "config.json", summary / "config.json")
    (summary / "results.json").write_text(run_summary())
    reproduce.main(common)  # finished in bf16: how it ran, as --train_args '--precision bf16' may ask
    (run_dir / "config.json").write_text(json.dumps({"settings": planned | {"precision": "bf16"}}))
    reproduce.main(common)  # an abandoned attempt beside a finished summary: nothing resumes it, nothing to refuse
    (run_dir / "config.json").unlink()
    (summary / "config.json").write_text(json.dumps({"settings": planned | {"lr": 0.01}}))
    with pytest.raises(ErrorExit, match="results/runs/webnlg_partial_K2_seed1: lr 0.01 \\(planned: 0.0005\\)"):
        reproduce.main(common)
    # another seed of the same cell from an earlier sweep with other --train_args: averaged with it, so refused
    shutil.move(summary, summary.with_name("webnlg_partial_K2_seed7"))
    with pytest.raises(ErrorExit, match="webnlg_partial_K2_seed7, another seed of webnlg_partial_K2: lr 0.01 "
                                         "\\(planned: Table 3's settings\\)"):
        reproduce.main(common)
    reproduce.main([*common, "--train_args", "--lr 0.01"])  # the same hyperparameters: seeds of one setting
    reproduce.main([*common[:-2], "--only", "webnlg_partial_K0_seed1"])  # another cell: not averaged with it


def test_a_summary_of_another_clone_counts_until_the_data_is_prepared_here(tmp_path, monkeypatch):
    """A summary recorded with another clone's absolute path (/elsewhere/clone/dataset/nyt): where this clone
    has not prepared dataset/nyt, the folder name is all there is to compare; another folder is still refused."""
    if (DATASETS_DIR / "nyt").exists():  # prepared here: the runner would compare checksums instead
        monkeypatch.setattr(reproduce, "resolve_project_path", lambda path: (
            Path(path) if Path(path).is_absolute() else tmp_path / "clone" / path))
    common = ["--table", "1", "--dataset", "nyt", "--seeds", "1", "--dry_run", "--save_dir", str(tmp_path / "runs"),
              "--results_dir", str(tmp_path / "results")]
    plan = reproduce.main(common)
    run = plan.runs[0]
    summary = tmp_path / "results" / "runs" / run.name
    summary.mkdir(parents=True)
    planned = reproduce.resolve_settings_of(run, reproduce.parse_args(common))
    for recorded, refused in (("/elsewhere/clone/dataset/nyt", False), ("/elsewhere/clone/dataset/nyt10", True)):
        (summary / "config.json").write_text(json.dumps({"settings": planned | {"data_dir": recorded}}))
        (summary / "results.json").write_text(run_summary())
        if refused:
            with pytest.raises(ErrorExit, match=f"data_dir {recorded} \\(planned: dataset/nyt\\)"):
                reproduce.main(common)
        else:
            reproduce.main(common)


def test_runs_on_other_data_stay_out_of_the_projects_results(tmp_path, capsys):
    """--data_dir is what a run is trained on: runs of other data go into folders of one's own, never beside
    the paper tables' runs in results/ (which the report would average with them)."""
    for own in ([], ["--results_dir", str(tmp_path / "r")], ["--save_dir", str(tmp_path / "s")]):
        with pytest.raises(SystemExit):
            reproduce.main(["--table", "1", "--dry_run", "--data_dir", str(tmp_path / "mine"), *own])
        assert "--data_dir" in capsys.readouterr().err
    reproduce.main(["--table", "1", "--dry_run", "--data_dir", str(tmp_path / "mine"), "--results_dir",
                    str(tmp_path / "r"), "--save_dir", str(tmp_path / "s")])
    reproduce.main(["--table", "1", "--dry_run", "--data_dir", "dataset/webnlg", "--save_dir", str(tmp_path / "s")])


@pytest.mark.parametrize("value", ["--deterministic", "--lr=0.01", "--eval_batch_size 64 --deterministic"])
@pytest.mark.parametrize("flag", ["--train_args", "--train_arg", "--tr"])  # argparse takes abbreviations
def test_train_args_may_start_with_a_dash(value, flag, tmp_path, capsys):
    """argparse reads a value that starts with '-' as a flag of its own ('expected one argument')."""
    plan = reproduce.main(["--table", "1", "--seeds", "1", "--dry_run", "--only", "*_K0_seed1", flag, value,
                           "--results_dir", str(tmp_path / "r"), "--save_dir", str(tmp_path / "s")])
    assert len(plan.runs) == 2 and capsys.readouterr().out.count("todo ") == 2


@pytest.mark.parametrize("flags", [["--seeds", "3"], ["--commit"], ["--only", "x", "--max_runs", "2"],
                                   ["--train_args", "--deterministic"], ["--executor", "slurm"], ["--jobs", "2"],
                                   ["--early_stop", "0"]])  # 0 is given too
def test_reports_refuse_the_flags_of_training(flags, capsys):
    """--report, --compare_test and --mention_study train nothing: flags only training reads are refused, not
    silently ignored (--report --commit committed nothing)."""
    for mode in ("--report", "--mention_study"):
        with pytest.raises(SystemExit) as stopped:
            reproduce.main([mode, *flags])
        assert stopped.value.code == 2
        assert f"only for training a --table; {mode} would ignore" in capsys.readouterr().err


def test_a_finished_run_on_data_moved_elsewhere_is_still_the_tables(data_dir, tmp_path):
    """Data moved or copied to another folder, the same files by their checksums: a finished run counts (nothing
    resumes it from the old folder), an unfinished one, which would resume there, is refused."""
    moved = tmp_path / "moved"
    shutil.copytree(data_dir, moved)
    common = ["--table", "1", "--seeds", "1", "--dry_run", "--only", "webnlg_partial_K0_seed1", "--data_dir",
              str(moved), "--save_dir", str(tmp_path / "s"), "--results_dir", str(tmp_path / "r")]
    args = reproduce.parse_args(common)
    planned = reproduce.resolve_settings_of(reproduce.plan_runs("1", "webnlg", [1]).runs[1], args)
    summary = tmp_path / "r" / "runs" / "webnlg_partial_K0_seed1"
    summary.mkdir(parents=True)
    config = {"settings": planned | {"data_dir": str(data_dir)}, "data_sha256": reproduce.data_fingerprint(data_dir)}
    (summary / "config.json").write_text(json.dumps(config))
    (summary / "results.json").write_text(run_summary())
    reproduce.main(common)
    (moved / "train.json").write_text((moved / "train.json").read_text()[:-200] + "\n")  # other data after all
    with pytest.raises(ErrorExit, match=f"data_dir {re.escape(str(data_dir))} \\(planned: "):
        reproduce.main(common)
    shutil.rmtree(summary)
    shutil.copytree(data_dir, moved, dirs_exist_ok=True)
    run_dir = tmp_path / "s" / "webnlg_partial_K0_seed1"  # unfinished: it would resume on the old folder
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ErrorExit, match="webnlg_partial_K0_seed1: data_dir"):
        reproduce.main(common)


def test_a_finished_run_on_data_prepared_again_otherwise_is_not_the_tables(data_dir, tmp_path):
    """The same --data_dir, its train.json changed since a run finished on it: that run is no longer the table's
    (the report would average it with runs on the new data), so it is refused, naming the change."""
    mine = tmp_path / "mine"
    shutil.copytree(data_dir, mine)
    common = ["--table", "1", "--seeds", "1", "--dry_run", "--only", "webnlg_partial_K0_seed1", "--data_dir",
              str(mine), "--save_dir", str(tmp_path / "s"), "--results_dir", str(tmp_path / "r")]
    planned = reproduce.resolve_settings_of(reproduce.plan_runs("1", "webnlg", [1]).runs[1],
                                            reproduce.parse_args(common))
    summary = tmp_path / "r" / "runs" / "webnlg_partial_K0_seed1"
    summary.mkdir(parents=True)
    before = reproduce.data_fingerprint(mine)
    (summary / "config.json").write_text(json.dumps({"settings": planned, "data_sha256": before}))
    (summary / "results.json").write_text(run_summary())
    reproduce.main(common)
    (mine / "train.json").write_text((mine / "train.json").read_text()[:-200] + "\n")
    after = reproduce.file_sha256(mine / "train.json")
    with pytest.raises(ErrorExit, match=re.escape(f"train.json {before['train.json'][:12]} (planned: {after[:12]}, "
                                                  f"in {mine}: the data was prepared otherwise since)")):
        reproduce.main(common)


def test_only_the_reported_runs_checkpoints_are_rescored(tmp_path, caplog):
    """--compare_test and --mention_study rewrite committed results from checkpoints: a run trained otherwise under
    a planned run's name (train.py --num_epoch 2), or one the report does not hold, is left out, said."""
    save_dir, results_dir = tmp_path / "s", tmp_path / "r"
    a, short = run_summary(0.5), run_summary(0.4)  # the same run, and one trained otherwise under its name
    for name, ours, summary in (("webnlg_exact_K3_seed1", a, a), ("webnlg_exact_K3_seed2", short, a),
                                ("webnlg_exact_K3_seed3", a, None), ("webnlg_exact_exact_K3_seed1", a, a)):
        (save_dir / name).mkdir(parents=True)
        (save_dir / name / "results.json").write_text(ours)
        (save_dir / name / "best.pt").write_text("")
        if summary:
            (results_dir / "runs" / name).mkdir(parents=True)
            (results_dir / "runs" / name / "results.json").write_text(summary)
    found = studies.finished_checkpoints("webnlg", save_dir, results_dir)
    assert [run.name for run in found] == ["webnlg_exact_K3_seed1"]  # webnlg_exact's runs are another dataset's
    assert "webnlg_exact_K3_seed2 is not the run summarised in" in caplog.text


def test_a_run_on_moved_data_is_rescored_on_the_same_test_file(tmp_path):
    """A finished run counts on data moved elsewhere when its checksums match (same_data); --compare_test and
    --mention_study then read the test file where the data now is, never a test file of other content."""
    planned = tmp_path / "dataset" / "webnlg"
    planned.mkdir(parents=True)
    (planned / "test.json").write_text("the same test\n")
    config = {"settings": {"data_dir": str(tmp_path / "gone")},
              "data_sha256": {"test.json": file_sha256(planned / "test.json")}}
    assert studies.recorded_test_file(tmp_path / "run", config, planned) == planned / "test.json"
    (tmp_path / "gone").mkdir()
    (tmp_path / "gone" / "test.json").write_text("the same test\n")
    assert studies.recorded_test_file(tmp_path / "run", config, planned) == tmp_path / "gone" / "test.json"
    (tmp_path / "gone" / "test.json").write_text("changed since\n")  # scores on it would not be the run's
    with pytest.raises(InputError, match="gone/test.json changed since .*run trained beside it"):
        studies.recorded_test_file(tmp_path / "run", config, planned)
    (tmp_path / "gone" / "test.json").unlink()
    with pytest.raises(InputError, match="records no data folder"):
        studies.recorded_test_file(tmp_path / "run", {"settings": {}}, planned)
    (planned / "test.json").write_text("another test\n")
    with pytest.raises(InputError, match="gone, and .* is not the file the run recorded"):
        studies.recorded_test_file(tmp_path / "run", config, planned)
    del config["data_sha256"]
    with pytest.raises(InputError, match=r"is not known to be the same file \(the run recorded no checksums\)"):
        studies.recorded_test_file(tmp_path / "run", config, planned)
    (planned / "test.json").unlink()
    with pytest.raises(InputError, match="is missing too; prepare the data again"):
        studies.recorded_test_file(tmp_path / "run", config, planned)


def test_an_interrupted_training_is_said_to_be_so(tmp_path, monkeypatch):
    """A train.py ended by Ctrl-C or SIGTERM (someone else's, or the machine's) is no failure to look into: the
    runner's outcome says it was interrupted and resumes when run again."""
    fake_project = tmp_path / "project"
    fake_project.mkdir()
    (fake_project / "train.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n")
    monkeypatch.setattr(launch, "PROJECT_ROOT", fake_project)
    job = launch.TrainJob("webnlg_partial_K0_seed1", (), str(tmp_path / "s"), str(tmp_path / "r"))
    assert job.run().startswith("failed: train.py was interrupted (exit -15); it resumes from its last epoch")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a child told of its parent's death is Linux's prctl")
def test_a_runner_killed_outright_takes_its_training_with_it(tmp_path):
    """kill -9 of the runner (no handler runs): its train.py gets SIGTERM from the kernel and stops as on Ctrl-C,
    instead of training on unwatched, holding the run against the next runner and never recorded."""
    fake_project = tmp_path / "project"
    fake_project.mkdir()
    child_pid, stopped = tmp_path / "child.pid", tmp_path / "stopped"
    (fake_project / "train.py").write_text(  # says that SIGTERM stopped it
        f"import os, signal, sys, time\n"
        f"signal.signal(signal.SIGTERM, lambda *_: (open({str(stopped)!r}, 'w').write('SIGTERM'), sys.exit(143)))\n"
        f"open({str(child_pid)!r}, 'w').write(str(os.getpid()))\ntime.sleep(60)\n")
    # the runner as reproduce.py runs it: each job from a worker thread of a pool, the main thread waiting
    runner_code = (f"from concurrent.futures import ThreadPoolExecutor\nfrom pathlib import Path\n"
                   f"from experiments import launch\nlaunch.PROJECT_ROOT = Path({str(fake_project)!r})\n"
                   f"job = launch.TrainJob('webnlg_partial_K0_seed1', (), {str(tmp_path / 's')!r}, "
                   f"{str(tmp_path / 'r')!r})\n"
                   f"with ThreadPoolExecutor(2) as pool:\n    pool.submit(job.run).result()\n")
    runner = subprocess.Popen([sys.executable, "-c", runner_code], cwd=Path(reproduce.__file__).parent)
    deadline = time.time() + 30
    while not (child_pid.exists() and child_pid.read_text()) and time.time() < deadline:
        time.sleep(0.1)
    assert child_pid.exists(), "the runner never started its train.py"
    pid = int(child_pid.read_text())
    runner.kill()
    runner.wait()
    deadline = time.time() + 10
    while not stopped.exists() and time.time() < deadline:
        time.sleep(0.1)
    if not stopped.exists():
        os.kill(pid, 9)
        pytest.fail("train.py trained on after its runner was killed")


def test_a_failed_run_says_train_pys_reason(tmp_path):
    """A run that train.py refused (data, flags) cannot succeed by running again as it is: the runner's last
    lines give train.py's reason, run by run, and say to fix it first."""
    log_file = tmp_path / "stdout.log"
    log_file.write_text("$ train.py ...\ntrain.py: error: old reason\n")
    offset = log_file.stat().st_size
    with open(log_file, "a") as out:
        out.write("$ train.py --resume ...\n12:00:00 INFO loading\ntrain.py: error: --emb_dim 50 but embedding.npy "
                  "holds 100-d vectors\n")
    assert launch.train_error(log_file, offset) == "train.py: error: --emb_dim 50 but embedding.npy holds 100-d vectors"
    assert launch.train_error(log_file, log_file.stat().st_size) is None  # a crash or a signal: no such line
    outcomes = {"a_seed1": f"failed: train.py: error: --emb_dim 50 but ... (see {log_file})",
                "b_seed1": "finished", "c_seed1": f"failed (train.py exit -9; see {log_file})",
                "d_seed1": "failed: SLURM task 7 ended without a result (cancelled or killed); submit again"}
    with pytest.raises(SystemExit) as stopped:
        reproduce.finish(outcomes)
    lines = str(stopped.value.code).splitlines()
    assert lines[0].startswith("reproduce.py: 3 of 4 runs failed: a_seed1, c_seed1, d_seed1")
    assert "fix what train.py" in lines[0]
    assert lines[1:] == ["  a_seed1: train.py: error: --emb_dim 50 but ..."]  # not the SLURM task's end


@pytest.mark.parametrize("flag", ["--report", "--compare_test", "--mention_study"])
def test_reports_need_run_summaries_before_any_work(flag, tmp_path):
    flags = [flag, "--results_dir", str(tmp_path / "none")] + ["--save_dir", str(tmp_path / "runs")] * (
        flag != "--report")  # --report reads none
    with pytest.raises(ErrorExit, match=f"{flag}: .*runs does not exist: no run summaries"):
        reproduce.main(flags)
    (tmp_path / "none" / "runs" / "webnlg_partial_K2_seed1").mkdir(parents=True)  # an attempt, not finished
    with pytest.raises(ErrorExit, match=f"{flag}: .*runs holds no run summaries .* train some with --table first"):
        reproduce.main(flags)
    assert not (tmp_path / "none" / "README.md").exists()


def test_runs_on_data_that_is_not_there_are_refused_before_any_starts(tmp_path):
    flags = ["--table", "1", "--seeds", "1", "--save_dir", str(tmp_path / "runs"), "--results_dir",
             str(tmp_path / "results"), "--data_dir", str(tmp_path / "absent")]
    with pytest.raises(ErrorExit, match="absent does not exist: put train.json, dev.json and test.json in RIN "
                                         "format into .*absent"):  # prepare_data.py would fill dataset/webnlg
        reproduce.main(flags)
    assert not (tmp_path / "runs").exists()
    reproduce.main([*flags, "--dry_run"])  # a dry run only warns


def test_hyperparameters_in_train_args_stay_out_of_the_projects_results(tmp_path, capsys):
    for own in ([], ["--results_dir", str(tmp_path / "r")]):  # both folders must be one's own
        with pytest.raises(SystemExit):
            reproduce.main(["--table", "1", "--dry_run", "--train_args", "--lr 0.05 --precision bf16", *own])
        assert "--train_args: --lr change what the table's runs compute" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # 0 is a value too
        reproduce.main(["--table", "1", "--dry_run", "--train_args", "--pos_dim 0"])
    assert "--train_args: --pos_dim: set for each run" in capsys.readouterr().err
    reproduce.main(["--table", "1", "--dry_run", "--train_args", "--precision bf16", "--save_dir",
                    str(tmp_path / "s")])  # how, not what: into the project's results
    reproduce.main(["--table", "1", "--dry_run", "--train_args", "--lr 0.05", "--results_dir", str(tmp_path / "r"),
                    "--save_dir", str(tmp_path / "s")])  # an experiment of one's own, in folders of one's own
    assert report.other_hyperparameters({"dataset": "webnlg", "match": "partial", "lr": 0.05, "num_epoch": 150,
                                         "batch_size": 50, "input_dropout": 0.1}) == {"lr": 0.05}
    assert report.other_hyperparameters({"dataset": "webnlg", "match": "exact", "lr": 0.0005}) == {}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = write_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), sizes=(120, 30, 30))
    prepare_vocab.main(["--dataset", "webnlg", "--data_dir", str(folder), "--wv_file", "none"])
    return folder


@pytest.mark.slow
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
    reproduce.main([*common[2:4], "--save_dir", str(tmp_path / "runs"), "--results_dir", str(tmp_path / "results"),
                    "--compare_test", "--retagged_test", str(retagged), "--rebuilt_test", str(rebuilt)])
    comparison = json.loads((tmp_path / "results" / "test_comparison.json").read_text())
    assert comparison["same_input_sentences"] == comparison["sentences"] == len(records)
    assert sorted(comparison["runs"]) == finished
    for entry in comparison["runs"].values():
        assert entry.pop("mention_reading") == MENTION_READING
        assert len(entry.pop("best_pt_sha256")) == 64  # the checkpoint scored, told from a run trained again
        assert set(entry) == {"official", "retagged", "rebuilt"} and 0 <= entry["retagged"]["partial"] <= 1
        assert entry["rebuilt"]["partial"] == entry["retagged"]["partial"]  # same last words, same input
        assert entry["rebuilt"]["exact"] != entry["retagged"]["exact"]
    report = (tmp_path / "results" / "README.md").read_text()
    assert "## Test POS tags" in report and "## Test entity spans" in report

    # the repeated-mention study: every finished run decoded both ways, its entry in the report
    reproduce.main([*common[2:4], "--save_dir", str(tmp_path / "runs"), "--results_dir", str(tmp_path / "results"),
                    "--mention_study"])
    study = json.loads((tmp_path / "results" / "mention_study.json").read_text())
    assert sorted(study["runs"]) == finished
    for entry in study["runs"].values():
        assert entry["mention_reading"] == MENTION_READING
        paper, first = entry["paper"], entry["first_mentions"]
        for count in ("predicted", "at_repeated_mentions"):
            assert first[count] <= paper[count]
        assert first["scores"]["strings"] == paper["scores"]["strings"]  # a text triple once or twice: one string
        assert first["scores"]["ours"]["exact"]["gold"] == paper["scores"]["ours"]["exact"]["gold"]
    for name, entry in study["runs"].items():  # the paper decoder's scores are the run's own test scores
        run_results = json.loads((tmp_path / "runs" / name / "results.json").read_text())
        assert entry["best_pt_sha256"] == run_results["best_pt_sha256"]
        for mode in ("partial", "exact"):
            assert entry["paper"]["scores"]["ours"][mode]["f1"] == pytest.approx(run_results["test"][mode]["f1"],
                                                                                  abs=1e-6)
            assert entry["paper"]["scores"]["strings"][mode]["f1"] == pytest.approx(
                run_results["string_sets"]["test"][mode]["f1"], abs=1e-6)
    assert "## Repeated mentions" in (tmp_path / "results" / "README.md").read_text()

    # with almost no time left, no run starts, nor gets a folder
    reproduce.main([*common, "--hours", "0.000001"])  # less than one epoch of the --train_args run
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == finished

    # a fresh clone has the committed summaries but no checkpoints: finished runs are not redone
    shutil.rmtree(tmp_path / "runs")
    reproduce.main([*common, "--dry_run"])
    assert capsys.readouterr().out.count("done ") == 3


def test_time_estimates_by_hand(tmp_path):
    saved = tmp_path / "saved"
    budget = Budget("webnlg", saved, tmp_path)
    k0_exact = experiments.Run("webnlg", "exact", 0, 1)
    assert budget.core_hours([k0_exact]) == (0.0, 1)
    for name, rounds, epochs in (("webnlg_a", 0, [(8, 2), (18, 2), (25, 5)]), ("webnlg_b", 2, [(35, 5)]),
                                 ("nyt_c", 2, [(900, 100)])):  # another dataset's runs do not count
        folder = tmp_path / "runs" / name
        folder.mkdir(parents=True)
        if name != "webnlg_b":  # an unfinished run's epochs count too
            folder.joinpath("results.json").write_text(run_summary())
        folder.joinpath("config.json").write_text(json.dumps({"settings": {"rounds": rounds}}))
        folder.joinpath("metrics.jsonl").write_text("".join(
            json.dumps({"train_seconds": train, "eval_seconds": evaluation}) + "\n" for train, evaluation in epochs))
    # medians 20 s (K=0) and 40 s (K=2): K=4 lies on their line at 60 s; WebNLG presets run 150 epochs
    k4_partial = experiments.Run("webnlg", "partial", 4, 1)
    assert budget.core_hours([k4_partial, k0_exact]) == (pytest.approx(150 * (60 + 20) / 3600), 0)
    # an interrupted run needs only the epochs it has not run yet
    (saved / k0_exact.name).mkdir(parents=True)
    (saved / k0_exact.name / "metrics.jsonl").write_text("{}\n" * 100)
    assert budget.core_hours([k0_exact]) == (pytest.approx(50 * 20 / 3600), 0)

    # --hours: a run that could, at worst, end after the deadline does not start
    hours = dataclasses.replace(budget, deadline=time.time() + 2 * 3600)
    assert hours.over_time(k4_partial) == "needs up to 2.5 h, 2.0 h left of --hours"
    assert hours.over_time(k0_exact) is None  # 0.3 h left to run
    assert dataclasses.replace(hours, num_epoch=100).over_time(k4_partial) is None  # 100 epochs, not 150: 1.7 h
    assert budget.over_time(k4_partial) is None  # no --hours

    # a dry run meets each run when a --jobs slot frees, at worst: K=0 (50 epochs left, 0.3 h), then K=4 (2.5 h)
    fresh_k0 = experiments.Run("webnlg", "exact", 0, 2)  # 150 epochs: 0.8 h
    hours = dataclasses.replace(budget, deadline=time.time() + 3 * 3600)
    verdicts = hours.dry_run_verdicts([fresh_k0, k4_partial], jobs=1)
    assert verdicts[fresh_k0] is None and verdicts[k4_partial] == "needs up to 2.5 h, 2.2 h left of --hours"
    assert hours.dry_run_verdicts([fresh_k0, k4_partial], jobs=2) == {fresh_k0: None, k4_partial: None}

    # what an invocation spends outside its epochs (start, data, final scores), from runner.json: one more each
    (tmp_path / "runs" / "webnlg_a" / "runner.json").write_text(json.dumps({"invocations": [{"wall_seconds": 120}]}))
    (tmp_path / "runs" / "webnlg_b" / "runner.json").write_text(  # cut off with a session: less than its epochs
        json.dumps({"invocations": [{"wall_seconds": 10}]}))
    assert budget.core_hours([k4_partial, k0_exact]) == (pytest.approx((150 * 60 + 50 * 20 + 2 * 60) / 3600), 0)
    assert dataclasses.replace(budget, deadline=time.time() + 300).over_time(k0_exact) == (
        "needs up to 0.3 h, 5.0 min left of --hours")  # 1060 s


def test_train_args_epochs_reach_the_budget(tmp_path):
    """--num_epoch in --train_args overrides every preset's: the runner's time accounting counts with it."""
    args = reproduce.parse_args(["--table", "1", "--dry_run", "--save_dir", str(tmp_path / "runs"), "--results_dir",
                                 str(tmp_path / "results"), "--train_args=--num_epoch 7"])
    args.deadline = None
    assert reproduce.budget_of(args) == Budget("webnlg", tmp_path / "runs", tmp_path / "results", 7, None)


def test_hours_start_no_run_whose_time_cannot_be_estimated(tmp_path, capsys):
    """--hours promises only runs sure to end in time: before any epoch was timed (or with only one K timed, which
    says little of another K's epochs) a run cannot be vouched for, so it is skipped, and one warning says why."""
    common = ["--table", "1", "--seeds", "1", "--dry_run", "--save_dir", str(tmp_path / "runs"),
              "--results_dir", str(tmp_path / "results")]
    reproduce.main([*common, "--hours", "0.0001"])
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 8 and all(line.startswith("skip webnlg_") for line in lines), lines
    assert f"(cannot be timed: no epoch of a webnlg run timed in {tmp_path / 'results' / 'runs'} yet)" in lines[0]
    assert "--hours 0.0001: 8 of the 8 runs to do are not started, their time cannot be estimated" in captured.err
    reproduce.main(common)  # without --hours nothing needs estimating
    assert capsys.readouterr().out.count("todo ") == 8

    folder = tmp_path / "results" / "runs" / "webnlg_exact_K0_seed9"  # epochs timed at K = 0 only
    folder.mkdir(parents=True)
    folder.joinpath("config.json").write_text(json.dumps({"settings": {"rounds": 0}}))
    folder.joinpath("metrics.jsonl").write_text(json.dumps({"train_seconds": 1, "eval_seconds": 1}) + "\n")
    budget = Budget("webnlg", tmp_path / "runs", tmp_path / "results", deadline=time.time() + 3600)
    assert budget.over_time(experiments.Run("webnlg", "exact", 0, 1)) is None  # 150 epochs of 2 s
    assert budget.over_time(experiments.Run("webnlg", "partial", 2, 1)) == \
        "cannot be timed: webnlg epochs timed only at K=0, none at K=2"
    assert budget.core_hours([experiments.Run("webnlg", "partial", 2, 1), experiments.Run("webnlg", "exact", 0, 1)]
                             ) == (150 * 2 / 3600, 1)


@pytest.mark.parametrize("hours", ["0", "-1", "nan"])
def test_hours_that_leave_no_time_are_refused(hours, capsys):
    with pytest.raises(SystemExit):
        reproduce.parse_args(["--table", "1", "--dry_run", "--hours", hours])
    assert capsys.readouterr().err.startswith(f"reproduce.py: error: argument --hours: {hours!r} is not a number > 0")


@pytest.mark.parametrize("flag", ["--resume /some/run", "--save_dir elsewhere", "--run_id mine", "--device cuda:1"])
def test_train_args_that_take_the_runners_folders_or_devices_are_refused(flag, capsys):
    """--resume (like --run_id and --save_dir) would make every run train another folder than its own, and a
    --device the runner's per-run GPU (CUDA_VISIBLE_DEVICES) does not have fails every run: refused up front."""
    with pytest.raises(SystemExit):
        reproduce.parse_args(["--table", "1", "--dry_run", "--train_args", flag])
    assert capsys.readouterr().err.startswith(f"reproduce.py: error: --train_args: {flag.split()[0]}: set for each "
                                              "run by the plan or by this runner's own flags")


@pytest.mark.parametrize(("flag", "reason"), [("--lr abc", "argument --lr: 'abc' is not a number > 0"),
                                              ("--bogus 1", "unrecognized arguments: --bogus 1")])
def test_a_bad_flag_in_train_args_is_this_runners_error(flag, reason, capsys):
    """train.py's parser checks the flags, and the one line says they came through reproduce.py --train_args."""
    with pytest.raises(SystemExit) as stopped:
        reproduce.parse_args(["--table", "1", "--dry_run", "--train_args", flag])
    assert stopped.value.code == 2
    assert capsys.readouterr().err == f"reproduce.py: error: --train_args: {reason} (see train.py --help)\n"


def test_a_run_is_claimed_by_one_runner_at_a_time(tmp_path):
    lock = tmp_path / "runner.lock"
    assert reproduce.claim(tmp_path) and lock.read_text() == process_identity()
    assert not reproduce.claim(tmp_path)  # held by a live process (this one)
    lock.write_text(str(os.getpid()))  # a bare pid, as runners before the boot and start time were recorded
    assert not reproduce.claim(tmp_path)
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.write_text(finished.stdout.strip())  # left behind by a runner that is gone
    assert reproduce.claim(tmp_path) and lock.read_text() == process_identity()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="boot ids and start times are read from Linux /proc")
def test_a_lock_whose_pid_now_names_another_process_is_taken_over(tmp_path):
    """After a reboot (another boot id), or once the pid went to a later process (another start time), the pid
    alive is not the runner that wrote the lock: it was killed, and the run is free."""
    lock = tmp_path / "runner.lock"
    pid, boot, started = process_identity().split()
    for stale in (f"{pid} {boot}-before-reboot {started}", f"{pid} {boot} {int(started) - 1}"):
        lock.write_text(stale)
        assert reproduce.claim(tmp_path) and lock.read_text() == process_identity()


def test_commit_summary_commits_in_the_results_repository(tmp_path, monkeypatch):
    """--commit from a runner whose code lies elsewhere (a scratch worktree) commits where the results are."""
    for variable in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(variable, "runner@test")
    repo = tmp_path / "checkout"
    folder = repo / "results" / "runs" / "webnlg_exact_K0_seed9"
    folder.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-q", "--allow-empty", "-m", "start"], check=True)
    (folder / "results.json").write_text(run_summary())
    (repo / "unrelated.txt").write_text("not a run summary")
    launch.commit_summary(folder, folder.name)
    log = subprocess.run(["git", "-C", str(repo), "log", "-1", "--name-only", "--format=%s"],
                         capture_output=True, text=True).stdout
    assert log.split() == ["results:", "webnlg_exact_K0_seed9", "results/runs/webnlg_exact_K0_seed9/results.json"]


def test_dry_run_says_which_runs_it_would_resume(tmp_path, capsys):
    common = ["--table", "1", "--seeds", "1", "--dry_run", "--save_dir", str(tmp_path / "runs"),
              "--results_dir", str(tmp_path / "results")]
    reproduce.main(common)
    first = capsys.readouterr().out.splitlines()[0].split()[1]
    started = tmp_path / "runs" / first
    started.mkdir(parents=True)
    (started / "config.json").write_text("{}")
    (started / "metrics.jsonl").write_text("{}\n" * 3)
    reproduce.main(common)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"todo {first} (resumed after 3 epochs)" and lines[1].startswith("todo ")
    assert "resumed" not in lines[1]


def test_more_jobs_than_cores_share_them_with_a_warning(caplog, monkeypatch):
    monkeypatch.setattr(reproduce, "usable_cores", lambda: 2)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    args = argparse.Namespace(device="cpu", jobs=5, runs_per_gpu=1)
    slots = reproduce.local_slots(args, runs=10)
    assert [slot.cores for slot in slots] == [(0,), (1,), (0,), (1,), (0,)]
    assert "--jobs 5 on 2 usable cores: the runs share cores, up to 3 on each" in caplog.text
    caplog.clear()
    assert [slot.cores for slot in reproduce.local_slots(args, runs=2)] == [(0,), (1,)]  # as many as runs left
    assert not caplog.text


def test_a_missing_test_copy_is_built_only_where_it_is_named(tmp_path, capsys):
    """prepare_data.py writes OUT/webnlg whole: a path of another shape, or one whose OUT is the project's dataset
    folder, would replace the prepared dataset/webnlg."""
    summary = tmp_path / "results" / "runs" / "webnlg_partial_K2_seed1"  # its checkpoints are not here
    summary.mkdir(parents=True)
    (summary / "results.json").write_text(run_summary())
    common = ["--compare_test", "--results_dir", str(tmp_path / "results"), "--save_dir", str(tmp_path / "saved")]
    for path in (tmp_path / "mine" / "test.json", reproduce.PROJECT_ROOT / "dataset" / "webnlg" / "test2.json"):
        with pytest.raises(ErrorExit, match=re.escape(f"--retagged_test {path}: no such file; to have it built, "
                                                       "name a path OUT/webnlg/test.json")):
            reproduce.main([*common, "--retagged_test", str(path)])
    assert reproduce.buildable_test(tmp_path / "webnlg" / "test.json", "--retag_test") == tmp_path
    with pytest.raises(InputError, match="would replace the prepared dataset/webnlg"):
        reproduce.buildable_test(reproduce.PROJECT_ROOT / "dataset" / "webnlg" / "test.json", "--retag_test")
    with pytest.raises(ErrorExit, match="--compare_test --dataset nyt: the retagged and rebuilt tests exist for"):
        reproduce.main([*common, "--dataset", "nyt"])
    missing = tmp_path / "copies" / "webnlg" / "test.json"  # buildable, but no finished run to score on it
    reproduce.main([*common, "--retagged_test", str(missing), "--rebuilt_test", str(missing)])
    assert "no finished run of webnlg with a best.pt" in capsys.readouterr().err and not missing.exists()


def test_an_unfinished_attempt_never_replaces_a_committed_summary(tmp_path):
    """A run finished elsewhere (its committed summary) and an interrupted attempt at it here: the summary stays."""
    name = "webnlg_partial_K0_seed1"
    committed = reproduce.PROJECT_ROOT / "results" / "runs" / name
    summary, attempt = tmp_path / "results" / "runs" / name, tmp_path / "saved" / name
    shutil.copytree(committed, summary)
    attempt.mkdir(parents=True)
    shutil.copy(committed / "config.json", attempt)
    (attempt / "metrics.jsonl").write_text((committed / "metrics.jsonl").read_text().splitlines()[0] + "\n")
    reproduce.main(["--table", "1", "--seeds", "1", "--only", name, "--save_dir", str(tmp_path / "saved"),
                    "--results_dir", str(tmp_path / "results")])
    assert (summary / "metrics.jsonl").read_bytes() == (committed / "metrics.jsonl").read_bytes()


def test_a_damaged_summary_counts_as_unfinished(tmp_path, capsys):
    """A results.json cut short is no finished run (resuming writes it again), and never replaces a good copy."""
    name = "webnlg_partial_K0_seed1"
    committed = reproduce.PROJECT_ROOT / "results" / "runs" / name
    saved, summary = tmp_path / "saved" / name, tmp_path / "results" / "runs" / name
    shutil.copytree(committed, saved)
    (saved / "results.json").write_text('{"best_epoch": 3, "dev"')
    common = ["--table", "1", "--seeds", "1", "--only", name, "--save_dir", str(tmp_path / "saved"),
              "--results_dir", str(tmp_path / "results")]
    reproduce.main([*common, "--dry_run"])
    epochs = len((committed / "metrics.jsonl").read_text().splitlines())
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == f"todo {name} (resumed after {epochs} epochs)"
    assert f"{saved / 'results.json'}:1: malformed JSON" in err and "counts as unfinished" in err
    shutil.copytree(committed, summary)  # a good committed summary: finished, and kept as it is
    reproduce.main(common)
    assert (summary / "results.json").read_bytes() == (committed / "results.json").read_bytes()
    assert "table 1 on webnlg: 1 runs planned, 0 still to do" in capsys.readouterr().err


@pytest.mark.parametrize("content", ["", "0", "-1", "garbage", "99999999999"])
def test_a_lock_that_names_no_live_runner_is_taken_over(tmp_path, content):
    (tmp_path / "runner.lock").write_text(content)
    assert reproduce.claim(tmp_path) and (tmp_path / "runner.lock").read_text() == process_identity()


def test_folders_and_seeds_are_checked_before_any_run(tmp_path, capsys):
    """A dry run or a report writes no run folder: those check only what they write."""
    afile = tmp_path / "afile"
    afile.write_text("x\n")
    for flags, named in ((["--results_dir", str(afile)], f"--results_dir {afile}: {afile} is a file"),
                         (["--save_dir", str(afile / "runs")], f"--save_dir {afile / 'runs'}: {afile} is a file")):
        with pytest.raises(ErrorExit, match=re.escape(named)):
            reproduce.main(["--table", "1", "--seeds", "1", *flags])
    with pytest.raises(SystemExit):
        reproduce.main(["--table", "1", "--seeds", str(2**32), "--dry_run"])
    assert "not a seed in [0, 2**32 - 1]" in capsys.readouterr().err  # train.py's range, refused before any run


def test_table_runs_with_pos_on_data_without_pos_tags_are_refused_once(data_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(data_dir, data)
    labels = json.loads((data / "labels.json").read_text())
    (data / "labels.json").write_text(json.dumps({**labels, "pos": labels["pos"][:2]}))
    flags = ["--table", "1", "--seeds", "1", "--data_dir", str(data), "--save_dir", str(tmp_path / "runs"),
             "--results_dir", str(tmp_path / "results")]
    with pytest.raises(ErrorExit, match="has no POS tags .*, which 8 of the runs to do use"):
        reproduce.main(flags)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("to_worker,deaf", [(False, False), (True, False), (False, True)],
                         ids=["to the process", "to a worker thread", "children that ignore Ctrl-C"])
def test_an_interrupted_runner_stops_its_trainings_and_starts_no_more(tmp_path, monkeypatch, to_worker, deaf):
    """kill -INT of the runner alone: its children (here sleepers standing in for train.py) are not signalled by
    the terminal, so the runner stops them itself, and the runs not yet started never start; also where the
    kernel hands the signal to a thread that waits on a run (the main thread must still wake up for it), and
    where the children ignore Ctrl-C, as every process started by `nohup reproduce.py ... &` does."""
    import signal
    import threading

    started = []

    def sleeper(run, args, slot):
        process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], stderr=subprocess.DEVNULL,
                                   preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if deaf else None)
        launch.RUNNING.add(process)
        started.append(process)
        time.sleep(0.5)  # the runner waits on its runs by now
        if to_worker:
            signal.pthread_kill(threading.get_ident(), signal.SIGINT)
        else:
            os.kill(os.getpid(), signal.SIGINT)  # kill -INT of the runner's pid: the child does not get it
        try:
            return f"exit {process.wait()}"
        finally:
            launch.RUNNING.discard(process)

    monkeypatch.setattr(reproduce, "execute", sleeper)
    runs = experiments.plan_runs("1", "webnlg", [1]).runs
    args = argparse.Namespace(device="cpu", jobs=1, runs_per_gpu=1)
    begun = time.time()
    with pytest.raises(KeyboardInterrupt):
        reproduce.run_locally(runs, args)
    assert len(started) == 1, started
    assert started[0].poll() is not None and time.time() - begun < 30, (started[0].poll(), time.time() - begun)
