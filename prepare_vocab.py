"""Build dataset/<name>/vocab.json, embedding.npy and labels.json from the training split.

    python prepare_vocab.py --dataset webnlg                    # word2vec trained on train
    python prepare_vocab.py --dataset nyt10 --wv_file glove.840B.300d.txt
    python prepare_vocab.py --dataset nyt --wv_file none        # random initialisation

The vocabulary holds every training word, plus dev/test words that have a
pretrained vector (so they can be looked up, never trained on). Labels hold the
training split's relation types, POS tags and the BIOES tags.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from data.loader import load_sentences
from utils.helpers import PROJECT_ROOT, setup_logging, write_json
from utils.vocab import UNK_ID, Labels, Vocab, build_embedding, read_word_vectors, train_word2vec

log = logging.getLogger("prepare_vocab")
DEFAULT_DIM = {"nyt10": 300, "nyt11": 300}  # the paper used glove.840B.300d there, 100-d elsewhere


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="webnlg", help="dataset name (default: webnlg)")
    parser.add_argument("--data_dir", help="folder with train/dev/test.json (default: dataset/<dataset>)")
    parser.add_argument("--wv_file", help="GloVe or word2vec text file; 'none' = random vectors; "
                        "default: train word2vec on the training split (gensim)")
    parser.add_argument("--wv_dim", type=int, help="vector size (default: 300 for nyt10/nyt11, else 100)")
    parser.add_argument("--lower", action="store_true", help="lower-case all words")
    parser.add_argument("--seed", type=int, default=1, help="seed for word2vec and random rows (default 1)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    setup_logging()
    data_dir = Path(args.data_dir or PROJECT_ROOT / "dataset" / args.dataset)
    dim = args.wv_dim or DEFAULT_DIM.get(args.dataset, 100)
    splits = {}
    for name in ("train", "dev", "test"):
        path = data_dir / f"{name}.json"
        if not path.exists():
            raise SystemExit(f"{path} is missing: run python prepare_data.py --dataset {args.dataset}")
        sentences, report = load_sentences(path)
        report.log(str(path))
        splits[name] = sentences
    normalise = (lambda t: t.lower()) if args.lower else (lambda t: t)
    train_tokens = [[normalise(t) for t in s.tokens] for s in splits["train"]]

    if args.wv_file is None:
        log.info("no --wv_file: training %d-d word2vec vectors on the %d training sentences (gensim)",
                 dim, len(train_tokens))
        vectors, source = train_word2vec(train_tokens, dim, args.seed), f"word2vec trained on train ({dim}-d)"
    elif args.wv_file.lower() == "none":
        vectors, source = {}, f"random uniform(-0.1, 0.1) ({dim}-d)"
    else:
        wanted = {normalise(t) for s in splits.values() for x in s for t in x.tokens}
        vectors, file_dim = read_word_vectors(args.wv_file, wanted | {w.lower() for w in wanted})
        if args.wv_dim and args.wv_dim != file_dim:
            raise SystemExit(f"--wv_dim {args.wv_dim} but {args.wv_file} holds {file_dim}-d vectors")
        dim, source = file_dim, f"{args.wv_file} ({file_dim}-d)"

    vocab = Vocab.build(train_tokens, lower=args.lower)
    extra = sorted({normalise(t) for name in ("dev", "test") for s in splits[name] for t in s.tokens
                    if normalise(t) not in vocab.index and (normalise(t) in vectors or t.lower() in vectors)})
    vocab = Vocab(vocab.words + extra, lower=args.lower)
    embedding, found = build_embedding(vocab, vectors, dim, args.seed)

    labels = Labels.build(relations=(t[1] for s in splits["train"] for t in s.triples),
                          pos_tags=(p for s in splits["train"] if s.pos for p in s.pos))
    vocab.save(data_dir / "vocab.json")
    np.save(data_dir / "embedding.npy", embedding)
    labels.save(data_dir / "labels.json")

    stats = {"vocab_size": len(vocab), "vectors": source, "pretrained_rows": found,
             "relations": len(labels.relations), "pos_tags": len(labels.pos) - 2, "oov_rate": {}}
    for name, sentences in splits.items():
        ids = [i for s in sentences for i in vocab.ids(s.tokens)]
        stats["oov_rate"][name] = sum(i == UNK_ID for i in ids) / max(1, len(ids))
    write_json(data_dir / "vocab_report.json", stats)
    log.info("vocabulary %d words (%d with a pretrained vector; %d dev/test-only words added), vectors: %s",
             len(vocab), found, len(extra), source)
    log.info("OOV token rate: %s", ", ".join(f"{n} {r:.2%}" for n, r in stats["oov_rate"].items()))
    log.info("%d relation types, %d POS tags -> %s", len(labels.relations), len(labels.pos) - 2, data_dir)
    return stats


if __name__ == "__main__":
    main()
