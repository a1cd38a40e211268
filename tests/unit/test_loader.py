"""Reading RIN files: official layout, positions, and every kind of bad input."""
import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from data.loader import MERGED_TRIPLE, DataError, LoadReport, bucketed_batches, collate, encode, load_sentences
from utils.vocab import Labels, Vocab

OFFICIAL_LINE = {  # the first line of the official RIN WebNLG test file, trimmed
    "sentText": "Tim Brooke-Taylor was the star of Bananaman , created by Steve Bright .".split(),
    "relationMentions": [{"em1Text": ["Bananaman"], "em2Text": ["Bright"], "label": "creator",
                          "em1Label": "LOCATION", "em2Label": "PERSON"},
                         {"em1Text": ["Bananaman"], "em2Text": ["Brooke-Taylor"], "label": "starring"}],
    "pos": "NNP NNP VBD DT NN IN NNP , VBN IN NNP NNP .".split(),
    "en_list": [["Tim", "Brooke-Taylor"], ["Bananaman"], ["Steve", "Bright"]],
    "stan_ner": ["O"] * 13,
}


def write_lines(path, records):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_official_line_loads_with_whole_spans(tmp_path):
    sentences, report = load_sentences(write_lines(tmp_path / "a.json", [OFFICIAL_LINE]))
    (sentence,) = sentences
    assert sentence.entities == [(0, 2), (6, 7), (10, 12)]
    assert sentence.triples == [((6, 7), "creator", (10, 12)), ((6, 7), "starring", (0, 2))]
    assert not report.counts


def test_the_format_documented_for_users_loads_as_described(tmp_path):
    """dataset/README.md, "Your own data": its example line loads with whole spans and no repair."""
    text = (Path(__file__).resolve().parents[2] / "dataset" / "README.md").read_text(encoding="utf-8")
    example = text.split("## Your own data", 1)[1].split("```json\n", 1)[1].split("\n```", 1)[0]
    sentences, report = load_sentences(write_lines(tmp_path / "mine.json", [example]))
    (sentence,) = sentences
    assert sentence.entities == [(0, 1), (4, 6)] and sentence.pos[0] == "NNP"
    assert sentence.triples == [((0, 1), "creator", (4, 6))]
    assert not report.counts


def test_line_separators_inside_json_strings_are_text(tmp_path):
    """U+2028 and U+0085 are legal inside a JSON string (json.dumps(ensure_ascii=False) writes them as they are):
    lines end at newlines only, and line numbers stay the editor's."""
    odd = OFFICIAL_LINE | {"sentText": ["Tim\u2028", *OFFICIAL_LINE["sentText"][1:-1], ".\u0085"]}
    path = tmp_path / "a.json"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in (odd, OFFICIAL_LINE)), encoding="utf-8")
    sentences, _ = load_sentences(path)
    assert [s.tokens[0] for s in sentences] == ["Tim\u2028", "Tim"] and sentences[1].where.endswith(":2")


def test_json_array_is_accepted(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps([OFFICIAL_LINE, OFFICIAL_LINE], indent=1))
    sentences, _ = load_sentences(path)
    assert len(sentences) == 2
    second = 1 + json.dumps([OFFICIAL_LINE], indent=1).count("\n")  # the line where the second item starts
    assert sentences[1].where.endswith(f":{second}")


def test_malformed_line_names_file_and_line(tmp_path):
    path = write_lines(tmp_path / "bad.json", [OFFICIAL_LINE, '{"sentText": [', OFFICIAL_LINE])
    with pytest.raises(DataError, match=r"bad.json:2: malformed JSON"):
        load_sentences(path)
    cut = write_lines(tmp_path / "cut.json", ['{"sentText": ["a", "b'])  # json's own reason stops at "starting at"
    with pytest.raises(DataError, match=r"cut.json:1: malformed JSON: Unterminated string starting at column 20 \("):
        load_sentences(cut)


def test_missing_field(tmp_path):
    record = {k: v for k, v in OFFICIAL_LINE.items() if k != "en_list"}
    with pytest.raises(DataError, match=r":1: missing field 'en_list'"):
        load_sentences(write_lines(tmp_path / "a.json", [record]))
    broken = dict(OFFICIAL_LINE, relationMentions=[{"em1Text": ["Bananaman"]}])
    with pytest.raises(DataError, match="relation mention without 'em2Text'"):
        load_sentences(write_lines(tmp_path / "b.json", [broken]))
    wrong_pos = dict(OFFICIAL_LINE, pos=["NN"])
    with pytest.raises(DataError, match="1 POS tags for 13 tokens"):
        load_sentences(write_lines(tmp_path / "c.json", [wrong_pos]))


