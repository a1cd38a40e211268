"""The RIN network, its training step, decoding, and loading of trained runs."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from model.inference import Extractor
from model.rin import RIN, RINConfig
from model.run import RUN_FORMAT, RunError, load_run

__all__ = ["RIN", "RINConfig", "RUN_FORMAT", "Extractor", "RunError", "load_extractor", "load_run"]


def load_extractor(model_dir: str | Path, **options: Any) -> Extractor:
    """Triples from raw text with the run in ``model_dir``; ``options`` are :class:`model.inference.Extractor`'s
    keywords (device, threshold, batch size, spaCy model...)."""
    return Extractor(model_dir, **options)
