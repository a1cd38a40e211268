"""Input checks of RIN-format files: a missing key's error names the key that misspells it, extra fields pass,
and a triple given twice in a sentence is kept once and counted (scored gold included)."""
import json
from pathlib import Path

import pytest

from data.loader import DUPLICATE_TRIPLE, MERGED_TRIPLE, UNREAD_POS, DataError, load_sentences
from utils.scorer import Extraction, score_all

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"
LINE = {"sentText": "Bananaman was created by Steve Bright .".split(),
        "relationMentions": [{"em1Text": ["Bananaman"], "em2Text": ["Bright"], "label": "creator"}],
        "en_list": [["Bananaman"], ["Steve", "Bright"]], "pos": ["NNP", "VBD", "VBN", "IN", "NNP", "NNP", "."]}
MENTION = LINE["relationMentions"][0]


def write_file(path: Path, *records: dict) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def renamed(record: dict, old: str, new: str) -> dict:
    return {(new if key == old else key): value for key, value in record.items()}


MISSPELT = [  # (the second line, the key named, the key it was meant to be)
    (renamed(LINE, "relationMentions", "relationMention"), "relationMention", "relationMentions"),
    (renamed(LINE, "sentText", "sentTxt"), "sentTxt", "sentText"),
    (renamed(LINE, "en_list", "enList"), "enList", "en_list"),
    (LINE | {"relationMentions": [renamed(MENTION, "label", "lable")]}, "lable", "label"),
    (LINE | {"relationMentions": [renamed(MENTION, "em2Text", "em2_text")]}, "em2_text", "em2Text"),
    (LINE | {"relationMentions": [renamed(MENTION, "em1Text", "emText")]}, "emText", "em1Text"),  # em2Text is there
]


@pytest.mark.parametrize("record,key,meant", MISSPELT, ids=[key for _, key, _ in MISSPELT])
def test_a_missing_key_names_the_key_that_misspells_it(tmp_path, record, key, meant):
    path = write_file(tmp_path / "dev.json", LINE, record)
    with pytest.raises(DataError) as error:
        load_sentences(path)
    message = str(error.value)
    assert message.startswith(f"{path}:2: ") and f"{meant!r} (is {key!r} a misspelling of it?)" in message
    assert "\n" not in message


@pytest.mark.parametrize("key", ["Pos", "pso", "upos"])
def test_a_misspelled_pos_key_is_counted_as_pos_tags_are_optional(tmp_path, key):
    path = write_file(tmp_path / "a.json", renamed(LINE, "pos", key))
    sentences, report = load_sentences(path)
    assert sentences[0].pos is None
    assert report.as_dict() == {UNREAD_POS: {"count": 1, "examples": [f"{path}:1: {key!r}"]}}


def test_extra_fields_load_silently_beside_the_keys_read(tmp_path):
    """The releases' own (CoType/CopyRE NYT: articleId, sentId, entityMentions; the RIN WebNLG test: stan_ner,
    em1Label, em2Label), and keys of a user's that look like keys read, which are there too."""
    official = LINE | {"articleId": "/m/0abc", "sentId": "1", "entityMentions": [{"start": 0, "label": "PERSON",
                                                                                   "text": "Bananaman"}],
                       "stan_ner": ["O"] * 7,
                       "relationMentions": [MENTION | {"em1Label": "PERSON", "em2Label": "PERSON"}]}
    mine = LINE | {"id": 7, "upos": ["PROPN"] * 7, "pos1": [0] * 7, "relation_mentions": [], "en_lists": [],
                   "relationMentions": [MENTION | {"label_id": 3, "labels": ["creator"], "relation": "creator"}]}
    sentences, report = load_sentences(write_file(tmp_path / "a.json", official, mine))
    assert [s.triples for s in sentences] == [[((0, 1), "creator", (4, 6))]] * 2
    assert not report.counts


@pytest.mark.parametrize("scored", [False, True], ids=["train", "dev/test"])
def test_a_triple_given_twice_is_kept_once_and_counted(tmp_path, scored):
    twice = LINE | {"relationMentions": [MENTION, {"em1Text": "Bananaman", "em2Text": "Bright", "label": "creator"},
                                         MENTION | {"label": "author"}]}
    path = write_file(tmp_path / "dev.json", LINE, twice)
    sentences, report = load_sentences(path, scored=scored)
    assert sentences[1].triples == [((0, 1), "creator", (4, 6)), ((0, 1), "author", (4, 6))]
    assert report.counts == {DUPLICATE_TRIPLE: 1}
    assert report.as_dict()[DUPLICATE_TRIPLE]["examples"] == [f"{path}:2: 'Bananaman' creator 'Bright'"]
    # every scorer counts one gold triple per distinct triple: a perfect prediction scores 1.0 with gold == 3
    gold = [s.triples for s in sentences]
    perfect = [Extraction(entities=s.entities, triples=list(s.triples), probabilities=[1.0] * len(s.triples))
               for s in sentences]
    for scorer in ("ours", "official", "strings"):
        for mode, result in score_all(perfect, gold, scorer, [s.tokens for s in sentences]).items():
            assert (result["gold"], result["f1"]) == (3, 1.0), (scorer, mode)


def test_a_repeated_mention_counts_its_argument_problems_once(tmp_path):
    """'Bright' twice in the sentence: the repeat is counted for the triple, not again for its copy."""
    line = LINE | {"sentText": "Bananaman was created by Steve Bright , not Bright .".split(), "pos": None,
                   "relationMentions": [MENTION, MENTION]}
    sentences, report = load_sentences(write_file(tmp_path / "a.json", line))
    assert len(sentences[0].triples) == 1
    assert report.counts == {DUPLICATE_TRIPLE: 1, "relation argument repeated": 1}
    lost = MENTION | {"em2Text": ["Nowhere"]}  # a mention dropped (not found) and given again
    sentences, report = load_sentences(write_file(tmp_path / "b.json", LINE | {"relationMentions": [lost, lost]}))
    assert sentences[0].triples == [] and report.counts == {DUPLICATE_TRIPLE: 1, "relation argument not found": 1}


def test_two_mentions_located_on_one_triple_are_kept_once_and_said(tmp_path):
    """'Bright' (a last word, located as the en_list entity ending there) and 'Steve Bright' are one triple."""
    line = LINE | {"relationMentions": [MENTION, MENTION | {"em2Text": ["Steve", "Bright"]}]}
    path = write_file(tmp_path / "a.json", line)
    sentences, report = load_sentences(path, scored=True)
    assert sentences[0].triples == [((0, 1), "creator", (4, 6))]
    assert report.as_dict() == {MERGED_TRIPLE: {"count": 1, "examples": [
        f"{path}:1: 'Bananaman' creator 'Bright' and 'Bananaman' creator 'Steve Bright' both at "
        "'Bananaman' creator 'Steve Bright'"]}}


@pytest.mark.skipif(not (SHARED / "rin/webnlg/test.json").exists(), reason=f"real releases not found at {SHARED}")
def test_the_official_rin_test_file_loads_as_before():
    """Its extra fields (stan_ner, em1Label, em2Label) pass silently, and it lists each triple once."""
    sentences, report = load_sentences(SHARED / "rin/webnlg/test.json", scored=True)
    assert len(sentences) == 703 and sum(len(s.triples) for s in sentences) == 1581  # as the release's README
    assert DUPLICATE_TRIPLE not in report.counts and MERGED_TRIPLE not in report.counts