def test_empty_sentence_is_skipped_and_counted(tmp_path):
    empty = {"sentText": [], "relationMentions": [], "en_list": []}
    sentences, report = load_sentences(write_lines(tmp_path / "a.json", [empty, OFFICIAL_LINE]))
    assert len(sentences) == 1
    assert report.counts["empty sentence skipped"] == 1
    assert report.examples["empty sentence skipped"] == [f"{tmp_path / 'a.json'}:1"]
    assert len(load_sentences(tmp_path / "a.json", scored=True)[0]) == 1  # nothing of its gold is lost
    empty["relationMentions"] = [{"em1Text": "Anna", "em2Text": "Globex", "label": "employer"}]  # scored, its gold
    write_lines(tmp_path / "a.json", [empty, OFFICIAL_LINE])                                  # would leave recall
    assert len(load_sentences(tmp_path / "a.json")[0]) == 1  # training data: skipped, counted
    with pytest.raises(DataError, match=r"a.json:1: an empty sentence with 1 gold relation mention, which cannot be"):
        load_sentences(tmp_path / "a.json", scored=True)


def test_entity_not_in_sentence_and_argument_not_found(tmp_path):
    record = dict(OFFICIAL_LINE, en_list=OFFICIAL_LINE["en_list"] + [["Gotham"], []],
                  relationMentions=OFFICIAL_LINE["relationMentions"]
                  + [{"em1Text": ["Nowhere"], "em2Text": ["Bright"], "label": "creator"}])
    sentences, report = load_sentences(write_lines(tmp_path / "a.json", [record]))
    assert report.counts["en_list entity not in sentence"] == 1
    assert report.examples["empty en_list entity (skipped)"] == [f"{tmp_path / 'a.json'}:1"]
    assert report.counts["relation argument not found"] == 1
    assert len(sentences[0].triples) == 2  # the unfindable triple is dropped, and counted


def test_whole_entity_not_in_the_sentence_is_counted_in_train_and_refused_in_gold(tmp_path):
    """"John Bright" is not in the sentence: training locates it by its last word (Steve Bright's span), counted;
    gold cannot be scored on an exact span that is not there, so it stops with file:line."""
    record = dict(OFFICIAL_LINE, relationMentions=OFFICIAL_LINE["relationMentions"]
                  + [{"em1Text": ["Bananaman"], "em2Text": ["John", "Bright"], "label": "creator"}])
    sentences, report = load_sentences(write_lines(tmp_path / "a.json", [record]))
    assert report.counts["relation argument whole entity not in sentence"] == 1
    # located on "Steve Bright", the en_list entity ending at "Bright": the triple given first, kept once
    assert sentences[0].triples == [((6, 7), "creator", (10, 12)), ((6, 7), "starring", (0, 2))]
    assert report.counts[MERGED_TRIPLE] == 1
    with pytest.raises(DataError, match=r"a\.json:1: em2Text 'John Bright' \(creator\) is not in the sentence"):
        load_sentences(tmp_path / "a.json", scored=True)


def test_a_word_en_list_names_by_itself_is_not_widened_to_the_entity_ending_on_it(tmp_path):
    """WebNLG exact: 'Mendrisio' (the city) inside 'Accademia di Architettura di Mendrisio' is the word alone in the
    gold triple, and 'Ohio' beside 'Cuyahoga County , Ohio' stays a triple of its own; the tags and the relation
    cells (last tokens) are those of the reading that widened them, so training is unchanged."""
    academy = "Accademia di Architettura di Mendrisio".split()
    record = {"sentText": academy + "is in Cuyahoga County , Ohio .".split(),
              "en_list": [academy, ["Mendrisio"], "Cuyahoga County , Ohio".split(), ["Ohio"]],
              "relationMentions": [{"em1Text": academy, "em2Text": ["Mendrisio"], "label": "city"},
                                   {"em1Text": academy, "em2Text": "Cuyahoga County , Ohio".split(), "label": "in"},
                                   {"em1Text": academy, "em2Text": ["Ohio"], "label": "in"}]}
    sentences, report = load_sentences(write_lines(tmp_path / "a.json", [record]), scored=True)
    assert sentences[0].triples == [((0, 5), "city", (4, 5)), ((0, 5), "in", (7, 11)), ((0, 5), "in", (10, 11))]
    assert sentences[0].entities == [(0, 5), (7, 11)]  # BIOES holds the longer entities, as before
    assert MERGED_TRIPLE not in report.counts
    assert report.counts["relation argument inside a longer entity (its tags cannot be learned)"] == 2
    # a last word that en_list does not name by itself is still the entity ending there (official files)
    record["en_list"] = [academy, "Cuyahoga County , Ohio".split()]
    sentences, report = load_sentences(write_lines(tmp_path / "b.json", [record]))
    assert sentences[0].triples == [((0, 5), "city", (0, 5)), ((0, 5), "in", (7, 11))]
    assert report.counts[MERGED_TRIPLE] == 1


