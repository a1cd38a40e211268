"""score.py: another system's predicted triples against a RIN-format gold file, counted by strings."""
import json

import pytest

import score
from utils.errors import ErrorExit

GOLD = [  # whole entities in en_list: partial match scores the last words, exact the whole texts
    {"sentText": "Bananaman was created by Steve Bright .".split(),
     "relationMentions": [{"em1Text": ["Bananaman"], "em2Text": ["Bright"], "label": "creator"}],
     "en_list": [["Bananaman"], ["Steve", "Bright"]]},
    {"sentText": "Anna Smith lives in Oslo .".split(),
     "relationMentions": [{"em1Text": ["Smith"], "em2Text": ["Oslo"], "label": "residence"}],
     "en_list": [["Anna", "Smith"], ["Oslo"]]},
]


@pytest.fixture
def gold(tmp_path):
    path = tmp_path / "test.json"
    path.write_text("".join(json.dumps(record) + "\n" for record in GOLD))
    return path


def scored(tmp_path, gold, items, *flags, array=False):
    """score.py on ``items``: JSON lines, or one JSON array as CasRel writes it."""
    predictions = tmp_path / "predictions.json"
    predictions.write_text(json.dumps(items, indent=1) if array else "".join(json.dumps(i) + "\n" for i in items))
    return score.main(["--predictions", str(predictions), "--gold", str(gold), *flags])["strings"]


def test_casrel_and_evaluate_layouts_count_as_strings(tmp_path, gold):
    # CasRel's test output: texts, last words in partial match, whole entities in exact match
    casrel = [{"text": "Bananaman was created by Steve Bright .",
               "triple_list_pred": [["Bananaman", "creator", "Steve  Bright"], ["Bananaman", "creator", "Bright"]]},
              {"text": "Anna Smith lives in Oslo .", "triple_list_pred": [["Anna Smith", "birthPlace", "Oslo"]]}]
    result = scored(tmp_path, gold, casrel, "--out", str(tmp_path / "scores.json"), array=True)
    # partial: both predictions of sentence 1 key (Bananaman, creator, Bright), once; sentence 2's relation is wrong
    assert {k: result["partial"][k] for k in ("correct", "predicted", "gold")} == {"correct": 1, "predicted": 2,
                                                                                     "gold": 2}
    # exact: 'Steve Bright' (spaces normalised) is the gold object, 'Bright' alone is not
    assert {k: result["exact"][k] for k in ("correct", "predicted", "gold")} == {"correct": 1, "predicted": 3,
                                                                                   "gold": 2}
    written = json.loads((tmp_path / "scores.json").read_text())
    assert written["scores"]["strings"] == result and written["gold"] == str(gold)
    # evaluate.py's own layout (tokens, triples as objects): the gold itself scores 1
    own = [{"tokens": record["sentText"], "triples": [
        {"subject": " ".join(m["em1Text"]) if i else "Bananaman", "relation": m["label"],
         "object": "Steve Bright" if not i else "Oslo"} for m in record["relationMentions"]]}
           for i, record in enumerate(GOLD)]
    own[1]["triples"][0]["subject"] = "Anna Smith"
    assert all(scores["f1"] == 1.0 for scores in scored(tmp_path, gold, own).values())


def test_casrels_own_test_output_is_read_as_written(tmp_path, gold, capsys):
    """CasRel writes indented JSON objects one after another, its text as BERT's WordPiece tokens and its triples
    as objects: the sentences are the gold's, token boundaries aside."""
    output = [{"text": "Banana ##man was created by Steve Bright .",
               "triple_list_gold": [], "triple_list_pred": [
                   {"subject": "Bananaman", "relation": "creator", "object": "Steve Bright"}], "new": [], "lack": []},
              {"text": "Anna Smith lives in Os ##lo .", "triple_list_gold": [],
               "triple_list_pred": [{"subject": "Anna Smith", "relation": "residence", "object": "Oslo"}]}]
    path = tmp_path / "test_results.json"
    path.write_text("".join(json.dumps(item, indent=4) + "\n" for item in output))
    result = score.main(["--predictions", str(path), "--gold", str(gold)])["strings"]
    assert result["partial"]["f1"] == result["exact"]["f1"] == 1.0
    broken = path.read_text().replace('"relation": "residence",', '"relation": "residence"')
    path.write_text(broken)
    with pytest.raises(ErrorExit):
        score.main(["--predictions", str(path), "--gold", str(gold)])
    line = broken.splitlines().index('            "relation": "residence"') + 2  # the error is at the next key
    assert f"test_results.json:{line}: malformed JSON" in capsys.readouterr().err


