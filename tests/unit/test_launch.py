"""Where runs go, without training anything: GPU and core assignment (a fake GPU count), the SLURM array a
table becomes, flag validation, failure exit codes, the paper's columns for renamed datasets."""
import json
import os
import sys

import pytest
from helpers import run_summary

import reproduce
from experiments import plan as experiments
from experiments.budget import Budget
from experiments.launch import Slot, SlurmResources, TrainJob, assign_slots, is_finished, visible_gpus
from utils.errors import ErrorExit, InputError
from utils.project import PROJECT_ROOT, RUN_DATA_FILES


def test_one_gpu_per_run_or_a_share_of_one():
    slots = assign_slots(4, list(range(16)), ["0", "1", "2", "3"])
    assert [s.gpu for s in slots] == ["0", "1", "2", "3"]
    assert [s.cores for s in slots] == [tuple(range(i * 4, i * 4 + 4)) for i in range(4)]
    shared = assign_slots(4, list(range(8)), ["4", "7"], runs_per_gpu=2)
    assert [s.gpu for s in shared] == ["4", "4", "7", "7"]
    with pytest.raises(ValueError, match="needs 3 GPUs; 2 visible"):
        assign_slots(5, list(range(8)), ["0", "1"], runs_per_gpu=2)


def test_cores_are_split_contiguously_and_gpus_hidden_on_cpu():
    slots = assign_slots(3, [0, 1, 2, 3, 4, 5, 6, 7], [])
    assert slots == [Slot("", (0, 1, 2)), Slot("", (3, 4, 5)), Slot("", (6, 7))]
    assert assign_slots(3, [0, 1], []) == [Slot("", (0,)), Slot("", (1,)), Slot("", (0,))]  # more runs than cores
    assert assign_slots(1, [2, 5], ["0"]) == [Slot("0", (2, 5))]