def test_repeated_word_takes_its_first_occurrence_and_is_counted(tmp_path):
    record = {"sentText": "Paris is big and Paris is old".split(), "en_list": [["Paris"]],
              "relationMentions": [{"em1Text": ["Paris"], "em2Text": ["old"], "label": "r"}]}
    sentences, report = load_sentences(write_lines(tmp_path / "a.json", [record]))
    assert sentences[0].triples == [((0, 1), "r", (6, 7))]
    assert report.counts["relation argument repeated"] == 1
    assert sentences[0].entities == [(0, 1), (4, 5), (6, 7)]  # every occurrence is tagged


def test_first_occurrence_wins_even_inside_a_longer_entity(tmp_path):
    """As the official loader (sentText.index): a later occurrence that ends an entity does not win."""
    inside = {"sentText": "York Minster is in York".split(), "en_list": [["York", "Minster"], ["York"]],
              "relationMentions": [{"em1Text": ["Minster"], "em2Text": ["York"], "label": "in"}]}
    whole = {**inside, "relationMentions": [{"em1Text": ["York", "Minster"], "em2Text": ["is", "in", "York"],
                                             "label": "in"}]}
    sentences, report = load_sentences(write_lines(tmp_path / "a.json", [inside, whole]))
    assert sentences[0].triples == [((0, 2), "in", (0, 1))]
    assert report.counts["relation argument inside a longer entity (its tags cannot be learned)"] == 1
    assert sentences[1].triples == [((0, 2), "in", (2, 5))]  # a whole mention is found as a whole


def test_unknown_relation_at_test_stays_gold_without_a_cell(tmp_path):
    sentences, _ = load_sentences(write_lines(tmp_path / "a.json", [OFFICIAL_LINE]))
    vocab = Vocab.build([s.tokens for s in sentences])
    labels = Labels.build(["creator"], ["NNP"])
    from data.loader import LoadReport

    report = LoadReport()
    (example,) = encode(sentences, vocab, labels, report)
    assert example.cells.tolist() == [[6, 11, 0]]
    assert len(sentences[0].triples) == 2
    assert report.counts["relation type unknown to the model (kept as gold, cannot be predicted)"] == 1
    # POS tags the labels lack (or none at all) are read as <UNK>: counted, never silent
    assert report.examples["POS tag unknown to the model (read as <UNK>)"][:2] == [
        f"{tmp_path / 'a.json'}:1: VBD", f"{tmp_path / 'a.json'}:1: DT"]
    sentences[0].pos = None
    report = LoadReport()
    encode(sentences, vocab, labels, report)
    assert report.counts == {"sentence without POS tags (read as <UNK> by a model with POS features)": 1,
                             "relation type unknown to the model (kept as gold, cannot be predicted)": 1}


def test_scored_gold_must_be_locatable(tmp_path):
    record = dict(OFFICIAL_LINE, relationMentions=[{"em1Text": ["Nowhere"], "em2Text": ["Bright"], "label": "c"}])
    path = write_lines(tmp_path / "a.json", [record])
    assert load_sentences(path)[0][0].triples == []  # training data: dropped and counted
    with pytest.raises(DataError, match=r"a.json:1: em1Text 'Nowhere' \(c\) is not in the sentence"):
        load_sentences(path, scored=True)


