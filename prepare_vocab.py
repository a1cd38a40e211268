"""Build dataset/<name>/vocab.json, embedding.npy, labels.json and vocab_report.json from the training split.

    python prepare_vocab.py --dataset webnlg                    # word2vec trained on train
    python prepare_vocab.py --dataset webnlg_official --wv_file official   # the authors' 100-d vectors
    python prepare_vocab.py --dataset nyt10 --wv_file glove.840B.300d.txt
    python prepare_vocab.py --dataset nyt --wv_file none        # random initialisation

The vocabulary holds every training word, plus dev/test words that have a
pretrained vector (so they can be looked up, never trained on). Labels hold the
training split's relation types, POS tags and the BIOES tags. `--wv_file official`
takes the authors' embedding.npy and vocab.pkl (verified against data/sources.json;
from --source, ../shared/datasets, the download cache or a download, as in
prepare_data.py); vocab.pkl is read by an unpickler that admits only builtin
containers, strings and numbers (never code).
The four output files are written together: all of them are replaced, or none.
"""
from __future__ import annotations

import utils.interrupt  # noqa: F401  first, before torch loads: a Ctrl-C meanwhile is one line

# isort: split
import argparse
import logging
import os
import shutil
import unicodedata
from pathlib import Path

import numpy as np

from data.convert import DATASETS, prepare_hint
from data.fetch import BASE_URL_ENV, MANIFEST, Inputs, Manifest, default_cache, shared_for
from data.loader import NOT_FOUND, LoadReport, Sentence, load_sentences
from model.rin import RINConfig
from model.training import TrainConfig
from utils.cli import ArgumentParser, folder_name, seed_value, setup_logging, vector_size
from utils.errors import InputError, one_line_errors
from utils.files import file_sha256, write_json, write_problem
from utils.project import DATASETS_DIR
from utils.vocab import (
    UNK_ID,
    Labels,
    Vocab,
    build_embedding,
    not_text_problem,
    read_official_vectors,
    read_word_vectors,
    train_word2vec,
)

log = logging.getLogger("prepare_vocab")
DEFAULT_DATASET = TrainConfig.dataset  # as train.py
DEFAULT_DIM = {"nyt10": 300, "nyt11": 300}  # the paper used glove.840B.300d there, RINConfig.emb_dim elsewhere
# the authors' vectors (release layout) for each dataset built on their sentences
OFFICIAL_VECTORS = {"webnlg": "rin/webnlg", "webnlg_exact": "rin/webnlg", "webnlg_official": "rin/webnlg",
                    "nyt": "rin/nyt", "nyt_official": "rin/nyt"}