@pytest.mark.parametrize("items, named", [
    ([{"text": "Bananaman was created by Steve Bright .", "triple_list": []}],
     "1 items for the 2 sentences of"),  # the first alike, the second missing
    ([{"text": "Anna Smith lives in Oslo .", "triple_list": []}, {"text": "Bananaman was created by Steve Bright .",
                                                                 "triple_list": []}],
     "predictions.json:1: its words differ from the gold sentence at"),  # another order, or one missing
    ([{"text": "Bananaman was created by Steve Bright .", "triple_list": [["Bananaman", "creator"]]},
      {"text": "Anna Smith lives in Oslo .", "triple_list": []}],
     "predictions.json:1: triple_list item 1: ['Bananaman', 'creator'] is not [subject, relation, object]"),
    ([{"text": "Bananaman was created by Steve Bright .", "triples": [{"subject": "Bananaman", "object": "Bright"}]},
      {"text": "Anna Smith lives in Oslo .", "triples": []}], "predictions.json:1: triples item 1: no relation"),
    ([{"sentence": "Bananaman was created by Steve Bright .", "triple_list": []}],
     "predictions.json:1: no text or sentText or tokens (keys here: sentence, triple_list)"),
    ([{"text": "Bananaman was created by Steve Bright .", "triple_list": [[" ", "creator", "Bright"]]}],
     "predictions.json:1: triple_list item 1: an empty subject, relation or object"),
    ([["Bananaman", "creator", "Bright"]],  # a file starting with '[' is one array: its items are the strings
     "predictions.json:1 (item 1): a JSON str, not an object with the sentence and its triples"),
])
def test_bad_predictions_are_one_line_naming_the_item(tmp_path, gold, capsys, items, named):
    with pytest.raises(ErrorExit):
        scored(tmp_path, gold, items)
    assert named in capsys.readouterr().err


def test_the_scores_file_never_replaces_an_input(tmp_path, gold, capsys):
    with pytest.raises(ErrorExit):
        scored(tmp_path, gold, [], "--out", str(gold))
    assert "one of the files scored; name another" in capsys.readouterr().err
    assert json.loads(gold.read_text().splitlines()[0]) == GOLD[0]


def test_what_can_never_count_is_said(tmp_path, gold, capsys):
    """Texts tokenised, cased or spelled otherwise than the gold's words, and relations the gold never names,
    would lower the scores unexplained: counted in warnings, the scores as they are."""
    items = [{"text": "Bananaman was created by Steve Bright .",
              "triple_list": [["bananaman", "creator", "Bright"], ["Bananaman", "created_by", "Bright"]]},
             {"text": "Anna Smith lives in Oslo .", "triple_list": [["Anna Smith", "residence", "Oslo ."]]}]
    result = scored(tmp_path, gold, items)
    said = capsys.readouterr().err
    assert result["partial"]["correct"] == 0  # (Smith, residence, .) is no gold triple, though 'Oslo .' is words
    assert ("1 predicted subjects and objects are no run of their gold sentence's words, never correct in exact "
            "match (tokenised, cased or normalised otherwise than the gold?), e.g.") in said
    assert "predictions.json:1: 'bananaman'" in said and "'Oslo .'" not in said
    assert "1 predicted triples name relations the gold never uses" in said and "'created_by'" in said


def test_missing_files_name_their_flag(tmp_path, gold, capsys):
    with pytest.raises(ErrorExit):
        score.main(["--predictions", str(gold), "--gold", str(tmp_path / "nowhere.json")])
    assert f"--gold {tmp_path / 'nowhere.json'}: no such file" in capsys.readouterr().err