def test_a_mention_in_another_unicode_form_than_its_sentence_is_named_as_such(tmp_path):
    """'Café' decomposed (e + combining accent) in em1Text, composed in sentText: they print alike, so the
    message says why the argument is 'not in the sentence'; en_list's entity likewise in the load report."""
    decomposed = "Cafe\u0301"
    record = {"sentText": ["Caf\u00e9", "Oslo", "is", "in", "Oslo"], "en_list": [[decomposed], ["Os\u00adlo"]],
              "relationMentions": [{"em1Text": [decomposed], "em2Text": ["Oslo"], "label": "in"}]}
    path = write_lines(tmp_path / "a.json", [record])
    sentences, report = load_sentences(path)
    assert sentences[0].triples == []  # training data: dropped and counted, with the reason
    hint = "as written (the sentence has it in another Unicode form or with invisible characters"
    assert hint in report.examples["relation argument not found"][0]
    assert all(hint in example for example in report.examples["en_list entity not in sentence"])
    with pytest.raises(DataError, match=re.escape(f"a.json:1: em1Text '{decomposed}' (in) is not in the sentence "
                                                  f"{hint}")):
        load_sentences(path, scored=True)
    record["sentText"] = ["Caf\u00e9", "Oslo", "is", "in", "Oslo", "\u200b", "Bistro"]  # a token of a zero-width
    record["relationMentions"][0]["em1Text"] = ["Oslo", "Bistro"]                        # space between the words
    with pytest.raises(DataError, match=re.escape(f"em1Text 'Oslo Bistro' (in) is not in the sentence {hint}")):
        load_sentences(write_lines(path, [record]), scored=True)
    record["relationMentions"][0]["em1Text"] = ["Bistro"]  # simply absent: no such note
    record["sentText"] = record["sentText"][:5]
    with pytest.raises(DataError, match=r"em1Text 'Bistro' \(in\) is not in the sentence, so"):
        load_sentences(write_lines(path, [record]), scored=True)


def test_a_token_with_spaces_and_a_casrel_record_are_named(tmp_path):
    """An argument written as a string is split on spaces; a sentence whose token holds the spaces gets a note
    saying so. A CasRel-format record (text, triple_list) is named as one, not only as lacking sentText."""
    record = {"sentText": ["Anna Smith", "works", "for", "Acme"], "en_list": [],
              "relationMentions": [{"em1Text": "Anna Smith", "em2Text": "Acme", "label": "employer"}]}
    with pytest.raises(DataError, match=re.escape("em1Text 'Anna Smith' (employer) is not in the sentence as written "
                                                  "(the sentence has 'Anna Smith' as one token, and a string is split "
                                                  "on spaces: give it as a list of that one token)")):
        load_sentences(write_lines(tmp_path / "a.json", [record]), scored=True)
    record["sentText"][0] = "Anna\u00a0 Smith"  # a token of other spaces: the same note
    with pytest.raises(DataError, match="the sentence has 'Anna Smith' as one token"):
        load_sentences(write_lines(tmp_path / "a.json", [record]), scored=True)
    record["sentText"][0] = "Anna Smith"
    record["relationMentions"][0]["em1Text"] = ["Anna Smith"]
    assert load_sentences(write_lines(tmp_path / "a.json", [record]), scored=True)[0][0].triples
    casrel = {"text": "Anna Smith works for Acme", "triple_list": [["Anna Smith", "employer", "Acme"]]}
    with pytest.raises(DataError, match="a.json:1: missing field 'sentText' \\(a CasRel-format record, text and "
                                        "triple_list: prepare_data.py converts the releases"):
        load_sentences(write_lines(tmp_path / "a.json", [casrel]))
    wrapped = {"data": [dict(record, sentText=["Anna", "works"], relationMentions=[])]}  # a wrapper object
    with pytest.raises(DataError, match=re.escape("a.json:1: missing field 'sentText' (the records sit in a list "
                                                  "under 'data': the file holds one record object per line")):
        load_sentences(write_lines(tmp_path / "a.json", [wrapped]))


def test_collate_pads_and_lists_positive_cells():
    sentences_tokens = [["a", "b", "c"], ["d"]]
    vocab = Vocab.build(sentences_tokens)
    from data.loader import Example

    examples = [Example(np.array(vocab.ids(t)), np.ones(len(t), dtype=np.int64), np.zeros(len(t), dtype=np.int64),
                        np.array(c, dtype=np.int64).reshape(-1, 3))
                for t, c in zip(sentences_tokens, [[(0, 2, 1)], []], strict=True)]
    batch = collate(examples, torch.device("cpu"))
    assert batch.mask.tolist() == [[True, True, True], [True, False, False]]
    assert batch.relation_cells.tolist() == [[0, 0, 2, 1]]  # (sentence, i, j, relation)
    assert collate(examples[1:], torch.device("cpu")).relation_cells.shape == (0, 4)