OUTPUTS = ("vocab.json", "embedding.npy", "labels.json", "vocab_report.json")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(prog="prepare_vocab.py", description=__doc__)
    parser.add_argument("--dataset", type=folder_name,
                        help="dataset name: its folder dataset/<name>, its default --wv_dim and its authors' vectors "
                        f"(default: the --data_dir folder's name, else {DEFAULT_DATASET})")
    parser.add_argument("--data_dir", help="folder with train/dev/test.json (default: dataset/<dataset>)")
    parser.add_argument("--wv_file", help="GloVe or word2vec text file in UTF-8 (values separated by spaces or "
                        "tabs; at most 1%% of lines of another width or not UTF-8, skipped; unpacked, or through a "
                        "pipe: <(zcat FILE.gz)); 'official' = the authors' vectors "
                        "(webnlg*, nyt*); 'none' = random vectors; default: train word2vec on the training "
                        "split (gensim)")
    sizes = ", ".join(f"{dim} for {name}" for name, dim in DEFAULT_DIM.items())
    parser.add_argument("--wv_dim", type=vector_size, help=f"vector size (default: {sizes}, else {RINConfig.emb_dim})")
    parser.add_argument("--lower", action="store_true", help="lower-case all words")
    parser.add_argument("--seed", type=seed_value, default=1,
                        help="seed for word2vec and random rows (default %(default)s)")
    parser.add_argument("--source", help="--wv_file official: folder with the release layout, or a .zip/.tar.gz "
                        "of it (default: "
                        "../shared/datasets when present, then the download cache, then a download)")
    parser.add_argument("--cache", help=f"--wv_file official: download cache (default: {default_cache()}, as in "
                        "prepare_data.py)")
    parser.add_argument("--base_url", help=f"--wv_file official: mirror of raw.githubusercontent.com (default: "
                        f"${BASE_URL_ENV}, else the manifest's)")
    parser.add_argument("--manifest", help="--wv_file official: sources manifest (default: data/sources.json)")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    wv_file = (args.wv_file or "").lower()
    if wv_file != "official" and (ignored := [f"--{flag}" for flag in ("source", "cache", "base_url", "manifest")
                                              if getattr(args, flag) is not None]):
        parser.error(f"{', '.join(ignored)}: only for --wv_file official (where the authors' vectors come from)")
    if wv_file == "official" and dataset_of(args) not in OFFICIAL_VECTORS:
        parser.error(f"--wv_file official: the authors' vectors cover {', '.join(sorted(OFFICIAL_VECTORS))}, "
                     f"not {dataset_of(args)!r}" + ("" if args.dataset else " (the --data_dir folder's name; give "
                                                     "--dataset)"))
    vectors_file = Path(args.wv_file) if args.wv_file and wv_file not in ("official", "none") else None
    if vectors_file and (vectors_file.is_dir() or not vectors_file.exists()):
        parser.error(f"--wv_file {args.wv_file}: " + ("a folder, not a file" if vectors_file.is_dir()
                                                      else "no such file"))
    if vectors_file and vectors_file.is_file():  # before the data is read (a pipe is checked as it is read)
        try:
            with open(vectors_file, "rb") as handle:
                start = handle.read(6)
        except OSError as error:
            parser.error(f"--wv_file {args.wv_file}: {error.strerror or error}")
        if problem := not_text_problem(start, args.wv_file):
            parser.error(f"--wv_file {problem}")
    if args.data_dir and not Path(args.data_dir).is_dir():
        parser.error(f"--data_dir {args.data_dir}: no such folder")
    return args


def dataset_of(args: argparse.Namespace) -> str:
    """The dataset the vocabulary is built for: --dataset, else the --data_dir folder's name (a copy of
    dataset/nyt10 elsewhere is nyt10, with its 300-d vectors), else the default dataset."""
    return args.dataset or (Path(args.data_dir).resolve().name if args.data_dir else DEFAULT_DATASET)


def missing_split_message(path: Path, dataset: str, named: bool = True) -> str:
    """Where to get a split that is not there. A folder prepare_data.py built without train was built from a
    source that lacks it (NYT, NYT10 and NYT11 train are not on the project's machines), so running
    prepare_data.py the same way again would not help; an --out root names the dataset's own folder (without
    --dataset: the folder of any dataset prepare_data.py builds)."""
    if path.is_dir():
        return f"{path}: a folder, not a RIN-format file"
    for folder in [path.parent / dataset] if named else [path.parent / name for name in sorted(DATASETS)]:
        if (folder / path.name).is_file():  # an --out root given for the dataset's own folder
            return f"{path} is missing; {folder} holds one: pass --data_dir {folder}"
    prepared = (path.parent / "prepare_report.json").is_file()  # by prepare_data.py, not a folder of one's own
    if prepared and path.name == "train.json" and dataset in DATASETS:
        return (f"{path} is missing: {path.parent} was prepared from a source without its training split; see "
                f"dataset/README.md (\"Missing training splits\") for where to get it"
                + (", or use the authors' NYT: python prepare_data.py --dataset nyt_official" if dataset == "nyt"
                   else ""))
    return f"{path} is missing: {prepare_hint(dataset, path.parent, named)}"


