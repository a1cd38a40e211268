"""Studies of the finished runs' best checkpoints, written beside the report (reproduce.py --compare_test,
--mention_study): each decodes the test split again, another way, and merges its entry per run into a JSON
file that experiments/report.py reads.
"""
from __future__ import annotations

import logging
from pathlib import Path

from data.loader import MENTION_READING, load_split, read_json_records
from experiments.plan import run_dataset
from model import load_run
from model.inference import extract
from model.run import has_results, recorded_data_dir, recorded_sha256
from utils.errors import InputError
from utils.files import file_sha256, read_json, write_json
from utils.machine import pick_device
from utils.project import DATASETS_DIR, project_relative
from utils.scorer import keep_first_mentions, repeated_mention_count, score_all

log = logging.getLogger(__name__)


def same_input_sentences(first: Path, second: Path) -> tuple[int, int]:
    """How many sentences two RIN-format files give the model identically (text and POS tags, in order),
    and how many ``second`` holds."""
    records = [record for _, record in read_json_records(second)]
    pairs = zip((record for _, record in read_json_records(first)), records, strict=False)
    return sum(a["sentText"] == b["sentText"] and a.get("pos") == b.get("pos") for a, b in pairs), len(records)


def finished_checkpoints(dataset: str, save_dir: Path, results_dir: Path) -> list[Path]:
    """The run folders of ``dataset`` in ``save_dir`` that finished, still hold their best checkpoint, and are
    the runs whose summaries <results_dir>/runs holds (the same results.json): what the report reads, and not a
    run trained otherwise under a planned run's name (train.py --num_epoch 2), left out with a warning."""
    found = []
    for run_dir in sorted(save_dir.glob(f"{dataset}_*")):
        if not (run_dataset(run_dir.name) == dataset and has_results(run_dir) and (run_dir / "best.pt").exists()):
            continue
        summary = results_dir / "runs" / run_dir.name / "results.json"
        if not summary.exists():
            log.info("%s: no summary in %s, so not in the report: left out", run_dir, summary.parent.parent)
        elif summary.read_bytes() != (run_dir / "results.json").read_bytes():
            log.warning("%s is not the run summarised in %s (their results.json differ: trained otherwise under "
                        "its name?): left out; move it away", run_dir, summary.parent)
        else:
            found.append(run_dir)
    return found


def study_entry(run_dir: Path) -> dict:
    """What a study's entry for ``run_dir`` starts with: how the gold was read (data/loader.py) and which
    checkpoint was decoded (results.json's), so the report can tell an entry of a run trained again since."""
    selected = read_json(run_dir / "results.json").get("best_pt_sha256")
    return {"mention_reading": MENTION_READING, **({"best_pt_sha256": selected} if selected else {})}


def earlier_entries(path: Path) -> dict:
    """A study file's entries so far, which a new study adds to: runs whose checkpoints are gone keep theirs."""
    return read_json(path) if path.exists() else {"runs": {}}


def recorded_test_file(run_dir: Path, config: dict, planned_dir: Path) -> Path:
    """The test file of the data a run trained on: in the folder its config.json records, or, where that folder
    is gone (the data moved, as a finished run's may: reproduce.py same_data), ``planned_dir``'s when its
    SHA-256 is the one the run recorded. A recorded file changed since (another SHA-256) is refused: its scores
    would not be the run's."""
    recorded = recorded_data_dir(run_dir, config) / "test.json"
    digest = recorded_sha256(config, "test.json")
    if recorded.is_file():
        if digest and file_sha256(recorded) != digest:
            raise InputError(f"{recorded} changed since {run_dir} trained beside it (SHA-256 in its config.json "
                             "'data_sha256'): restore it, or move the run away")
        return recorded
    planned = planned_dir / "test.json"
    if planned.is_file() and digest == file_sha256(planned):
        return planned
    state = ("missing too" if not planned.is_file() else "not the file the run recorded (another SHA-256)" if digest
             else "not known to be the same file (the run recorded no checksums)")
    raise InputError(f"{run_dir}: the test file it trained beside, {recorded}, is gone, and {planned} is {state}; "
                     "prepare the data again or move the run away")