def test_bucketed_batches_cover_everything_once():
    lengths = [5, 30, 6, 31, 7, 29, 8, 28, 50, 1]
    generator = torch.Generator().manual_seed(0)
    first = bucketed_batches(lengths, 3, generator)
    second = bucketed_batches(lengths, 3, generator)
    for batches in (first, second):
        assert sorted(i for b in batches for i in b) == list(range(10))
        for batch in batches:  # similar lengths share a batch
            assert max(lengths[i] for i in batch) - min(lengths[i] for i in batch) <= 22
    assert first != second  # reshuffled between epochs
    assert bucketed_batches(lengths, 3, None) == bucketed_batches(lengths, 3, None)


def test_array_items_and_errors_name_their_lines(tmp_path):
    """A JSON array's items carry the line they start on, and so do its errors (not the item's index)."""
    good, bad = json.dumps(OFFICIAL_LINE), dict(OFFICIAL_LINE, sentText=5)
    pretty = tmp_path / "pretty.json"
    pretty.write_text("[\n" + good + ",\n\n" + json.dumps(bad, indent=1) + "\n]\n")
    with pytest.raises(DataError, match=r"pretty.json:4: sentText must be"):
        load_sentences(pretty)
    broken = tmp_path / "broken.json"
    broken.write_text("[\n" + good + ",\n" + good + "\n" + good + "]")  # a comma missing before line 4
    with pytest.raises(DataError, match=r"broken.json:4: malformed JSON array: expected ',' or ']'"):
        load_sentences(broken)
    trailing = tmp_path / "trailing.json"
    trailing.write_text("[" + good + "]\n\n[]")
    with pytest.raises(DataError, match=r"trailing.json:3: malformed JSON array: text after the closing"):
        load_sentences(trailing)


def test_a_one_line_array_names_its_items(tmp_path):
    """json.dump writes an array on one line: there its items are named by index too, in errors and positions."""
    from data.loader import position

    bad = dict(OFFICIAL_LINE, sentText=5)
    one_line = write_lines(tmp_path / "one.json", [json.dumps([OFFICIAL_LINE, OFFICIAL_LINE, bad])])
    with pytest.raises(DataError, match=r"one.json:1 \(item 3\): sentText must be"):
        load_sentences(one_line)
    one_line.write_text(json.dumps([OFFICIAL_LINE]).replace('"pos"', '"pos": [], "pos"', 1)[:-1] + ", {}]")
    with pytest.raises(DataError, match=r"one.json:1 \(item 1\): the key 'pos' appears 2 times"):
        load_sentences(one_line)
    sentences, _ = load_sentences(write_lines(one_line, [json.dumps([OFFICIAL_LINE] * 2)]))
    assert [position(s.where) for s in sentences] == [{"line": 1, "item": 1}, {"line": 1, "item": 2}]
    sentences, _ = load_sentences(write_lines(one_line, [OFFICIAL_LINE, OFFICIAL_LINE]))  # JSON lines: lines only
    assert [position(s.where) for s in sentences] == [{"line": 1}, {"line": 2}]


def test_a_key_given_twice_stops_with_its_line(tmp_path):
    line = json.dumps(OFFICIAL_LINE)[:-1] + ', "sentText": ["x"]}'
    with pytest.raises(DataError, match=r"a.json:2: the key 'sentText' appears 2 times in one object"):
        load_sentences(write_lines(tmp_path / "a.json", [OFFICIAL_LINE, line]))
    (tmp_path / "b.json").write_text("[\n" + json.dumps(OFFICIAL_LINE) + ",\n" + line + "]")
    with pytest.raises(DataError, match=r"b.json:3 \(item 2\): the key 'sentText' appears 2 times"):
        load_sentences(tmp_path / "b.json")


def test_a_byte_order_mark_is_allowed_and_one_pretty_object_is_explained(tmp_path):
    path = tmp_path / "bom.json"
    path.write_text(json.dumps(OFFICIAL_LINE) + "\n", encoding="utf-8-sig")
    assert len(load_sentences(path)[0]) == 1
    path.write_text(json.dumps(OFFICIAL_LINE, indent=2))
    with pytest.raises(DataError, match=r"bom.json:1: malformed JSON: .*one JSON object per line, or one JSON array"):
        load_sentences(path)


def test_a_report_logs_problems_as_warnings_and_provenance_as_information(caplog):
    report = LoadReport()
    report.add("entity span from entity lexicon", "a.json:1")
    report.add("duplicate triple removed", "a.json:2")
    with caplog.at_level(logging.INFO, logger="data.loader"):
        report.log("webnlg/train", notes=("entity span from",))
    levels = {record.getMessage().split(" x ")[1].split(",")[0]: record.levelno for record in caplog.records}
    assert levels == {"entity span from entity lexicon": logging.INFO, "duplicate triple removed": logging.WARNING}
