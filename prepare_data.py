"""Turn the published NYT, WebNLG, NYT10 and NYT11 releases into dataset/<name>/{train,dev,test}.json.

    python prepare_data.py --dataset webnlg                 # source: ../shared/datasets
    python prepare_data.py --dataset nyt --source /data/releases
    python prepare_data.py --dataset webnlg --source https://example.org/releases.tar.gz

Datasets: nyt (NYT* triples, whole entities from NYT), webnlg (WebNLG* train/dev,
the official RIN test file unchanged), webnlg_exact (the 216-relation WebNLG),
nyt10 and nyt11 (HRL). Every input file is checked against data/checksums.json.
Every repair and drop is counted in dataset/<name>/prepare_report.json.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path

from data.convert import (
    EntityLexicon,
    ExactReleaseSpans,
    SpanSource,
    check_record,
    convert_sentence,
    first_span,
    noun_compound_span,
    split_statistics,
)
from data.loader import DataError, LoadReport, parse_record, read_json_records
from data.spacy_tools import DEFAULT_MODEL, load_tools
from utils.helpers import PROJECT_ROOT, read_json, setup_logging, write_json
from utils.scorer import MODES, score

log = logging.getLogger("prepare_data")
CHECKSUMS = read_json(PROJECT_ROOT / "data" / "checksums.json")
SPLITS = ("train", "dev", "test")

# Where each dataset's splits live in the published layout; "spans" = exact release used for whole entities.
DATASETS = {
    "nyt": {"triples": "casrel/NYT-star/{}_triples.json", "names": {"dev": "val"}, "last_word": True,
            "spans": "casrel/NYT/{}_triples.json"},
    "webnlg": {"triples": "casrel/WebNLG-star/{}_triples.json", "names": {"dev": "val"}, "last_word": True,
               "spans": "casrel/WebNLG/{}_triples.json", "official_test": "rin/webnlg/test.json"},
    "webnlg_exact": {"triples": "casrel/WebNLG/{}_triples.json", "names": {"dev": "val"}, "last_word": False},
    "nyt10": {"triples": "hrl/NYT10/{}.json", "names": {}, "last_word": False},
    "nyt11": {"triples": "hrl/NYT11/{}.json", "names": {}, "last_word": False},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    default_source = PROJECT_ROOT.parent / "shared" / "datasets"
    parser.add_argument("--source", default=str(default_source) if default_source.exists() else None,
                        help="folder with the releases in their published layout, or an http(s) URL of such "
                        "a folder or of a .zip/.tar.gz of it (default: ../shared/datasets when present)")
    parser.add_argument("--out", default=str(PROJECT_ROOT / "dataset"), help="output root (default: dataset/)")
    parser.add_argument("--no_verify", action="store_true", help="accept files whose checksum differs")
    parser.add_argument("--spacy_model", default=DEFAULT_MODEL,
                        help=f"spaCy model for POS tags and NER spans; 'none' = no tagger (default {DEFAULT_MODEL})")
    parser.add_argument("--rebuild_test", action="store_true",
                        help="webnlg: build test from WebNLG* like train/dev instead of the official RIN file")
    parser.add_argument("--retag_test", action="store_true",
                        help="webnlg: keep the official test but replace its Stanford POS tags with ours")
    parser.add_argument("--no_entity_lexicon", dest="entity_lexicon", action="store_false",
                        help="last-word releases: skip the entity lexicon (every entity name of the exact release's "
                        "train/dev) between the exact release and spaCy's named entities (annotation v1 had none)")
    parser.add_argument("--no_noun_compounds", dest="noun_compounds", action="store_false",
                        help="last-word releases: skip the noun-compound span (nouns, adjectives and numbers "
                        "ending at the word, by spaCy's POS tags) tried after named entities, as annotation v2 "
                        "did (results/annotation_v2)")
    parser.add_argument("--cache", default=str(PROJECT_ROOT / "downloads"), help="download cache for URL sources")
    return parser.parse_args(argv)


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def verify(path: Path, relative: str, no_verify: bool) -> None:
    """Refuse a file whose SHA-256 (or git blob SHA-1) differs from the project's table."""
    expected = CHECKSUMS.get(relative)
    if not expected or not (expected["sha256"] or expected["git_sha1"]):
        log.warning("%s: no checksum known, not verified", relative)
        return
    data = path.read_bytes()
    if expected["sha256"]:
        ok, kind, got, want = (hashlib.sha256(data).hexdigest() == expected["sha256"], "SHA-256",
                               hashlib.sha256(data).hexdigest(), expected["sha256"])
    else:
        ok, kind, got, want = git_blob_sha1(data) == expected["git_sha1"], "git blob SHA-1", git_blob_sha1(
            data), expected["git_sha1"]
    if not ok:
        message = f"{path}: {kind} {got} differs from the published {want} ({relative})"
        if not no_verify:
            raise SystemExit(message + "; pass --no_verify to use it anyway")
        log.warning("%s (accepted: --no_verify)", message)


