"""The RIN network, its training step, decoding, and loading of trained runs."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any


def _check_packages_found() -> None:
    """This project's utils/ and data/ must be what ``import utils`` and ``import data`` find: a utils.py or
    data.py beside one's own script comes first on sys.path, and the imports below would fail inside with
    "'utils' is not a package" instead of naming it."""
    root = Path(__file__).resolve().parent.parent
    for name in ("utils", "data"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin and Path(spec.origin).resolve() != root / name / "__init__.py":
            raise ImportError(f"{spec.origin} is found as {name!r} before this project's {root / name}/, which its "
                              "model/ imports: rename that module, or run your script from another folder")


_check_packages_found()

from model.inference import Extractor  # noqa: E402
from model.rin import RIN, RINConfig  # noqa: E402
from model.run import RUN_FORMAT, RunError, load_run  # noqa: E402

__all__ = ["RIN", "RINConfig", "RUN_FORMAT", "Extractor", "RunError", "load_extractor", "load_run"]


def load_extractor(model_dir: str | Path, **options: Any) -> Extractor:
    """Triples from raw text with the run in ``model_dir``; ``options`` are :class:`model.inference.Extractor`'s
    keywords (device, threshold, batch size, spaCy model...)."""
    return Extractor(model_dir, **options)
