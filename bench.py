"""Side-by-side benchmark: the paper-literal oracle (model/reference.py) against the production path.

    python bench.py                       # all settings, prints a table
    python bench.py --json bench.json     # also writes the figures as JSON
    python bench.py --settings webnlg_partial --batches 20
    python bench.py --profile --settings nyt_partial --batches 30   # where the time goes
    python bench.py --equivalence 6 --threads 1   # same dev F1 with every path?
    python bench.py --contention 1        # the same with one busy process of its own on a core
    python bench.py --tables              # rewrite the speed tables of README.md, docs/speed.md from the JSON

Every path runs in this one process on the same batches; the production variants
are timed interleaved, batch by batch, so a change in the machine's load during
the run affects them alike (the load average before and after is recorded).
Sentence lengths and triple counts come from the real releases (--source, else
../shared/datasets, else prepare_data.py's download cache; NYT: its dev+test
distribution resampled to the 56,195 training sentences, since NYT's training
split was not available where the bench was written; WebNLG: its real training
split); word ids are random (vocabulary sizes below), which
does not change the cost. Epoch time is estimated from a few of each epoch's
batches, each standing for a run of batches of similar FLOPs (weighted by the
run's FLOPs over its own: stratified_sample). Peak memory is the growth of the
process's peak RSS during one training step on the longest batch (CPU; reset through
/proc/self/clear_refs) or torch.cuda.max_memory_allocated (GPU). The machine's
peak matrix-multiply rate and the multiply-adds an epoch needs give a compute
floor (s/epoch) to set each figure against; the targets of docs/speed.md are
checked at the end.
"""
from __future__ import annotations

import utils.interrupt  # noqa: F401  first, before torch loads: a Ctrl-C meanwhile is one line

# isort: split
import argparse
import contextlib
import copy
import ctypes
import gc
import multiprocessing
import os
import random
import shlex
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from data.convert import read_release
from data.fetch import SHARED, default_cache
from data.loader import Example, bucketed_batches, load_split
from experiments import speed_tables
from experiments.presets import preset
from experiments.settings import check_data_files
from model import speed
from model.inference import BATCH_SIZE as DECODE_BATCH_SIZE
from model.inference import evaluate, extract
from model.reference import reference_loss
from model.rin import RIN, RINConfig
from model.training import (
    BACKWARD_PHASE,
    FORWARD_PHASE,
    UPDATE_PHASE,
    TrainConfig,
    batch_parts,
    make_optimizer,
    pair_values_per_cell,
    train_epoch,
    train_step,
)
from utils.cli import ArgumentParser, add_machine_arguments, non_negative_int, positive_float, positive_int, seed_value
from utils.cpu import cpu_model, usable_cores
from utils.errors import InputError, Terminated, one_line_errors
from utils.files import check_file_path, write_json
from utils.machine import configure_threads, pick_device
from utils.project import DATASETS_DIR, code_commit, project_relative
from utils.vocab import Labels, Vocab

# what limits the instruction sets PyTorch, oneDNN, MKL, OpenBLAS and the pair kernels use (the AVX2 stand-in of
# docs/speed.md sets some), recorded with the figures
ISA_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "OPENBLAS_CORETYPE",
                 "RIN_PAIR_ISA", "RIN_PAIR_LANES")
MAX_GRAD_NORM = TrainConfig.max_grad_norm
TRAIN_BATCH_SIZE = TrainConfig.batch_size


@dataclass(frozen=True)
class Setting:
    release_files: tuple[str, ...]
    epoch_sentences: int
    relations: int
    vocab_size: int  # NYT: an estimate for the full training vocabulary; WebNLG: its real size
    rounds: int
    lr: float


def table3(dataset: str, match: str) -> dict:
    """K and the learning rate of presets/<dataset>.json for the match mode (Table 3 of the paper)."""
    values = preset(dataset, match)
    return {"rounds": values["rounds"], "lr": values["lr"]}


NYT_FILES = ("casrel/NYT-star/val_triples.json", "casrel/NYT-star/test_triples.json")
SETTINGS = {
    "nyt_partial": Setting(NYT_FILES, 56195, 24, 80000, **table3("nyt", "partial")),
    "nyt_exact": Setting(NYT_FILES, 56195, 24, 80000, **table3("nyt", "exact")),
    "webnlg_partial": Setting(("casrel/WebNLG-star/train_triples.json",), 5019, 170, 3930,
                              **table3("webnlg", "partial")),
}


def release_file(relative: str, source: str | None) -> Path | None:
    """``relative`` (release layout, e.g. casrel/NYT-star/test_triples.json) in --source, else in
    ../shared/datasets or the download cache that prepare_data.py fills; None where absent."""
    roots = [Path(source)] if source else [SHARED, default_cache()]
    return next((root / relative for root in roots if (root / relative).is_file()), None)


def found_releases(setting: Setting, source: str | None) -> list[Path]:
    """The setting's release files that are there; InputError where --source holds none of them."""
    found = [path for f in setting.release_files if (path := release_file(f, source))]
    if source and not found:
        raise InputError(f"--source {source}: none of {', '.join(setting.release_files)} is there")
    return found


