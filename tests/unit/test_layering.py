"""Imports go one way: utils (leaves) <- data <- model <- experiments <- the scripts at the top level."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ["utils", "data", "model", "experiments"]  # each may import the ones before it, and itself
SCRIPTS = {p.stem for p in ROOT.glob("*.py")}


def project_imports(path: Path) -> set[str]:
    """The top-level project modules or packages ``path`` imports (anywhere in the file, lazy imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & (set(LAYERS) | SCRIPTS)


def test_imports_go_one_way():
    wrong = []
    for rank, layer in enumerate(LAYERS):
        allowed = set(LAYERS[: rank + 1])
        for path in sorted((ROOT / layer).rglob("*.py")):
            bad = project_imports(path) - allowed
            if bad:
                wrong.append(f"{path.relative_to(ROOT)} imports {', '.join(sorted(bad))}")
    assert not wrong, "\n".join(wrong)


def test_the_layering_test_sees_a_violation(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import train\nfrom model.rin import RIN\n\n\ndef f():\n    from data import loader\n")
    assert project_imports(sample) == {"train", "model", "data"}
