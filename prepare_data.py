"""Turn the published NYT, WebNLG, NYT10 and NYT11 releases, and the authors' own RIN files, into
dataset/<name>/{train,dev,test}.json.

    python prepare_data.py --dataset webnlg                  # ../shared/datasets, else download
    python prepare_data.py --dataset webnlg_official         # the authors' WebNLG train and test
    python prepare_data.py --dataset nyt --source /data/releases
    python prepare_data.py --dataset webnlg --source https://example.org/releases.tar.gz

Datasets: nyt (NYT* triples, whole entities from NYT), webnlg (WebNLG* train/dev,
the official RIN test file unchanged), webnlg_exact (the 216-relation WebNLG),
nyt10 and nyt11 (HRL), webnlg_official and nyt_official (the authors' RIN-format
train and test; dev is a fixed, seeded slice held out of their train).
Without --source every file comes from ../shared/datasets when present, else from
the download cache (--cache), else from its public repository at the commit pinned in
data/sources.json (--base_url to use a mirror). Every input is verified against that
manifest before anything is written; the new dataset/<name>/ replaces the old one in one
rename, so a failure leaves the old files as they were. Every repair and drop is counted
in dataset/<name>/prepare_report.json.
"""
from __future__ import annotations

import utils.interrupt  # noqa: F401  first, before torch loads: a Ctrl-C meanwhile is one line

# isort: split
import argparse
import contextlib
import functools
import hashlib
import itertools
import logging
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from data.convert import (
    DATASETS,
    EntityLexicon,
    ExactReleaseSpans,
    SpanSource,
    check_record,
    convert_sentence,
    first_span,
    ner_span,
    noun_compound_span,
    read_release,
    sentence_key,
    split_statistics,
)
from data.fetch import BASE_URL_ENV, MANIFEST, Gathered, Inputs, Manifest, default_cache, file_digests, shared_for
from data.loader import DataError, LoadReport, parse_record, read_json_records
from data.spacy_tools import DEFAULT_MODEL, SpacyTools, load_tools
from utils.cli import ArgumentParser, positive_int, setup_logging
from utils.errors import InputError, one_line_errors
from utils.files import check_folder_path, write_json, write_jsonl
from utils.locks import hold_lock, process_alive
from utils.project import DATASETS_DIR
from utils.scorer import MODES, rates, score

log = logging.getLogger("prepare_data")
SPLITS = ("train", "dev", "test")
PRODUCED = ("train.json", "dev.json", "test.json", "prepare_report.json")
DEV_SEED = "rin-official-dev-1"  # fixes which sentences of the authors' train are held out as dev


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(prog="prepare_data.py", description=__doc__)
    parser.add_argument("--dataset", required=True, choices=sorted(DATASETS),
                        help="which release to build (the table in README.md, 'Data', says what each is)")
    parser.add_argument("--source", help="folder with the releases in their published layout, a .zip/.tar.gz of "
                        "it, or an http(s) URL of either; files it lacks are reported and their splits "
                        "not built, and a dataset already built with those splits is left as it was (default: "
                        "../shared/datasets when present, then the cache, then downloads)")
    parser.add_argument("--out", default=str(DATASETS_DIR), help="output root (default: dataset/)")
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
    published = ", ".join(f"{name} {spec['dev_size']}" for name, spec in DATASETS.items() if "dev_size" in spec)
    parser.add_argument("--dev_size", type=positive_int, help="sentences held out of the authors' train as dev "
                        f"(default: the published dev size, {published})")
    parser.add_argument("--cache", default=str(default_cache()),
                        help="download cache, in the release layout (default: $RIN_CACHE, else "
                        "$XDG_CACHE_HOME/rin, else ~/.cache/rin)")
    parser.add_argument("--base_url", default=os.environ.get(BASE_URL_ENV),
                        help=f"mirror of raw.githubusercontent.com serving OWNER/REPO/COMMIT/PATH (default: "
                        f"${BASE_URL_ENV}, else the manifest's)")
    parser.add_argument("--manifest", default=str(MANIFEST), help="sources manifest (default: data/sources.json)")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    if (args.rebuild_test or args.retag_test) and args.dataset != "webnlg":
        parser.error(f"--{'rebuild' if args.rebuild_test else 'retag'}_test: only for --dataset webnlg")
    if args.rebuild_test and args.retag_test:
        parser.error("--rebuild_test builds test from WebNLG* with our tags; --retag_test retags the official test: "
                     "pick one")
    if args.retag_test and args.spacy_model.lower() == "none":
        parser.error("--retag_test needs a POS tagger: not with --spacy_model none")
    last_word = [name for name, spec in DATASETS.items() if spec.get("last_word")]
    for flag, value in (("--no_entity_lexicon", args.entity_lexicon), ("--no_noun_compounds", args.noun_compounds)):
        if not value and args.dataset not in last_word:  # span recovery runs only for last-word releases
            parser.error(f"{flag}: only for the last-word releases ({', '.join(last_word)})")
    if args.dev_size and "dev_size" not in DATASETS[args.dataset]:
        parser.error(f"--dev_size: only for {', '.join(n for n, spec in DATASETS.items() if 'dev_size' in spec)}")
    if args.base_url is not None and not args.base_url.startswith(("http://", "https://")):
        parser.error(f"--base_url {args.base_url!r}: not an http(s) URL")
    return args


