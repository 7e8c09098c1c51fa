"""A malformed source file stops the corpus stage with the file and line named, and nothing is marked done."""

from __future__ import annotations

import json

import pytest

from pipeline.recipe import load_recipe
from pipeline.runner import Runner
from pipeline.store import SUCCESS, Store
from stages.base import StageError
from tests.conftest import stdlib_docstrings, tiny_recipe

GOOD = "".join(json.dumps({"text": text}) + "\n" for text in stdlib_docstrings(20)).encode()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (GOOD + b'{"text": "a line cut short\n' + GOOD, r"general\.jsonl:21: not valid JSON"),
        (GOOD + '{"text": "caf\u00e9 au lait"}\n'.encode("latin-1"), r"general\.jsonl:21: not valid UTF-8 .*re-encode"),
        (b"", r"general\.jsonl: empty file"),
    ],
    ids=["bad JSON line", "wrong encoding", "empty file"],
)
def test_malformed_general_source_is_named_and_nothing_is_done(tmp_path, tiny_model, content, message):
    general = tmp_path / "general.jsonl"
    general.write_bytes(content)
    store = Store(tmp_path / "runs")
    runner = Runner(load_recipe(str(tiny_recipe(tmp_path / "bad.yaml", tiny_model, general))), store)
    with pytest.raises(StageError, match=message):
        runner.run(until="corpus")
    done = {path.parent.parent.name for path in (tmp_path / "runs").rglob(SUCCESS)}
    assert done <= {"model"}, f"only the model stage, which ran first, may be done; done: {done}"
