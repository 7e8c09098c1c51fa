"""The console shows the pipeline's lines and warnings; library logs go to each stage's stage.log.

A real subprocess runs the tiny recipe up to ``pack`` (model, corpus, pack: datatrove's local
executor with worker processes and in-process tasks) with the console configured as ``cli.main``
does, once quiet and once ``--verbose``; its whole stdout and stderr are checked. No mocks.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import tiny_recipe

ROOT = Path(__file__).resolve().parents[2]
STATS_MARKERS = ("📉📉📉", "Stats:", "Launching pipeline for rank")
LM_EVAL_LINE = "lm-eval info line from the probe"
TRANSFORMERS_WARNING = "transformers warning from the probe"

SCRIPT = (
    textwrap.dedent(
        """
    import logging
    import sys

    from pipeline.recipe import load_recipe
    from pipeline.runner import Runner, configure_console, route_library_logs
    from pipeline.store import Store

    recipe, store, verbose = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    configure_console(verbose=verbose)
    runner = Runner(load_recipe(recipe), Store(store))
    decisions = runner.run(until="pack")
    # Library loggers as lm-eval and transformers name them, after the stages configured them.
    route_library_logs()
    import transformers.utils.logging

    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(sys.argv[4])  # transformers' "Loading weights" bar: verbose only
    logging.getLogger("lm_eval.evaluator").info("LM_EVAL_LINE")
    transformers.utils.logging.get_logger("transformers.probe").warning("TRANSFORMERS_WARNING")
    print("folders", " ".join(f"{d.node.stage}={runner.store.final_dir(d.node.stage, d.key)}" for d in decisions))
    """
    )
    .replace("LM_EVAL_LINE", LM_EVAL_LINE)
    .replace("TRANSFORMERS_WARNING", TRANSFORMERS_WARNING)
)


def _run(tmp_path: Path, recipe: Path, verbose: bool, model: Path) -> tuple[str, dict[str, Path]]:
    store = tmp_path / f"runs_{int(verbose)}"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("DAPT_VERBOSE", None)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(recipe), str(store), "1" if verbose else "0", str(model)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("folders "))
    folders = {stage: Path(folder) for stage, folder in (item.split("=", 1) for item in line.split()[1:])}
    return output, folders


@pytest.fixture(scope="module")
def recipe(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, general_jsonl: Path) -> Path:
    return tiny_recipe(tmp_path_factory.mktemp("quiet") / "quiet.yaml", tiny_model, general_jsonl)


def test_quiet_console_keeps_library_logs_in_stage_log(tmp_path: Path, recipe: Path, tiny_model: Path) -> None:
    output, folders = _run(tmp_path, recipe, verbose=False, model=tiny_model)
    assert "Loading weights" not in output
    for number, stage in enumerate(("model", "corpus", "pack"), 1):
        assert f"[{number}/3] {stage}: running" in output
    for marker in STATS_MARKERS:
        assert marker not in output, f"{marker!r} reached the console:\n{output[-3000:]}"
    assert LM_EVAL_LINE not in output
    assert output.count(TRANSFORMERS_WARNING) == 1  # warnings still show, once (not also by transformers' handler)
    corpus_log = (folders["corpus"] / "stage.log").read_text(encoding="utf-8")
    assert "📉📉📉 Stats: All" in corpus_log  # datatrove's merged stats table, forwarded from loguru
    assert "corpus ingest:" in corpus_log  # the stage's own logger still lands there
    pack_log = (folders["pack"] / "stage.log").read_text(encoding="utf-8")
    assert "Launching pipeline for rank=0" in pack_log  # an in-process datatrove task's lines
    # Worker processes' lines stay in datatrove's per-task logs, kept under the stage's folder.
    task_logs = list((folders["corpus"] / "work" / "logs" / "clean" / "logs").glob("task_*.log"))
    assert task_logs and "Stats: Task" in task_logs[0].read_text(encoding="utf-8")


def test_verbose_console_shows_library_logs(tmp_path: Path, recipe: Path, tiny_model: Path) -> None:
    output, folders = _run(tmp_path, recipe, verbose=True, model=tiny_model)
    assert "Loading weights" in output
    assert "[1/3] model: running" in output
    assert "📉📉📉 Stats: All" in output  # stage process, through stdlib logging
    assert "Launching pipeline for rank=1" in output  # a worker process's task, to its stderr
    assert LM_EVAL_LINE in output
    assert output.count(TRANSFORMERS_WARNING) == 1
    assert "📉📉📉 Stats: All" in (folders["corpus"] / "stage.log").read_text(encoding="utf-8")
