"""predict.py's input file: line endings, byte-order marks, raw and JSON lines, and every mistake named by line."""
import json
import os
import subprocess

import pytest

from predict import parse_args, read_sentences
from utils.errors import InputError


def write(tmp_path, data: bytes):
    path = tmp_path / "in.txt"
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize("data", [b"A b .\nC d .\n", b"A b .\r\nC d .\r\n", b"A b .\rC d .\r",
                                  b"\xef\xbb\xbfA b .\nC d .", "A b .\nC d .".encode("utf-8-sig")])
def test_every_line_ending_and_a_byte_order_mark(tmp_path, data):
    assert read_sentences(write(tmp_path, data), "strict", "auto")[0] == ["A b .", "C d ."]


def test_a_byte_order_mark_before_a_json_line(tmp_path):
    path = write(tmp_path, "\ufeff".encode() + json.dumps({"text": "A b ."}).encode() + b"\n")
    assert read_sentences(path, "strict", "auto")[0] == ["A b ."]


def test_files_joined_by_cat_keep_each_byte_order_mark_out_of_the_text(tmp_path):
    second = "\ufeff".encode() + json.dumps({"text": "C d ."}).encode()  # b.jsonl's own mark, mid-file
    path = write(tmp_path, json.dumps({"text": "A b ."}).encode() + b"\n" + second + b"\n")
    assert read_sentences(path, "strict", "auto")[0] == ["A b .", "C d ."]


def test_a_json_array_line_is_read_raw_with_a_warning(tmp_path, caplog):
    path = write(tmp_path, b'[{"text": "A b ."}]\nplain .\n')
    assert read_sentences(path, "strict", "auto")[0] == ['[{"text": "A b ."}]', "plain ."]
    assert "1 line(s) start with '[' (line 1 first), read as raw sentences" in caplog.text
    caplog.clear()
    read_sentences(path, "strict", "raw")
    assert not caplog.text  # asked for raw lines: nothing to say


def test_a_json_line_nested_too_deeply_is_one_line(tmp_path):
    with pytest.raises(InputError, match=r"in.txt:1: a JSON line nested too deeply to read"):
        read_sentences(write(tmp_path, b'{"text": ' + b"[" * 100_000 + b"\n"), "strict", "auto")


def test_a_closed_standard_input_is_one_line(monkeypatch):
    monkeypatch.setattr("sys.stdin", None)
    with pytest.raises(InputError, match="--input -: this process has no standard input"):
        read_sentences("-", "strict", "auto")


def test_formats_decide_what_a_line_is(tmp_path):
    lines = ['{braces} open this raw sentence .', json.dumps({"sentText": ["A", "b"]}), "", "plain ."]
    path = write(tmp_path, "\n".join(lines).encode())
    with pytest.raises(InputError, match=r"in.txt:1: malformed JSON line: .*--input_format raw"):
        read_sentences(path, "strict", "auto")
    assert read_sentences(path, "strict", "raw")[0] == lines
    with pytest.raises(InputError, match=r"in.txt:1: malformed JSON line"):
        read_sentences(path, "strict", "json")
    json_only = write(tmp_path, "\n".join(lines[1:3] + [json.dumps({"text": "plain ."})]).encode())
    assert read_sentences(json_only, "strict", "json")[0] == [["A", "b"], "", "plain ."]  # a blank line stays one


def test_a_json_lines_other_fields_are_kept_for_its_output(tmp_path):
    """An id (any field but the text) travels with its line's triples; one that predict.py writes is refused."""
    lines = [json.dumps({"id": "doc-7", "text": "A b ."}), "plain .", json.dumps({"sentText": ["C"], "pos": ["NN"]})]
    sentences, kept = read_sentences(write(tmp_path, "\n".join(lines).encode()), "strict", "auto")
    assert sentences == ["A b .", "plain .", ["C"]] and kept == [{"id": "doc-7"}, {}, {"pos": ["NN"]}]
    with pytest.raises(InputError, match=r"in.txt:1: field 'triples' is one predict.py writes for each line "
                                         r"\(entities, line, skipped, text, tokens, triples, .*\); rename it"):
        read_sentences(write(tmp_path, b'{"text": "A b .", "triples": []}\n'), "strict", "auto")
    with pytest.raises(InputError, match=r"in.txt:1: 'pos' must be a list of tags, one per token of 'sentText' \(2\)"):
        read_sentences(write(tmp_path, b'{"sentText": ["A", "b"], "pos": ["NN"]}\n'), "strict", "auto")
    with pytest.raises(InputError, match=r"in.txt:1: malformed JSON line: .*\(with --input_format json every line "
                                         r"is a JSON object; raw lines need auto or raw\)$"):
        read_sentences(write(tmp_path, b"plain .\n"), "strict", "json")


@pytest.mark.parametrize("line, message", [
    ('{"text": "a", "sentText": ["b"]}', "one 'text' or 'sentText' field, not both"),
    ('{"txt": "a"}', "needs one 'text' or 'sentText' field$"),
    ('{"text": "a", "text": "b"}', "the key 'text' appears 2 times"),
])
def test_ambiguous_json_lines_stop_with_their_line(tmp_path, line, message):
    with pytest.raises(InputError, match=r"in.txt:2: .*" + message):
        read_sentences(write(tmp_path, f"first .\n{line}\n".encode()), "strict", "auto")


def test_a_missing_input_file_names_the_flag(tmp_path):
    with pytest.raises(InputError, match=r"^--input .*absent.txt: no such file$"):
        read_sentences(str(tmp_path / "absent.txt"), "strict", "auto")


def test_a_pipe_is_read_like_a_file(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", f"printf 'A b .\\n' > {fifo}"])
    assert read_sentences(str(fifo), "strict", "auto")[0] == ["A b ."]
    writer.wait()


def test_input_format_goes_with_input_only():
    with pytest.raises(SystemExit):
        parse_args(["--model_dir", "run", "--text", "A b .", "--input_format", "json"])
