"""From a trained model to triples: batched decoding, evaluation on a split, and raw-text extraction.

    from model import load_extractor
    extractor = load_extractor("saved_models/webnlg_partial_K2_seed1")
    extractor.extract(["Bananaman was created by Steve Bright ."])
"""
from __future__ import annotations

import argparse
import logging
import math
import time
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from data.loader import Batch, Example, Split, bucketed_batches, collate, has_lone_surrogate, memory_parts
from data.spacy_tools import DEFAULT_MODEL, SpacyTools, install_advice
from model import speed
from model.rin import RIN
from model.run import load_run
from utils.cli import device_problem, open_probability, positive_int
from utils.errors import InputError
from utils.files import read_json
from utils.machine import pick_device
from utils.scorer import Extraction, decode, keep_first_mentions, score_all, triple_record
from utils.vocab import UNK_ID, Labels

log = logging.getLogger(__name__)
BATCH_SIZE, THRESHOLD, MAX_TOKENS = 100, 0.5, 300  # defaults of evaluate.py, predict.py and Extractor
# Extractor's and predict.py's default: each (subject text, relation, object text) once, at its first position,
# as the releases annotate (results/README.md, "Repeated mentions"); evaluate.py keeps the paper's decoder
FIRST_MENTIONS = True
DECODE_CELLS = 1 << 25  # pair logits (sentences x n x n x relations) decoded at once: 128 MB in float32
# raw text is cut to max_tokens times this many characters before tokenising: spaCy's tokeniser takes time
# quadratic in a run of punctuation ('(' * 50,000: minutes), and no sentence of max_tokens tokens is this long
CHARACTERS_PER_TOKEN = 20
# the fields of Extractor.extract's result for one sentence (predict.py writes them beside the input's own)
RESULT_FIELDS = ("tokens", "entities", "triples", "skipped", "truncated_from", "truncated_from_characters")
# Extractor warns on sentences with more than this share of words unknown to the model, and on input whose POS
# tags are more than this share outside the training data's tag set
UNFAMILIAR_SHARE = 0.5


