"""bench.py end to end on a small generated setting: the figures the speed issue asks for, in the JSON."""
import json

import bench


def test_bench_writes_every_figure(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "SHARED", tmp_path / "absent")  # no releases: generated lengths, said so
    monkeypatch.setitem(bench.SETTINGS, "nyt_partial", bench.Setting(("none.json",), 120, 24, 1, 500))
    monkeypatch.setattr(bench.RIN, "compile", lambda self, **kwargs: None)  # plumbing only; compiling takes a minute
    out = tmp_path / "bench.json"
    bench.main(["--settings", "nyt_partial", "--batches", "2", "--oracle_batches", "1", "--threads", "1",
                "--json", str(out)])
    report = json.loads(out.read_text())
    result = report["nyt_partial"]
    assert result["data"].startswith("GENERATED") and result["sentences"] == 120
    for key in ("epoch_seconds", "oracle_epoch_seconds", "peak_mem_mb", "oracle_peak_mem_mb"):
        assert result[key] > 0, key
    assert result["speedup"] == result["oracle_epoch_seconds"] / result["epoch_seconds"]
    assert report["inference_sentences_per_second"] == result["inference_sentences_per_second"] > 0
    assert "speed-up over the oracle" in capsys.readouterr().out
