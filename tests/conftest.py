import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` run where a GPU is present and are skipped, with the reason, elsewhere."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; none is present on this machine")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def default_speed():
    """Each test starts from the speed settings a fresh process has (scripts called in-process set them)."""
    from model import speed

    start = speed.current()
    yield
    speed.configure(kernel=start.kernel, precision=start.precision, threads=start.threads)
    torch.use_deterministic_algorithms(False)


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory) -> Path:
    """A generated RIN-format dataset with its vocabulary (word2vec on train), prepared once per session."""
    from synthetic import write_synthetic_dataset

    import prepare_vocab

    folder = write_synthetic_dataset(tmp_path_factory.mktemp("synthetic"))
    prepare_vocab.main(["--data_dir", str(folder), "--seed", "1"])
    return folder


TRAINED_RUN_FLAGS = ["--num_epoch", "15", "--lr", "0.005", "--rounds", "2", "--pos_dim", "0", "--threads", "1"]


@pytest.fixture(scope="session")
def trained_run(synthetic_data, tmp_path_factory) -> tuple[Path, dict]:
    """One run trained on :func:`synthetic_data`, shared by the integration tests (copy it before changing it)."""
    import train

    save_dir = tmp_path_factory.mktemp("runs")
    results = train.main(["--dataset", "synthetic", "--data_dir", str(synthetic_data), "--save_dir", str(save_dir),
                          "--run_id", "run", *TRAINED_RUN_FLAGS])
    return save_dir / "run", results
