"""The training step and epoch, the optimizer, and resumable training state.

:func:`train_step` is the one optimisation step that train.py, bench.py and the
tests take: autocast (held here, not in the model), backward, loss scaling for
fp16, gradient clipping, Adam.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from data.loader import Batch, Example, bucketed_batches, collate, memory_parts
from model import inference, speed
from model.rin import RIN, RINConfig
from model.run import atomic_torch_save
from utils.errors import InputError
from utils.project import settings_differences

log = logging.getLogger(__name__)
# Pair values (sentences x n x n x (relations + pair_hidden)) that one training step holds at once; a batch with
# more is taken in parts, with the same gradient up to dropout (each part draws its own masks: the same in
# expectation). The releases' batches of 50 stay whole (WebNLG exact: 80 tokens and 211 relations, 1.0e8; NYT:
# 100 tokens and 24 relations, 6.2e7; whole up to 204 tokens at NYT10's 29).
# A step's peak memory, measured on the CPU (batches of 50 x 80 tokens x 211 relations and 7 x 600 x 5): 0.6 to
# 4.0 bytes per value with the fused pair scorer, 2.9 to 8.9 with PyTorch's, so at most about 1.1 GB and 2.4 GB;
# a batch of 50 sentences of 600 tokens with 50 relations took 4.2 GB whole, 0.4 GB in parts, in the same time
# (docs/scaling.md has the snippet that measures it).
TRAIN_VALUES = 1 << 28


@dataclass
class TrainConfig:
    """How a run trains: every training default (the network's are RINConfig's, how fast it computes
    model/speed.py's, the ablation switches experiments/settings.py's EXTRA_SETTINGS).

    train.py fills a run's settings from these defaults, then presets/<dataset>.json (what Table 3 varies:
    rounds, lr and epochs per match mode), then the command line. lr and num_epoch here (and RINConfig's
    rounds) are for data without a preset: Table 3's NYT partial-match values.
    """

    dataset: str = "webnlg"
    data_dir: str | None = None  # None: dataset/<dataset>
    match: str = "partial"
    lr: float = 1e-3
    num_epoch: int = 100
    batch_size: int = 50  # Table 3
    max_grad_norm: float = 5.0  # Table 3; 0 = no clipping
    early_stop: int = 0  # epochs without a better selection F1 before stopping; 0 = never
    seed: int = 1
    select_on: str = "dev"
    save_dir: str = "saved_models"
    run_id: str | None = None  # None: made from the settings
    device: str | None = None  # None: cuda when available, else cpu
    threads: int | None = None  # None: every core this process may use
    eval_batch_size: int = inference.BATCH_SIZE
    compile: bool = False
    deterministic: bool = False


# a training step's phases as torch.profiler labels them (bench.py --profile sums each)
FORWARD_PHASE = "phase: forward and loss"
BACKWARD_PHASE = "phase: backward"
UPDATE_PHASE = "phase: gradient clipping and Adam"


def make_optimizer(model: RIN, lr: float) -> torch.optim.Adam:
    """Adam; the fused kernel (same update, fewer passes over the word vectors) where torch has it."""
    try:
        return torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(model.parameters(), lr=lr)


def train_step(model: RIN, optimizer: torch.optim.Optimizer, batch: Batch | Sequence[Batch], max_grad_norm: float,
               scaler: torch.amp.GradScaler | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step on ``batch``, or on a batch given in parts (see TRAIN_VALUES): each part's
    gradient is added, weighted by its share of the sentences, so the step is the whole batch's (up to dropout,
    whose masks each part draws). Returns the batch's (ER, RC) losses as detached tensors (no host sync)."""
    parts = [batch] if isinstance(batch, Batch) else batch
    sentences = sum(part.word_ids.shape[0] for part in parts)
    optimizer.zero_grad(set_to_none=True)
    losses = []
    for part in parts:
        with torch.profiler.record_function(FORWARD_PHASE), speed.autocast(part.word_ids.device):
            er_loss, rc_loss = model.loss(part)
            if len(parts) > 1:  # the loss is per sentence of the part: weighted to be per sentence of the batch
                share = part.word_ids.shape[0] / sentences
                er_loss, rc_loss = er_loss * share, rc_loss * share
        with torch.profiler.record_function(BACKWARD_PHASE):
            if scaler is not None:
                scaler.scale(er_loss + rc_loss).backward()
            else:
                (er_loss + rc_loss).backward()
        losses.append(torch.stack([er_loss.detach(), rc_loss.detach()]))
    with torch.profiler.record_function(UPDATE_PHASE):
        if scaler is not None:
            scaler.unscale_(optimizer)
        if max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
    er_loss, rc_loss = losses[0] if len(losses) == 1 else torch.stack(losses).sum(dim=0)
    return er_loss, rc_loss