def compare_test_files(dataset: str, save_dir: Path, results_dir: Path, retagged: Path, rebuilt: Path) -> dict:
    """Score every finished run (with POS features and a checkpoint) on three copies of the test sentences:
    the official file; ``retagged``, its POS tags replaced by our tagger's (as in train/dev); ``rebuilt``,
    built from WebNLG* like train/dev, so with our POS tags and our recovered entity spans. Official vs.
    retagged measures the tagger; retagged vs. rebuilt the span annotation alone, since both give the
    model the same input (counted in ``same_input_sentences``) and differ only in the gold spans.
    Merged into results/test_comparison.json, so runs whose checkpoints are gone keep their entry."""
    path = results_dir / "test_comparison.json"
    found = earlier_entries(path)
    same, sentences = same_input_sentences(retagged, rebuilt)
    found |= {"retagged_test": project_relative(retagged), "rebuilt_test": project_relative(rebuilt),
              "same_input_sentences": same, "sentences": sentences}
    device = pick_device(None)
    for run_dir in finished_checkpoints(dataset, save_dir, results_dir):
        model, vocab, labels, config = load_run(run_dir, device)
        if config["model"]["pos_dim"] == 0:
            continue
        entry = study_entry(run_dir)
        official = recorded_test_file(run_dir, config, DATASETS_DIR / dataset)
        for name, test_file in (("official", official), ("retagged", retagged), ("rebuilt", rebuilt)):
            split = load_split(test_file, vocab, labels, scored=True)
            scores = score_all(extract(model, split.examples, labels, device), split.gold, "ours")
            entry[name] = {mode: round(scores[mode]["f1"], 6) for mode in ("partial", "exact")}
        found["runs"][run_dir.name] = entry
        log.info("%s: test F1 %s", run_dir.name, entry)
    write_json(path, found)
    return found


def mention_study(dataset: str, save_dir: Path, results_dir: Path) -> dict:
    """Decode every finished run's test split twice: with the paper's decoder, and keeping each (subject text,
    relation, object text) once at its first position (``--first_mentions``); count how many predicted triples
    sit on a repeated mention and score both decodings by positions and by strings. Merged into
    results/mention_study.json, so runs whose checkpoints are gone keep their entry."""
    path = results_dir / "mention_study.json"
    found = earlier_entries(path)
    device = pick_device(None)
    checkpoints = finished_checkpoints(dataset, save_dir, results_dir)
    if not checkpoints:
        log.warning("no finished run of %s with a best.pt in %s: nothing to decode", dataset, save_dir)
    for run_dir in checkpoints:
        model, vocab, labels, config = load_run(run_dir, device)
        split = load_split(recorded_test_file(run_dir, config, DATASETS_DIR / dataset), vocab, labels,
                           scored=True)
        tokens = [sentence.tokens for sentence in split.sentences]
        paper = extract(model, split.examples, labels, device)
        first = [keep_first_mentions(extraction, t) for extraction, t in zip(paper, tokens, strict=True)]
        entry = study_entry(run_dir)
        for decoder, extractions in (("paper", paper), ("first_mentions", first)):
            scores = {scorer: score_all(extractions, split.gold, scorer, tokens) for scorer in ("ours", "strings")}
            entry[decoder] = {
                "predicted": sum(len(extraction.triples) for extraction in extractions),
                "at_repeated_mentions": repeated_mention_count(extractions, tokens),
                "scores": {scorer: {mode: {key: round(value, 6) for key, value in result.items()}
                                    for mode, result in by_mode.items()} for scorer, by_mode in scores.items()}}
        found["runs"][run_dir.name] = entry
        log.info("%s: %d of %d predicted test triples at a repeated mention", run_dir.name,
                 entry["paper"]["at_repeated_mentions"], entry["paper"]["predicted"])
    write_json(path, found)
    return found