class Source:
    """A local folder, or a URL of a folder or archive that is downloaded into a cache first."""

    def __init__(self, location: str, cache: Path) -> None:
        self.url = location if location.startswith(("http://", "https://")) else None
        self.root = Path(location)
        if self.url:
            self.root = cache / hashlib.sha1(self.url.encode()).hexdigest()[:16]
            if self.url.endswith((".zip", ".tar.gz", ".tgz", ".tar")):
                self._fetch_archive()

    def _fetch_archive(self) -> None:
        marker = self.root / ".complete"
        if not marker.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            archive = self.root / Path(self.url).name
            log.info("downloading %s", self.url)
            with urllib.request.urlopen(self.url, timeout=60) as response, open(archive, "wb") as out:
                shutil.copyfileobj(response, out)
            if archive.suffix == ".zip":
                with zipfile.ZipFile(archive) as bundle:
                    bundle.extractall(self.root)
            else:
                with tarfile.open(archive) as bundle:
                    bundle.extractall(self.root, filter="data")
            archive.unlink()
            marker.touch()
        # the archive may wrap the layout in one top folder
        children = [p for p in self.root.iterdir() if p.is_dir()]
        if len(children) == 1 and not any((self.root / d).exists() for d in ("casrel", "hrl", "rin")):
            self.root = children[0]

    def get(self, relative: str) -> Path | None:
        """Local path of ``relative``, downloading it for a folder URL; ``None`` when absent."""
        path = self.root / relative
        if path.exists() or not self.url or self.url.endswith((".zip", ".tar.gz", ".tgz", ".tar")):
            return path if path.exists() else None
        url = self.url.rstrip("/") + "/" + relative
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                data = response.read()
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise SystemExit(f"{url}: HTTP {error.code}") from None
        except urllib.error.URLError as error:
            raise SystemExit(f"{url}: {error.reason}") from None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path


def read_release(path: Path) -> list[dict]:
    """A CasRel/HRL release file: a JSON array (or JSON lines) of {"text", "triple_list"}."""
    items = []
    for number, item in read_json_records(path):
        if not isinstance(item, dict) or "text" not in item or "triple_list" not in item:
            raise DataError(f"{path}:{number}: expected an object with 'text' and 'triple_list'")
        items.append(item)
    return items


def ner_span(entity_spans: list[tuple[int, int]], tokens: list[str], end: int):
    for span in entity_spans:
        if span[1] == end:
            return span, "named-entity span"
    return None, "word alone"


Tagged = list[tuple[list[str] | None, list[tuple[int, int]]]]


def tag_items(items: list[dict], tools) -> Tagged:
    """POS tags and named-entity spans of each item's tokens (``None`` and ``[]`` without a tagger)."""
    return tools.tag([item["text"].split() for item in items]) if tools else [(None, [])] * len(items)


def sentence_sources(tags: list[str] | None, entities: list[tuple[int, int]], noun_compounds: bool) -> list[SpanSource]:
    """The span sources that read one sentence's own tagging, in the order tried (after the releases')."""
    sources = [functools.partial(ner_span, entities)]
    if noun_compounds and tags is not None:
        sources.append(functools.partial(noun_compound_span, tags))
    return sources


