"""The quick start on a fresh machine: a copy of the project with no ../shared beside it, run as a user would.

Without network it stops with one line per file and writes nothing; with a mirror of the manifest's URL
layout (a local server with fixture files) it builds webnlg and webnlg_official.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mirror import closed_port_url, make_release, serve, snapshot
from test_prepare_data import OFFICIAL_TEST, RELEASE_FILES

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def clone(tmp_path):
    """The scripts and packages prepare_data.py needs, copied where no ../shared exists."""
    folder = tmp_path / "clone"
    folder.mkdir()
    shutil.copy2(ROOT / "prepare_data.py", folder)
    for package in ("data", "utils"):
        shutil.copytree(ROOT / package, folder / package, ignore=shutil.ignore_patterns("__pycache__"))
    assert not (tmp_path / "shared").exists()
    return folder


def prepare(clone, tmp_path, *flags, base_url):
    env = {**os.environ, "HOME": str(tmp_path / "home"), "RIN_CACHE": str(tmp_path / "cache"),
           "RIN_DATA_BASE_URL": base_url, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("XDG_CACHE_HOME", None)
    return subprocess.run([sys.executable, "prepare_data.py", "--spacy_model", "none", *flags], cwd=clone, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_offline_fresh_clone_gives_guidance_and_writes_nothing(clone, tmp_path):
    before = snapshot(clone)
    done = prepare(clone, tmp_path, "--dataset", "webnlg", base_url=closed_port_url())
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.startswith("prepare_data.py: error:")]
    assert len(lines) == 7 and "Traceback" not in done.stderr
    assert all("download it by hand to" in line and "--source DIR" in line for line in lines)
    assert "EduKgs/entity_relation/fba4533ea2595eadbb5435e9580e56584ad25b57/data/WebNLG-star/" in lines[-2]
    assert snapshot(clone) == before and not (clone / "dataset").exists()
    assert not list((tmp_path / "cache").rglob("*.*"))


@pytest.mark.slow
def test_fresh_clone_builds_webnlg_and_webnlg_official_from_a_mirror(clone, tmp_path):
    official_train = [{"sentText": f"Person{i} lives in Town{i} .".split(), "pos": ["NNP", "VBZ", "IN", "NNP", "."],
                       "en_list": [[f"Person{i}"], [f"Town{i}"]],
                       "relationMentions": [{"em1Text": [f"Person{i}"], "em2Text": [f"Town{i}"], "label": "home"}]}
                      for i in range(600)]
    files = {**RELEASE_FILES, "rin/webnlg/train.json": "".join(json.dumps(r) + "\n" for r in official_train)}
    release = make_release(tmp_path / "fixtures", files)
    with serve(release.mirror) as server:
        for dataset in ("webnlg", "webnlg_official"):
            done = prepare(clone, tmp_path, "--dataset", dataset, "--manifest", str(release.manifest),
                           base_url=server.base_url)
            assert done.returncode == 0, done.stderr
    out = clone / "dataset"
    assert (out / "webnlg" / "test.json").read_bytes() == (out / "webnlg_official" / "test.json").read_bytes()
    assert json.loads((out / "webnlg_official" / "test.json").read_text()) == OFFICIAL_TEST[0]
    report = json.loads((out / "webnlg_official" / "prepare_report.json").read_text())
    assert report["splits"]["dev"]["sentences"] == 500 and report["splits"]["train"]["sentences"] == 100
    fetched = [path for path, _ in server.requests]  # webnlg's 7 files, then only the authors' train: test is cached
    assert sorted(fetched) == sorted({release.url_path(f) for f in files if not f.startswith("hrl/")})
