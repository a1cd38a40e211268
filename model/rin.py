"""The Recurrent Interaction Network (Sun et al., EMNLP 2020), sections 4-5.

Word (+ POS) embeddings -> input dropout -> BiLSTM gives shared features H.
Each of ``rounds`` interaction layers predicts entity tags y_e = softmax(Ce(He))
and relation evidence y_r(i) = max_j sigmoid(Wr relu(Wm [h_i; h_j]) + br) from
the previous He/Hr, then feeds them back: He = GRU_e(y_e, H), Hr = GRU_r(y_r, H),
H = H + He + Hr. Final predictions come from He and Hr of the last layer
(He = Hr = H when ``rounds`` is 0: RIN without interaction).

How the pair scores are computed (fused kernels or PyTorch) and in which precision
is set in model/speed.py; the caller holds autocast (model/training.py).
"""
from __future__ import annotations

import typing
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from model.layers import BiLSTM, GRUCell, split_bidirectional_lstm
from model.pair_scorer import pair_bce, pair_logits, pair_max
from utils.project import expected_type, fits_type
from utils.vocab import PAD_ID, UNK_ID

if TYPE_CHECKING:
    from data.loader import Batch


@dataclass
class RINConfig:
    """Sizes and switches of the network; saved in every run's ``config.json``."""

    vocab_size: int
    num_pos: int
    num_tags: int
    num_relations: int
    emb_dim: int = 100
    pos_dim: int = 10
    rnn_hidden: int = 50  # per direction, so H is 2 * rnn_hidden wide
    pair_hidden: int = 100
    rounds: int = 4
    input_dropout: float = 0.1
    word_dropout: float = 0.04
    er_feedback: bool = True
    rc_feedback: bool = True

    def __post_init__(self) -> None:
        """Refuse a value of the wrong type or range (a hand-edited config.json) before torch fails on it
        obscurely: booleans, rates in [0, 1), sizes >= 1 (>= 0 where 0 switches a part off), any other type
        (a field added by an extension) by its annotation."""
        for name, kind in typing.get_type_hints(type(self)).items():
            value = getattr(self, name)
            if kind is bool:
                valid, wanted = isinstance(value, bool), "true or false"
            elif kind is float:
                valid, wanted = type(value) in (int, float) and 0 <= value < 1, "a rate in [0, 1)"
            elif kind is int:
                least = 0 if name in ("pos_dim", "rounds", "num_relations") else 1
                valid, wanted = type(value) is int and value >= least, f"an integer >= {least}"
            else:
                valid, wanted = fits_type(value, kind), expected_type(kind)
            if not valid:
                raise ValueError(f"{name} = {value!r}: not {wanted}")

    @classmethod
    def check_known(cls, recorded: dict) -> None:
        """A run's recorded model settings (its config.json's ``model``) must all be fields here: one this code
        lacks would be dropped, and another network built, resumed or scored under the run's name (a run of
        other code: another branch or version). Fields added since take their defaults."""
        if unknown := sorted(set(recorded) - {field.name for field in fields(cls)}):
            raise ValueError(f"model settings this code does not have: {', '.join(unknown)} (written by other code: "
                             "another branch or version?); use the code that trained the run")

    @classmethod
    def from_dict(cls, recorded: dict) -> RINConfig:
        cls.check_known(recorded)
        return cls(**recorded)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Outputs:
    """Final-layer outputs: tag logits and the features the pair scorer reads."""

    tag_logits: torch.Tensor  # (B, n, tags), from He
    relation_state: torch.Tensor  # Hr (B, n, 2 * rnn_hidden)


