"""prepare_data.py on small fixtures of every input format and quirk, and on the real releases."""
import functools
import hashlib
import http.server
import json
import tarfile
import threading
from pathlib import Path

import pytest

import prepare_data
from data.convert import noun_compound_span
from data.loader import DataError, load_sentences

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"
NO_TAGGER = ["--spacy_model", "none"]


def casrel(items):
    return json.dumps([{"text": text, "triple_list": triples} for text, triples in items], ensure_ascii=False)


STAR_TRAIN = [  # last-word release (WebNLG*/NYT* style)
    ("Alan Bean was born in Wheeler , Texas .", [["Bean", "birthPlace", "Texas"], ["Bean", "birthPlace", "Texas"]]),
    ("He visited Medellin and Bogota .", [["He", "visited", "Medellin"]]),
    ("The University of Texas at Austin is in Austin .", [["Austin", "city", "Austin"]]),
    ("Nothing here .", [["Ghost", "rel", "here"]]),
    ("Baku Turkish Martyrs ' Memorial is in Baku .", [["Memorial", "location", "Baku"]]),
    ("Alan Bean visited the Moon .", [["Bean", "visited", "Moon"]]),  # not in the exact release
]
EXACT_SPANS = [  # the exact release of some of the same sentences
    ("Alan Bean was born in Wheeler , Texas .", [["Alan Bean", "birthPlace", "Texas"]]),
    ("He visited Medellín and Bogota .", [["He", "visited", "Medellín"]]),
    ("The University of Texas at Austin is in Austin .",
     [["University of Texas at Austin", "city", "Austin"], ["University of Texas", "city", "Austin"]]),
    ("Baku Turkish Martyrs ' Memorial is in Baku .", [["Baku Turkish Martyrs ' Memorial", "location", "Baku"]]),
]
OFFICIAL_TEST = [{"sentText": ["A", "B", "."], "relationMentions": [{"em1Text": ["A"], "em2Text": ["B"],
                                                                      "label": "birthPlace"}],
                  "pos": ["NN", "NN", "."], "en_list": [["A"], ["B"]]}]


def digest(path: Path) -> dict:
    data = path.read_bytes()
    return {"sha256": hashlib.sha256(data).hexdigest(), "git_sha1": prepare_data.git_blob_sha1(data)}


@pytest.fixture
def release(tmp_path, monkeypatch):
    """A source folder in the published layout (WebNLG* + WebNLG + official test + HRL) and its checksums."""
    root = tmp_path / "source"
    files = {
        "casrel/WebNLG-star/train_triples.json": casrel(STAR_TRAIN),
        "casrel/WebNLG-star/val_triples.json": casrel(STAR_TRAIN[:2]),
        "casrel/WebNLG-star/test_triples.json": casrel([("A B .", [["A", "birthPlace", "B"]])]),
        "casrel/WebNLG/train_triples.json": casrel(EXACT_SPANS),
        "casrel/WebNLG/val_triples.json": casrel([]),
        "casrel/WebNLG/test_triples.json": casrel([]),
        "rin/webnlg/test.json": "".join(json.dumps(r) + "\n" for r in OFFICIAL_TEST),
        "hrl/NYT11/dev.json": casrel([(" john smith lives in paris . ", [["john smith", "lives_in", "paris"]])]),
        "hrl/NYT11/test.json": casrel([(" café owner anna lee left . ", [["anna lee", "owns", "cafe"],
                                                                        ["bob", "knows", "anna lee"]])]),
    }
    table = {}
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        table[relative] = digest(path)
    table["hrl/NYT11/train.json"] = {"sha256": None, "git_sha1": "0123456789abcdef0123456789abcdef01234567"}
    monkeypatch.setattr(prepare_data, "CHECKSUMS", table)
    return root


def run(source, out, dataset="webnlg", *extra):
    return prepare_data.main(["--dataset", dataset, "--source", str(source), "--out", str(out), *NO_TAGGER, *extra])