def add_decoding_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model_dir``, ``--threshold`` and ``--batch_size``, defined once for evaluate.py and predict.py."""
    parser.add_argument("--model_dir", required=True, help="run folder written by train.py")
    parser.add_argument("--threshold", type=open_probability, default=THRESHOLD,
                        help=f"relation probability threshold, strictly between 0 and 1 (default {THRESHOLD})")
    parser.add_argument("--batch_size", type=positive_int, default=BATCH_SIZE,
                        help=f"sentences per batch (default {BATCH_SIZE}; fewer where long sentences would need much "
                        "memory)")


def decode_batches(lengths: Sequence[int], batch_size: int, relations: int) -> list[list[int]]:
    """Length buckets of at most ``batch_size`` sentences whose logits hold at most DECODE_CELLS values (at
    least one sentence each), so decoding memory is bounded whatever the batch size and sentence lengths."""
    return [part for bucket in bucketed_batches(lengths, batch_size, generator=None)
            for part in memory_parts(bucket, lengths, relations, DECODE_CELLS)]


def check_threshold(threshold: float) -> None:
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 < threshold < 1:
        raise InputError(f"threshold must be a number strictly between 0 and 1, not {threshold!r}")


@torch.no_grad()
def long_sentence_hits(model: RIN, batch: Batch, cutoff: float) -> tuple[torch.Tensor, list]:
    """Tag ids and the cells at or above ``cutoff`` of a batch of ONE sentence whose (n, n, R) logits would
    exceed DECODE_CELLS: Wr relu(A h_i + B h_j) + br scored a block of rows i at a time, so memory stays
    bounded however long the sentence is (the PyTorch formula; such sentences are rare)."""
    with speed.autocast(batch.word_ids.device):
        out = model(batch.word_ids, batch.pos_ids, batch.mask, batch.lengths)
        left, right = model.pair_left(out.relation_state)[0], model.pair_right(out.relation_state)[0]
    length, relations = right.shape[0], model.config.num_relations
    rows = max(1, DECODE_CELLS // (length * max(relations, model.config.pair_hidden)))  # logits or pair features
    hits = []
    for start in range(0, length, rows):
        pairs = torch.relu(left[start:start + rows, None].float() + right[None].float())
        logits = model.relation_classifier(pairs)  # (rows, n, R)
        above = logits >= cutoff
        hits += [((0, start + i, j, r), p) for (i, j, r), p in
                 zip(above.nonzero().tolist(), torch.sigmoid(logits[above]).tolist(), strict=True)]
    return out.tag_logits.argmax(dim=-1), hits


def extract(model: RIN, examples: Sequence[Example], labels: Labels, device: torch.device | str,
            batch_size: int = BATCH_SIZE, threshold: float = THRESHOLD, progress: bool = False) -> list[Extraction]:
    """Run the model on ``examples`` (in length buckets) and decode, returned in input order."""
    device = torch.device(device)
    model.eval()
    check_threshold(threshold)
    cutoff = math.log(threshold) - math.log1p(-threshold)  # sigmoid(z) >= t  <=>  z >= cutoff
    results: list[Extraction | None] = [None] * len(examples)
    batches = decode_batches([len(e.word_ids) for e in examples], batch_size, len(labels.relations))
    # disable=None: a bar on a terminal only; a log file (nohup, SLURM) would keep every redrawn line of it
    for indices in tqdm(batches, desc="extract", disable=None if progress else True, leave=False):
        batch = collate([examples[i] for i in indices], device, with_targets=False)
        cells: list[list] = [[] for _ in indices]
        if batch.word_ids.shape[1] ** 2 * len(labels.relations) > DECODE_CELLS:  # one very long sentence
            tag_ids, hits = long_sentence_hits(model, batch, cutoff)
        else:
            with speed.autocast(device):
                tag_ids, logits = model.predict(batch.word_ids, batch.pos_ids, batch.mask, batch.lengths)
            above = logits >= cutoff
            hits = zip(above.nonzero().tolist(), torch.sigmoid(logits[above]).tolist(), strict=True)
        for (row, i, j, relation), probability in hits:
            cells[row].append((i, j, relation, probability))
        tag_ids = tag_ids.tolist()
        for row, (index, length) in enumerate(zip(indices, batch.lengths.tolist(), strict=True)):
            tags = [labels.tags[t] for t in tag_ids[row][:length]]
            results[index] = decode(tags, cells[row], labels.relations)
    return results  # type: ignore[return-value]


def evaluate(model: RIN, split: Split, labels: Labels, device: torch.device | str, batch_size: int = BATCH_SIZE
             ) -> tuple[dict, list[Extraction]]:
    """P/R/F1 of our scorer in both match modes on ``split``, and the extractions behind them (which the other
    scorers count too)."""
    extractions = extract(model, split.examples, labels, device, batch_size)
    return score_all(extractions, split.gold, "ours"), extractions


def run_tools(model_dir: str | Path, needs_pos: bool, pretokenized: bool, spacy_model: str | None = None,
              flag: str = "spacy_model (predict.py --spacy_model)") -> SpacyTools | None:
    """The spaCy tokeniser and POS tagger for new text given to the run in ``model_dir``: ``spacy_model``, else
    the one its data was tagged with (its prepare_report.json), else prepare_data.py's default (said). None
    where neither is needed, or where text may be split on whitespace instead (said); ``flag`` names the option
    that picks another in the messages."""
    report_file = Path(model_dir) / "prepare_report.json"
    report = read_json(report_file) if report_file.exists() else {}
    recorded = report.get("spacy_model") if isinstance(report, dict) else None
    if recorded is not None and not (isinstance(recorded, str) and recorded.strip()):
        raise InputError(f"{report_file}: 'spacy_model' is {recorded!r}, not a model name; restore the run's "
                         f"own prepare_report.json, or name a model: {flag}")
    if spacy_model is not None and not needs_pos and pretokenized:
        log.warning("spacy_model %r is not used: the tokens are given (pretokenized) and this model takes no POS "
                    "tags", spacy_model)
    if pretokenized and not needs_pos:  # nothing to tokenise or tag
        return None
    named = spacy_model is not None  # a model asked for is never swapped for whitespace splitting
    if spacy_model is None and recorded is None:
        spacy_model = DEFAULT_MODEL
        log.warning("%s records no spaCy model (its data came with its own tokens): %s with %s, prepare_data.py's "
                    "default; %s names another", model_dir,
                    "POS-tagging" if pretokenized else "tokenising" + " and POS-tagging" * needs_pos, spacy_model,
                    flag)
    spacy_model = spacy_model or recorded
    if spacy_model.lower() == "none":
        if needs_pos:
            raise InputError(f"{flag.split()[0]} none: this model takes POS tags, which need a tagger")
        return None
    try:
        return SpacyTools(spacy_model)
    except (ImportError, OSError) as error:
        reason = str(error).splitlines()[0]
        if needs_pos:
            raise InputError(f"this model takes POS tags, and spaCy model {spacy_model!r} cannot be loaded here "
                             f"({reason}); {install_advice(spacy_model)} or name another: {flag}") from None
        if named:
            raise InputError(f"spaCy model {spacy_model!r} cannot be loaded here ({reason}); "
                             f"{install_advice(spacy_model)}, or name none to split on whitespace") from None
        log.warning("spaCy model %r cannot be loaded here (%s): splitting on whitespace", spacy_model, reason)
        return None


# raw text before spaCy tokenises it: a zero-width space separates words, the rest join them or are nothing
INVISIBLE = {ord("\u200b"): " "} | dict.fromkeys(map(ord, "\u2060\ufeff\u00ad"))


class Extractor:
    """A trained RIN with the tokeniser and POS tagger its training data used. By default
    (``first_mentions=True``) each (subject text, relation, object text) is reported once per sentence, at its
    first position; ``first_mentions=False`` reports every mention the model marks (the paper's decoder)."""

    def __init__(self, model_dir: str | Path, device: str | None = None, threshold: float = THRESHOLD,
                 batch_size: int = BATCH_SIZE, max_tokens: int = MAX_TOKENS, pretokenized: bool = False,
                 first_mentions: bool = FIRST_MENTIONS, spacy_model: str | None = None) -> None:
        check_threshold(threshold)
        for name, value in (("batch_size", batch_size), ("max_tokens", max_tokens)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
                raise InputError(f"{name} must be a positive integer, not {value!r}")
        for name, value in (("pretokenized", pretokenized), ("first_mentions", first_mentions)):
            if not isinstance(value, bool):
                raise InputError(f"{name} must be True or False, not {value!r}")
        if spacy_model is not None and not (isinstance(spacy_model, str) and spacy_model.strip()):
            raise InputError(f"spacy_model must name a spaCy model (or 'none'), not {spacy_model!r}")
        if device is not None and (problem := device_problem(str(device))):
            raise InputError(f"device: {problem}")
        self.device = pick_device(device, flag="device")
        self.model, self.vocab, self.labels, self.config = load_run(model_dir, self.device)
        self.threshold, self.batch_size, self.max_tokens = threshold, int(batch_size), int(max_tokens)
        self.first_mentions = first_mentions  # each (subject text, relation, object text) once
        self.tools = run_tools(model_dir, self.model.config.pos_dim > 0, pretokenized, spacy_model)
        self.tokenizer = "whitespace" if pretokenized or self.tools is None else "spaCy"
        self.last_rate: float | None = None

    def tokenize(self, text: str) -> list[str]:
        """Tokens of raw ``text``, as written (Vocab.ids finds a decomposed accent's word, utils/vocab.py); spaCy
        gets it without the invisible characters that would glue a word to what follows it (a zero-width space
        becomes a space; a word joiner, byte-order mark or soft hyphen goes)."""
        return self.tools.tokenize(text.translate(INVISIBLE)) if self.tokenizer == "spaCy" else text.split()

    def _warn_unfamiliar(self, kept: list[int], token_lists: list[list[str]], pos_lists: list[list[str] | None],
                         pos_from_caller: list[bool], examples: list[Example], tokenized_here: list[bool]) -> None:
        """Warn about sentences whose words are mostly unknown to the model (another language, or a script
        written without spaces, which spaCy's English tokeniser leaves one token a clause), and about POS tags
        mostly from another tag set than the training data's: the model then sees little but <UNK>."""
        unfamiliar = [index for index, example in zip(kept, examples, strict=True)
                      if (example.word_ids == UNK_ID).sum() > UNFAMILIAR_SHARE * len(example.word_ids)]
        if unfamiliar:
            def unspaced_clause(token: str) -> bool:  # e.g. Chinese: a clause the tokeniser leaves one token
                return len(token) >= 4 and all(unicodedata.category(c) == "Lo" for c in token)

            unspaced = [index for index in unfamiliar
                        if tokenized_here[index] and any(map(unspaced_clause, token_lists[index]))]
            tokens = (f"; sentence {unspaced[0] + 1} is of a script written without spaces, which the tokeniser leaves "
                      "whole: give its tokens (a list of them, or split by spaces with pretokenized=True: predict.py "
                      "--pretokenized)"
                      if unspaced else "")
            log.warning("%d of %d sentences (sentence %d first: %r) are mostly words this model's vocabulary lacks: "
                        "its predictions there are less reliable (text of another domain or language%s)",
                        len(unfamiliar), len(examples), unfamiliar[0] + 1, " ".join(token_lists[unfamiliar[0]])[:60],
                        tokens)
        known, example = set(self.labels.pos), self.labels.pos[2] if len(self.labels.pos) > 2 else None
        for from_caller in (True, False):
            tags = [tag for pos, mine in zip(pos_lists, pos_from_caller, strict=True) if pos and mine == from_caller
                    for tag in pos]
            foreign = [tag for tag in tags if tag not in known]
            if not tags or len(foreign) <= UNFAMILIAR_SHARE * len(tags):
                continue
            advice = ("give tags of the training data's tag set, or none, to have spaCy tag the tokens"
                      if from_caller else "if the training data was tagged with another spaCy model, name that one "
                      "(spacy_model=, predict.py --spacy_model)")
            log.warning("%.0f%% of the POS tags %s (e.g. %r) are not among this model's training tags (e.g. %r): the "
                        "model knows nothing of them (another tag set, or tags its training data never had); %s",
                        100 * len(foreign) / len(tags), "given with the sentences" if from_caller else "spaCy gave",
                        foreign[0], example, advice)

    @staticmethod
    def _given_pos(sentences: list[str | list[str]], pos: Sequence[Sequence[str] | None] | None
                   ) -> list[list[str] | None]:
        """``pos`` checked against ``sentences``: one entry per sentence, tags only for token lists, one per token."""
        if pos is None:
            return [None] * len(sentences)
        if isinstance(pos, str) or not isinstance(pos, Sequence) or len(pos) != len(sentences):
            raise TypeError(f"pos: one entry (a list of tags, or None) per sentence ({len(sentences)}), not "
                            f"{pos!r:.80}")
        checked: list[list[str] | None] = []
        for number, (sentence, tags) in enumerate(zip(sentences, pos, strict=True), start=1):
            if tags is None:
                pass
            elif isinstance(sentence, str):
                raise TypeError(f"sentence {number}: POS tags go with a list of tokens, not with text (spaCy tags "
                                "text)")
            elif isinstance(tags, str) or not all(isinstance(tag, str) for tag in tags):
                raise TypeError(f"sentence {number}: POS tags are a list of strings, one per token, not {tags!r:.80}")
            elif len(tags) != len(sentence):
                raise TypeError(f"sentence {number}: {len(tags)} POS tags for its {len(sentence)} tokens")
            checked.append(None if tags is None else list(tags))
        return checked

    def extract(self, sentences: Sequence[str | Sequence[str]], progress: bool = False,
                pos: Sequence[Sequence[str] | None] | None = None) -> list[dict]:
        """One result per sentence (a string, or a list of tokens taken as they are). ``pos``: for sentences
        given as tokens, their POS tags (one per token, of the training data's tag set; None: tagged here), used
        instead of the tagger's, as evaluate.py uses a data file's own."""
        start = time.perf_counter()
        if isinstance(sentences, str):
            raise TypeError("extract() takes a list of sentences, not one string: pass [sentence]")
        if isinstance(sentences, set | frozenset | dict):  # no order to give the results back in
            raise TypeError(f"extract() takes sentences in an order (a list, a generator, a file), not a "
                            f"{type(sentences).__name__}")
        sentences = list(sentences)  # a generator or a file is read once, here
        for number, sentence in enumerate(sentences, start=1):
            if isinstance(sentence, bytes) or not (isinstance(sentence, str) or isinstance(sentence, Sequence) and all(
                    isinstance(token, str) and token.strip() for token in sentence)):
                raise TypeError(f"sentence {number}: a string or a list of non-empty token strings, not "
                                f"{sentence!r:.80}")
            text = sentence if isinstance(sentence, str) else " ".join(sentence)
            if has_lone_surrogate(text):
                raise InputError(f"sentence {number} holds a lone surrogate ({text!r:.80}): not text; was it read "
                                 "from bytes that are not UTF-8?")
        # plain strings: spaCy takes no subclass of str (NumPy's str_, from an array of sentences)
        sentences = [str(s) if isinstance(s, str) else [str(token) for token in s] for s in sentences]
        given_pos = self._given_pos(sentences, pos)
        results: list[dict] = [{} for _ in sentences]
        characters = self.max_tokens * CHARACTERS_PER_TOKEN
        for index, sentence in enumerate(sentences):
            if isinstance(sentence, str) and len(sentence) > characters:
                log.warning("sentence %d has %d characters: cut to the first %d before tokenising", index + 1,
                            len(sentence), characters)
                results[index]["truncated_from_characters"] = len(sentence)
                sentences[index] = sentence[:characters]
        token_lists = [self.tokenize(s) if isinstance(s, str) else list(s) for s in sentences]
        kept = []
        for index, tokens in enumerate(token_lists):
            if not tokens:
                results[index] = {"tokens": [], "entities": [], "triples": [], "skipped": "empty sentence"}
                continue
            if len(tokens) > self.max_tokens:
                log.warning("sentence %d has %d tokens: truncated to the first %d", index + 1, len(tokens),
                            self.max_tokens)
                if "truncated_from_characters" not in results[index]:  # else a count of the cut text's tokens
                    results[index]["truncated_from"] = len(tokens)
                token_lists[index] = tokens = tokens[: self.max_tokens]
            kept.append(index)
        tags = (self.tools.tag([token_lists[i] for i in kept]) if self.tools and self.model.config.pos_dim > 0
                else [(None, [])] * len(kept))
        tags = [(given_pos[i][: self.max_tokens], spans) if given_pos[i] is not None else (tagged, spans)
                for i, (tagged, spans) in zip(kept, tags, strict=True)]
        examples = [Example(word_ids=np.asarray(self.vocab.ids(token_lists[i]), dtype=np.int64),
                            pos_ids=np.asarray(self.labels.pos_ids(pos, len(token_lists[i])), dtype=np.int64),
                            tag_ids=np.zeros(len(token_lists[i]), dtype=np.int64), cells=np.zeros((0, 3), np.int64))
                    for i, (pos, _) in zip(kept, tags, strict=True)]
        tokenized_here = [isinstance(sentence, str) and self.tokenizer == "spaCy" for sentence in sentences]
        self._warn_unfamiliar(kept, token_lists, [pos for pos, _ in tags], [given_pos[i] is not None for i in kept],
                              examples, tokenized_here)
        extractions = extract(self.model, examples, self.labels, self.device, self.batch_size, self.threshold,
                              progress=progress) if examples else []
        for index, extraction in zip(kept, extractions, strict=True):
            tokens = token_lists[index]
            if self.first_mentions:
                extraction = keep_first_mentions(extraction, tokens)
            results[index] |= {
                "tokens": tokens,
                "entities": [{"text": " ".join(tokens[s:e]), "span": [s, e]} for s, e in extraction.entities],
                "triples": [triple_record(tokens, t, p)
                            for t, p in zip(extraction.triples, extraction.probabilities, strict=True)]}
        self.last_rate = len(sentences) / max(time.perf_counter() - start, 1e-9)
        return results