def required_files(spec: dict) -> list[str]:
    """Every release file a dataset reads, in the order they are used."""
    files = []
    if "official_train" in spec:
        return [spec["official_train"], spec["official_test"]]
    for key in ("spans", "triples"):
        if spec.get(key):
            files += [spec[key].format(spec["names"].get(split, split)) for split in SPLITS]
    if spec.get("official_test"):
        files.append(spec["official_test"])
    return files


Tagged = list[tuple[list[str] | None, list[tuple[int, int]]]]


def tag_items(items: list[dict], tools: SpacyTools | None, what: str) -> Tagged:
    """POS tags and named-entity spans of each item's tokens (``None`` and ``[]`` without a tagger), with a
    progress bar named ``what``."""
    return (tools.tag([item["text"].split() for item in items], progress=f"tag {what}") if tools
            else [(None, [])] * len(items))


def sentence_sources(tags: list[str] | None, entities: list[tuple[int, int]], noun_compounds: bool) -> list[SpanSource]:
    """The span sources that read one sentence's own tagging, in the order tried (after the releases')."""
    sources = [functools.partial(ner_span, entities)]
    if noun_compounds and tags is not None:
        sources.append(functools.partial(noun_compound_span, tags))
    return sources


def convert_split(items: list[dict], tagged: Tagged, spec: dict, where: str, report: LoadReport,
                  span_sources: Sequence[SpanSource], noun_compounds: bool) -> list[dict]:
    records = []
    for item, (tags, entities) in zip(items, tagged, strict=True):
        place = f"{where}:{item['line']}"
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
            **{f"{mode}_triples": rates(score(triples_ours, triples_official, mode)) for mode in MODES}}


def main(argv: list[str] | None = None) -> dict:
    """Build dataset/<name>/; expected failures end as one line per problem on stderr and exit 1."""
    args = parse_args(argv)
    with one_line_errors("prepare_data.py", args.debug):
        return prepare(args)


def prepare(args: argparse.Namespace) -> dict:
    """Gather and verify every input, then build the dataset in a temporary folder and swap it in."""
    setup_logging()
    check_folder_path(args.out, "--out")
    cache = Path(args.cache).absolute()  # its writability is checked where something must be downloaded
    if file := next((folder for folder in (cache, *cache.parents) if folder.exists() and not folder.is_dir()), None):
        raise InputError(f"--cache {args.cache}: {file} is a file, not a folder")
    final = Path(args.out) / args.dataset
    if final.is_symlink():  # a dataset kept elsewhere (another disk): rebuilt there, and the link stays a link
        if not final.exists():
            raise InputError(f"--out {args.out}: {final} links to {os.readlink(final)}, which does not exist (a disk "
                             "not mounted?): mount it, or remove the link")
        final = Path(os.path.realpath(final))
    if final.exists() and not final.is_dir():
        raise InputError(f"--out {args.out}: {final} is a file, not a dataset folder: move it away or pass another "
                         "--out")
    manifest = Manifest.load(args.manifest)
    spec = DATASETS[args.dataset]
    inputs = Inputs(manifest, args.source, Path(args.cache), args.base_url,
                    shared=shared_for(args.source), no_verify=args.no_verify)
    official = "official_train" in spec
    tools = None if official else load_tools(args.spacy_model)  # a bad --spacy_model fails before any download
    gathered = inputs.gather(required_files(spec))  # every input verified before anything is written
    report: dict = {"dataset": args.dataset, "source": inputs.describe(),
                    "tagger": tools.name if tools else None, "spacy_model": args.spacy_model if tools else None,
                    "inputs": {relative: input_record(relative, gathered, manifest) for relative in gathered.paths},
                    "splits": {}, "missing": [], "changes": {}}
    for relative in gathered.missing:
        entry = manifest.entry(relative)
        report["missing"].append({"file": relative, "url": manifest.url(relative, args.base_url),
                                  "git_sha1": entry.get("git_sha1"), "sha256": entry.get("sha256")})
        save_as = f"; save it as {Path(args.source) / relative}" if args.source and Path(args.source).is_dir() else ""
        log.warning("MISSING %s (git blob SHA-1 %s, published at %s%s): what needs it is not built", relative,
                    entry.get("git_sha1"), manifest.url(relative, args.base_url), save_as)
    with staged_folder(final) as staging:
        if official:
            build_official({**spec, "dev_size": args.dev_size or spec["dev_size"]}, gathered, staging, report)
        else:
            build_releases(args, spec, gathered, tools, staging, report)
        check_splits(final, staging, gathered.missing)
        report["texts_in_two_splits"] = shared_texts(staging, args.dataset)
        write_json(staging / "prepare_report.json", report)
    built = [split for split in SPLITS if (final / f"{split}.json").exists()]
    if len(built) < len(SPLITS):
        log.warning("wrote %s with %s only: %s not built, for want of %s (see MISSING above)", final,
                    ", ".join(built), ", ".join(s for s in SPLITS if s not in built),
                    ", ".join(m["file"] for m in report["missing"]))
    else:
        log.info("wrote %s (report: %s)", final, final / "prepare_report.json")
    return report


