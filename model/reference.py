"""The paper-literal RIN computation, kept as the correctness oracle and the speed baseline.

Written the way the equations read, with none of the production path's
shortcuts: each batch padded to its longest sentence, masks and label tensors
filled in Python loops, the pair tensor built by repeating H and concatenating
it into B x n x n x 2d before Wm, probabilities (not logits) maxed over j and
fed to the binary cross-entropy. It reuses the production model's parameters,
so the two can be compared number for number (tests/test_fast_path.py) and
timed side by side (bench.py).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from data.loader import Example
from model.rin import RIN


def reference_loss(model: RIN, examples: Sequence[Example]) -> tuple[torch.Tensor, torch.Tensor]:
    """(ER loss, RC loss) for ``examples``, computed literally; same normalisation as ``RIN.loss``."""
    device = next(model.parameters()).device
    size, width = len(examples), max(len(e.word_ids) for e in examples)
    relations = model.config.num_relations
    word_ids = torch.zeros(size, width, dtype=torch.long)
    pos_ids = torch.zeros(size, width, dtype=torch.long)
    tag_ids = torch.zeros(size, width, dtype=torch.long)
    mask = torch.zeros(size, width, dtype=torch.bool)
    targets = torch.zeros(size, width, width, relations)
    for b, example in enumerate(examples):
        for t in range(len(example.word_ids)):
            word_ids[b, t], pos_ids[b, t], tag_ids[b, t] = example.word_ids[t], example.pos_ids[t], example.tag_ids[t]
            mask[b, t] = True
        for i, j, r in example.cells:
            targets[b, i, j, r] = 1.0
    word_ids, pos_ids, tag_ids, mask = (t.to(device) for t in (word_ids, pos_ids, tag_ids, mask))
    lengths = mask.sum(dim=1)
    dtype = next(model.parameters()).dtype
    targets = targets.to(device, dtype)
    cell_mask = (mask[:, :, None] & mask[:, None, :]).to(dtype)

    pair_weight = torch.cat([model.pair_left.weight, model.pair_right.weight], dim=1)  # Wm
    pair_bias = model.pair_left.bias

    def relation_probs(features: torch.Tensor) -> torch.Tensor:
        """y_ij = sigmoid(Wr relu(Wm [h_i; h_j] + b_m) + b_r), for every pair: (B, n, n, R)."""
        h_i = features[:, :, None, :].repeat(1, 1, width, 1)
        h_j = features[:, None, :, :].repeat(1, width, 1, 1)
        pair_features = torch.relu(F.linear(torch.cat([h_i, h_j], dim=-1), pair_weight, pair_bias))
        return torch.sigmoid(model.relation_classifier(pair_features))

    shared = model.encode(word_ids, pos_ids, lengths)
    entity_state = relation_state = shared
    for _ in range(model.config.rounds):
        tag_probs = torch.softmax(model.tag_classifier(entity_state), dim=-1)
        relation_evidence = (relation_probs(relation_state) * cell_mask[..., None]).max(dim=2).values
        # nn.GRUCell's own forward: the model's GRUCell would run the fused kernels
        new_entity = nn.GRUCell.forward(model.entity_gru, tag_probs.reshape(-1, tag_probs.shape[-1]),
                                        shared.reshape(-1, shared.shape[-1])).reshape(shared.shape)
        new_relation = nn.GRUCell.forward(model.relation_gru, relation_evidence.reshape(-1, relations),
                                          shared.reshape(-1, shared.shape[-1])).reshape(shared.shape)
        shared = (shared + (new_entity if model.config.er_feedback else 0)
                  + (new_relation if model.config.rc_feedback else 0))
        entity_state, relation_state = new_entity, new_relation

    tag_logits = model.tag_classifier(entity_state)
    er_loss = F.cross_entropy(tag_logits[mask], tag_ids[mask], reduction="sum")
    cell_losses = F.binary_cross_entropy(relation_probs(relation_state), targets, reduction="none")
    rc_loss = (cell_losses * cell_mask[..., None]).sum()
    return er_loss / size, rc_loss / size
