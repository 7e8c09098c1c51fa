"""Ctrl-C during a training stage prints one line: the stage, the last complete checkpoint kept, the command
that resumes it; the exit status is 130 (interrupted), not 1. A real ``python -m pipeline run``, no mocks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import tiny_recipe

ROOT = Path(__file__).resolve().parents[2]


def test_ctrl_c_names_the_stage_the_checkpoint_and_the_resume_command(tmp_path, tiny_model, general_jsonl):
    recipe = tiny_recipe(
        tmp_path / "interrupted.yaml",
        tiny_model,
        general_jsonl,
        cpt={"max_tokens": 65536, "save_every": 2, "eval_every": 1000},
    )
    store = tmp_path / "runs"
    command = ["run", str(recipe), "--store", str(store), "--set", "seed=1"]
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", *command],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # As from a shell: an ignored SIGINT is inherited across exec, and Python then keeps ignoring it; an
        # earlier test's library (a job executor) can leave this pytest process ignoring it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 300
    while time.time() < deadline and not list(store.glob("cpt/*.partial/checkpoints/checkpoint-*/trainer_state.json")):
        assert process.poll() is None, "the run ended before the cpt stage saved a checkpoint"
        time.sleep(0.05)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)  # what Ctrl-C sends
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    lines = [line for line in err.splitlines() if line.startswith("interrupted")]
    assert len(lines) == 1, err[-3000:]
    last = lines[0]
    assert last.startswith("interrupted during stage cpt (cpt "), last
    assert "kept: last complete checkpoint " in last and "/checkpoints/checkpoint-" in last
    assert last.endswith("resume with: python -m pipeline " + " ".join(command)), last
    assert "Traceback" not in err