def input_record(relative: str, gathered: Gathered, manifest: Manifest) -> dict:
    """Where an input came from and which version it is: data/sources.json's checksum once it matched, the
    file's own where it did not (taken with --no_verify, and said so)."""
    record = {"from": gathered.origins[relative], "git_sha1": manifest.entry(relative).get("git_sha1")}
    if relative in gathered.unverified:
        digests = file_digests(gathered.paths[relative])
        record |= {"git_sha1": digests["git_sha1"], "sha256": digests["sha256"],
                   "verified": "no: differs from data/sources.json, taken with --no_verify"}
    return record


def check_splits(final: Path, staging: Path, missing: list[str]) -> None:
    """Refuse a build that made no split, or that would replace a dataset by one with fewer splits (a partial
    --source must not delete what an earlier, complete preparation built)."""
    built = {split for split in SPLITS if (staging / f"{split}.json").exists()}
    if not built:
        raise DataError(f"no split of {final.name} could be built: its source lacks {', '.join(missing)}")
    lost = sorted(split for split in SPLITS if (final / f"{split}.json").exists() and split not in built)
    if lost:
        raise DataError(f"{final} has {', '.join(f'{s}.json' for s in lost)}, which this source cannot rebuild "
                        f"(it lacks {', '.join(missing)}): left as it was; pass --out elsewhere or supply the files")


def build_releases(args: argparse.Namespace, spec: dict, gathered: Gathered, tools: SpacyTools | None, out: Path,
                   report: dict) -> None:
    """The CasRel/HRL releases converted split by split (webnlg: the official test passed through)."""
    span_sources: list[SpanSource] = []
    exact_release = None
    if spec.get("spans"):
        span_items = {}
        for split in SPLITS:
            path = gathered.paths.get(spec["spans"].format(spec["names"].get(split, split)))
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
            path = gathered.paths.get(spec["official_test"])
            if path is None:
                continue
            numbered = list(read_json_records(path))
            for where, record in numbered:
                changes.merge(check_record(record, f"{path}:{where}"))
            records = [record for _, record in numbered]
            if args.retag_test:
                tokens = [r["sentText"].split() if isinstance(r["sentText"], str) else r["sentText"] for r in records]
                for record, (tags, _) in zip(records, tools.tag(tokens, progress="tag test"), strict=True):
                    record["pos"] = tags
                write_jsonl(out / "test.json", records)
            else:
                shutil.copyfile(path, out / "test.json")  # byte for byte: this IS the paper's test set
        else:
            relative = spec["triples"].format(spec["names"].get(split, split))
            path = gathered.paths.get(relative)
            if path is None:
                continue
            items = read_release(path)
            tagged = tag_items(items, tools, split)
            records = convert_split(items, tagged, spec, relative, changes, span_sources, args.noun_compounds)
            if split == "train" and exact_release and tools:
                report["sentence_sources_vs_exact_release"] = check_sentence_sources(items, tagged, exact_release)
            write_jsonl(out / f"{split}.json", records)
        record_split(report, split, records, changes, args.dataset)

    if spec.get("official_test"):
        compare_with_official(spec, gathered, tools, span_sources, args.noun_compounds, report)