def test_visible_gpus_keep_the_runners_own_numbering():
    assert visible_gpus({}, 3) == ["0", "1", "2"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2,3"}, 2) == ["2", "3"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}, 0) == []


@pytest.fixture
def recorded(monkeypatch, tmp_path):
    """reproduce.main with execute() replaced by a recorder, on a machine that claims two GPUs and two cores."""
    calls = []

    def fake_execute(run, args, slot):
        calls.append((run.name, slot))
        return "failed (exit 1)" if run.name in getattr(args, "fail", ()) else "finished"

    monkeypatch.setattr(reproduce, "execute", fake_execute)
    monkeypatch.setattr(reproduce, "cuda_device_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(reproduce.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    data = tmp_path / "data"  # a prepared dataset's files, as far as the runner checks before starting runs
    data.mkdir()
    for name in RUN_DATA_FILES:
        (data / name).touch()
    return calls, ["--table", "5", "--seeds", "1", "--save_dir", str(tmp_path / "runs"),
                   "--results_dir", str(tmp_path / "results"), "--data_dir", str(data)]


def test_dry_run_says_what_a_real_start_would_do(recorded, capsys, monkeypatch):
    calls, common = recorded
    monkeypatch.setattr(Budget, "over_time", lambda self, run, now=None: "too long" if "noRC" in run.name else None)
    reproduce.main([*common, "--max_runs", "3", "--dry_run"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["todo", "todo", "skip", "later", "later"] and not calls
    assert lines[2].endswith("noRC_seed1 (too long)") and lines[3].endswith("(beyond --max_runs 3)")


def test_runs_get_their_own_gpu_and_cores(recorded):
    calls, common = recorded
    reproduce.main([*common, "--jobs", "2"])
    assert len(calls) == 5 and {slot for _, slot in calls} <= {Slot("0", (0,)), Slot("1", (1,))}
    calls.clear()
    reproduce.main([*common, "--jobs", "2", "--device", "cpu"])
    assert {slot for _, slot in calls} <= {Slot("", (0,)), Slot("", (1,))}
    calls.clear()  # one run left: it gets every core
    reproduce.main([*common, "--jobs", "2", "--device", "cpu", "--only", "*_noER_*"])
    assert calls == [("webnlg_exact_K3_noER_seed1", Slot("", (0, 1)))]
    with pytest.raises(ErrorExit, match="needs 3 GPUs"):
        reproduce.main([*common, "--jobs", "3"])


def test_a_failed_run_fails_the_runner(recorded, monkeypatch):
    calls, common = recorded
    real_parse = reproduce.parse_args

    def parse_with_a_failure(argv):
        args = real_parse(argv)
        args.fail = ("webnlg_exact_K3_noER_seed1",)
        return args

    monkeypatch.setattr(reproduce, "parse_args", parse_with_a_failure)
    with pytest.raises(SystemExit, match="1 of 5 runs failed: webnlg_exact_K3_noER_seed1"):
        reproduce.main(common)
    assert len(calls) == 5  # the other runs still ran


@pytest.mark.parametrize("flags", [["--max_runs", "0"], ["--jobs", "0"], ["--hours", "-1"], ["--seeds", "-2"],
                                   ["--time", "0"], ["--runs_per_gpu", "0"], ["--early_stop", "x"],
                                   ["--executor", "slurm", "--hours", "2"], ["--partition", "gpu"],
                                   ["--executor", "slurm", "--mem", "lots"], ["--executor", "slurm", "--mem", "16"],
                                   ["--executor", "slurm", "--partition", "gpu;rm -rf x"],
                                   ["--executor", "slurm", "--time", "2"],
                                   ["--cpus_per_run", "4"], ["--time", "60"],  # SLURM's: a local run ignores them
                                   ["--device", "cpu", "--runs_per_gpu", "2"], ["--retagged_test", "t.json"],
                                   ["--rebuilt_test", "t.json"],  # only --compare_test reads them
                                   ["--mention_study"], ["--compare_test"], ["--report"]])  # these train nothing
def test_bad_flags_are_refused(flags):
    with pytest.raises(SystemExit) as refused:
        reproduce.parse_args(["--table", "1", *flags])
    assert refused.value.code == 2
    with pytest.raises(SystemExit) as refused:  # no --table, nothing else: not a silent rewrite of the report
        reproduce.parse_args(["--dry_run"])
    assert refused.value.code == 2


def test_flags_that_would_be_ignored_or_fail_late_are_refused(tmp_path, monkeypatch, capsys):
    """--report reads no run folder; --commit outside git would fail after each run; SLURM's commands missing
    would be a traceback from submitit after the plan was made."""
    for flags, message in ((["--report", "--save_dir", str(tmp_path)], "--save_dir: --report reads only"),
                           (["--table", "1", "--commit", "--results_dir", str(tmp_path / "r")],
                            f"--commit: {tmp_path / 'r'} is in no git work tree, or git ignores it"),
                           (["--table", "1", "--commit", "--results_dir", str(PROJECT_ROOT / "saved_models" / "r")],
                            "saved_models/r is in no git work tree, or git ignores it")):  # .gitignore: saved_models/*
        with pytest.raises(SystemExit):
            reproduce.parse_args(flags)
        assert message in capsys.readouterr().err
    monkeypatch.setattr(reproduce.shutil, "which", lambda command: None)
    with pytest.raises(SystemExit):
        reproduce.parse_args(["--table", "1", "--executor", "slurm"])
    assert "--executor slurm: no sbatch here" in capsys.readouterr().err
    reproduce.parse_args(["--table", "1", "--executor", "slurm", "--dry_run"])  # prints the array: needs none


def test_compare_test_refuses_its_test_files_before_building_any(tmp_path, monkeypatch):
    (tmp_path / "results" / "runs" / "webnlg_partial_K2_seed1").mkdir(parents=True)
    (tmp_path / "results" / "runs" / "webnlg_partial_K2_seed1" / "results.json").write_text(run_summary())
    empty = tmp_path / "empty.json"
    empty.write_text("")
    monkeypatch.setattr(reproduce, "buildable_test", lambda *args: pytest.fail("a test copy was to be built first"))
    flags = ["--compare_test", "--results_dir", str(tmp_path / "results"), "--save_dir", str(tmp_path / "runs")]
    for given, message in ((["--retagged_test", str(empty)], "--retagged_test .*empty.json: no sentences"),
                           (["--rebuilt_test", str(tmp_path)], "is a folder, not a RIN-format file")):
        with pytest.raises(ErrorExit, match=message):
            reproduce.main([*flags, *given])


@pytest.mark.parametrize(("train_args", "message"), [
    ("--seed 3 --round 5", "reproduce.py: error: --train_args: --rounds, --seed: set for each run"),  # abbreviated too
    ("--data_dir elsewhere", "--train_args: --data_dir: set for each run"),
    ("--lr -1", "reproduce.py: error: --train_args: argument --lr: '-1' is not a number > 0"),  # train.py's checks
    ("--lr '1", "--train_args \"--lr '1\": No closing quotation"),
    ("--lr 1e-3 --help", "reproduce.py: error: --train_args: --help lists train.py's flags: run python train.py"),
])
def test_train_args_are_checked_before_any_run(train_args, message, capsys):
    with pytest.raises(SystemExit) as refused:
        reproduce.parse_args(["--table", "1", "--train_args", train_args])
    assert refused.value.code == 2 and message in capsys.readouterr().err
    assert reproduce.parse_args(["--table", "1", "--train_args", "--precision bf16 --lr 1e-3", "--results_dir",
                                 "my_results", "--save_dir", "my_runs"]).train_args  # into folders of one's own


def test_cuda_runs_need_a_gpu(monkeypatch, capsys):
    monkeypatch.setattr(reproduce, "cuda_device_count", lambda: 0)
    with pytest.raises(SystemExit):
        reproduce.parse_args(["--table", "1", "--device", "cuda", "--dry_run"])
    assert "--device cuda: this machine has no GPU" in capsys.readouterr().err


def test_an_unknown_dataset_is_one_line_naming_the_known_ones(capsys):
    with pytest.raises(SystemExit) as refused:
        reproduce.main(["--table", "1", "--dataset", "webnlg_typo"])
    message = str(refused.value)
    assert message.startswith("reproduce.py: error: unknown dataset 'webnlg_typo'") and "\n" not in message
    assert "webnlg, webnlg_exact" in message


def test_dry_run_prints_the_whole_array(tmp_path, capsys):
    reproduce.main(["--table", "all", "--executor", "slurm", "--dry_run", "--partition", "gpu", "--gpus_per_run", "1",
                    "--time", "600", "--mem", "8G", "--jobs", "20", "--save_dir", str(tmp_path / "runs"),
                    "--results_dir", str(tmp_path / "results")])
    lines = capsys.readouterr().out.splitlines()
    planned = [run.name for run in experiments.plan_runs("all", "webnlg", list(experiments.PAPER_SEEDS)).runs]
    resources = "partition=gpu gpus=1 cpus=2 time=600min mem=8G"
    assert lines[0] == f"# SLURM job array: {len(planned)} tasks, each {resources}, at most 20 at once"
    tasks = [line.split("\t") for line in lines[1:]]
    assert [(index, name) for index, name, _, _ in tasks] == [(str(i), name) for i, name in enumerate(planned)]
    assert all(task[2] == resources and "train.py --dataset webnlg" in task[3] and task[3].endswith("--threads 2")
               for task in tasks)
    assert not (tmp_path / "runs").exists()  # nothing submitted, nothing written


def test_slurm_parameters():
    chosen = SlurmResources(partition="gpu", gpus_per_run=2, cpus_per_run=4, time=90, mem="16G",
                            parallel=8).parameters(tasks=30)
    assert {k: chosen[k] for k in ("partition", "gpus_per_node", "cpus_per_task", "time", "mem",
                                   "array_parallelism")} == {"partition": "gpu", "gpus_per_node": 2,
                                                             "cpus_per_task": 4, "time": 90, "mem": "16G",
                                                             "array_parallelism": 8}
    plain = SlurmResources().parameters(tasks=3)
    assert "partition" not in plain and "gpus_per_node" not in plain and plain["array_parallelism"] == 3
    # CPU tasks see no GPU, even on nodes where SLURM does not fence them off (no device cgroups)
    assert plain["setup"][-1] == "export CUDA_VISIBLE_DEVICES=" and "CUDA_VISIBLE" not in " ".join(chosen["setup"])


def test_run_names_give_back_their_dataset():
    assert experiments.run_dataset("webnlg_exact_exact_K3_noER_seed2") == "webnlg_exact"
    assert experiments.run_dataset("webnlg_official_partial_K0_testsel_seed1") == "webnlg_official"
    assert experiments.run_dataset("nyt_partial_K4_noPOS_seed3") == "nyt"
    assert experiments.run_dataset("notes") is None
    # the match mode after the dataset's own name, which may contain "exact"
    assert experiments.run_match("webnlg_exact_partial_K2_seed1") == "partial"
    assert experiments.run_match("webnlg_exact_exact_K0_testsel_seed1") == "exact"
    with pytest.raises(ValueError, match="not a run name"):
        experiments.run_match("webnlg_exact_seed1")
    assert experiments.paper_numbers("webnlg_official") is experiments.PAPER["webnlg"]
    assert experiments.paper_numbers("nyt_official") is experiments.PAPER["nyt"]
    assert experiments.paper_numbers("webnlg_exact") == {}


class ReportingJob(TrainJob):
    """A TrainJob whose child reports the cores and GPUs it was given instead of training."""

    def command(self) -> list[str]:
        return [sys.executable, "-c", "import os, sys; print('child', sorted(os.sched_getaffinity(0)), "
                "repr(os.environ.get('CUDA_VISIBLE_DEVICES')), sys.argv[1:])"]


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="CPU affinity is Linux's")
def test_the_child_runs_on_its_slot(tmp_path):
    core = max(os.sched_getaffinity(0))
    job = ReportingJob("webnlg_exact_K0_seed1", (), str(tmp_path / "runs"), str(tmp_path / "results"))
    assert job.run(Slot("3", (core,))) == "finished"
    assert f"child [{core}] '3' ['--threads', '1', '--device', 'cuda']" in (
        tmp_path / "runs" / job.name / "stdout.log").read_text()
    runner = json.loads((tmp_path / "results" / "runs" / job.name / "runner.json").read_text())
    assert runner["invocations"][0] | {"cores": [core], "cuda_visible_devices": "3", "threads": 1} == \
        runner["invocations"][0]
    assert job.run(Slot("", (core,))) == "finished"  # a CPU slot: no GPU visible, and the CPU asked for
    assert f"child [{core}] '' ['--threads', '1', '--device', 'cpu']" in (
        tmp_path / "runs" / job.name / "stdout.log").read_text()


def test_debug_shows_the_traceback():
    with pytest.raises(InputError, match="unknown dataset"):
        reproduce.main(["--table", "1", "--dataset", "webnlg_typo", "--debug"])


def test_a_run_held_by_another_train_py_is_left_alone(tmp_path):
    """train.py's flock on the run folder (which holds across the nodes of a shared filesystem) keeps a second
    job off a run that one is training; a finished run is never started again."""
    import fcntl

    job = ReportingJob("webnlg_exact_K0_seed1", (), str(tmp_path / "runs"), str(tmp_path / "results"))
    job.run_dir.mkdir(parents=True)
    with open(job.run_dir / "train.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert job.run() == "skipped: another train.py is training it"
    assert job.run() == "finished"  # the lock is free again
    (tmp_path / "runs" / job.name / "results.json").write_text(run_summary())
    assert job.run() == "skipped: finished"


def test_the_slurm_test_says_why_it_skips(monkeypatch):
    import slurm_cluster

    monkeypatch.setattr(slurm_cluster.shutil, "which", lambda tool: None if tool == "slurmd" else f"/usr/bin/{tool}")
    assert "slurmd missing" in slurm_cluster.why_unavailable() and "apt-get install" in slurm_cluster.why_unavailable()


def test_relative_folders_are_taken_from_where_the_runner_starts(tmp_path, monkeypatch):
    """train.py runs in the project root: the runner hands it absolute folders, as the user meant them."""
    monkeypatch.chdir(tmp_path)
    args = reproduce.parse_args(["--table", "1", "--save_dir", "runs", "--results_dir", "res", "--data_dir", "d"])
    assert (args.save_dir, args.results_dir, args.data_dir) == tuple(str(tmp_path / n) for n in ("runs", "res", "d"))


def test_a_resumed_run_takes_the_runners_flags_of_how_it_computes(tmp_path):
    """--train_args that only change how a run computes (settings.RESUME_FREE) reach a resumed run too; the
    others stay the run's own (its config.json)."""
    import argparse

    args = argparse.Namespace(save_dir=str(tmp_path), results_dir=str(tmp_path / "results"), early_stop=30,
                              data_dir=None, executor="local", commit=False,
                              train_args="--compile --pair_kernel torch --precision bf16 --eval_batch_size 7")
    job = reproduce.train_job(experiments.Run("webnlg", "partial", 2, 1), args)
    assert "--precision" in job.command()  # a fresh start: every flag
    (tmp_path / job.name).mkdir()
    (tmp_path / job.name / "config.json").write_text("{}")
    resumed = job.command()
    assert resumed[2:4] == ["--resume", str(tmp_path / job.name)]
    assert resumed[4:] == ["--pair_kernel", "torch", "--eval_batch_size", "7", "--compile"]


def test_a_damaged_results_file_says_which_copy_counts(tmp_path, caplog):
    """A results.json cut short, beside a readable copy: the run is finished by the other, and the warning says
    so (and how the damaged one is written again); with no readable copy it is resumed."""
    save_dir, results_dir = tmp_path / "saved", tmp_path / "results"
    for name, damaged, good in (("a", save_dir, results_dir / "runs"), ("b", results_dir / "runs", save_dir),
                                ("c", save_dir, None)):
        (damaged / name).mkdir(parents=True)
        (damaged / name / "results.json").write_text('{"best_epoch": 1, "dev"')
        if good is not None:
            (good / name).mkdir(parents=True)
            (good / name / "results.json").write_text(run_summary())
    assert is_finished("a", save_dir, results_dir) and is_finished("b", save_dir, results_dir)
    assert not is_finished("c", save_dir, results_dir)
    warnings = [record.getMessage() for record in caplog.records]
    assert f"the run counts as finished by its summary {results_dir / 'runs' / 'a' / 'results.json'}; python " \
           f"train.py --resume {save_dir / 'a'} writes this file again" in warnings[0]
    assert f"the run counts as finished by {save_dir / 'b' / 'results.json'}, which the runner copies" in warnings[1]
    assert "the run counts as unfinished: the runner resumes it" in warnings[2] and len(warnings) == 3
    is_finished("c", save_dir, results_dir)
    assert len(caplog.records) == 3  # once each


class EndingJob(TrainJob):
    """A TrainJob whose child writes a finished run's results.json, then is stopped by Ctrl-C as it exits."""

    def command(self) -> list[str]:
        results = self.run_dir / "results.json"
        return [sys.executable, "-c", f"import os, signal; open({str(results)!r}, 'w').write({run_summary()!r}); "
                "os.kill(os.getpid(), signal.SIGINT)"]


def test_a_run_stopped_as_it_ends_is_finished(tmp_path):
    """Ctrl-C just after train.py wrote results.json (it exits -2): finished, not 'failed' and to be resumed."""
    job = EndingJob("webnlg_exact_K0_seed1", (), str(tmp_path / "runs"), str(tmp_path / "results"))
    outcome = job.run()
    assert outcome.startswith("finished (train.py was stopped as it ended, exit -2, after writing"), outcome
    runner = json.loads((tmp_path / "results" / "runs" / job.name / "runner.json").read_text())
    assert runner["invocations"][-1]["exit_code"] == -2  # recorded as it happened


@pytest.mark.parametrize(("given", "passed"), [("16gb", "16G"), ("16GB", "16G"), ("512m", "512M"), ("16000", "16000")])
def test_slurm_memory_sizes_in_sbatch_forms(given, passed, tmp_path):
    args = reproduce.parse_args(["--table", "1", "--executor", "slurm", "--dry_run", "--mem", given,
                                 "--save_dir", str(tmp_path / "runs"), "--results_dir", str(tmp_path / "results")])
    assert args.mem == passed
