"""End to end on generated data: prepare_vocab -> train -> evaluate, reload, and resume after a kill."""
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import evaluate
import score
import train
from data.loader import MENTION_READING, collate, load_split
from model import load_run, speed
from model.inference import extract
from model.run import epoch_records
from utils.files import file_sha256

ROOT = Path(__file__).resolve().parent.parent
FAST = ["--lr", "0.005", "--rounds", "2", "--threads", "1"]
pytestmark = pytest.mark.slow  # trains, compiles, kills and resumes runs


@pytest.fixture
def data_dir(synthetic_data):
    return synthetic_data


@pytest.fixture
def trained(trained_run):
    return trained_run


def test_vocab_files(data_dir):
    report = json.loads((data_dir / "vocab_report.json").read_text())
    assert report["oov_rate"]["train"] == 0.0
    assert "word2vec" in report["vectors"]
    assert (data_dir / "embedding.npy").exists() and (data_dir / "labels.json").exists()


def test_learns_synthetic_data(trained):
    run_dir, results = trained
    assert results["test"]["exact"]["f1"] >= 0.9, results
    assert results["selected_on"] == "dev"
    saved = json.loads((run_dir / "results.json").read_text())
    for split in ("dev", "test"):
        for mode in ("partial", "exact"):
            assert set(saved[split][mode]) == {"precision", "recall", "f1"}
            assert all(0.0 <= v <= 1.0 for v in saved[split][mode].values())
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 15
    first = json.loads(lines[0])
    assert {"epoch", "er_loss", "rc_loss", "dev", "train_seconds"} <= set(first)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["settings"]["rounds"] == 2 and config["model"]["rounds"] == 2
    assert config["mention_reading"] == MENTION_READING


def test_evaluate_round_trip_and_reload(trained, data_dir, tmp_path):
    run_dir, results = trained
    out = tmp_path / "predictions.jsonl"
    scores = evaluate.main(["--model_dir", str(run_dir), "--split", "test", "--out", str(out), "--threads", "1"])
    for mode in ("partial", "exact"):
        assert scores["ours"][mode]["f1"] == pytest.approx(results["test"][mode]["f1"])
    records = [json.loads(line) for line in out.read_text().splitlines()]
    test_lines = (data_dir / "test.json").read_text().splitlines()
    assert len(records) == len(test_lines)
    assert [r["tokens"] for r in records] == [json.loads(line)["sentText"] for line in test_lines]
    # score.py counts another system's triples as evaluate.py's strings count ours: on evaluate.py's own output
    # it gives the same figures
    assert score.main(["--predictions", str(out), "--gold", str(data_dir / "test.json")])["strings"] == (
        scores["strings"])
    assert [r["line"] for r in records] == list(range(1, len(test_lines) + 1))
    triple = records[0]["gold"][0] if records[0]["gold"] else next(r["gold"][0] for r in records if r["gold"])
    assert set(triple) == {"subject", "subject_span", "relation", "object", "object_span"}
    bf16 = evaluate.main(["--model_dir", str(run_dir), "--split", "test", "--out", str(tmp_path / "bf16.jsonl"),
                          "--threads", "1", "--precision", "bf16"])
    assert bf16["ours"]["partial"]["f1"] == pytest.approx(scores["ours"]["partial"]["f1"], abs=0.05)

    # a reloaded checkpoint predicts exactly what the first load predicted
    model, vocab, labels, _ = load_run(run_dir)
    split = load_split(data_dir / "test.json", vocab, labels)
    again, _, _, _ = load_run(run_dir)
    first = extract(model, split.examples, labels, torch.device("cpu"))
    second = extract(again, split.examples, labels, "cpu")  # a device's name, as load_run takes
    assert [e.triples for e in first] == [e.triples for e in second]
    assert [[(t["subject_span"], t["relation"], t["object_span"]) for t in r["triples"]] for r in records] == [
        [([s[0], s[1]], rel, [o[0], o[1]]) for s, rel, o in e.triples] for e in first]


