"""The runner on a shared store: it never removes a result another run just committed, and ``wait=False``
refuses before running anything while another run holds a key it needs.

The recipe is the model stage alone on a local folder, which runs in milliseconds; the store, lock
and runner code paths are the real ones."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.dag import Node
from pipeline.recipe import Recipe
from pipeline.runner import Runner
from pipeline.store import SUCCESS, Store, StoreBusy
from stages.model import ModelParams

ROOT = Path(__file__).resolve().parents[2]


def _model_only(tmp_path: Path) -> Recipe:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    params = ModelParams(name=str(folder))
    return Recipe(name="t", path=None, nodes=[Node("model", "model")], params={"model": params}, raw={})


def test_a_result_committed_by_another_run_after_planning_is_reused_not_removed(tmp_path):
    store = Store(tmp_path / "runs")
    runner = Runner(_model_only(tmp_path), store)
    planned = runner.plan()
    decision = planned[0]
    assert decision.action == "run"
    # Between this run's plan and its execution, another run finishes the same key.
    other = store.begin("model", decision.key)
    (other / "theirs.txt").write_text("the other run's result")
    store.commit("model", decision.key, {"outputs": {"model": {"ref": "elsewhere"}}, "recipe": "other"})
    runner.plan = lambda force=None: planned  # run exactly the plan made before the other run committed
    runner.run()
    final = store.final_dir("model", decision.key)
    assert decision.action == "reuse" and "finished by another run" in decision.reasons[-1]
    assert (final / "theirs.txt").exists() and (final / SUCCESS).exists()
    assert store.manifest("model", decision.key)["recipe"] == "other"


def test_forced_rerun_still_replaces_the_result_it_planned_over(tmp_path):
    store = Store(tmp_path / "runs")
    recipe = _model_only(tmp_path)
    Runner(recipe, store).run()
    decisions = Runner(recipe, store).run(force=["model"])
    assert decisions[0].action == "run" and store.manifest("model", decisions[0].key)["recipe"] == "t"


def test_no_wait_refuses_before_running_anything_and_names_the_holder(tmp_path):
    store = Store(tmp_path / "runs")
    runner = Runner(_model_only(tmp_path), store, wait=False)
    key = runner.plan()[0].key
    code = (
        "import time\nfrom pipeline.store import Store\n"
        f"with Store({str(store.root)!r}).lock('model', {key!r}, recipe='teammate'):\n"
        "    print('held', flush=True)\n    time.sleep(30)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert "another run is computing it now (pid" in runner.plan()[0].reasons[-1]
        with pytest.raises(StoreBusy, match=rf"model \(model {key[:12]}\) by pid {holder.pid} on host"):
            runner.run()
        assert not store.partial_dir("model", key).exists() and not store.is_done("model", key)
    finally:
        holder.kill()
        holder.wait()
    assert runner.run()[0].action == "run" and store.is_done("model", key)


def test_forced_stage_starts_clean_not_from_an_earlier_attempts_files(tmp_path):
    """``--stage X`` must not resume old checkpoints left in X's partial folder (issue 12, point 5)."""
    store = Store(tmp_path / "runs")
    recipe = _model_only(tmp_path)
    key = Runner(recipe, store).plan()[0].key
    stale = store.begin("model", key) / "checkpoints" / "checkpoint-4"
    stale.mkdir(parents=True)
    planned = Runner(recipe, store).plan(force=["model"])
    assert "discarded" in "; ".join(planned[0].reasons)
    Runner(recipe, store).run(force=["model"])
    assert store.is_done("model", key) and not (store.final_dir("model", key) / "checkpoints").exists()


def test_gc_lists_abandoned_partials_and_unreferenced_results_and_deletes_only_when_asked(tmp_path, capsys):
    from pipeline import cli

    store = Store(tmp_path / "runs")
    recipe = _model_only(tmp_path)
    Runner(recipe, store).run()  # a finished result the recipe's ref points to: kept
    key = Runner(recipe, store).plan()[0].key
    old = store.begin("model", "a" * 64)  # finished, but no recipe refers to it any more
    (old / "weights.bin").write_bytes(b"x" * 5000)
    store.commit("model", "a" * 64, {"outputs": {}})
    abandoned = store.begin("cpt", "b" * 64)
    (abandoned / "checkpoint.bin").write_bytes(b"y" * 3000)
    running = store.begin("cpt", "c" * 64)  # another run is computing it: never listed, never removed
    with store.lock("cpt", "c" * 64):
        assert cli.main(["gc", "--store", str(store.root)]) == 0
        listed = capsys.readouterr().out
        assert "aaaaaaaaaaaa" in listed and "no recipe refers to it" in listed and "4.9 KiB" in listed
        assert "bbbbbbbbbbbb.partial" in listed and "abandoned partial" in listed
        assert "cccccccccccc" not in listed and key[:12] not in listed
        assert "nothing removed (dry run)" in listed
        assert store.final_dir("model", "a" * 64).exists() and abandoned.exists()  # a dry run removes nothing
        assert cli.main(["gc", "--store", str(store.root), "--delete"]) == 0
    assert "removed 2 folder(s)" in capsys.readouterr().out
    assert not store.final_dir("model", "a" * 64).exists() and not abandoned.exists()
    assert running.exists() and store.is_done("model", key)