def convert_split(items: list[dict], tagged: Tagged, spec: dict, where: str, report: LoadReport,
                  span_sources: Sequence[SpanSource], noun_compounds: bool) -> list[dict]:
    records = []
    for number, (item, (tags, entities)) in enumerate(zip(items, tagged, strict=True), start=1):
        place = f"{where}:{number}"
        sources = [*span_sources, *sentence_sources(tags, entities, noun_compounds)]
        record = convert_sentence(item["text"], item["triple_list"], spec["last_word"], place, report,
                                  functools.partial(first_span, sources) if spec["last_word"] else None)
        if record is None:
            continue
        if tags is not None:
            record["pos"] = tags
        report.merge(check_record(record, place))
        records.append(record)
    return records


def check_sentence_sources(items: list[dict], tagged: Tagged, exact: ExactReleaseSpans) -> dict:
    """How often the per-sentence sources find the span the exact release gives (train: no test involved).

    For every argument whose whole entity the exact release supplies, the span that
    named entities alone, and named entities then noun compounds, would have given
    instead (the word alone where they give none): the measure that chose the
    noun-compound source for sentences the exact release does not cover.
    """
    counts = {"arguments": 0, "named_entities": 0, "named_entities_then_noun_compounds": 0}
    for item, (tags, entities) in zip(items, tagged, strict=True):
        tokens = item["text"].split()
        for subject, _, obj in item["triple_list"]:
            for argument in (subject, obj):
                if argument not in tokens:
                    continue
                end = tokens.index(argument) + 1
                truth, _ = exact(tokens, end)
                if truth is None:
                    continue
                counts["arguments"] += 1
                for key, compounds in (("named_entities", False), ("named_entities_then_noun_compounds", True)):
                    span, _ = first_span(sentence_sources(tags, entities, compounds), tokens, end)
                    counts[key] += (span or (end - 1, end)) == truth
    return {"arguments": counts["arguments"],
            **{f"{key}_agree": counts[key] / max(1, counts["arguments"]) for key in counts if key != "arguments"}}


def agreement(ours: list[dict], official: list[dict]) -> dict:
    """How far rebuilt records agree with the official ones (same sentences, same order).

    ``exact_triples`` scores our rebuilt triples (whole spans) against the official
    ones: the exact-match F1 a model would reach by learning our annotation perfectly.
    """
    same_tokens = [(a, b) for a, b in zip(ours, official, strict=False) if a["sentText"] == b["sentText"]]
    ent_ours = ent_official = ent_both = pos_same = pos_total = same_sets = 0
    triples_ours, triples_official = [], []
    for a, b in same_tokens:
        mine, theirs = {tuple(e) for e in a["en_list"]}, {tuple(e) for e in b["en_list"]}
        ent_ours, ent_official, ent_both = ent_ours + len(mine), ent_official + len(theirs), ent_both + len(
            mine & theirs)
        same_sets += mine == theirs
        if a.get("pos") and b.get("pos"):
            pos_same += sum(x == y for x, y in zip(a["pos"], b["pos"], strict=True))
            pos_total += len(b["pos"])
        for record, triples in ((a, triples_ours), (b, triples_official)):
            sentence = parse_record(record, "agreement", LoadReport())
            triples.append(sentence.triples if sentence else [])
    return {"sentences_compared": len(same_tokens), "sentences": len(official),
            "entity_precision": ent_both / max(1, ent_ours), "entity_recall": ent_both / max(1, ent_official),
            "sentences_with_identical_entities": same_sets / max(1, len(same_tokens)),
            "pos_tag_agreement": pos_same / pos_total if pos_total else None,
            **{f"{mode}_triples": {k: v for k, v in score(triples_ours, triples_official, mode).items()
                                   if k in ("precision", "recall", "f1")} for mode in MODES}}