def shared_texts(folder: Path, dataset: str) -> dict[str, int]:
    """How many sentences of one built split are also in another (a release quirk, kept: train.py says what it
    means for the scores), each pair said in the log where not none."""
    texts = {split: {sentence_key(record) for _, record in read_json_records(folder / f"{split}.json")}
             for split in SPLITS if (folder / f"{split}.json").exists()}
    shared = {f"{a}_{b}": len(texts[a] & texts[b]) for a, b in itertools.combinations(SPLITS, 2)
              if a in texts and b in texts}
    for pair, count in shared.items():
        if count:
            log.warning("%s: %d sentence text%s of %s also in %s (kept, as released)", dataset, count,
                        "s" * (count != 1), *pair.split("_"))
    return shared


def record_split(report: dict, split: str, records: list[dict], changes: LoadReport, dataset: str) -> None:
    """A built split's statistics and changes, into the report and the log; a split left without sentences is
    refused (nothing is written), one without triples is warned about."""
    report["splits"][split] = split_statistics(records)
    report["changes"][split] = changes.as_dict()
    changes.log(f"{dataset}/{split}", notes=("entity span from",))  # where spans came from: no problem
    log.info("%s/%s: %s", dataset, split, report["splits"][split])
    if not records:
        raise DataError(f"{dataset}/{split}: no sentences (its source is empty, or every sentence was dropped: "
                        "see the lines above); nothing was written")
    if not report["splits"][split]["triples"]:
        log.warning("%s/%s: no sentence has a triple left (see the lines above)", dataset, split)


def dev_rank(key: str) -> str:
    """A fixed pseudo-random order of sentence texts, the same on every machine and Python version."""
    return hashlib.sha256(f"{DEV_SEED}\0{key}".encode()).hexdigest()