class RIN(nn.Module):
    """Shared BiLSTM features, then K interaction rounds in which entity tags and relation evidence each feed a
    GRU that refines the shared features (section 4); ``embedding`` starts the word vectors (vocab_size,
    emb_dim)."""

    def __init__(self, config: RINConfig, embedding: np.ndarray | None = None) -> None:
        super().__init__()
        self.config = config
        hidden = 2 * config.rnn_hidden
        self.word_embedding = nn.Embedding(config.vocab_size, config.emb_dim, padding_idx=PAD_ID)
        if embedding is not None:
            if embedding.shape != (config.vocab_size, config.emb_dim):
                raise ValueError(f"embedding of shape {embedding.shape} does not fit "
                                 f"vocab_size={config.vocab_size}, emb_dim={config.emb_dim}")
            self.word_embedding.weight.data.copy_(torch.from_numpy(embedding))
        self.pos_embedding = (nn.Embedding(config.num_pos, config.pos_dim, padding_idx=PAD_ID)
                              if config.pos_dim > 0 else None)
        self.input_dropout = nn.Dropout(config.input_dropout)
        self.bilstm = BiLSTM(config.emb_dim + config.pos_dim, config.rnn_hidden)
        self._register_load_state_dict_pre_hook(split_bidirectional_lstm)  # checkpoints of earlier layouts
        self.tag_classifier = nn.Linear(hidden, config.num_tags)  # Ce
        self.pair_left = nn.Linear(hidden, config.pair_hidden)  # Wm's half for h_i, with Wm's bias
        self.pair_right = nn.Linear(hidden, config.pair_hidden, bias=False)  # Wm's half for h_j
        self.relation_classifier = nn.Linear(config.pair_hidden, config.num_relations)  # Wr, br
        self.entity_gru = GRUCell(config.num_tags, hidden)  # GRU_e
        self.relation_gru = GRUCell(config.num_relations, hidden)  # GRU_r

    def encode(self, word_ids: torch.Tensor, pos_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Shared features H (B, n, 2 * rnn_hidden); padding never reaches a real token."""
        if self.training and self.config.word_dropout > 0:
            drop = torch.rand(word_ids.shape, device=word_ids.device) < self.config.word_dropout
            word_ids = word_ids.masked_fill(drop & (word_ids != PAD_ID), UNK_ID)
        inputs = self.word_embedding(word_ids)
        if self.pos_embedding is not None:
            inputs = torch.cat([inputs, self.pos_embedding(pos_ids)], dim=-1)
        return self.bilstm(self.input_dropout(inputs), lengths)

    def _pair_inputs(self, relation_state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """A h_i + b_m, B h_j, Wr and br: the pair scorer's operands."""
        return (self.pair_left(relation_state), self.pair_right(relation_state),
                self.relation_classifier.weight, self.relation_classifier.bias)

    def forward(self, word_ids: torch.Tensor, pos_ids: torch.Tensor, mask: torch.Tensor,
                lengths: torch.Tensor) -> Outputs:
        """The K interaction rounds; the tag logits and relation features of the last one."""
        shared = self.encode(word_ids, pos_ids, lengths)
        entity_state = relation_state = shared
        for _ in range(self.config.rounds):
            tag_probs = torch.softmax(self.tag_classifier(entity_state), dim=-1)  # y_e
            # y_r(i) = max_j sigmoid(Wr m_ij + br), taken as sigmoid(max_j ...): equal, as sigmoid rises
            relation_evidence = torch.sigmoid(pair_max(*self._pair_inputs(relation_state), mask))
            entity_state = self.entity_gru(tag_probs, shared)  # He = GRU_e(y_e, H)
            relation_state = self.relation_gru(relation_evidence, shared)  # Hr = GRU_r(y_r, H)
            # H = H + He + Hr (the ablations w/o ER / w/o RC leave a term out)
            shared = (shared + (entity_state if self.config.er_feedback else 0)
                      + (relation_state if self.config.rc_feedback else 0))
        return Outputs(self.tag_classifier(entity_state), relation_state)

    def loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(ER loss, RC loss): sums over real tokens / real cells, divided by the batch size."""
        out = self(batch.word_ids, batch.pos_ids, batch.mask, batch.lengths)
        size = batch.word_ids.shape[0]
        targets = batch.tag_ids.masked_fill(~batch.mask, -100)  # padding ignored; no boolean indexing (host sync)
        er_loss = F.cross_entropy(out.tag_logits.flatten(0, 1), targets.flatten(), reduction="sum", ignore_index=-100)
        rc_loss = pair_bce(*self._pair_inputs(out.relation_state), batch.relation_cells, batch.mask)
        return er_loss / size, rc_loss / size

    @torch.no_grad()
    def predict(self, word_ids: torch.Tensor, pos_ids: torch.Tensor, mask: torch.Tensor,
                lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tag ids (B, n) and relation logits (B, n, n, R), -inf outside real cells.

        Logits rather than probabilities: thresholding ``logit >= log(t / (1 - t))``
        equals ``sigmoid(logit) >= t`` and spares a pass over the largest tensor.
        """
        out = self(word_ids, pos_ids, mask, lengths)
        return out.tag_logits.argmax(dim=-1), pair_logits(*self._pair_inputs(out.relation_state), mask)