def write_jsonl(path: Path, records: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    setup_logging()
    if args.source is None:
        raise SystemExit("no --source given and ../shared/datasets does not exist")
    spec = DATASETS[args.dataset]
    source = Source(args.source, Path(args.cache))
    out = Path(args.out) / args.dataset
    out.mkdir(parents=True, exist_ok=True)
    tools = load_tools(args.spacy_model)
    report: dict = {"dataset": args.dataset, "source": args.source, "tagger": tools.name if tools else None,
                    "spacy_model": args.spacy_model if tools else None,
                    "splits": {}, "missing": [], "changes": {}}

    def fetch(relative: str) -> Path | None:
        path = source.get(relative)
        if path is None:
            expected = CHECKSUMS.get(relative, {})
            report["missing"].append({"file": relative, **expected})
            log.warning("MISSING %s (expected git blob SHA-1 %s): that split is not built", relative,
                        expected.get("git_sha1"))
        else:
            verify(path, relative, args.no_verify)
        return path

    span_sources: list[SpanSource] = []
    exact_release = None
    if spec.get("spans"):
        span_items = {}
        for split in SPLITS:
            path = fetch(spec["spans"].format(spec["names"].get(split, split)))
            span_items[split] = read_release(path) if path else []
        exact_release = ExactReleaseSpans(item for items in span_items.values() for item in items)
        span_sources.append(exact_release)
        if args.entity_lexicon:  # names from train/dev only: test annotations never shape a lexicon
            span_sources.append(EntityLexicon(span_items["train"] + span_items["dev"]))
    if spec["last_word"]:  # where whole entities come from, in the order tried
        report["span_sources"] = ([type(source).__name__ for source in span_sources]
                                  + ["spaCy named entities"] * bool(tools)
                                  + ["noun compounds (spaCy POS)"] * bool(tools and args.noun_compounds)
                                  + ["the word alone"])

    official_test = spec.get("official_test") and not args.rebuild_test
    for split in SPLITS:
        changes = LoadReport()
        if split == "test" and official_test:
            path = fetch(spec["official_test"])
            if path is None:
                continue
            records = [record for _, record in read_json_records(path)]
            if args.retag_test and tools:
                for record, (tags, _) in zip(records, tools.tag([r["sentText"] for r in records]), strict=True):
                    record["pos"] = tags
                write_jsonl(out / "test.json", records)
            else:
                shutil.copyfile(path, out / "test.json")  # byte for byte: this IS the paper's test set
            for number, record in enumerate(records, start=1):
                changes.merge(check_record(record, f"{path}:{number}"))
        else:
            relative = spec["triples"].format(spec["names"].get(split, split))
            path = fetch(relative)
            if path is None:
                continue
            items = read_release(path)
            tagged = tag_items(items, tools)
            records = convert_split(items, tagged, spec, relative, changes, span_sources, args.noun_compounds)
            if split == "train" and exact_release and tools:
                report["sentence_sources_vs_exact_release"] = check_sentence_sources(items, tagged, exact_release)
            write_jsonl(out / f"{split}.json", records)
        report["splits"][split] = split_statistics(records)
        report["changes"][split] = changes.as_dict()
        changes.log(f"{args.dataset}/{split}")
        log.info("%s/%s: %s", args.dataset, split, report["splits"][split])

    if spec.get("official_test"):
        compare_with_official(spec, fetch, tools, span_sources, args.noun_compounds, report)
    write_json(out / "prepare_report.json", report)
    log.info("wrote %s (report: %s)", out, out / "prepare_report.json")
    return report


def compare_with_official(spec: dict, fetch, tools, span_sources: Sequence[SpanSource], noun_compounds: bool,
                          report: dict) -> None:
    """Rebuild test from WebNLG* and measure agreement with the official RIN test (spans, POS)."""
    official_path = fetch(spec["official_test"])
    rebuilt_path = fetch(spec["triples"].format("test"))
    if official_path is None or rebuilt_path is None:
        return
    official = [record for _, record in read_json_records(official_path)]
    items = read_release(rebuilt_path)
    rebuilt = convert_split(items, tag_items(items, tools), spec, "rebuilt test", LoadReport(), span_sources,
                            noun_compounds)
    report["rebuilt_test_vs_official"] = agreement(rebuilt, official)
    log.info("rebuilt WebNLG* test vs official RIN test: %s", report["rebuilt_test_vs_official"])


if __name__ == "__main__":
    main()
