"""Both counting conventions, checked by an independent scorer over evaluate.py's predictions file."""
import json

import pytest

import evaluate
import predict
from model import load_extractor
from utils.scorer import rates

pytestmark = pytest.mark.slow


def prf(predicted: list[set], gold: list[set]) -> float:
    correct = sum(len(p & g) for p, g in zip(predicted, gold, strict=True))
    n_pred, n_gold = sum(map(len, predicted)), sum(map(len, gold))
    precision, recall = correct / n_pred if n_pred else 0.0, correct / n_gold if n_gold else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def keys(triples: list[dict], convention: str, mode: str) -> set:
    """A triple as the convention keys it, from the predictions file's own fields only."""
    if convention == "positions":
        if mode == "partial":
            return {(t["subject_span"][1] - 1, t["relation"], t["object_span"][1] - 1) for t in triples}
        return {(tuple(t["subject_span"]), t["relation"], tuple(t["object_span"])) for t in triples}
    if mode == "partial":
        return {(t["subject"].split()[-1], t["relation"], t["object"].split()[-1]) for t in triples}
    return {(t["subject"], t["relation"], t["object"]) for t in triples}


def test_an_independent_scorer_reproduces_both_conventions(trained_run, tmp_path):
    run_dir, results = trained_run
    out = tmp_path / "test.jsonl"
    evaluate.main(["--model_dir", str(run_dir), "--split", "test", "--out", str(out), "--threads", "1"])
    records = [json.loads(line) for line in out.read_text().splitlines()]
    saved = json.loads((tmp_path / "test_scores.json").read_text())
    for convention, scorer in (("positions", "ours"), ("strings", "strings")):
        for mode in ("partial", "exact"):
            independent = prf([keys(r["triples"], convention, mode) for r in records],
                              [keys(r["gold"], convention, mode) for r in records])
            assert saved["scores"][scorer][mode]["f1"] == pytest.approx(independent, abs=1e-9), (convention, mode)
    assert set(saved["conventions"]) == {"ours", "official", "strings"}
    # a new run's results.json carries both conventions: on test, what evaluate.py scores with best.pt
    for mode in ("partial", "exact"):
        assert results["string_sets"]["test"][mode] == pytest.approx(rates(saved["scores"]["strings"][mode]))
        assert results["test"][mode] == pytest.approx(rates(saved["scores"]["ours"][mode]))
    assert set(results["string_sets"]["dev"]) == set(results["dev"]) == {"partial", "exact"}
    assert "strings" in results["conventions"]


def test_first_mentions_change_positions_never_strings(trained_run, tmp_path):
    run_dir, _ = trained_run
    repeated = tmp_path / "repeated.json"
    sentence = {"sentText": "Anna Smith was born in Oslo . Anna Smith was born in Oslo .".split(),
                "en_list": [["Anna", "Smith"], ["Oslo"]],
                "relationMentions": [{"em1Text": ["Smith"], "em2Text": ["Oslo"], "label": "born_in"}]}
    repeated.write_text(json.dumps(sentence) + "\n")
    runs = {}
    for name, flags in (("all", []), ("first", ["--first_mentions"])):
        evaluate.main(["--model_dir", str(run_dir), "--data", str(repeated), "--out", str(tmp_path / f"{name}.jsonl"),
                       "--threads", "1", *flags])
        runs[name] = json.loads((tmp_path / f"{name}_scores.json").read_text())
    assert runs["all"]["predicted_at_repeated_mentions"] > 0  # the second "Anna Smith ... Oslo" is found too
    assert runs["first"]["predicted_at_repeated_mentions"] < runs["all"]["predicted_at_repeated_mentions"]
    assert runs["first"]["scores"]["ours"]["exact"]["predicted"] < runs["all"]["scores"]["ours"]["exact"]["predicted"]
    assert runs["first"]["scores"]["strings"] == runs["all"]["scores"]["strings"]


def test_predict_reports_each_fact_once_unless_asked(trained_run, tmp_path):
    """predict.py keeps each (subject text, relation, object text) once by default; --no-first_mentions gives
    every mention the model marks, as evaluate.py's paper decoder does."""
    run_dir, _ = trained_run
    text = "Anna Smith was born in Oslo . Anna Smith was born in Oslo ."
    found = {}
    for name, flags in (("default", []), ("all", ["--no-first_mentions"])):
        out = tmp_path / f"{name}.jsonl"
        predict.main(["--model_dir", str(run_dir), "--text", text, "--pretokenized", "--output", str(out),
                      "--threads", "1", *flags])
        found[name] = [(t["subject"], t["relation"], t["object"]) for t in json.loads(out.read_text())["triples"]]
    assert len(found["all"]) > len(set(found["all"]))  # the second mention is marked too
    assert sorted(found["default"]) == sorted(set(found["all"]))
    for first_mentions, expected in ((None, found["default"]), (False, found["all"])):  # the API's default too
        options = {} if first_mentions is None else {"first_mentions": first_mentions}
        (result,) = load_extractor(run_dir, pretokenized=True, **options).extract([text])
        assert [(t["subject"], t["relation"], t["object"]) for t in result["triples"]] == expected
