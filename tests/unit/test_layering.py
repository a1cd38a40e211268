"""Imports go one way: utils (leaves) <- data <- model <- experiments <- the scripts at the top level; a script
may run another script's main() as a step of its own, never borrow its insides."""
import ast
import subprocess
import sys
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


def borrowed_from_scripts(path: Path) -> set[str]:
    """What ``path`` takes from other top-level scripts besides their main(): names imported from them, and
    attributes other than main of a script it imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    others = SCRIPTS - {path.stem}
    imported = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names if alias.name in others}
    borrowed = {f"{node.module}.{alias.name}" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and node.level == 0 and node.module in others for alias in node.names if alias.name != "main"}
    return borrowed | {f"{node.value.id}.{node.attr}" for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                       and isinstance(node.value, ast.Name) and node.value.id in imported and node.attr != "main"}


def test_scripts_take_only_each_others_main():
    wrong = [f"{path.name} uses {', '.join(sorted(bad))}" for path in sorted(ROOT.glob("*.py"))
             if (bad := borrowed_from_scripts(path))]
    assert not wrong, "\n".join(wrong)


def test_the_layering_test_sees_a_violation(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import train\nfrom model.rin import RIN\n\n\ndef f():\n    from data import loader\n")
    assert project_imports(sample) == {"train", "model", "data"}
    sample.write_text("import train\nfrom evaluate import parse_args\nfrom predict import main\n\ntrain.main([])\n"
                      "train.log.info('x')\n")
    assert borrowed_from_scripts(sample) == {"evaluate.parse_args", "train.log"}


def test_leaves_load_without_torch():
    """utils/ is what every layer imports: only utils/machine.py (devices, threads, seeds) loads torch, whose
    import takes seconds, so paths, files, flags, errors, CPU facts and the vocabulary stay quick to import."""
    light = sorted(p.stem for p in (ROOT / "utils").glob("*.py") if p.stem not in ("__init__", "machine"))
    code = f"import sys\nfor m in {light!r}: __import__('utils.' + m)\nprint('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False", f"one of {light} imports torch"


def test_a_module_of_ones_own_named_like_a_package_here_is_named(tmp_path):
    """A utils.py or data.py beside one's script is found before this project's packages (the script's folder
    comes first on sys.path): `from model import load_extractor` says which file is in the way."""
    import os

    for name in ("utils", "data"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / f"{name}.py").write_text("x = 1\n")
        (folder / "mine.py").write_text("from model import load_extractor\n")
        done = subprocess.run([sys.executable, "mine.py"], cwd=folder, capture_output=True, text=True,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert done.returncode == 1
        assert done.stderr.strip().splitlines()[-1] == (
            f"ImportError: {folder / name}.py is found as '{name}' before this project's {ROOT / name}/, which its "
            "model/ imports: rename that module, or run your script from another folder")
    (tmp_path / "utils" / "utils.py").unlink()
    done = subprocess.run([sys.executable, "mine.py"], cwd=tmp_path / "utils", capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stderr
