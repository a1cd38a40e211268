import os
import signal
import sys
from pathlib import Path

import pytest

# cuBLAS reads this once, at the first matrix product of the process on a GPU: the deterministic CUDA tests
# (and train.py --deterministic called in-process after other GPU work) need it set before any test runs
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
# a suite started in the background of a script (`pytest ... &`) inherits Ctrl-C ignored, as POSIX shells start
# such commands: the tests that stop a run with SIGINT need it delivered, here and in the scripts they start
signal.signal(signal.SIGINT, signal.default_int_handler)

import torch  # noqa: E402

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
def cpu_unless_marked_cuda(request, monkeypatch):
    """On a GPU machine, a test not marked ``cuda`` runs as on a CPU-only one: scripts called without --device
    (in-process or as children) pick the CPU, where the bit-for-bit checks of kill and resume hold. Session and
    module fixtures are built before it runs: those that train say --device cpu themselves."""
    if "cuda" not in request.keywords and torch.cuda.is_available():
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


@pytest.fixture(autouse=True)
def default_speed():
    """Each test ends with the speed settings a fresh process has (scripts called in-process set them)."""
    from model import speed

    yield
    defaults = speed.DEFAULTS
    speed.configure(kernel=defaults.kernel, precision=defaults.precision, thread_policy=defaults.thread_policy)
    torch.use_deterministic_algorithms(False)


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory) -> Path:
    """A generated RIN-format dataset with its vocabulary (word2vec on train), prepared once per session."""
    import prepare_vocab
    from data.synthetic import write_synthetic_dataset

    folder = write_synthetic_dataset(tmp_path_factory.mktemp("synthetic"))
    prepare_vocab.main(["--data_dir", str(folder), "--seed", "1"])
    return folder


# --device cpu: session fixtures are built before cpu_unless_marked_cuda hides a GPU from the test using them
TRAINED_RUN_FLAGS = ["--num_epoch", "15", "--lr", "0.005", "--rounds", "2", "--pos_dim", "0", "--threads", "1",
                     "--device", "cpu"]


@pytest.fixture(scope="session")
def trained_run(synthetic_data, tmp_path_factory) -> tuple[Path, dict]:
    """One run trained on :func:`synthetic_data`, shared by the integration tests (copy it before changing it)."""
    import train

    save_dir = tmp_path_factory.mktemp("runs")
    results = train.main(["--dataset", "synthetic", "--data_dir", str(synthetic_data), "--save_dir", str(save_dir),
                          "--run_id", "run", *TRAINED_RUN_FLAGS])
    return save_dir / "run", results
