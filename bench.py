"""Side-by-side benchmark: the paper-literal oracle (model/reference.py) against the production path.

    python bench.py                       # all settings, prints a table
    python bench.py --json bench.json     # also writes the figures as JSON
    python bench.py --settings webnlg_partial --batches 20
    python bench.py --profile --settings nyt_partial --batches 30   # where the time goes
    python bench.py --equivalence 6 --threads 1   # same dev F1 with every path?

Both paths run in this one process on the same batches and the same weights.
Sentence lengths and triple counts come from the real releases in
../shared/datasets (NYT: its dev+test distribution resampled to the 56,195
training sentences, since NYT's training split is not available here; WebNLG:
its real training split); word ids are random (vocabulary sizes below), which
does not change the cost. Epoch time is extrapolated from a fixed random sample
of each epoch's batches. Peak memory is the growth of the process's peak RSS
during one training step on the longest batch (CPU; reset through
/proc/self/clear_refs) or torch.cuda.max_memory_allocated (GPU).
"""
from __future__ import annotations

import argparse
import copy
import ctypes
import gc
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from data.loader import Example, bucketed_batches, collate
from model import speed
from model.inference import extract
from model.reference import reference_loss
from model.rin import RIN, RINConfig
from model.training import TrainConfig, make_optimizer, train_step
from utils.helpers import PROJECT_ROOT, configure_threads, pick_device
from utils.vocab import Labels

SHARED = PROJECT_ROOT.parent / "shared" / "datasets"
MAX_GRAD_NORM = TrainConfig.max_grad_norm
BATCH_SIZE = TrainConfig.batch_size


@dataclass(frozen=True)
class Setting:
    release_files: tuple[str, ...]
    epoch_sentences: int
    relations: int
    rounds: int
    vocab_size: int  # NYT: an estimate for the full training vocabulary; WebNLG: its real size


SETTINGS = {
    "nyt_partial": Setting(("casrel/NYT-star/val_triples.json", "casrel/NYT-star/test_triples.json"), 56195, 24, 4,
                           80000),
    "nyt_exact": Setting(("casrel/NYT-star/val_triples.json", "casrel/NYT-star/test_triples.json"), 56195, 24, 7,
                         80000),
    "webnlg_partial": Setting(("casrel/WebNLG-star/train_triples.json",), 5019, 170, 2, 3930),
}


def shapes(setting: Setting, seed: int) -> tuple[list[tuple[int, int]], str]:
    """(length, triples) per training sentence, and where they came from."""
    found = [SHARED / f for f in setting.release_files if (SHARED / f).exists()]
    rng = random.Random(seed)
    if found:
        pool = [(len(item["text"].split()), len(item["triple_list"]))
                for path in found for item in json.loads(path.read_text())]
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
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
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
            torch.cuda.synchronize()
        start = time.perf_counter()
        function()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start


def build(setting: Setting, args: argparse.Namespace, device: torch.device
          ) -> tuple[list[Example], str, RIN, torch.optim.Optimizer]:
    """The setting's training sentences, where their lengths came from, and a fresh model with Adam."""
    sizes, origin = shapes(setting, args.seed)
    examples = make_examples(sizes, setting, args.seed)
    torch.manual_seed(args.seed)
    config = RINConfig(vocab_size=setting.vocab_size, num_pos=40, num_tags=5, num_relations=setting.relations,
                       rounds=setting.rounds)
    model = RIN(config).to(device)
    return examples, origin, model, make_optimizer(model, 1e-3)


def training_step(model: RIN, optimizer: torch.optim.Optimizer, examples: list[Example], indices: list[int],
                  device: torch.device, precision: str = "fp32", kernel: str = "auto") -> None:
    """One production step, as train.py takes it (model/training.py); each phase is labelled for the profiler."""
    speed.configure(kernel=kernel, precision=precision)
    with torch.profiler.record_function("phase: collate"):
        batch = collate([examples[i] for i in indices], indices, device)
    train_step(model, optimizer, batch, MAX_GRAD_NORM)


def spread_sample(batches: list[list[int]], examples: list[Example], count: int) -> list[list[int]]:
    """``count`` batches spread evenly over ``batches`` sorted by padded length."""
    ordered = sorted(batches, key=lambda b: max(len(examples[i].word_ids) for i in b))
    count = min(count, len(ordered))
    return [ordered[round(k * (len(ordered) - 1) / max(1, count - 1))] for k in range(count)]