def check_kept_triples(path: Path, sentences: list[Sentence], report: LoadReport) -> None:
    """Refuse a training file that kept fewer than half its relation mentions as triples, most of their arguments
    not found in their sentences (mentions and tokens that do not match: another tokenisation, or the wrong
    field); a few are only warned about, with the rest of the load report."""
    kept = sum(len(sentence.triples) for sentence in sentences)
    if report.mentions_read and kept < report.mentions_read / 2 and report.counts[NOT_FOUND]:
        raise InputError(f"{path}: only {kept} of its {report.mentions_read} relation mentions were kept as triples "
                         f"({report.counts[NOT_FOUND]} of their arguments are not in their sentences, e.g. "
                         f"{report.examples[NOT_FOUND][0]}): do its mentions and tokens match (one tokenisation)? "
                         "dataset/README.md, \"Your own data\"")


def official_vectors(args: argparse.Namespace) -> tuple[dict[str, np.ndarray], int, str]:
    folder = OFFICIAL_VECTORS[dataset_of(args)]
    files = [f"{folder}/embedding.npy", f"{folder}/vocab.pkl"]
    inputs = Inputs(Manifest.load(args.manifest or MANIFEST), args.source, Path(args.cache or default_cache()),
                    args.base_url or os.environ.get(BASE_URL_ENV),
                    shared=shared_for(args.source))
    found = inputs.gather(files)
    if found.missing:
        raise InputError(f"{Path(args.source) / found.missing[0]}: missing (--wv_file official needs "
                         f"{' and '.join(files)})")
    vectors, dim = read_official_vectors(found.paths[files[0]], found.paths[files[1]])
    return vectors, dim, f"the authors' vectors, {folder}/embedding.npy + vocab.pkl ({dim}-d)"


