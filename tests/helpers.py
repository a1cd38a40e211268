"""Shared test fixtures: random examples, small models, a place nothing can be written to."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from data.loader import Example, collate
from model import speed
from model.rin import RIN, RINConfig

UNWRITABLE = Path("/sys/kernel")  # a folder that takes no new files or folders, even for root (as CI runs)


def run_summary(f1: float = 0.5) -> str:
    """The smallest results.json that reads as a finished run's (model/run.py read_results): every score ``f1``."""
    scores = {mode: {"precision": f1, "recall": f1, "f1": f1} for mode in ("partial", "exact")}
    return json.dumps({"dev": scores, "test": scores, "best_epoch": 1})


def random_examples(count: int, relations: int, seed: int, max_len: int = 12, vocab: int = 30,
                    pos: int = 6) -> list[Example]:
    rng = np.random.default_rng(seed)
    examples = []
    for _ in range(count):
        n = int(rng.integers(1, max_len + 1))
        cells = {(int(rng.integers(n)), int(rng.integers(n)), int(rng.integers(relations)))
                 for _ in range(int(rng.integers(0, 4)))}
        examples.append(Example(word_ids=rng.integers(2, vocab, n), pos_ids=rng.integers(2, pos, n),
                                tag_ids=rng.integers(0, 5, n),
                                cells=np.array(sorted(cells), dtype=np.int64).reshape(-1, 3)))
    return examples


def small_model(relations: int = 4, rounds: int = 2, seed: int = 0, **switches) -> RIN:
    torch.manual_seed(seed)
    sizes = {"emb_dim": 8, "pos_dim": 3, "rnn_hidden": 6, "pair_hidden": 7} | switches
    config = RINConfig(vocab_size=30, num_pos=6, num_tags=5, num_relations=relations, rounds=rounds, **sizes)
    return RIN(config)


def saved_bytes_per_round_and_token(device: torch.device, rnn_hidden: int, relations: int) -> float:
    """What one more interaction round makes a training step keep for its backward pass, per token: the bytes of
    every tensor autograd saves (each storage once, parameters aside), at 6 rounds less at 2, over 4."""
    def saved(rounds: int) -> tuple[int, int]:
        storages = {}

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            if not isinstance(tensor, torch.nn.Parameter):
                storages[(tensor.device, tensor.untyped_storage().data_ptr())] = tensor.untyped_storage().nbytes()
            return tensor

        torch.manual_seed(0)
        model = RIN(RINConfig(vocab_size=30, num_pos=6, num_tags=5, num_relations=relations, rnn_hidden=rnn_hidden,
                              rounds=rounds)).to(device)
        batch = collate(random_examples(4, relations, seed=9, max_len=30), device)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), speed.autocast(device):
            model.loss(batch)
        return sum(storages.values()), batch.word_ids.numel()

    (few, tokens), (many, _) = saved(2), saved(6)
    return (many - few) / 4 / tokens
