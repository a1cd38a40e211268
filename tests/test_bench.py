"""bench.py end to end on a small generated setting: the figures the speed issue asks for, in the JSON; its busy
processes (--contention) load the CPU and always end."""
import json
import multiprocessing
import time

import pytest

import bench
from model import pair_kernels


@pytest.mark.slow
def test_bench_writes_every_figure(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "SHARED", tmp_path / "absent")  # no releases: generated lengths, said so
    monkeypatch.setenv("RIN_CACHE", str(tmp_path / "cache"))  # nor in the download cache
    monkeypatch.setitem(bench.SETTINGS, "nyt_partial", bench.Setting(("none.json",), 120, 24, 1, 500))
    monkeypatch.setattr(bench.RIN, "compile", lambda self, **kwargs: None)  # plumbing only; compiling takes a minute
    out = tmp_path / "bench.json"
    bench.main(["--settings", "nyt_partial", "--batches", "2", "--oracle_batches", "1", "--threads", "1",
                "--contention", "1", "--json", str(out)])
    report = json.loads(out.read_text())
    result = report["nyt_partial"]
    assert result["data"].startswith("GENERATED") and result["sentences"] == 120
    for key in ("epoch_seconds", "oracle_epoch_seconds", "bf16_epoch_seconds", "torch_pair_scorer_epoch_seconds",
                "compiled_epoch_seconds", "fixed_threads_epoch_seconds", "peak_mem_mb", "oracle_peak_mem_mb",
                "epoch_tflop", "compute_floor_epoch_seconds", "inference_sentences_per_second_bf16"):
        assert result[key] > 0, key
    assert result["speedup"] == result["oracle_epoch_seconds"] / result["epoch_seconds"]
    assert result["times_the_compute_floor"] == result["epoch_seconds"] / result["compute_floor_epoch_seconds"]
    assert report["inference_sentences_per_second"] == result["inference_sentences_per_second"] > 0
    assert report["peak_matmul_gflops"] > 0 and report["contention_processes"] == 1
    assert report["cpu_model"] == pair_kernels.cpu_model() and report["pair_scorer"]
    assert len(report["loadavg_start"]) == 3 and len(result["loadavg_before"]) == 3
    checked = {c["target"] for c in report["targets"]}
    assert "NYT partial: faster than the paper-literal oracle" in checked  # figures of absent settings: not checked
    assert not any(c["target"].startswith("WebNLG") for c in report["targets"])
    printed = capsys.readouterr().out
    assert "speed-up over the oracle" in printed and "compute floor" in printed and "target" in printed
    assert not multiprocessing.active_children()


@pytest.mark.parametrize(("flags", "named"), [
    (["--batches", "0"], "--batches"), (["--oracle_batches", "-1"], "--oracle_batches"),
    (["--contention", "-1"], "--contention"), (["--threads", "0"], "--threads"), (["--device", "tpu"], "--device"),
    (["--equivalence", "0"], "--equivalence"), (["--lr", "-1"], "--lr"), (["--seed", "-1"], "--seed"),
])
def test_bad_flags_stop_before_any_timing(flags, named, capsys):
    with pytest.raises(SystemExit) as refused:
        bench.main(flags)
    error = capsys.readouterr().err
    assert refused.value.code == 2 and error.startswith(f"bench.py: error: argument {named}")
    assert "Traceback" not in error


def test_sentence_lengths_come_from_source_then_shared_then_the_cache(tmp_path, monkeypatch, capsys):
    relative = "casrel/WebNLG-star/train_triples.json"
    setting = bench.Setting((relative,), 4, 3, 1, 10)
    folders = {name: tmp_path / name for name in ("source", "shared", "cache")}
    for length, folder in enumerate(folders.values(), start=2):
        (folder / relative).parent.mkdir(parents=True)
        (folder / relative).write_text(json.dumps([{"text": " ".join("w" * length), "triple_list": [1]}] * 4))
    monkeypatch.setattr(bench, "SHARED", folders["shared"])
    monkeypatch.setenv("RIN_CACHE", str(folders["cache"]))
    assert bench.shapes(setting, 0, str(folders["source"])) == ([(2, 1)] * 4, "lengths from train_triples.json")
    assert bench.shapes(setting, 0)[0] == [(3, 1)] * 4
    (folders["shared"] / relative).unlink()
    assert bench.shapes(setting, 0)[0] == [(4, 1)] * 4
    with pytest.raises(bench.InputError, match=f"--source {tmp_path}: none of {relative} is there"):
        bench.shapes(setting, 0, str(tmp_path))
    with pytest.raises(SystemExit):
        bench.main(["--source", str(tmp_path / "absent")])
    assert capsys.readouterr().err.startswith(f"bench.py: error: --source {tmp_path / 'absent'}: not a folder")


def test_a_json_file_that_cannot_be_written_is_refused_before_timing(tmp_path, capsys):
    for where in (tmp_path, tmp_path / "absent" / "bench.json"):
        with pytest.raises(SystemExit):
            bench.main(["--json", str(where)])
        assert capsys.readouterr().err.startswith(f"bench.py: error: --json {where}: a folder, or in a folder")


def test_more_busy_processes_than_cores_are_refused(monkeypatch, capsys):
    monkeypatch.setattr(bench, "usable_cores", lambda: 2)
    with pytest.raises(SystemExit):
        bench.main(["--contention", "3"])
    assert capsys.readouterr().err.startswith("bench.py: error: --contention 3: this process may use 2 cores")


def test_step_flops_count_the_products():
    config = bench.RINConfig(vocab_size=10, num_pos=3, num_tags=5, num_relations=4, emb_dim=6, pos_dim=2,
                             rnn_hidden=3, pair_hidden=7, rounds=0)
    # K = 0: BiLSTM 2 * 4 * 3 * (8 + 3) = 264, tag classifier 6 * 5 = 30, Wm halves 2 * 6 * 7 = 84 per token;
    # Wr over every pair: 4 * 7 = 28 per pair. Inference: one pass; training: 3 passes of everything.
    assert bench.step_flops(config, [2, 3], training=False) == 2 * (378 * 5 + 28 * 13)
    assert bench.step_flops(config, [2, 3]) == 2 * (3 * 378 * 5 + 3 * 28 * 13)
    rounds = bench.RINConfig(**{**config.to_dict(), "rounds": 1})
    per_layer = 6 * 5 + 2 * 6 * 7 + 3 * 6 * (5 + 6) + 3 * 6 * (4 + 6)  # Ce, Wm, GRU_e, GRU_r
    assert bench.step_flops(rounds, [2]) - bench.step_flops(config, [2]) == 2 * (3 * per_layer * 2 + 28 * 4)


@pytest.mark.slow
def test_contention_processes_burn_a_core_and_always_end():
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C while timing
        with bench.contention(2):
            children = multiprocessing.active_children()
            time.sleep(1.0)
            ticks = [sum(int(x) for x in open(f"/proc/{c.pid}/stat").read().rsplit(")", 1)[1].split()[11:13])
                     for c in children]
            raise KeyboardInterrupt
    assert len(children) == 2 and all(t > 10 for t in ticks)  # each busy (clock ticks of 10 ms)
    assert not any(c.is_alive() for c in children) and not multiprocessing.active_children()