def test_breakdown_counts_as_the_chosen_scorer(trained, tmp_path):
    """--breakdown's groups are scored as --scorer scores: summed over the triples-per-sentence buckets (each
    sentence in one), the counts equal those evaluate.py printed for that scorer; the tables name the scorer."""
    run_dir, _ = trained
    for scorer in ("ours", "strings", "official"):
        out = tmp_path / f"{scorer}.jsonl"
        scores = evaluate.main(["--model_dir", str(run_dir), "--split", "test", "--out", str(out), "--threads", "1",
                                "--scorer", scorer, "--breakdown"])
        result = json.loads((tmp_path / f"{scorer}_breakdown.json").read_text())
        assert result["scorer"] == scorer
        # which run, checkpoint, data and threshold made it: the same as the scores file's
        assert {key: result[key] for key in ("model_dir", "best_pt_sha256", "threshold")} == {
            "model_dir": str(run_dir.absolute()), "best_pt_sha256": file_sha256(run_dir / "best.pt"), "threshold": 0.5}
        assert result["data"].endswith("test.json")
        assert {key: result[key] for key in ("model_dir", "best_pt_sha256", "data", "threshold")} == {
            key: json.loads((tmp_path / f"{scorer}_scores.json").read_text())[key]
            for key in ("model_dir", "best_pt_sha256", "data", "threshold")}
        buckets = result["triples_per_sentence"].values()  # each sentence in exactly one bucket
        for mode in ("partial", "exact"):
            for key in ("correct", "predicted", "gold"):
                assert sum(bucket[mode][key] for bucket in buckets) == scores[scorer][mode][key], (scorer, mode)
        assert f"counted as evaluate.py --scorer {scorer} counts" in (tmp_path / f"{scorer}_breakdown.md").read_text()


def test_existing_run_is_not_overwritten(trained, data_dir):
    run_dir, _ = trained
    with pytest.raises(SystemExit, match="run exists, a run with other settings \\(num_epoch 15 there, 1 here"):
        train.main(["--dataset", "synthetic", "--data_dir", str(data_dir), "--save_dir", str(run_dir.parent),
                    "--run_id", "run", "--num_epoch", "1", *FAST])


def test_select_on_test_is_labelled(data_dir, tmp_path, capsys):
    results = train.main(["--dataset", "synthetic", "--data_dir", str(data_dir), "--save_dir", str(tmp_path),
                          "--num_epoch", "2", "--select_on", "test", *FAST])
    assert results["selected_on"] == "test"
    assert "it/s" not in capsys.readouterr().err  # no progress bar where stderr is not a terminal: a log keeps it
    (run_dir,) = tmp_path.iterdir()
    assert run_dir.name.endswith("_testsel_seed1")
    assert "test" in json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])