def write_together(data_dir: Path, vocab: Vocab, embedding: np.ndarray, labels: Labels, stats: dict) -> None:
    """Write the four outputs under temporary names, then rename them all: none is replaced if a write fails, or
    if one of them could not be replaced (a folder of its name, checked first)."""
    for name in OUTPUTS:
        if (data_dir / name).exists() and not (data_dir / name).is_file():
            raise InputError(f"{data_dir / name}: not a file, so it cannot be replaced; move it away")
    staging = data_dir / f".vocab.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        vocab.save(staging / "vocab.json")
        with open(staging / "embedding.npy", "wb") as handle:
            np.save(handle, embedding)
        labels.save(staging / "labels.json")
        write_json(staging / "vocab_report.json", stats)
        for name in OUTPUTS:
            os.replace(staging / name, data_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def main(argv: list[str] | None = None) -> dict:
    """Build the vocabulary files; expected failures end as one line on stderr and exit 1."""
    args = parse_args(argv)
    with one_line_errors("prepare_vocab.py", args.debug):
        return build(args)


def build(args: argparse.Namespace) -> dict:
    data_dir = Path(args.data_dir or DATASETS_DIR / dataset_of(args))
    dim = args.wv_dim or DEFAULT_DIM.get(dataset_of(args), RINConfig.emb_dim)
    for name in ("train", "dev", "test"):
        if not (data_dir / f"{name}.json").is_file():
            raise InputError(missing_split_message(data_dir / f"{name}.json", dataset_of(args),
                                                   named=args.dataset is not None))
    if problem := write_problem(data_dir):  # before word2vec trains (minutes on NYT), not at the end
        raise InputError(f"{data_dir}: cannot write {', '.join(OUTPUTS)} there ({problem}); copy the folder to a "
                         "place you can write and pass it as --data_dir")
    setup_logging()
    splits, reports = {}, {}
    for name in ("train", "dev", "test"):  # dev and test as train.py reads them: every gold triple scorable
        path = data_dir / f"{name}.json"
        sentences, report = load_sentences(path, scored=name != "train")
        report.log(str(path))
        splits[name], reports[name] = sentences, report.as_dict()
        if name == "train":
            check_kept_triples(path, sentences, report)
        elif not sentences:
            log.warning("%s: no sentences (train.py needs dev to choose the best epoch on, and scores test)", path)
    if not splits["train"]:
        raise InputError(f"{data_dir / 'train.json'}: no sentences to build a vocabulary from")
    if not any(s.triples for s in splits["train"]):  # labels.json would list no relation: nothing to learn
        raise InputError(f"{data_dir / 'train.json'}: no relation triples (every relationMentions is empty or was "
                         "dropped, see the warnings above): a model trained on it can extract none")
    normalise = (lambda t: t.lower()) if args.lower else (lambda t: t)
    train_tokens = [[normalise(t) for t in s.tokens] for s in splits["train"]]

    wv_file = (args.wv_file or "").lower()
    if args.wv_file is None:
        log.info("no --wv_file: training %d-d word2vec vectors on the %d training sentences (gensim)",
                 dim, len(train_tokens))
        vectors, source = train_word2vec(train_tokens, dim, args.seed), f"word2vec trained on train ({dim}-d)"
    elif wv_file == "none":
        vectors, source = {}, f"random uniform(-0.1, 0.1) ({dim}-d)"
    else:
        if wv_file == "official":
            vectors, file_dim, source = official_vectors(args)
        else:
            wanted = {normalise(t) for s in splits.values() for x in s for t in x.tokens}
            vectors, file_dim = read_word_vectors(args.wv_file, wanted | {w.lower() for w in wanted})
            source = f"{args.wv_file} ({file_dim}-d)"
        if args.wv_dim and args.wv_dim != file_dim:
            raise InputError(f"--wv_dim {args.wv_dim} but {args.wv_file} holds {file_dim}-d vectors")
        dim = file_dim

    vocab = Vocab.build(train_tokens, lower=args.lower)
    extra = sorted({normalise(t) for name in ("dev", "test") for s in splits[name] for t in s.tokens
                    if normalise(t) not in vocab.index and (normalise(t) in vectors or t.lower() in vectors)})
    vocab = Vocab(vocab.words + extra, lower=args.lower)
    embedding, found = build_embedding(vocab, vectors, dim, args.seed)
    if wv_file not in ("", "none") and found < 0.1 * len(vocab):  # a file of another language or casing
        log.warning("only %d of the %d vocabulary words (%.1f%%) have a vector in %s: the others start random; "
                    "is it the right file (language, casing: --lower)?", found, len(vocab), 100 * found / len(vocab),
                    source)

    labels = Labels.build(relations=(t[1] for s in splits["train"] for t in s.triples),
                          pos_tags=(p for s in splits["train"] if s.pos for p in s.pos))
    look_alike = {}  # labels that print the same: NFC and NFD forms, a trailing space
    for relation in labels.relations:
        look_alike.setdefault(" ".join(unicodedata.normalize("NFC", relation).split()), []).append(relation)
    for same in (names for names in look_alike.values() if len(names) > 1):
        log.warning("train.json: the relation labels %s differ only in Unicode form or spaces: they are %d types "
                    "to the model and the scorers; write them alike if they are one", ", ".join(map(repr, same)),
                    len(same))
    stats = {"vocab_size": len(vocab), "vectors": source, "pretrained_rows": found,
             "relations": len(labels.relations), "pos_tags": len(labels.pos) - 2, "oov_rate": {},
             "train_sha256": file_sha256(data_dir / "train.json"),  # train.py refuses files built from another
             "settings": {"wv_file": args.wv_file, "wv_dim": dim, "lower": args.lower, "seed": args.seed},
             "load_reports": reports}
    for name, sentences in splits.items():
        ids = [i for s in sentences for i in vocab.ids(s.tokens)]
        stats["oov_rate"][name] = sum(i == UNK_ID for i in ids) / max(1, len(ids))
    write_together(data_dir, vocab, embedding, labels, stats)
    log.info("vocabulary %d words (%d with a pretrained vector; %d dev/test-only words added), vectors: %s",
             len(vocab), found, len(extra), source)
    log.info("OOV token rate: %s", ", ".join(f"{n} {r:.2%}" for n, r in stats["oov_rate"].items()))
    log.info("%d relation types, %d POS tags -> %s", len(labels.relations), len(labels.pos) - 2, data_dir)
    return stats


if __name__ == "__main__":
    main()
