"""Corpus preparation: normalising, stable splits, malformed input named by file and line."""

import json

import pytest

from stages.base import StageError
from stages.lib.corpus_engine import assign_split
from stages.lib.sources import SourceSpec, read
from stages.lib.text_blocks import normalise


def test_normalise_cleans_whitespace_controls_and_unicode():
    text = "Cafe\u0301  \r\nline\x07 two   \n\n\n\n\nend  "
    assert normalise(text) == "Caf\u00e9\nline two\n\nend"


def test_split_is_stable_and_near_its_fractions():
    ids = [f"doc{i}" for i in range(4000)]
    splits = [assign_split(i, 0, 0.1, 0.05) for i in ids]
    assert splits == [assign_split(i, 0, 0.1, 0.05) for i in ids]
    share = {s: splits.count(s) / len(ids) for s in ("train", "validation", "eval")}
    assert abs(share["validation"] - 0.1) < 0.02 and abs(share["eval"] - 0.05) < 0.015
    assert [assign_split(i, 1, 0.1, 0.05) for i in ids] != splits  # the seed reshuffles


def _jsonl(tmp_path, content: bytes):
    path = tmp_path / "data.jsonl"
    path.write_bytes(content)
    return SourceSpec(name="s", kind="domain", type="jsonl", path=str(path)), path


def test_bad_json_line_names_file_and_line(tmp_path):
    spec, path = _jsonl(tmp_path, b'{"text": "fine"}\n\n{"text": broken}\n')
    with pytest.raises(StageError, match=rf"{path}:3: not valid JSON"):
        list(read(spec))


def test_missing_text_field_names_line(tmp_path):
    spec, path = _jsonl(tmp_path, b'{"text": "fine"}\n{"body": "no text"}\n')
    with pytest.raises(StageError, match=rf"{path}:2: expected an object with a string field 'text'"):
        list(read(spec))


def test_wrong_encoding_names_file_and_line(tmp_path):
    spec, path = _jsonl(tmp_path, b'{"text": "ok"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(StageError, match=rf"{path}:2: not valid UTF-8"):
        list(read(spec))


def test_empty_file_is_refused(tmp_path):
    spec, path = _jsonl(tmp_path, b"  \n")
    with pytest.raises(StageError, match=rf"{path}: empty file"):
        list(read(spec))


def test_jsonl_keeps_provenance(tmp_path):
    spec, _ = _jsonl(tmp_path, json.dumps({"text": "hello", "url": "x"}).encode() + b"\n")
    (doc,) = list(read(spec.model_copy(update={"license": "CC0-1.0"})))
    assert doc["source"] == "s" and doc["meta"] == {"url": "x", "license": "CC0-1.0"} and doc["id"].endswith(":1")


def test_licensedcode_adapter_reads_real_licenses():
    spec = SourceSpec(name="licenses", kind="domain", type="licensedcode", max_documents=5)
    docs = [doc for doc in read(spec) if "drop" not in doc]
    assert len(docs) == 5
    for doc in docs:
        assert doc["id"].startswith("license:") and doc["meta"]["name"] and doc["meta"]["spdx"]
        assert "---" not in doc["text"][:5] and len(doc["text"]) > 50


def test_licensedcode_skipped_entries_come_with_a_reason():
    spec = SourceSpec(name="licenses", kind="domain", type="licensedcode")
    drops = [doc["drop"] for doc in read(spec) if "drop" in doc]
    assert drops and set(drops) <= {
        "license entry is_deprecated",
        "license entry is_unknown",
        "license entry is_generic",
    }
