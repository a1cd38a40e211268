"""The RIN network and loading of trained runs."""
from __future__ import annotations

from pathlib import Path

import torch

from model.rin import RIN, RINConfig
from utils.helpers import read_json
from utils.vocab import Labels, Vocab

RUN_FORMAT = 1  # bumped when a run folder's layout changes incompatibly

__all__ = ["RIN", "RINConfig", "RUN_FORMAT", "load_extractor", "load_run"]


def load_run(model_dir: str | Path, device: torch.device | str = "cpu", checkpoint: str = "best.pt"
             ) -> tuple[RIN, Vocab, Labels, dict]:
    """Rebuild a trained model from its run folder alone (config, vocabulary, labels, weights)."""
    model_dir = Path(model_dir)
    missing = [name for name in ("config.json", "vocab.json", "labels.json", checkpoint)
               if not (model_dir / name).exists()]
    if missing:
        raise FileNotFoundError(f"{model_dir} is not a finished run folder: missing {', '.join(missing)}")
    config = read_json(model_dir / "config.json")
    if config.get("run_format") != RUN_FORMAT:
        raise ValueError(f"{model_dir}: run format {config.get('run_format')!r}, this code reads {RUN_FORMAT}; "
                         "retrain or use the matching version of the code")
    model = RIN(RINConfig(**config["model"]))
    state = torch.load(model_dir / checkpoint, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.to(device).eval()
    return model, Vocab.load(model_dir / "vocab.json"), Labels.load(model_dir / "labels.json"), config


def load_extractor(model_dir: str | Path, **options):
    """Triples from raw text with the run in ``model_dir``; see :class:`model.extractor.Extractor`."""
    from model.extractor import Extractor

    return Extractor(model_dir, **options)