def shapes(setting: Setting, seed: int, source: str | None = None) -> tuple[list[tuple[int, int]], str]:
    """(length, triples) per training sentence, and where they came from."""
    found = found_releases(setting, source)
    rng = random.Random(seed)
    if found:
        pool = [(len(item["text"].split()), len(item["triple_list"])) for path in found for item in read_release(path)]
        origin = f"lengths from {', '.join(p.name for p in found)}"
    else:
        pool = [(max(3, int(rng.gauss(30, 12))), rng.randint(1, 4)) for _ in range(5000)]
        origin = "GENERATED lengths (normal, mean 30, sd 12): the releases were not found"
    if len(pool) == setting.epoch_sentences:
        return pool, origin
    resampled = [rng.choice(pool) for _ in range(setting.epoch_sentences)]
    return resampled, origin + f", resampled to {setting.epoch_sentences}"


def make_examples(sizes: list[tuple[int, int]], setting: Setting, seed: int) -> list[Example]:
    rng = np.random.default_rng(seed)
    examples = []
    for length, triples in sizes:
        cells = np.column_stack([rng.integers(0, length, triples), rng.integers(0, length, triples),
                                 rng.integers(0, setting.relations, triples)])
        examples.append(Example(word_ids=rng.integers(2, setting.vocab_size, length),
                                pos_ids=rng.integers(2, 40, length), tag_ids=rng.integers(0, 5, length),
                                cells=np.unique(cells, axis=0)))
    return examples


