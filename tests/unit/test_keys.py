"""Cache keys: stable, changed by what shapes a result, unchanged by what does not."""

import pytest

from pipeline.keys import canonical_json, stage_key
from pipeline.recipe import resolve
from pipeline.runner import Runner
from pipeline.store import Store

BASE = dict(
    stage="cpt",
    version=1,
    params={"lr": 1e-4, "replay_ratio": 0.25},
    input_keys={"corpus": "abc:data"},
    external={},
    libraries={"torch": "2.13.0"},
)


def test_key_is_stable_and_ignores_key_order():
    first = stage_key(**BASE)
    reordered = dict(BASE, params={"replay_ratio": 0.25, "lr": 1e-4})
    assert first == stage_key(**BASE) == stage_key(**reordered)
    assert len(first) == 64


def test_key_changes_with_each_ingredient():
    first = stage_key(**BASE)
    changes = [
        dict(BASE, params={"lr": 2e-4, "replay_ratio": 0.25}),
        dict(BASE, version=2),
        dict(BASE, input_keys={"corpus": "abd:data"}),
        dict(BASE, external={"licenses": "f00"}),
        dict(BASE, libraries={"torch": "2.14.0"}),
        dict(BASE, stage="sft"),
    ]
    keys = {stage_key(**change) for change in changes}
    assert first not in keys and len(keys) == len(changes)


def test_canonical_json_is_compact_and_sorted():
    assert canonical_json({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'


def _raw(tmp_path, **overrides):
    raw = {
        "base_model": str(tmp_path / "model"),
        "sources": [
            {"name": "d", "kind": "domain", "type": "txt", "path": str(tmp_path / "d.txt")},
            {"name": "g", "kind": "general", "type": "txt", "path": str(tmp_path / "g.txt")},
        ],
        "corpus": {"tasks": [{"type": "reading_comprehension", "source": "d"}]},
    }
    raw.update(overrides)
    return raw


def _keys(tmp_path, raw):
    (tmp_path / "model").mkdir(exist_ok=True)
    (tmp_path / "model" / "config.json").write_text("{}")
    for name in ("d.txt", "g.txt"):
        (tmp_path / name).write_text(f"text of {name}")
    recipe = resolve(raw, default_name="t", source="test")
    return {d.node.name: d.key for d in Runner(recipe, Store(tmp_path / "runs")).plan()}


def test_cosmetic_params_do_not_change_keys(tmp_path):
    plain = _keys(tmp_path, _raw(tmp_path))
    cosmetic = _keys(tmp_path, _raw(tmp_path, report={"title": "Another title"}, cpt={"report_to": ["tensorboard"]}))
    assert plain == cosmetic


def test_param_change_changes_its_key_and_downstream_only(tmp_path):
    plain = _keys(tmp_path, _raw(tmp_path))
    changed = _keys(tmp_path, _raw(tmp_path, sft={"learning_rate": 1e-5}))
    differing = {name for name in plain if plain[name] != changed[name]}
    assert differing == {"sft", "merge", "eval_sft", "eval_merge", "report"}


def test_source_content_change_changes_corpus_key(tmp_path):
    plain = _keys(tmp_path, _raw(tmp_path))
    (tmp_path / "d.txt").write_text("edited text")
    raw = _raw(tmp_path)
    recipe = resolve(raw, default_name="t", source="test")
    edited = {d.node.name: d.key for d in Runner(recipe, Store(tmp_path / "runs")).plan()}
    assert edited["corpus"] != plain["corpus"] and edited["model"] == plain["model"]


def test_an_option_added_later_changes_no_key_until_it_is_set(tmp_path):
    """pack.sources and a translation task's instructions default to None (the behaviour from before they
    existed) and stay out of the dump while unset, so every stored result keeps its key."""
    from stages.corpus import TaskSpec
    from stages.pack import PackParams

    assert "sources" not in PackParams().model_dump(mode="json")
    assert PackParams(sources=["d"]).model_dump(mode="json")["sources"] == ["d"]
    assert "instructions" not in TaskSpec(type="translation", source="s").model_dump(mode="json")
    plain = _keys(tmp_path, _raw(tmp_path))
    chosen = _keys(tmp_path, _raw(tmp_path, pack={"sources": ["d"]}))
    assert {name for name in plain if plain[name] != chosen[name]} == {
        "pack", "cpt", "sft", "merge", "eval_cpt", "eval_sft", "eval_merge", "report"
    }  # fmt: skip


def test_instructions_are_refused_on_a_task_that_is_not_translation():
    from pydantic import ValidationError

    from stages.corpus import TaskSpec

    with pytest.raises(ValidationError, match="only a translation task takes it"):
        TaskSpec(type="cloze", source="s", instructions="target")
