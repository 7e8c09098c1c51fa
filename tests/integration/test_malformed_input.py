"""A malformed source file stops the recipe when it is loaded, with the file and line named, before any stage.

The check used to fire inside the corpus stage; reading the lines at load time costs a pass over the
file and saves every stage that would have run before it."""

from __future__ import annotations

import json

import pytest

from pipeline.recipe import RecipeError, load_recipe
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
    recipe = tiny_recipe(tmp_path / "bad.yaml", tiny_model, general)
    with pytest.raises(RecipeError, match=message):
        Runner(load_recipe(str(recipe)), store).run(until="corpus")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob(SUCCESS))


def test_file_that_breaks_after_loading_is_still_named_by_the_corpus_stage(tmp_path, tiny_model):
    """A file edited between load and run (or read by another machine) still fails inside the stage, named."""
    general = tmp_path / "general.jsonl"
    general.write_bytes(GOOD)
    store = Store(tmp_path / "runs")
    runner = Runner(load_recipe(str(tiny_recipe(tmp_path / "late.yaml", tiny_model, general))), store)
    general.write_bytes(GOOD + b'{"text": "a line cut short\n')
    with pytest.raises(StageError, match=r"general\.jsonl:21: not valid JSON"):
        runner.run(until="corpus")
    done = {path.parent.parent.name for path in (tmp_path / "runs").rglob(SUCCESS)}
    assert done <= {"model"}, f"only the model stage, which ran first, may be done; done: {done}"