def test_long_sentences_train_in_parts_and_the_log_says_so(data_dir, tmp_path, monkeypatch):
    """Batches over model/training.py's TRAIN_VALUES are taken in parts (the same gradient: tested in
    tests/unit/test_training_memory.py); train.log says from which length, in parts of how many."""
    from model import training
    from model.rin import RINConfig

    longest = max(len(json.loads(line)["sentText"]) for line in (data_dir / "train.json").open())
    relations = len(json.loads((data_dir / "labels.json").read_text())["relations"])
    values = longest ** 2 * (relations + RINConfig.pair_hidden)
    for module in (train, training):
        monkeypatch.setattr(module, "TRAIN_VALUES", 3 * values)
    results = train.main(["--dataset", "synthetic", "--data_dir", str(data_dir), "--save_dir", str(tmp_path),
                          "--num_epoch", "1", *FAST])
    (run_dir,) = tmp_path.iterdir()
    assert (f"train.json's longest sentence has {longest} tokens: batches of the longest sentences are taken in "
            "parts of 3 (the same gradient up to dropout)") in (run_dir / "train.log").read_text()
    assert 0.0 <= results["test"]["partial"]["f1"] <= 1.0
    for module in (train, training):  # a sentence over the budget by itself: a warning, since memory may not do
        monkeypatch.setattr(module, "TRAIN_VALUES", values // 2)
    train.main(["--dataset", "synthetic", "--data_dir", str(data_dir), "--save_dir", str(tmp_path), "--run_id",
                "alone", "--num_epoch", "1", *FAST])
    assert "WARNING train.json's longest sentence" in (tmp_path / "alone" / "train.log").read_text()
    assert "this sentence alone holds 2.0 times as many" in (tmp_path / "alone" / "train.log").read_text()


def test_bf16_run_trains_and_records_its_precision(data_dir, tmp_path):
    results = train.main(["--dataset", "synthetic", "--data_dir", str(data_dir), "--save_dir", str(tmp_path),
                          "--num_epoch", "1", "--precision", "bf16", *FAST])
    (run_dir,) = tmp_path.iterdir()
    config = json.loads((run_dir / "config.json").read_text())
    assert config["settings"]["precision"] == "bf16"  # as asked; and what ran:
    assert config["precision_used"] == ("bf16" if speed.cpu_bf16() else "fp32")
    assert 0.0 <= results["test"]["partial"]["f1"] <= 1.0


def test_resume_after_kill_gives_the_same_run(data_dir, tmp_path):
    # bit for bit needs fixed threads (README): the adaptive governor may change the count mid-run
    common = ["--dataset", "synthetic", "--data_dir", str(data_dir), "--save_dir", str(tmp_path),
              "--num_epoch", "6", "--seed", "3", "--thread_policy", "fixed", *FAST]
    straight = train.main([*common, "--run_id", "straight"])

    command = [sys.executable, str(ROOT / "train.py"), *common, "--run_id", "killed"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = tmp_path / "killed" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (tmp_path / "killed" / "results.json").exists()

    resumed = train.main(["--resume", str(tmp_path / "killed"), "--threads", "1"])
    for split in ("dev", "test"):
        assert resumed[split] == straight[split]
    assert resumed["best_epoch"] == straight["best_epoch"]

    assert epoch_records(metrics, timings=False) == epoch_records(tmp_path / "straight" / "metrics.jsonl",
                                                                   timings=False)


def test_a_stop_at_either_side_of_last_pt_leaves_a_run_that_resumes(data_dir, tmp_path, monkeypatch):
    """An epoch's record goes to metrics.jsonl after last.pt, which holds it too. Stopped while the first
    last.pt is written, the run has no trained epoch on record and starts again (with the record written first,
    it was refused as 'trained epochs but no last.pt', as a loaded SLURM node showed); stopped right after a
    last.pt, the resumed run completes the record from it and ends as the uninterrupted run."""
    common = ["--dataset", "synthetic", "--data_dir", str(data_dir), "--save_dir", str(tmp_path),
              "--num_epoch", "3", "--seed", "5", "--thread_policy", "fixed", *FAST]
    straight = train.main([*common, "--run_id", "straight"])
    save = train.save_training_state
    for run_id, stop_at, after in (("while_saving", 1, False), ("after_saving", 2, True)):
        def stopped(path, *args, stop_at=stop_at, after=after):
            if args[3]["epoch"] == stop_at and after:
                save(path, *args)
            if args[3]["epoch"] == stop_at:
                raise KeyboardInterrupt
            save(path, *args)

        monkeypatch.setattr(train, "save_training_state", stopped)
        (tmp_path / run_id).mkdir()  # as reproduce.py's runner makes it, for the run's stdout.log: kept on a stop
        with pytest.raises(SystemExit):
            train.main([*common, "--run_id", run_id])
        monkeypatch.setattr(train, "save_training_state", save)
        resumed = train.main(["--resume", str(tmp_path / run_id), "--threads", "1"])
        assert resumed["test"] == straight["test"] and resumed["best_epoch"] == straight["best_epoch"]
        assert [json.loads(line)["epoch"] for line in (tmp_path / run_id / "metrics.jsonl").read_text().splitlines()
                ] == [1, 2, 3]


def test_a_kill_between_last_and_best_checkpoint_resumes_to_the_same_run(data_dir, tmp_path, monkeypatch):
    """train.py writes best.pt after last.pt. Killed between the two at the run's best epoch, the resumed run
    writes best.pt from last.pt's weights and ends as the uninterrupted run, best.pt included."""
    common = ["--dataset", "synthetic", "--data_dir", str(data_dir), "--save_dir", str(tmp_path),
              "--num_epoch", "8", "--seed", "5", "--thread_policy", "fixed", *FAST]
    straight = train.main([*common, "--run_id", "straight"])
    assert straight["best_epoch"] > 1  # so an earlier epoch's best.pt is there when the kill comes
    save = train.save_weights

    def killed_before_best(model, path, fingerprint):
        if len((path.parent / "metrics.jsonl").read_text().splitlines()) == straight["best_epoch"]:
            raise KeyboardInterrupt
        return save(model, path, fingerprint)

    monkeypatch.setattr(train, "save_weights", killed_before_best)
    with pytest.raises(SystemExit) as stopped:
        train.main([*common, "--run_id", "killed"])
    assert stopped.value.code == 130
    monkeypatch.setattr(train, "save_weights", save)
    run_dir = tmp_path / "killed"
    progress = torch.load(run_dir / "last.pt", weights_only=True)["progress"]
    assert progress["epoch"] == progress["best_epoch"] == straight["best_epoch"]  # killed in between

    resumed = train.main(["--resume", str(run_dir), "--threads", "1"])
    assert resumed["test"] == straight["test"] and resumed["best_epoch"] == straight["best_epoch"]
    expected = torch.load(tmp_path / "straight" / "best.pt", weights_only=True)
    got = torch.load(run_dir / "best.pt", weights_only=True)
    assert got["model_config"] == expected["model_config"]
    assert all(torch.equal(got["model"][name], value) for name, value in expected["model"].items())


def test_resume_refuses_data_prepared_again_differently(data_dir, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(data_dir, copy)
    train.main(["--dataset", "synthetic", "--data_dir", str(copy), "--save_dir", str(tmp_path),
                "--run_id", "run", "--num_epoch", "1", *FAST])
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["data_sha256"]
    assert set(recorded) == {"train.json", "dev.json", "test.json", "vocab.json", "labels.json", "embedding.npy"}
    lines = (copy / "train.json").read_text().splitlines()
    (copy / "train.json").write_text("\n".join(lines[:-1]) + "\n")  # one sentence fewer
    with pytest.raises(SystemExit, match="train.json differ"):
        train.main(["--resume", str(tmp_path / "run"), "--threads", "1"])


def test_compiled_run_computes_the_same_and_reloads(data_dir, tmp_path):
    """--compile changes how the forward runs, not what it computes; its checkpoints load without it."""
    results = train.main(["--dataset", "synthetic", "--data_dir", str(data_dir), "--save_dir", str(tmp_path),
                          "--run_id", "compiled", "--compile", "--num_epoch", "1", *FAST])
    assert json.loads((tmp_path / "compiled" / "config.json").read_text())["settings"]["compile"] is True
    assert 0 <= results["test"]["partial"]["f1"] <= 1
    model, vocab, labels, _ = load_run(tmp_path / "compiled")
    split = load_split(data_dir / "dev.json", vocab, labels)
    batch = collate(split.examples[:20], torch.device("cpu"))
    eager = model.loss(batch)
    model.compile(dynamic=True)
    compiled = model.loss(batch)
    for a, b in zip(eager, compiled, strict=True):
        assert torch.allclose(a, b, rtol=1e-5), (a, b)


def test_run_configs_keep_project_paths_relative(tmp_path):
    """A run folder names its data relative to the project, so it can be resumed from another clone."""
    from utils.project import PROJECT_ROOT, project_relative, resolve_project_path

    assert project_relative(PROJECT_ROOT / "dataset" / "webnlg") == "dataset/webnlg"
    assert resolve_project_path("dataset/webnlg") == PROJECT_ROOT / "dataset" / "webnlg"
    assert project_relative(tmp_path) == str(tmp_path) and resolve_project_path(str(tmp_path)) == tmp_path


def test_early_stop_ends_the_run_after_its_patience(data_dir, tmp_path):
    """--early_stop N: the run ends after N epochs without a better dev F1, said after that epoch's own line;
    results.json holds the best epoch's scores and how many epochs ran."""
    results = train.main(["--dataset", "synthetic", "--data_dir", str(data_dir), "--save_dir", str(tmp_path),
                          "--run_id", "r", "--num_epoch", "40", "--early_stop", "1", "--thread_policy", "fixed",
                          *FAST])
    assert results["epochs_run"] < 40 and results["best_epoch"] == results["epochs_run"] - 1
    log = (tmp_path / "r" / "train.log").read_text().splitlines()
    stop = next(number for number, line in enumerate(log) if "early stop: 1 epoch without a better dev F1" in line)
    assert f"epoch {results['epochs_run']}: loss" in log[stop - 1]