def test_webnlg_fixture(release, tmp_path):
    report = run(release, tmp_path / "out")
    out = tmp_path / "out" / "webnlg"
    # the official test file passes through byte for byte
    assert (out / "test.json").read_bytes() == (release / "rin/webnlg/test.json").read_bytes()
    train = [json.loads(line) for line in (out / "train.json").read_text().splitlines()]
    assert len(train) == 5  # "Nothing here ." lost its only triple (Ghost is not a token)
    changes = report["changes"]["train"]
    assert changes["duplicate triple removed"]["count"] == 1
    assert changes["last word not among the tokens: triple dropped"]["count"] == 1
    assert changes["sentence left without triples: dropped"]["count"] == 1
    assert changes["entity span from exact release (accent/space-insensitive match)"]["count"] == 1
    # "Baku" at the start lies inside the memorial: the longer entity keeps the tags there
    assert changes["overlapping entity dropped from BIOES tags"]["count"] == 1
    assert train[0]["en_list"] == [["Alan", "Bean"], ["Texas"]]
    assert ["University", "of", "Texas", "at", "Austin"] in train[2]["en_list"]
    # a sentence the exact release lacks takes "Alan Bean" from the release's entity lexicon
    assert changes["entity span from entity lexicon"]["count"] == 1
    assert train[4]["en_list"] == [["Alan", "Bean"], ["Moon"]]
    assert report["span_sources"] == ["ExactReleaseSpans", "EntityLexicon", "the word alone"]
    assert report["splits"]["train"] == {"sentences": 5, "triples": 5, "unique_triples": 5, "entities": 9,
                                         "relation_types": 4}
    sentences, _ = load_sentences(out / "train.json")
    # the FIRST Baku, as in the official data (its loader takes sentText.index), though it lies inside the
    # memorial: the relation is counted as untaggable rather than moved to the second Baku
    assert sentences[3].triples == [((0, 5), "location", (0, 1))]
    assert train[3]["relationMentions"][0]["em1Text"] == ["Baku", "Turkish", "Martyrs", "'", "Memorial"]
    assert "pos" not in train[0]  # no tagger: POS absent, training falls back to --pos_dim 0
    assert report["rebuilt_test_vs_official"]["entity_recall"] == 1.0
    assert json.loads((out / "prepare_report.json").read_text()) == report


def test_without_entity_lexicon(release, tmp_path):
    report = run(release, tmp_path / "out", "webnlg", "--no_entity_lexicon")
    train = [json.loads(line) for line in (tmp_path / "out" / "webnlg" / "train.json").read_text().splitlines()]
    assert train[4]["en_list"] == [["Bean"], ["Moon"]]
    assert "entity span from entity lexicon" not in report["changes"]["train"]
    assert report["span_sources"] == ["ExactReleaseSpans", "the word alone"]


def test_noun_compound_span():
    tokens = ["He", "ate", "Colombian", "gram", "flour", "at", "the", "2", "big", "shops", "quickly"]
    tags = ["PRP", "VBD", "JJ", "NN", "NN", "IN", "DT", "CD", "JJ", "NNS", "RB"]
    assert noun_compound_span(tags, tokens, 5) == ((2, 5), "noun compound")
    assert noun_compound_span(tags, tokens, 10) == ((7, 10), "noun compound")  # the determiner stays out
    assert noun_compound_span(tags, tokens, 11) == (None, "word alone")  # not a noun
    assert noun_compound_span(tags, tokens, 1) == (None, "word alone")  # nothing before it to join
    assert noun_compound_span(["NN"] * 12, ["w"] * 12, 12)[0] == (4, 12)  # at most 8 tokens


def test_check_sentence_sources_counts_agreement_with_the_exact_release():
    items = [{"text": "He ate gram flour .", "triple_list": [["He", "ate", "flour"]]}]
    exact = prepare_data.ExactReleaseSpans([{"text": "He ate gram flour .", "triple_list": [["He", "ate",
                                                                                             "gram flour"]]}])
    tagged = [(["PRP", "VBD", "NN", "NN", "."], [])]
    check = prepare_data.check_sentence_sources(items, tagged, exact)
    assert check == {"arguments": 2, "named_entities_agree": 0.5, "named_entities_then_noun_compounds_agree": 1.0}