def train_epoch(model: RIN, optimizer: torch.optim.Optimizer, examples: Sequence[Example], batch_size: int,
                generator: torch.Generator, device: torch.device, max_grad_norm: float,
                scaler: torch.amp.GradScaler | None = None, desc: str = "train") -> dict[str, float]:
    """One pass over ``examples`` in shuffled length buckets; returns mean losses per batch."""
    model.train()
    lengths = [len(e.word_ids) for e in examples]
    batches = bucketed_batches(lengths, batch_size, generator)
    if not batches:
        raise ValueError("no training batches: the training split is empty")
    totals = torch.zeros(2, dtype=torch.float64, device=device)  # summed on the device: no sync per step
    values_per_cell = pair_values_per_cell(model.config)
    start = time.perf_counter()
    # disable=None: a bar on a terminal only; a log file (nohup, SLURM) would keep every redrawn line of it
    for indices in tqdm(batches, desc=desc, leave=False, mininterval=2.0, disable=None):
        parts = batch_parts([examples[i] for i in indices], values_per_cell, device)
        er_loss, rc_loss = train_step(model, optimizer, parts, max_grad_norm, scaler)
        totals += torch.stack([er_loss, rc_loss]).to(totals.dtype)
    er_total, rc_total = totals.tolist()
    return {"er_loss": er_total / len(batches), "rc_loss": rc_total / len(batches),
            "train_seconds": time.perf_counter() - start}


def pair_values_per_cell(config: RINConfig) -> int:
    """Values a training step holds per pair (i, j), those TRAIN_VALUES counts: m_ij and the relation logits."""
    return config.pair_hidden + config.num_relations


def activation_bytes(config: RINConfig) -> int:
    """Bytes that one interaction round keeps per token for the backward pass, at least (train.py's memory
    check): autograd saves 1.2-2.9 times this on the CPU, float32 and bfloat16, with either pair scorer
    (tests/unit/test_training_memory.py; tests/test_cuda.py on a GPU); mostly the GRU cells' gates and states."""
    return 4 * (6 * 2 * config.rnn_hidden + config.num_relations)


def largest_step(examples: Sequence[Example], batch_size: int, config: RINConfig) -> int:
    """The most tokens (sentences x longest sentence, padding included) that one step of train_epoch takes: its
    length buckets hold the same lengths in every epoch, only their order and ties change."""
    lengths = [len(example.word_ids) for example in examples]
    return max((len(part) * max(lengths[i] for i in part)
                for batch in bucketed_batches(lengths, batch_size, None)
                for part in memory_parts(batch, lengths, pair_values_per_cell(config), TRAIN_VALUES)), default=0)


def batch_parts(batch: Sequence[Example], values_per_cell: int, device: torch.device) -> list[Batch]:
    """A training batch collated whole, or in parts whose pair tensors stay under ``TRAIN_VALUES``
    (``values_per_cell``: the model's relations + pair_hidden)."""
    lengths = [len(example.word_ids) for example in batch]
    return [collate([batch[k] for k in part], device)
            for part in memory_parts(range(len(batch)), lengths, values_per_cell, TRAIN_VALUES)]


def save_training_state(path: Path, model: RIN, optimizer: torch.optim.Optimizer, generator: torch.Generator,
                        progress: dict, scaler: torch.amp.GradScaler | None = None, run: dict | None = None) -> None:
    """Everything needed to continue a run exactly: weights, optimizer, RNG states, counters, and ``run``, what
    identifies the run (so a checkpoint copied from another is refused). The previous file is kept as
    <name>_prev.pt until the new one is on disk, as a fallback should it turn out unreadable."""
    device = next(model.parameters()).device
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "torch_rng": torch.get_rng_state(), "batch_rng": generator.get_state(), "progress": progress,
             "run": run or {}}
    if device.type == "cuda":  # the training GPU's generator (dropout), whichever index it has here
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    if scaler is not None and scaler.is_enabled():
        state["grad_scaler"] = scaler.state_dict()
    atomic_torch_save(state, path, keep_previous=path.with_name(f"{path.stem}_prev{path.suffix}"))


def load_training_state(path: Path, model: RIN, optimizer: torch.optim.Optimizer, generator: torch.Generator,
                        scaler: torch.amp.GradScaler | None = None, run: dict | None = None) -> dict:
    """Restore what :func:`save_training_state` wrote; returns the progress counters. A checkpoint saved for
    another ``run`` is an InputError (checkpoints from before the identity was saved are taken as they are).
    The training GPU's RNG state goes to the GPU the run resumes on (``cuda:1`` may resume as ``cuda:0``)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    # a setting added since the checkpoint was saved is not in its identity (the run takes it as recorded or at
    # its default: experiments/settings.py resume_settings)
    if run and state.get("run") and (saved := settings_differences(state["run"], run, state["run"].keys())):
        raise InputError(f"{path} was saved with {saved}: it comes from another run, or config.json was edited; "
                         "restore the run's own files, or start a new run")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    generator.set_state(state["batch_rng"])
    device, saved = next(model.parameters()).device, state.get("cuda_rng")
    if isinstance(saved, list):  # before 2026-12-07: every visible GPU's state, saved by CPU runs on them too
        index = (device.index or 0) if device.type == "cuda" else len(saved)
        saved = saved[index] if index < len(saved) else None
    if device.type == "cuda" and saved is not None:
        torch.cuda.set_rng_state(saved, device)
    elif device.type == "cuda" or isinstance(saved, torch.Tensor):
        log.warning("%s holds no RNG state of the %s this run resumes on (saved on another kind of device): the "
                    "dropout masks from here on differ from an uninterrupted run's", path, device.type.upper())
    if scaler is not None and "grad_scaler" in state:
        scaler.load_state_dict(state["grad_scaler"])
    return state["progress"]