def peak_memory_mb(step: Callable[[], None], device: torch.device) -> float:
    """Peak memory a call adds: CUDA allocator peak, or the rise of peak RSS on the CPU."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed memory back, so RSS starts low

    def status(field: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
        raise RuntimeError(f"{field} not in /proc/self/status")

    before = status("VmRSS:")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    step()
    return (status("VmHWM:") - before) / 1024


class Timer:
    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __call__(self, function: Callable[[], None]) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # the GPU timed, which need not be cuda:0
        start = time.perf_counter()
        function()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start


STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _busy(bench_pid: int) -> None:
    """Keep one core busy until ended; dies with the bench even when the bench is killed (Linux). Ctrl-C or SIGTERM
    to the process group end it quietly: the bench's handlers, inherited through fork, would print a traceback."""
    for number in STOP_SIGNALS:
        signal.signal(number, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked by contention() until the handlers are reset
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != bench_pid:  # the bench ended before the line above took effect
        return
    while True:
        pass


@contextlib.contextmanager
def stops_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM recorded while the block runs, the first acted on after it: starting or ending the busy
    processes is never cut short (a child forked and then missed, or left unreaped)."""
    received: list[int] = []
    previous = {number: signal.signal(number, lambda number, _: received.append(number)) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if received:
        raise Terminated if received[0] == signal.SIGTERM else KeyboardInterrupt


@contextlib.contextmanager
def contention(count: int) -> Iterator[None]:
    """``count`` busy processes of this bench while the block runs, ended afterwards whatever happens
    (exceptions, Ctrl-C, SIGTERM: one_line_errors turns it into an exception)."""
    if count <= 0:
        yield
        return
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    processes = [context.Process(target=_busy, args=(os.getpid(),), daemon=True) for _ in range(count)]
    try:
        with stops_deferred():  # (a stop may reach any of the bench's threads: torch's)
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # inherited: none reaches a child
            try:  # before _busy resets its handlers
                for process in processes:
                    process.start()
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        yield
    finally:
        with stops_deferred():
            started = [process for process in processes if process.pid is not None]
            for process in started:
                process.kill()
            deadline = time.monotonic() + 10
            for process in started:
                process.join(timeout=max(0.0, deadline - time.monotonic()))


def peak_matmul_gflops(device: torch.device, size: int = 1024, repeats: int = 9) -> float:
    """The best of ``repeats`` timings of a square float32 matrix product, GFLOP/s (2 FLOPs per multiply-add),
    at the current thread count: the best of several, so a moment when another process held the core does not
    count."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    out = torch.empty(size, size, device=device)
    torch.mm(a, b, out=out)
    timer = Timer(device)
    rounds = max(1, 4 * 10**8 // (2 * size**3))
    best = min(timer(lambda: [torch.mm(a, b, out=out) for _ in range(rounds)]) for _ in range(repeats))
    return 2 * size**3 * rounds / best / 1e9


def step_flops(config: RINConfig, lengths: list[int], training: bool = True) -> float:
    """FLOPs (2 per multiply-add) of the matrix products one batch of sentences with these lengths needs.

    Per token: the BiLSTM, and per interaction layer the tag classifier, both halves of Wm, the two GRU cells;
    per pair (i, j) and relation: Wr relu(...) once per layer (max) and once for the loss or the decoder.
    Training: the backward pass costs twice the forward's products, except the max's, whose backward touches
    one pair per token and relation (negligible).
    """
    x, h, d = config.emb_dim + config.pos_dim, config.rnn_hidden, 2 * config.rnn_hidden
    p, r, t, k = config.pair_hidden, config.num_relations, config.num_tags, config.rounds
    dense = 2 * 4 * h * (x + h) + k * (d * t + 2 * d * p + 3 * d * (t + d) + 3 * d * (r + d)) + d * t + 2 * d * p
    tokens, pairs = sum(lengths), sum(n * n for n in lengths)
    passes = 3 if training else 1
    return 2.0 * (passes * dense * tokens + (k + passes) * pairs * r * p)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def build(setting: Setting, args: argparse.Namespace, device: torch.device
          ) -> tuple[list[Example], str, RIN, torch.optim.Optimizer]:
    """The setting's training sentences, where their lengths came from, and a fresh model with Adam."""
    sizes, origin = shapes(setting, args.seed, args.source)
    examples = make_examples(sizes, setting, args.seed)
    torch.manual_seed(args.seed)
    config = RINConfig(vocab_size=setting.vocab_size, num_pos=40, num_tags=5, num_relations=setting.relations,
                       rounds=setting.rounds)
    model = RIN(config).to(device)
    return examples, origin, model, make_optimizer(model, setting.lr)


COLLATE_PHASE = "phase: collate"  # a profiler label, as model/training.py's phases


def training_step(model: RIN, optimizer: torch.optim.Optimizer, examples: list[Example], indices: list[int],
                  device: torch.device, precision: str = "fp32", kernel: str = "auto") -> None:
    """One production step, as train.py takes it (model/training.py: whole, or in parts where its pair tensors
    would exceed the memory budget); each phase is labelled for the profiler."""
    speed.configure(kernel=kernel, precision=precision)
    with torch.profiler.record_function(COLLATE_PHASE):
        parts = batch_parts([examples[i] for i in indices], pair_values_per_cell(model.config), device)
    train_step(model, optimizer, parts, MAX_GRAD_NORM)


def stratified_sample(batches: list[list[int]], examples: list[Example], count: int, config: RINConfig
                      ) -> tuple[list[list[int]], list[float]]:
    """``count`` batches that stand for all of ``batches``, in ascending cost, and the weight that turns each
    one's seconds into its part of an epoch's. The batches, sorted by the FLOPs of their padded shape
    (:func:`step_flops`), are cut into ``count`` runs of near-equal size; each run is timed on its middle batch,
    weighted by the run's FLOPs over that batch's: a stratified ratio estimate, exact where time is
    proportional to FLOPs within a run (docs/speed.md, "How an epoch's time is estimated")."""
    cost = [step_flops(config, [max(len(examples[i].word_ids) for i in batch)] * len(batch)) for batch in batches]
    order = sorted(range(len(batches)), key=cost.__getitem__)
    count = min(count, len(batches))
    sample, weights = [], []
    for k in range(count):
        run = order[k * len(order) // count:(k + 1) * len(order) // count]
        middle = run[len(run) // 2]
        sample.append(batches[middle])
        weights.append(sum(cost[i] for i in run) / cost[middle])
    return sample, weights


DEFAULT = "production (length buckets)"  # the default path: fused kernels where they apply, adaptive threads
TORCH = "production, PyTorch pair scorer (no fused kernels)"
BF16 = "production, --precision bf16"
COMPILED = "production + torch.compile (compiling excluded)"
FIXED = "production, fixed threads (no governor)"


def interleaved(steps: dict[str, Callable], sample: list, weights: list[float], timer: Timer,
                warmups: dict[str, float] | None = None, warm_every: tuple[str, ...] = ()) -> dict[str, float]:
    """Seconds per epoch of each step function: after one warm-up each (its seconds into ``warmups``), every
    batch of ``sample`` is timed under every function in turn, so a change in the machine's load affects them
    alike; each batch's seconds times its weight (:func:`stratified_sample`). The steps named in
    ``warm_every`` warm up on every batch of the sample: compiling for a batch shape is paid once per run, not
    in every epoch, so it must not be timed and then weighted."""
    for label, step in steps.items():
        warm = sample if label in warm_every else [sample[len(sample) // 2]]
        seconds = sum(timer(lambda step=step, batch=batch: step(batch)) for batch in warm)
        if warmups is not None:
            warmups[label] = seconds
    totals = dict.fromkeys(steps, 0.0)
    for batch, weight in zip(sample, weights, strict=True):
        for label, step in steps.items():
            totals[label] += weight * timer(lambda step=step, batch=batch: step(batch))
    return totals


def run_setting(name: str, setting: Setting, args: argparse.Namespace, device: torch.device) -> dict:
    examples, origin, model, optimizer = build(setting, args, device)
    timer = Timer(device)
    rng = random.Random(args.seed)
    batch_size = TRAIN_BATCH_SIZE

    compiled = copy.deepcopy(model)
    compiled.compile(dynamic=True)  # what train.py --compile does
    compiled_optimizer = make_optimizer(compiled, setting.lr)

    def production_step(indices, precision="fp32", net=model, net_optimizer=optimizer, kernel="auto",
                        thread_policy="adaptive"):
        speed.configure(thread_policy=thread_policy)
        training_step(net, net_optimizer, examples, indices, device, precision, kernel)
        speed.configure(thread_policy="adaptive")

    def oracle_step(indices):
        speed.configure(precision="fp32")
        with speed.autocast(device):  # fp32: no autocast, but the same thread governor as the production path
            er, rc = reference_loss(model, [examples[i] for i in indices])
        optimizer.zero_grad(set_to_none=True)
        (er + rc).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
        optimizer.step()

    shuffled = list(range(len(examples)))
    rng.shuffle(shuffled)
    random_batches = [shuffled[i:i + batch_size] for i in range(0, len(shuffled), batch_size)]
    bucketed = bucketed_batches([len(e.word_ids) for e in examples], batch_size, torch.Generator().manual_seed(1))
    model.train()

    def sampled(batches, count) -> tuple[list[list[int]], list[float]]:  # the batches timed, their weights
        return stratified_sample(batches, examples, count, model.config)

    load_before = load_average()
    timings, compile_seconds = {}, {}
    for label, batches in (("oracle (paper-literal, random batches)", random_batches),
                           ("oracle + length buckets", bucketed)):
        timings |= interleaved({label: oracle_step}, *sampled(batches, args.oracle_batches), timer)
    timings |= interleaved({"production, random batches": production_step}, *sampled(random_batches, args.batches),
                           timer)
    levers = {
        DEFAULT: production_step,
        TORCH: lambda b: production_step(b, kernel="torch"),
        BF16: lambda b: production_step(b, "bf16"),
        COMPILED: lambda b: production_step(b, net=compiled, net_optimizer=compiled_optimizer),
        FIXED: lambda b: production_step(b, thread_policy="fixed"),
    }
    if args.bf16_problem:  # a GPU without bfloat16 arithmetic would time emulated bfloat16: not a real choice
        del levers[BF16]
    timings |= interleaved(levers, *sampled(bucketed, args.batches), timer, compile_seconds, warm_every=(COMPILED,))
    load_after = load_average()

    longest = sorted(range(len(examples)), key=lambda i: len(examples[i].word_ids))[-batch_size:]
    production_memory = peak_memory_mb(lambda: production_step(longest), device)
    oracle_memory = peak_memory_mb(lambda: oracle_step(longest), device)
    flops = sum(step_flops(model.config, [len(examples[i].word_ids) for i in batch]) for batch in bucketed)

    result = {
        "data": origin, "sentences": len(examples), "relations": setting.relations, "rounds": setting.rounds,
        "lr": setting.lr,
        "epoch_seconds": timings[DEFAULT],
        "oracle_epoch_seconds": timings["oracle (paper-literal, random batches)"],
        "bf16_epoch_seconds": timings.get(BF16),
        "torch_pair_scorer_epoch_seconds": timings[TORCH],
        "compiled_epoch_seconds": timings[COMPILED],
        "compiled_warmup_seconds": compile_seconds[COMPILED],  # the timed sample's shapes, compiled before timing
        "fixed_threads_epoch_seconds": timings[FIXED],
        "speedup": timings["oracle (paper-literal, random batches)"] / timings[DEFAULT],
        "speedup_over_torch_pair_scorer": timings[TORCH] / timings[DEFAULT],
        "train_sentences_per_second": len(examples) / timings[DEFAULT],
        "oracle_train_sentences_per_second": len(examples) / timings["oracle (paper-literal, random batches)"],
        "epoch_tflop": flops / 1e12,
        "compute_floor_epoch_seconds": flops / (args.peak_gflops * 1e9),
        "times_the_compute_floor": timings[DEFAULT] / (flops / (args.peak_gflops * 1e9)),
        "peak_mem_mb": production_memory, "oracle_peak_mem_mb": oracle_memory,
        "memory_ratio": oracle_memory / max(production_memory, 1e-9),
        "longest_batch_tokens": len(examples[longest[-1]].word_ids),
        "loadavg_before": load_before, "loadavg_after": load_after,
        "levers_epoch_seconds": timings,
    }
    if name == "nyt_partial":
        result.update(inference(model, compiled, setting, args, device, timer))
    return result


def inference(model: RIN, compiled: RIN, setting: Setting, args: argparse.Namespace, device: torch.device,
              timer: Timer) -> dict:
    """Sentences per second when extracting triples from NYT test (5,000 sentences), with decoding; the variants
    timed interleaved, 500 sentences at a time, in length order."""
    test_file = release_file("casrel/NYT-star/test_triples.json", args.source)
    sizes = ([(len(i["text"].split()), len(i["triple_list"])) for i in read_release(test_file)]
             if test_file else shapes(setting, args.seed, args.source)[0][:5000])
    examples = make_examples(sizes, setting, args.seed + 1)
    labels = Labels(relations=[f"r{i}" for i in range(setting.relations)], pos=["<PAD>", "<UNK>"],
                    tags=["O", "B", "I", "E", "S"])
    compiled.load_state_dict(model.state_dict())  # the trained weights: as many cells above 0.5 as model's
    variants = {"": (model, "fp32", "auto"), "_torch_pair_scorer": (model, "fp32", "torch"),
                "_bf16": (model, "bf16", "auto"), "_compiled": (compiled, "fp32", "auto")}
    if args.bf16_problem:
        del variants["_bf16"]

    def run(variant: str, part: list[Example]) -> None:
        net, precision, kernel = variants[variant]
        speed.configure(kernel=kernel, precision=precision)
        extract(net, part, labels, device, batch_size=DECODE_BATCH_SIZE)  # evaluate.py's default

    # parts of 500 sentences in length order: each part's length buckets are then the whole test set's, which
    # evaluate.py decodes (buckets of 500 random sentences would pad more)
    by_length = sorted(examples, key=lambda example: len(example.word_ids))
    parts = [by_length[i:i + 500] for i in range(0, len(by_length), 500)]
    warmups: dict[str, float] = {}
    seconds = interleaved({v: (lambda part, v=v: run(v, part)) for v in variants}, parts, [1.0] * len(parts),
                          timer, warmups, warm_every=("_compiled",))
    speed.configure(kernel="auto", precision="fp32")
    flops = sum(step_flops(model.config, [len(e.word_ids) for e in part], training=False) for part in parts)
    out = {"inference_sentences_per_second" + v: len(examples) / seconds[v] for v in variants}
    # the compiled model's first pass over the 5,000 sentences, compiling for each batch shape included (eager:
    # 5,000 / inference_sentences_per_second)
    out["inference_compiled_warmup_seconds"] = warmups["_compiled"]
    out["inference_compute_floor_sentences_per_second"] = len(examples) / (flops / (args.peak_gflops * 1e9))
    with torch.no_grad():
        sample = [examples[i:i + 50] for i in range(0, min(500, len(examples)), 50)]
        oracle_seconds = timer(lambda: [reference_loss(model, batch) for batch in sample])
    out["oracle_inference_sentences_per_second"] = sum(map(len, sample)) / oracle_seconds
    model.train()
    return out


PHASES = (COLLATE_PHASE, FORWARD_PHASE, BACKWARD_PHASE, UPDATE_PHASE)


def profile_setting(setting: Setting, args: argparse.Namespace, device: torch.device) -> dict:
    """Where a production training step's time goes (torch.profiler over ``args.batches`` batches standing for
    the epoch, :func:`stratified_sample`, after one warm-up): seconds per epoch by phase, and the costliest
    operators. The epoch's seconds weight each batch's; phases and operators keep their shares of the
    profiled batches' time."""
    from torch.profiler import ProfilerActivity, profile

    examples, origin, model, optimizer = build(setting, args, device)
    batches = bucketed_batches([len(e.word_ids) for e in examples], TRAIN_BATCH_SIZE,
                               torch.Generator().manual_seed(1))
    sample, weights = stratified_sample(batches, examples, args.batches, model.config)
    model.train()
    training_step(model, optimizer, examples, sample[len(sample) // 2], device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    timer = Timer(device)
    with profile(activities=activities) as profiler:
        seconds = [timer(lambda indices=indices: training_step(model, optimizer, examples, indices, device))
                   for indices in sample]
    epoch = sum(w * t for w, t in zip(weights, seconds, strict=True))
    scale = epoch / sum(seconds) / 1e6  # profiler microseconds -> seconds per epoch
    averages = profiler.key_averages()
    phases = {e.key.removeprefix("phase: "): e.cpu_time_total * scale for e in averages if e.key in PHASES}

    def own_time(event) -> float:  # on a GPU its kernels' time: the host only queues them
        return event.self_device_time_total if device.type == "cuda" else event.self_cpu_time_total

    operators = sorted((e for e in averages if e.key not in PHASES), key=lambda e: -own_time(e))
    return {"data": origin, "epoch_seconds_profiled": epoch,
            "phase_epoch_seconds": phases,  # on a GPU, host time: each phase ends once its kernels are queued
            "operator_self_epoch_seconds": {e.key: own_time(e) * scale for e in operators[:20]}}


def print_profile(result: dict) -> None:
    total = result["epoch_seconds_profiled"]
    print(f"   data: {result['data']}")
    print(f"   epoch under the profiler: {total:.1f} s; by phase (s/epoch, share):")
    for phase, seconds in result["phase_epoch_seconds"].items():
        print(f"     {phase:36s} {seconds:7.1f}  {seconds / total:5.1%}")
    print("   costliest operators by self time (s/epoch, share); Pair* rows are the pair scorer's own code, "
          "fused kernels included:")
    for name, seconds in result["operator_self_epoch_seconds"].items():
        print(f"     {name:36s} {seconds:7.1f}  {seconds / total:5.1%}")


# path: (pair kernel choice, precision)
EQUIVALENCE_PATHS = {"production": ("auto", "fp32"), "production_bf16": ("auto", "bf16"),
                     "production_pytorch_pair_scorer": ("torch", "fp32"), "oracle": ("auto", "fp32")}


def equivalence(epochs: int, lr: float, seed: int, device: torch.device, paths: list[str]) -> dict:
    """Train WebNLG once per path from one initialisation, on the same batches with the same random draws:
    the production loss (fused pair kernels where they apply), the same with --precision bf16, the production
    loss with the PyTorch pair scorer, and the oracle's loss. Dev F1 per epoch should agree within noise."""
    data = DATASETS_DIR / "webnlg"
    check_data_files(data, "webnlg")
    vocab, labels = Vocab.load(data / "vocab.json"), Labels.load(data / "labels.json")
    train, dev = (load_split(data / f"{name}.json", vocab, labels) for name in ("train", "dev"))
    embedding = np.load(data / "embedding.npy")
    curves = {}
    for path in paths:
        kernel, precision = EQUIVALENCE_PATHS[path]
        speed.configure(kernel=kernel, precision=precision)
        torch.manual_seed(seed)
        model = RIN(RINConfig(vocab_size=len(vocab), num_pos=len(labels.pos), num_tags=len(labels.tags),
                              num_relations=len(labels.relations), rounds=SETTINGS["webnlg_partial"].rounds),
                    embedding).to(device)
        optimizer = make_optimizer(model, lr)
        generator = torch.Generator().manual_seed(seed)
        curves[path] = []
        for epoch in range(1, epochs + 1):
            model.train()
            start = time.perf_counter()
            if path != "oracle":  # train.py's epoch
                train_epoch(model, optimizer, train.examples, TRAIN_BATCH_SIZE, generator, device, MAX_GRAD_NORM)
            else:  # the same batches, through the paper-literal oracle
                for indices in bucketed_batches([len(e.word_ids) for e in train.examples], TRAIN_BATCH_SIZE,
                                                generator):
                    er, rc = reference_loss(model, [train.examples[i] for i in indices])
                    optimizer.zero_grad(set_to_none=True)
                    (er + rc).backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
                    optimizer.step()
            scores, _ = evaluate(model, dev, labels, device)
            curves[path].append({"epoch": epoch, "dev_partial_f1": scores["partial"]["f1"],
                                 "dev_exact_f1": scores["exact"]["f1"], "seconds": time.perf_counter() - start})
            print(f"   {path:31s} epoch {epoch}: dev partial F1 {scores['partial']['f1']:.4f} "
                  f"exact F1 {scores['exact']['f1']:.4f} ({curves[path][-1]['seconds']:.0f}s)", flush=True)
    return {"epochs": epochs, "lr": lr, "seed": seed, "curves": curves}


# (name, figure's path in the report, comparison, bound): the targets of issue #23 (docs/speed.md)
TARGETS = (
    ("NYT partial: faster than the paper-literal oracle", ("nyt_partial", "speedup"), ">=", 40.0),
    ("NYT partial: default faster than the PyTorch pair scorer", ("nyt_partial", "speedup_over_torch_pair_scorer"),
     ">=", 1.3),
    ("WebNLG: default faster than the PyTorch pair scorer", ("webnlg_partial", "speedup_over_torch_pair_scorer"),
     ">=", 1.3),
    ("inference: default faster than the PyTorch pair scorer", ("nyt_partial", "inference_speedup_over_torch"),
     ">=", 1.3),
    ("NYT partial: default time / torch.compile time", ("nyt_partial", "default_over_compiled"), "<=", 1.0),
    ("NYT exact: default time / torch.compile time", ("nyt_exact", "default_over_compiled"), "<=", 1.0),
    ("WebNLG: default time / torch.compile time", ("webnlg_partial", "default_over_compiled"), "<=", 1.0),
    ("inference: default time / torch.compile time", ("nyt_partial", "inference_default_over_compiled"), "<=", 1.0),
    ("WebNLG partial epoch, s", ("webnlg_partial", "epoch_seconds"), "<", 15.0),
    ("inference, sentences/s", ("nyt_partial", "inference_sentences_per_second"), ">=", 1000.0),
)


def check_targets(report: dict) -> list[dict]:
    """Each target whose figure this run measured: the figure, the bound and whether it is met."""
    for result in (report[name] for name in SETTINGS if "epoch_seconds" in report.get(name, {})):
        result["default_over_compiled"] = result["epoch_seconds"] / result["compiled_epoch_seconds"]
        if "inference_sentences_per_second" in result:
            rate = result["inference_sentences_per_second"]
            result["inference_speedup_over_torch"] = rate / result["inference_sentences_per_second_torch_pair_scorer"]
            result["inference_default_over_compiled"] = result["inference_sentences_per_second_compiled"] / rate
    checks = []
    for name, (setting, key), comparison, bound in TARGETS:
        if key in report.get(setting, {}):
            value = report[setting][key]
            met = {">=": value >= bound, "<=": value <= bound, "<": value < bound}[comparison]
            checks.append({"target": name, "value": value, "bound": f"{comparison} {bound:g}", "met": met})
    return checks


# the flags each mode reads, and what it does, for the error when a flag it would ignore is given
BENCH_MODES = {
    "timing": (("settings", "source", "batches", "oracle_batches", "device", "threads", "contention", "seed", "json"),
               "a timing run (no --equivalence, --profile or --tables) times generated batches"),
    "equivalence": (("lr", "paths", "device", "threads", "contention", "seed", "json"),
                    "--equivalence trains WebNLG's prepared data with each of --paths and times no generated batches"),
    "profile": (("settings", "source", "batches", "device", "threads", "contention", "seed", "json"),
                "--profile runs --batches production steps, no oracle's, and trains nothing to compare"),
    "tables": ((), "--tables rewrites the docs' tables from the JSON files they name and times nothing"),
}


def refuse_ignored(args: argparse.Namespace, parser: ArgumentParser) -> None:
    """Refuse a flag the chosen mode would ignore (e.g. --lr without --equivalence), naming the modes it is for."""
    mode = next((name for name in ("equivalence", "profile", "tables") if getattr(args, name)), "timing")
    flags = sorted({name for reads, _ in BENCH_MODES.values() for name in reads})
    ignored = [name for name in flags
               if name not in BENCH_MODES[mode][0] and getattr(args, name) != parser.get_default(name)]
    if ignored:
        def users(name: str) -> str:
            return " or ".join("a timing run" if other == "timing" else f"--{other}"
                               for other, (reads, _) in BENCH_MODES.items() if name in reads)

        parser.error(f"{BENCH_MODES[mode][1]}: {', '.join('--' + name for name in ignored)} would be ignored "
                     f"({'; '.join(f'--{name} is for {users(name)}' for name in ignored)})")


def main(argv: list[str] | None = None) -> dict:
    parser = ArgumentParser(prog="bench.py", description=__doc__)
    parser.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=list(SETTINGS),
                        help="what to time: " + ", ".join(f"{name} (K={s.rounds}, {s.relations} relations)"
                                                          for name, s in SETTINGS.items())
                        + " training, K and learning rate from presets/; inference is timed with nyt_partial "
                        "(default: all)")
    parser.add_argument("--source", metavar="DIR",
                        help="folder with the releases in their published layout (as prepare_data.py --source), for "
                        "real sentence lengths (default: ../shared/datasets when present, else the download cache; "
                        "where neither has them, generated lengths, said so in the output and JSON)")
    parser.add_argument("--batches", type=positive_int, default=20,
                        help="production batches timed per variant (default %(default)s)")
    parser.add_argument("--oracle_batches", type=positive_int, default=3,
                        help="oracle batches timed per variant (default %(default)s)")
    add_machine_arguments(parser)
    parser.add_argument("--contention", type=non_negative_int, default=0, metavar="N",
                        help="time with N busy processes of the bench's own (one core each), ended afterwards "
                        "(default %(default)s)")
    parser.add_argument("--seed", type=seed_value, default=0,
                        help="seed of the generated sentences, the networks' weights, the batches timed and "
                        "--equivalence's training (default %(default)s)")
    parser.add_argument("--json", help="write the figures to this file")
    mode = parser.add_mutually_exclusive_group()  # what to do instead of timing, at most one
    mode.add_argument("--equivalence", type=positive_int, metavar="EPOCHS",
                        help=f"instead of timing: train WebNLG (K={SETTINGS['webnlg_partial'].rounds}) for EPOCHS "
                        "with each of --paths on identical "
                        "batches and compare dev F1")
    mode.add_argument("--profile", action="store_true",
                        help="instead of timing: run --batches production steps under torch.profiler and print "
                        "where the time goes, by phase and by operator")
    parser.add_argument("--lr", type=positive_float, default=2e-3,
                        help="learning rate for --equivalence, only with it (default %(default)s)")
    parser.add_argument("--paths", nargs="+", choices=list(EQUIVALENCE_PATHS), default=list(EQUIVALENCE_PATHS),
                        help="what --equivalence trains, only with it (default: all)")
    mode.add_argument("--tables", action="store_true",
                        help="instead of timing: rewrite the generated speed tables of README.md and docs/speed.md "
                        "from the JSON files their opening comments name (after a new --json run, add its file "
                        "there)")
    parser.add_argument("--debug", action="store_true", help="show a full traceback on errors")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    args.command = shlex.join(["python", "bench.py", *argv])
    refuse_ignored(args, parser)
    if args.source and not Path(args.source).is_dir():
        parser.error(f"--source {args.source}: not a folder")
    for flag, once in (("settings", "each setting is measured once"), ("paths", "each path trains once")):
        values = getattr(args, flag)
        if repeated := sorted({value for value in values if values.count(value) > 1}):
            parser.error(f"--{flag}: {', '.join(repeated)} given twice; {once}")
    if args.json:
        try:  # before the bench runs: not an OS error after it, with the figures lost
            check_file_path(args.json, "--json")
        except InputError as error:
            parser.error(str(error))
    if args.contention > usable_cores():
        parser.error(f"--contention {args.contention}: this process may use {usable_cores()} cores; more busy "
                     "processes than cores only measure the scheduler")
    for name in args.settings if args.source else ():  # before the measuring, not after its warm-up
        try:
            found_releases(SETTINGS[name], args.source)
        except InputError as error:
            parser.error(str(error))
    with one_line_errors("bench.py", args.debug):
        if args.tables:
            changed = speed_tables.refresh_documents()
            print("rewrote " + ", ".join(map(project_relative, changed)) if changed else "the speed tables are current")
            return {}
        return bench(args)


def bench(args: argparse.Namespace) -> dict:
    """Measure what ``args`` asks for; the figures as a dict (and in --json)."""
    device = pick_device(args.device)
    threads = configure_threads(args.threads)
    speed.configure(kernel="auto", precision="fp32", thread_policy="fixed")
    all_threads = peak_matmul_gflops(device)
    torch.set_num_threads(1)  # one core's rate times the threads: the peak if no other process were busy
    one_thread = peak_matmul_gflops(device)
    torch.set_num_threads(threads)
    args.peak_gflops = max(all_threads, one_thread * threads) if device.type == "cpu" else all_threads
    args.bf16_problem = speed.precision_problem("bf16", device)
    speed.configure(thread_policy="adaptive")
    report = {"command": args.command, "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "commit": code_commit(), "device": str(device), "threads": threads, "torch": torch.__version__,
              "cpu_model": cpu_model(), "cores": usable_cores(),
              "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "isa_environment": {name: os.environ[name] for name in ISA_VARIABLES if name in os.environ},
              "pair_scorer": speed.describe(device), "contention_processes": args.contention,
              "peak_matmul_gflops": args.peak_gflops, "matmul_gflops_all_threads": all_threads,
              "matmul_gflops_one_thread": one_thread, "loadavg_start": load_average(),
              "epoch_estimate": "stratified by FLOPs",  # earlier JSONs: evenly spaced batches, equal shares
              "bf16_not_timed": args.bf16_problem}
    print(f"== {report['cpu_model']}, {report['cores']} cores, {threads} threads; pair scorer: "
          f"{report['pair_scorer']}; peak matrix product {args.peak_gflops:.0f} GFLOP/s (one thread "
          f"{one_thread:.0f}, all threads now {all_threads:.0f}); load average {report['loadavg_start']}; "
          f"{args.contention} busy processes of the bench's own", flush=True)
    if args.bf16_problem:
        print(f"   bf16 is not timed: {args.bf16_problem}", flush=True)
    with contention(args.contention):
        run_all(args, device, report)
    report["loadavg_end"] = load_average()
    report["targets"] = check_targets(report)
    for check in report["targets"]:
        verdict = ("met" if check["met"] else "MISSED") if speed_tables.judged(check, report) else \
            "not judged (one oracle batch under --contention)"
        print(f"   target {check['target']} {check['bound']}: {check['value']:.2f} {verdict}")
    if args.json:
        write_json(Path(args.json), report)  # atomic: an interrupted bench leaves the last figures whole
    return report


def run_all(args: argparse.Namespace, device: torch.device, report: dict) -> None:
    """Equivalence, profile or timing, as asked, into ``report``."""
    if args.equivalence:
        paths = [path for path in args.paths if not (args.bf16_problem and path == "production_bf16")]
        if not paths:
            raise InputError(f"--paths production_bf16: {args.bf16_problem}")
        report["equivalence"] = equivalence(args.equivalence, args.lr, args.seed, device, paths)
        return
    if args.profile:
        for name in args.settings:
            print(f"== {name}: profile of a production training step ...", flush=True)
            report[name] = {"profile": profile_setting(SETTINGS[name], args, device)}
            print_profile(report[name]["profile"])
        return
    for name in args.settings:
        print(f"== {name} ...", flush=True)
        result = report[name] = run_setting(name, SETTINGS[name], args, device)
        print(f"   data: {result['data']}; load average {result['loadavg_before']} -> {result['loadavg_after']}")
        for label, seconds in result["levers_epoch_seconds"].items():
            print(f"   {label:52s} {seconds:9.1f} s/epoch  ({result['sentences'] / seconds:7.1f} sentences/s)")
        print(f"   speed-up over the oracle: {result['speedup']:.1f}x, over the PyTorch pair scorer: "
              f"{result['speedup_over_torch_pair_scorer']:.2f}x | peak memory on the longest batch "
              f"({result['longest_batch_tokens']} tokens): {result['peak_mem_mb']:.0f} MB vs oracle "
              f"{result['oracle_peak_mem_mb']:.0f} MB ({result['memory_ratio']:.1f}x less)")
        print(f"   an epoch needs {result['epoch_tflop']:.2f} TFLOP of matrix products: compute floor "
              f"{result['compute_floor_epoch_seconds']:.1f} s/epoch; the default path takes "
              f"{result['times_the_compute_floor']:.1f}x that")
        print(f"   torch.compile: the timed batches' first pass (compiling for their shapes) took "
              f"{result['compiled_warmup_seconds']:.1f} s, not counted in the epoch")
        for key in ("inference_sentences_per_second", "inference_sentences_per_second_torch_pair_scorer",
                    "inference_sentences_per_second_bf16", "inference_sentences_per_second_compiled",
                    "inference_compute_floor_sentences_per_second", "oracle_inference_sentences_per_second",
                    "inference_compiled_warmup_seconds"):
            if key in result:
                print(f"   {key}: {result[key]:.0f}")
    if "inference_sentences_per_second" in report.get("nyt_partial", {}):  # the headline figure, top level
        report["inference_sentences_per_second"] = report["nyt_partial"]["inference_sentences_per_second"]


if __name__ == "__main__":
    main()