def test_agreement_scores_rebuilt_triples_against_official():
    official = {"sentText": ["New", "York", "is", "big", "."], "en_list": [["New", "York"], ["big"]],
                "relationMentions": [{"em1Text": ["York"], "em2Text": ["big"], "label": "r"}]}
    ours = {**official, "en_list": [["York"], ["big"]]}
    measured = prepare_data.agreement([ours], [official])
    assert measured["entity_recall"] == 0.5 and measured["sentences_with_identical_entities"] == 0
    assert measured["partial_triples"]["f1"] == 1.0  # same last words
    assert measured["exact_triples"]["f1"] == 0.0  # "York" is not "New York"


def test_every_relation_mention_ends_an_entity(release, tmp_path):
    run(release, tmp_path / "out")
    for split in ("train", "dev", "test"):
        assert_mentions_end_entities(tmp_path / "out" / "webnlg" / f"{split}.json")


def test_missing_split_is_reported_and_others_built(release, tmp_path):
    report = run(release, tmp_path / "out", "nyt11")
    assert report["missing"] == [{"file": "hrl/NYT11/train.json", "sha256": None,
                                  "git_sha1": "0123456789abcdef0123456789abcdef01234567"}]
    assert set(report["splits"]) == {"dev", "test"}
    test = json.loads((tmp_path / "out" / "nyt11" / "test.json").read_text())
    # accent-insensitive: "cafe" matches "café"; "bob" is nowhere: that triple is dropped and counted
    assert test["relationMentions"] == [{"em1Text": ["anna", "lee"], "em2Text": ["café"], "label": "owns"}]
    changes = report["changes"]["test"]
    assert changes["entity matched accent/space-insensitively"]["count"] == 1
    assert changes["entity not found in the tokens: triple dropped"]["count"] == 1
    assert test["sentText"][0] == "café"  # NYT11's leading/trailing spaces are gone


def test_wrong_checksum_is_refused_unless_no_verify(release, tmp_path):
    path = release / "casrel/WebNLG-star/val_triples.json"
    path.write_text(casrel(STAR_TRAIN[:1]))
    with pytest.raises(SystemExit, match="differs from the published"):
        run(release, tmp_path / "out")
    report = run(release, tmp_path / "out", "webnlg", "--no_verify")
    assert report["splits"]["dev"]["sentences"] == 1


def test_malformed_json_names_the_line(release, tmp_path, monkeypatch):
    path = release / "hrl/NYT11/dev.json"
    path.write_text('[{"text": "a b", "triple_list": []},\n{"text": "c d" "triple_list": []}]')
    monkeypatch.setitem(prepare_data.CHECKSUMS, "hrl/NYT11/dev.json", digest(path))
    with pytest.raises(DataError, match=r"dev.json:2: malformed JSON"):
        run(release, tmp_path / "out", "nyt11")


