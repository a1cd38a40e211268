"""Training epochs, batched extraction, evaluation and resumable checkpoints."""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from model.rin import RIN
from utils.helpers import atomic_torch_save
from utils.loader import Example, LoadReport, Sentence, bucketed_batches, collate, encode, load_sentences
from utils.scorer import Extraction, decode, score_all
from utils.vocab import Labels, Vocab

log = logging.getLogger(__name__)


@dataclass
class Split:
    """One data split: sentences with gold triples, their id arrays, and what loading reported."""

    name: str
    sentences: list[Sentence]
    examples: list[Example]
    report: LoadReport

    @property
    def gold(self) -> list[list]:
        return [s.triples for s in self.sentences]


def load_split(path: str | Path, vocab: Vocab, labels: Labels, name: str | None = None) -> Split:
    sentences, report = load_sentences(path)
    examples = encode(sentences, vocab, labels, report)
    split = Split(name or Path(path).stem, sentences, examples, report)
    report.log(f"{path}")
    return split


def extract(model: RIN, examples: Sequence[Example], labels: Labels, device: torch.device,
            batch_size: int = 100, threshold: float = 0.5, progress: bool = False) -> list[Extraction]:
    """Run the model on ``examples`` (in length buckets) and decode, returned in input order."""
    model.eval()
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must lie strictly between 0 and 1, not {threshold}")
    cutoff = math.log(threshold) - math.log1p(-threshold)  # sigmoid(z) >= t  <=>  z >= cutoff
    results: list[Extraction | None] = [None] * len(examples)
    batches = bucketed_batches([len(e.word_ids) for e in examples], batch_size, generator=None)
    for indices in tqdm(batches, desc="extract", disable=not progress, leave=False):
        batch = collate([examples[i] for i in indices], indices, device, with_targets=False)
        tag_ids, logits = model.predict(batch.word_ids, batch.pos_ids, batch.mask, batch.lengths)
        above = logits >= cutoff
        hits = above.nonzero().tolist()
        hit_probs = torch.sigmoid(logits[above]).tolist()
        cells: list[list] = [[] for _ in indices]
        for (row, i, j, relation), probability in zip(hits, hit_probs, strict=True):
            cells[row].append((i, j, relation, probability))
        tag_ids = tag_ids.tolist()
        for row, (index, length) in enumerate(zip(indices, batch.lengths.tolist(), strict=True)):
            tags = [labels.tags[t] for t in tag_ids[row][:length]]
            results[index] = decode(tags, cells[row], labels.relations)
    return results  # type: ignore[return-value]


def evaluate(model: RIN, split: Split, labels: Labels, device: torch.device, batch_size: int = 100,
             scorer: str = "ours") -> tuple[dict, list[Extraction]]:
    """P/R/F1 in both match modes on ``split``, and the extractions behind them."""
    extractions = extract(model, split.examples, labels, device, batch_size)
    return score_all(extractions, split.gold, scorer), extractions


def train_epoch(model: RIN, optimizer: torch.optim.Optimizer, examples: Sequence[Example], batch_size: int,
                generator: torch.Generator, device: torch.device, max_grad_norm: float,
                desc: str = "train") -> dict[str, float]:
    """One pass over ``examples`` in shuffled length buckets; returns mean losses per batch."""
    model.train()
    batches = bucketed_batches([len(e.word_ids) for e in examples], batch_size, generator)
    totals = {"er_loss": 0.0, "rc_loss": 0.0}
    start = time.perf_counter()
    bar = tqdm(batches, desc=desc, leave=False, mininterval=2.0)
    for indices in bar:
        batch = collate([examples[i] for i in indices], indices, device)
        er_loss, rc_loss = model.loss(batch)
        optimizer.zero_grad(set_to_none=True)
        (er_loss + rc_loss).backward()
        if max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        totals["er_loss"] += er_loss.item()
        totals["rc_loss"] += rc_loss.item()
        bar.set_postfix(er=f"{er_loss.item():.3f}", rc=f"{rc_loss.item():.3f}", refresh=False)
    return {key: value / max(1, len(batches)) for key, value in totals.items()} | {
        "train_seconds": time.perf_counter() - start}


def save_training_state(path: Path, model: RIN, optimizer: torch.optim.Optimizer, generator: torch.Generator,
                        progress: dict) -> None:
    """Everything needed to continue a run exactly: weights, optimizer, RNG states, counters."""
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "torch_rng": torch.get_rng_state(), "batch_rng": generator.get_state(), "progress": progress}
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    atomic_torch_save(state, path)


def load_training_state(path: Path, model: RIN, optimizer: torch.optim.Optimizer, generator: torch.Generator
                        ) -> dict:
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    generator.set_state(state["batch_rng"])
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return state["progress"]