def run_setting(name: str, setting: Setting, args: argparse.Namespace, device: torch.device) -> dict:
    examples, origin, model, optimizer = build(setting, args, device)
    timer = Timer(device)
    rng = random.Random(args.seed)
    batch_size = BATCH_SIZE

    compiled = copy.deepcopy(model)
    compiled.compile(dynamic=True)  # what train.py --compile does
    compiled_optimizer = make_optimizer(compiled, 1e-3)

    def production_step(indices, precision="fp32", net=model, net_optimizer=optimizer, kernel="auto"):
        training_step(net, net_optimizer, examples, indices, device, precision, kernel)

    def oracle_step(indices):
        speed.configure(precision="fp32")
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

    def epoch_seconds(step, batches, count) -> float:
        """Time ``count`` batches spread evenly over the epoch, extrapolated to all of its batches."""
        sample = spread_sample(batches, examples, count)
        step(sample[len(sample) // 2])  # warm-up
        return sum(timer(lambda b=b: step(b)) for b in sample) / len(sample) * len(batches)

    variants = {
        "oracle (paper-literal, random batches)": lambda: epoch_seconds(
            oracle_step, random_batches, args.oracle_batches),
        "oracle + length buckets": lambda: epoch_seconds(oracle_step, bucketed, args.oracle_batches),
        "production, random batches": lambda: epoch_seconds(production_step, random_batches, args.batches),
        "production (length buckets)": lambda: epoch_seconds(production_step, bucketed, args.batches),
        "production, PyTorch pair scorer (no fused kernels)": lambda: epoch_seconds(
            lambda b: production_step(b, kernel="torch"), bucketed, args.batches),
        "production, --precision bf16": lambda: epoch_seconds(
            lambda b: production_step(b, "bf16"), bucketed, args.batches),
        "production + torch.compile (first compile excluded)": lambda: epoch_seconds(
            lambda b: production_step(b, net=compiled, net_optimizer=compiled_optimizer), bucketed, args.batches),
    }
    timings = {label: measure() for label, measure in variants.items()}

    longest = sorted(range(len(examples)), key=lambda i: len(examples[i].word_ids))[-batch_size:]
    production_memory = peak_memory_mb(lambda: production_step(longest), device)
    oracle_memory = peak_memory_mb(lambda: oracle_step(longest), device)

    result = {
        "data": origin, "sentences": len(examples), "relations": setting.relations, "rounds": setting.rounds,
        "epoch_seconds": timings["production (length buckets)"],
        "oracle_epoch_seconds": timings["oracle (paper-literal, random batches)"],
        "bf16_epoch_seconds": timings["production, --precision bf16"],
        "torch_pair_scorer_epoch_seconds": timings["production, PyTorch pair scorer (no fused kernels)"],
        "compiled_epoch_seconds": timings["production + torch.compile (first compile excluded)"],
        "speedup": timings["oracle (paper-literal, random batches)"] / timings["production (length buckets)"],
        "train_sentences_per_second": len(examples) / timings["production (length buckets)"],
        "oracle_train_sentences_per_second": len(examples) / timings["oracle (paper-literal, random batches)"],
        "peak_mem_mb": production_memory, "oracle_peak_mem_mb": oracle_memory,
        "memory_ratio": oracle_memory / max(production_memory, 1e-9),
        "longest_batch_tokens": len(examples[longest[-1]].word_ids),
        "levers_epoch_seconds": timings,
    }
    if name == "nyt_partial":
        result.update(inference(model, compiled, setting, args, device, timer))
    return result


def inference(model: RIN, compiled: RIN, setting: Setting, args: argparse.Namespace, device: torch.device,
              timer: Timer) -> dict:
    """Sentences per second when extracting triples from NYT test (5,000 sentences), with decoding."""
    test_file = SHARED / "casrel/NYT-star/test_triples.json"
    sizes = ([(len(i["text"].split()), len(i["triple_list"])) for i in json.loads(test_file.read_text())]
             if test_file.exists() else shapes(setting, args.seed)[0][:5000])
    examples = make_examples(sizes, setting, args.seed + 1)
    labels = Labels(relations=[f"r{i}" for i in range(setting.relations)], pos=["<PAD>", "<UNK>"],
                    tags=["O", "B", "I", "E", "S"])
    compiled.load_state_dict(model.state_dict())  # the trained weights: as many cells above 0.5 as model's
    out = {}
    for suffix, net, precision, kernel in (("", model, "fp32", "auto"), ("_torch_pair_scorer", model, "fp32", "torch"),
                                           ("_bf16", model, "bf16", "auto"), ("_compiled", compiled, "fp32", "auto")):
        speed.configure(kernel=kernel, precision=precision)
        extract(net, examples[:200], labels, device)  # warm-up (and compilation)
        seconds = timer(lambda net=net: extract(net, examples, labels, device, batch_size=100))
        out["inference_sentences_per_second" + suffix] = len(examples) / seconds
    speed.configure(kernel="auto", precision="fp32")
    with torch.no_grad():
        sample = [examples[i:i + 50] for i in range(0, min(500, len(examples)), 50)]
        seconds = timer(lambda: [reference_loss(model, batch) for batch in sample])
    out["oracle_inference_sentences_per_second"] = sum(map(len, sample)) / seconds
    model.train()
    return out


PHASES = ("phase: collate", "phase: forward and loss", "phase: backward", "phase: gradient clipping and Adam")


def profile_setting(setting: Setting, args: argparse.Namespace, device: torch.device) -> dict:
    """Where a production training step's time goes (torch.profiler over ``args.batches`` batches spread
    over the epoch, after one warm-up): seconds per epoch by phase, and the costliest operators."""
    from torch.profiler import ProfilerActivity, profile

    examples, origin, model, optimizer = build(setting, args, device)
    batches = bucketed_batches([len(e.word_ids) for e in examples], BATCH_SIZE, torch.Generator().manual_seed(1))
    sample = spread_sample(batches, examples, args.batches)
    model.train()
    training_step(model, optimizer, examples, sample[len(sample) // 2], device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as profiler:
        start = time.perf_counter()
        for indices in sample:
            training_step(model, optimizer, examples, indices, device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        wall = time.perf_counter() - start
    scale = len(batches) / len(sample) / 1e6  # profiler microseconds -> seconds per epoch
    averages = profiler.key_averages()
    phases = {e.key.removeprefix("phase: "): e.cpu_time_total * scale for e in averages if e.key in PHASES}
    operators = sorted((e for e in averages if e.key not in PHASES), key=lambda e: -e.self_cpu_time_total)
    return {"data": origin, "epoch_seconds_profiled": wall * len(batches) / len(sample),
            "phase_epoch_seconds": phases,
            "operator_self_epoch_seconds": {e.key: e.self_cpu_time_total * scale for e in operators[:20]}}


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
    from data.loader import load_split
    from model.inference import evaluate
    from utils.vocab import Vocab

    data = PROJECT_ROOT / "dataset" / "webnlg"
    if not (data / "vocab.json").exists():
        raise SystemExit(f"{data} is not prepared: run prepare_data.py and prepare_vocab.py for webnlg first")
    vocab, labels = Vocab.load(data / "vocab.json"), Labels.load(data / "labels.json")
    train, dev = (load_split(data / f"{name}.json", vocab, labels) for name in ("train", "dev"))
    embedding = np.load(data / "embedding.npy")
    curves = {}
    for path in paths:
        kernel, precision = EQUIVALENCE_PATHS[path]
        speed.configure(kernel=kernel, precision=precision)
        torch.manual_seed(seed)
        model = RIN(RINConfig(vocab_size=len(vocab), num_pos=len(labels.pos), num_tags=len(labels.tags),
                              num_relations=len(labels.relations), rounds=2), embedding).to(device)
        optimizer = make_optimizer(model, lr)
        generator = torch.Generator().manual_seed(seed)
        curves[path] = []
        for epoch in range(1, epochs + 1):
            model.train()
            start = time.perf_counter()
            for indices in bucketed_batches([len(e.word_ids) for e in train.examples], BATCH_SIZE, generator):
                if path != "oracle":
                    batch = collate([train.examples[i] for i in indices], indices, device)
                    train_step(model, optimizer, batch, MAX_GRAD_NORM)
                    continue
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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--batches", type=int, default=40, help="production batches timed per variant")
    parser.add_argument("--oracle_batches", type=int, default=6, help="oracle batches timed per variant")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--equivalence", type=int, metavar="EPOCHS",
                        help="instead of timing: train WebNLG (K=2) for EPOCHS with each of --paths on identical "
                        "batches and compare dev F1")
    parser.add_argument("--profile", action="store_true",
                        help="instead of timing: run --batches production steps under torch.profiler and print "
                        "where the time goes, by phase and by operator")
    parser.add_argument("--lr", type=float, default=2e-3, help="learning rate for --equivalence (default 2e-3)")
    parser.add_argument("--paths", nargs="+", choices=list(EQUIVALENCE_PATHS), default=list(EQUIVALENCE_PATHS),
                        help="what --equivalence trains (default: all)")
    args = parser.parse_args(argv)
    device = pick_device(args.device)
    threads = configure_threads(args.threads)
    report = {"device": str(device), "threads": threads, "torch": torch.__version__}
    if args.equivalence:
        report["equivalence"] = equivalence(args.equivalence, args.lr, args.seed, device, args.paths)
        args.settings = []
    if args.profile:
        for name in args.settings:
            print(f"== {name}: profile of a production training step ...", flush=True)
            report[name] = {"profile": profile_setting(SETTINGS[name], args, device)}
            print_profile(report[name]["profile"])
        args.settings = []
    for name in args.settings:
        print(f"== {name} ...", flush=True)
        result = report[name] = run_setting(name, SETTINGS[name], args, device)
        print(f"   data: {result['data']}")
        for label, seconds in result["levers_epoch_seconds"].items():
            print(f"   {label:42s} {seconds:9.1f} s/epoch  ({result['sentences'] / seconds:7.1f} sentences/s)")
        print(f"   speed-up over the oracle: {result['speedup']:.1f}x | peak memory on the longest batch "
              f"({result['longest_batch_tokens']} tokens): {result['peak_mem_mb']:.0f} MB vs oracle "
              f"{result['oracle_peak_mem_mb']:.0f} MB ({result['memory_ratio']:.1f}x less)")
        for key in ("inference_sentences_per_second", "inference_sentences_per_second_torch_pair_scorer",
                    "inference_sentences_per_second_bf16",
                    "inference_sentences_per_second_compiled", "oracle_inference_sentences_per_second"):
            if key in result:
                print(f"   {key}: {result[key]:.0f}")
    if "inference_sentences_per_second" in report.get("nyt_partial", {}):  # the headline figure, top level
        report["inference_sentences_per_second"] = report["nyt_partial"]["inference_sentences_per_second"]
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