def serve(folder: Path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_download_folder_and_archive_from_local_http(release, tmp_path):
    with tarfile.open(tmp_path / "release.tar.gz", "w:gz") as bundle:
        bundle.add(release, arcname="release")
    server = serve(tmp_path)
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        local = run(release, tmp_path / "local", "nyt11")
        folder = run(f"{base}/source/", tmp_path / "from_folder", "nyt11", "--cache", str(tmp_path / "c1"))
        archive = run(f"{base}/release.tar.gz", tmp_path / "from_archive", "nyt11", "--cache", str(tmp_path / "c2"))
    finally:
        server.shutdown()
    for report, name in ((folder, "from_folder"), (archive, "from_archive")):
        assert report["splits"] == local["splits"]
        assert report["missing"][0]["file"] == "hrl/NYT11/train.json"  # a 404 is a missing split
        for split in ("dev", "test"):
            assert ((tmp_path / name / "nyt11" / f"{split}.json").read_text()
                    == (tmp_path / "local" / "nyt11" / f"{split}.json").read_text())


needs_shared = pytest.mark.skipif(not SHARED.exists(), reason=f"real releases not found at {SHARED}")


@needs_shared
def test_real_webnlg(tmp_path):
    report = prepare_data.main(["--dataset", "webnlg", "--source", str(SHARED), "--out", str(tmp_path)])
    assert [report["splits"][s]["sentences"] for s in ("train", "dev", "test")] == [5019, 500, 703]  # Table 2
    assert (tmp_path / "webnlg" / "test.json").read_bytes() == (SHARED / "rin/webnlg/test.json").read_bytes()
    assert report["rebuilt_test_vs_official"]["pos_tag_agreement"] > 0.9
    # the span recovery, measured on test: 91.1% of entities and 83.2 exact F1 (annotation v3, 2026-11-24);
    # relations on first occurrences place every triple where the official test has it
    agreement = report["rebuilt_test_vs_official"]
    assert agreement["entity_recall"] > 0.90 and agreement["exact_triples"]["f1"] > 0.82
    # measured on train against the exact release (no test involved), noun compounds after named
    # entities find its span more often than named entities alone (73.0% vs 65.5%, 2026-11-24)
    check = report["sentence_sources_vs_exact_release"]
    assert check["named_entities_then_noun_compounds_agree"] > check["named_entities_agree"] + 0.05
    assert agreement["partial_triples"]["f1"] == 1.0
    for split in ("train", "dev", "test"):
        assert_mentions_end_entities(tmp_path / "webnlg" / f"{split}.json")
        sentences, load_report = load_sentences(tmp_path / "webnlg" / f"{split}.json")
        assert all(s.pos is not None and len(s.pos) == len(s.tokens) for s in sentences)
        assert "relation argument not found" not in load_report.counts
        # relations sit on a word's first occurrence (the official convention); where that lies inside a
        # longer entity ("Baku" in "Baku Turkish Martyrs ' Memorial ... in Baku") BIOES cannot tag it:
        # counted, and rare (2.7% of train triples when measured, 2026-11-24)
        untaggable = load_report.counts.get("relation argument inside a longer entity (its tags cannot be learned)", 0)
        assert untaggable < 0.03 * sum(len(s.triples) for s in sentences)


def assert_mentions_end_entities(path: Path) -> None:
    """Every relation mention's last token ends an en_list entity that occurs in the sentence."""
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        tokens = record["sentText"]
        ends = {tokens[i + len(e) - 1] for e in record["en_list"] for i in range(len(tokens) - len(e) + 1)
                if tokens[i:i + len(e)] == e}
        for mention in record["relationMentions"]:
            assert mention["em1Text"][-1] in ends and mention["em2Text"][-1] in ends, (path, record)


@needs_shared
def test_real_nyt_dev_and_test(tmp_path):
    report = prepare_data.main(["--dataset", "nyt", "--source", str(SHARED), "--out", str(tmp_path), *NO_TAGGER])
    assert report["splits"]["dev"]["sentences"] == 4999  # as published (CasRel dropped one)
    assert report["splits"]["test"]["sentences"] == 5000
    assert report["splits"]["test"]["relation_types"] == 22
    assert {m["file"] for m in report["missing"]} == {"casrel/NYT/train_triples.json",
                                                       "casrel/NYT-star/train_triples.json"}
    for split in ("dev", "test"):
        assert_mentions_end_entities(tmp_path / "nyt" / f"{split}.json")
        sources = {k: v["count"] for k, v in report["changes"][split].items() if k.startswith("entity span from")}
        from_exact = sum(v for k, v in sources.items() if k.startswith("entity span from exact release"))
        assert from_exact > 0.99 * sum(sources.values())  # whole entities come from the exact release


def test_retag_and_rebuild_test(release, tmp_path):
    pytest.importorskip("spacy", reason="spaCy is an optional dependency")
    base = ["--dataset", "webnlg", "--source", str(release), "--out"]
    report = prepare_data.main([*base, str(tmp_path / "retag"), "--retag_test"])
    official = json.loads((release / "rin/webnlg/test.json").read_text())
    retagged = json.loads((tmp_path / "retag" / "webnlg" / "test.json").read_text())
    assert retagged["sentText"] == official["sentText"] and retagged["en_list"] == official["en_list"]
    assert retagged["relationMentions"] == official["relationMentions"]
    assert retagged["pos"] != official["pos"] and len(retagged["pos"]) == 3  # spaCy's tags, same tokens
    assert report["rebuilt_test_vs_official"]["pos_tag_agreement"] is not None
    prepare_data.main([*base, str(tmp_path / "rebuilt"), "--rebuild_test"])
    rebuilt = json.loads((tmp_path / "rebuilt" / "webnlg" / "test.json").read_text())
    assert rebuilt["sentText"] == ["A", "B", "."] and "stan_ner" not in rebuilt
