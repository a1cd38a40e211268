"""data/sources.json: complete for every dataset, pinned, and in agreement with ../shared/datasets/README.md."""
import re
from pathlib import Path

import pytest

import prepare_data
import prepare_vocab
from data.fetch import MANIFEST, SHARED, Manifest, file_digests

HEX40 = re.compile(r"^[0-9a-f]{40}$")
RIN = ("BDBC-KG-NLP/Recurrent_Interaction_Network_EMNLP2020", "e820b77d2a88adaa9eb930d9476e92a65286f779")
CASREL = ("EduKgs/entity_relation", "fba4533ea2595eadbb5435e9580e56584ad25b57")
BIRTE = ("neukg/BiRTE", "c135841dc4556e036968be99bcdcac08fddcc7c6")
# issue #28: every public file the project did not have, with its git blob SHA-1
ISSUE_28 = {
    "rin/webnlg/train.json": (RIN, "dataset/webnlg/train.json", "7768231688b4d8e78a8851a162cb9a3a17676ed6"),
    "rin/webnlg/test.json": (RIN, "dataset/webnlg/test.json", "f220e55023721effb4515fec584e23a28e469e62"),
    "rin/webnlg/embedding.npy": (RIN, "dataset/webnlg/embedding.npy", "088b09c73a6dbe6b128a86840a0fe2ef9c58e750"),
    "rin/webnlg/vocab.pkl": (RIN, "dataset/webnlg/vocab.pkl", "2554e78b6c1ec945c31cbefd879537bbc4825292"),
    "rin/nyt/train.json": (RIN, "dataset/nyt/train.json", "0348ddc0387859e7dcf6833a58fe582225ddb60f"),
    "rin/nyt/test.json": (RIN, "dataset/nyt/test.json", "a3df96e5c1ac20a061a003a6ed6eedd1bc9001c7"),
    "rin/nyt/embedding.npy": (RIN, "dataset/nyt/embedding.npy", "e660b973adf2f48e6368c12a15bc36365bd958fe"),
    "rin/nyt/vocab.pkl": (RIN, "dataset/nyt/vocab.pkl", "383039fe64963ca251781d6823da24a411e6d448"),
    "casrel/NYT-star/train_triples.json": (CASREL, "data/NYT-star/train_triples.json",
                                           "fa19372b0fb2b433879dbae7e251d754f38bb6db"),
    "casrel/NYT/train_triples.json": (CASREL, "data/NYT/train_triples.json",
                                      "1146fd8ac90cf3e284475d69efdfdf7e92e19efd"),
    "hrl/NYT10/train.json": (BIRTE, "datasets/NYT10/train.json", "059278e729004f4b7ff79aa6ccd2065f1c44f9d3"),
    "hrl/NYT11/train.json": (BIRTE, "datasets/NYT11/train.json", "25a1c4ede5a7736e1d0270affb814cda42420995"),
}
needs_shared = pytest.mark.skipif(not (SHARED / "README.md").exists(),
                                  reason=f"{SHARED}/README.md is absent: nothing to compare the manifest with")


@pytest.fixture(scope="module")
def manifest():
    return Manifest.load(MANIFEST)


def test_the_manifest_carries_every_file_of_issue_28(manifest):
    for relative, ((repo, commit), path, sha1) in ISSUE_28.items():
        entry = manifest.files[relative]
        assert (entry["repo"], entry["commit"], entry["path"], entry["git_sha1"]) == (repo, commit, path, sha1)


def test_every_dataset_and_the_official_vectors_are_covered(manifest):
    needed = {f for spec in prepare_data.DATASETS.values() for f in prepare_data.required_files(spec)}
    needed |= {f"{folder}/{name}" for folder in prepare_vocab.OFFICIAL_VECTORS.values()
               for name in ("embedding.npy", "vocab.pkl")}
    assert needed <= set(manifest.files)
    for relative, entry in manifest.files.items():
        assert HEX40.match(entry["commit"]) and HEX40.match(entry["git_sha1"]), relative
        assert entry["path"].endswith(Path(relative).suffix)
        assert manifest.url(relative) == (f"https://raw.githubusercontent.com/{entry['repo']}/{entry['commit']}/"
                                          f"{entry['path']}")
        assert (entry["sha256"] is None) == (entry["size"] is None), relative


@needs_shared
def test_the_manifest_agrees_with_the_shared_readme(manifest):
    text = (SHARED / "README.md").read_text(encoding="utf-8")
    inventory = re.findall(r"^\| `([^`]+)` \|[^|]*\| `([0-9a-f]{40})` \| `([0-9a-f]{64})` \|$", text, re.M)
    assert len(inventory) >= 20
    for relative, sha1, sha256 in inventory:
        assert (manifest.files[relative]["git_sha1"], manifest.files[relative]["sha256"]) == (sha1, sha256), relative
    # every full hash the README names is a manifest blob or a pinned commit
    known = {e["git_sha1"] for e in manifest.files.values()} | {e["commit"] for e in manifest.files.values()}
    assert set(re.findall(r"\b[0-9a-f]{40}\b", text)) <= known
    # the provenance table: repository, commit and path of each folder
    repo = commit = None
    rows = re.findall(r"^\| ((?:`[a-z_]+/[^`]*`(?:, )?)+) \|[^|]*\| ([^|]+) \|$", text, re.M)
    assert len(rows) >= 8
    for folders, origin in rows:
        named = re.match(r"(\S+/\S+) @ ([0-9a-f]{8,40})", origin)
        if named:
            repo, commit = named.groups()
        assert repo and ("same commit" in origin or named), origin
        for folder in re.findall(r"`([^`]+)`", folders):
            entries = [e for r, e in manifest.files.items() if r.startswith(folder)]
            assert entries, folder
            for entry in entries:
                assert entry["repo"] == repo and entry["commit"].startswith(commit), folder
                assert str(Path(entry["path"]).parent) + "/" in origin, (folder, entry["path"])


@needs_shared
def test_the_manifest_checksums_match_the_shared_files(manifest):
    present = [r for r in manifest.files if (SHARED / r).is_file()]
    assert len(present) >= 20
    for relative in present:
        expected = {key: manifest.files[relative][key] for key in ("size", "sha256", "git_sha1")}
        assert file_digests(SHARED / relative) == expected, relative