def hold_out_dev(keys: Sequence[str], size: int, where: str) -> set[str]:
    """The sentence texts held out as dev: the first by :func:`dev_rank` until ``size`` sentences are reached.

    Copies of one text go to the same side, so no dev sentence is also a train sentence.
    """
    counts: dict[str, int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    chosen: set[str] = set()
    taken = 0
    for key in sorted(counts, key=dev_rank):
        if taken >= size:
            break
        chosen.add(key)
        taken += counts[key]
    if len(chosen) == len(counts):
        raise DataError(f"{where}: {len(counts)} distinct sentences, too few to hold out {size} as dev and keep "
                        f"a training split")
    return chosen


def build_official(spec: dict, gathered: Gathered, out: Path, report: dict) -> None:
    """The authors' RIN files: test byte for byte, train minus a fixed held-out slice that becomes dev.

    Their release has no dev split (their code chose epochs on test); holding out part of
    their own train keeps model selection off test with the same annotation throughout.
    """
    train_path = gathered.paths.get(spec["official_train"])
    test_path = gathered.paths.get(spec["official_test"])
    numbered_test = list(read_json_records(test_path)) if test_path else []
    test_records = [record for _, record in numbered_test]
    test_changes, test_keys = LoadReport(), set()
    for number, record in numbered_test:
        test_changes.merge(check_record(record, f"{test_path}:{number}"))  # DataError on an unreadable record
        test_keys.add(sentence_key(record, f"{test_path}:{number}"))
    if train_path is not None:
        numbered = list(read_json_records(train_path))
        checks, keys = [], []
        for number, record in numbered:
            checks.append(check_record(record, f"{train_path}:{number}"))
            keys.append(sentence_key(record, f"{train_path}:{number}"))
        held_out = hold_out_dev(keys, spec["dev_size"], str(train_path))
        splits: dict[str, list[dict]] = {"train": [], "dev": []}
        changes = {"train": LoadReport(), "dev": LoadReport()}
        for key, (_, record), check in zip(keys, numbered, checks, strict=True):
            split = "dev" if key in held_out else "train"
            splits[split].append(record)
            changes[split].merge(check)
        for split in ("train", "dev"):
            write_jsonl(out / f"{split}.json", splits[split])
            record_split(report, split, splits[split], changes[split], report["dataset"])
        report["dev"] = {
            "from": spec["official_train"],
            "how": f"held out of the authors' train: its distinct sentence texts ordered by SHA-256 of "
                   f"'{DEV_SEED}' + NUL + the space-joined tokens, the first taken (all copies of a text together) "
                   f"until {spec['dev_size']} sentences; train is the rest. Test is never used for model selection.",
            "train_sentences_released": len(numbered),
            "test_texts_also_in_train": len(test_keys & {k for k in keys if k not in held_out}),
            "test_texts_also_in_dev": len(test_keys & held_out),
        }
    if test_path is not None:
        shutil.copyfile(test_path, out / "test.json")  # byte for byte: the paper's test set
        record_split(report, "test", test_records, test_changes, report["dataset"])


@contextlib.contextmanager
def staged_folder(final: Path) -> Iterator[Path]:
    """A temporary folder next to ``final`` that replaces it by renames once the block succeeds.

    On any failure the temporary folder goes and ``final`` stays as it was, so a dataset is
    never a mix of old and new files. Files of ``final`` this script does not write (the
    vocabulary of prepare_vocab.py) are carried over.
    """
    root = final.parent
    created_root = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    lock_path = root / f".{final.name}.lock"  # held while building, removed before it is let go
    lock = hold_lock(lock_path, lambda holder: f"{final} is being built by another prepare_data.py (pid {holder}): "
                     "let it finish, or pass another --out")
    try:
        remove_stale_staging(root, final.name)
        staging = root / f".{final.name}.tmp-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            yield staging
            carry_over(final, staging)
            swap_in(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    finally:
        with contextlib.suppress(OSError):
            lock_path.unlink()
        lock.close()
        if created_root:  # only if left empty: a failed build leaves no folder of its own behind
            with contextlib.suppress(OSError):
                root.rmdir()


def carry_over(final: Path, staging: Path) -> None:
    """Copy what another script wrote into the old folder (the vocabulary) into the new one."""
    if not final.is_dir():
        return
    kept = []
    for entry in sorted(final.iterdir()):
        if entry.name in PRODUCED or entry.name.startswith("."):
            continue
        (shutil.copytree if entry.is_dir() else shutil.copy2)(entry, staging / entry.name)
        kept.append(entry.name)
    old, new = final / "train.json", staging / "train.json"
    if kept and (old.exists() != new.exists() or (old.exists() and old.read_bytes() != new.read_bytes())):
        log.warning("kept %s from the previous preparation, made from another train split: run "
                    "prepare_vocab.py again", ", ".join(kept))


STALE_HOURS = 6  # a build's temporary folder untouched this long, its process gone, is removed by the next build


def remove_stale_staging(root: Path, name: str) -> None:
    """The temporary folders of earlier builds of ``name`` whose process is gone (killed: SIGTERM, SIGKILL, a
    lost session), which nothing else would remove. Only those untouched for STALE_HOURS: on a folder shared
    between machines, a pid says nothing of another machine's build."""
    for folder in [*root.glob(f".{name}.tmp-*"), *root.glob(f".{name}.old-*")]:
        try:
            untouched = time.time() - folder.stat().st_mtime
        except FileNotFoundError:
            continue  # removed meanwhile by its own build
        if untouched > STALE_HOURS * 3600 and not process_alive(folder.name.rsplit("-", 1)[1]):
            shutil.rmtree(folder, ignore_errors=True)


def swap_in(staging: Path, final: Path) -> None:
    """Rename ``staging`` to ``final``; the old ``final`` is renamed aside first and removed last."""
    if not final.exists():
        os.replace(staging, final)
        return
    old = final.parent / f".{final.name}.old-{os.getpid()}"
    shutil.rmtree(old, ignore_errors=True)
    os.replace(final, old)
    try:
        os.replace(staging, final)
    except OSError:
        os.replace(old, final)
        raise
    shutil.rmtree(old, ignore_errors=True)


def compare_with_official(spec: dict, gathered: Gathered, tools: SpacyTools | None, span_sources: Sequence[SpanSource],
                          noun_compounds: bool, report: dict) -> None:
    """Rebuild test from WebNLG* and measure agreement with the official RIN test (spans, POS)."""
    official_path = gathered.paths.get(spec["official_test"])
    rebuilt_path = gathered.paths.get(spec["triples"].format("test"))
    if official_path is None or rebuilt_path is None:
        return
    official = [record for _, record in read_json_records(official_path)]
    items = read_release(rebuilt_path)
    rebuilt = convert_split(items, tag_items(items, tools, "rebuilt test"), spec, "rebuilt test", LoadReport(),
                            span_sources, noun_compounds)
    report["rebuilt_test_vs_official"] = agreement(rebuilt, official)
    log.info("rebuilt WebNLG* test vs official RIN test: %s", report["rebuilt_test_vs_official"])


if __name__ == "__main__":
    main()
