"""Two ``python -m pipeline run`` processes on one store, with recipes that share model, corpus and pack.

Both start together; each stage they share runs once (the other run waits on the key's lock, then
reuses the result), each runs its own cpt, and every folder in the store is whole: a manifest that
parses, ``_SUCCESS``, no ``.partial`` or lock-owner file left. No mocks: datatrove, the tokenizer
and transformers' Trainer all run on the tiny model and corpus of ``tests/conftest.py``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from pipeline.store import MANIFEST, SUCCESS
from tests.conftest import tiny_recipe

ROOT = Path(__file__).resolve().parents[2]
SHARED = ("model", "corpus", "pack")


def _line(log: str, node: str) -> str:
    found = re.findall(rf"\] {node}: (running|reused) \((.*)\)", log)
    assert len(found) == 1, f"expected one line for {node}, got {found}\n{log}"
    return found[0][0] + " " + found[0][1]


def test_two_runs_share_a_store_without_corrupting_it(tmp_path, tiny_model, general_jsonl):
    cpt = {"max_tokens": 1024, "eval_every": 4, "save_every": 4}
    recipes = [
        tiny_recipe(tmp_path / "alpha.yaml", tiny_model, general_jsonl, cpt={**cpt, "learning_rate": 1e-3}),
        tiny_recipe(tmp_path / "beta.yaml", tiny_model, general_jsonl, cpt={**cpt, "learning_rate": 2e-3}),
    ]
    store = tmp_path / "runs"
    env = dict(os.environ, PYTHONPATH=str(ROOT), DAPT_STORE=str(store))
    started = time.monotonic()
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "pipeline", "run", str(recipe), "--until", "cpt"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for recipe in recipes
    ]
    logs, walls = [], []
    for process in processes:
        out, _ = process.communicate(timeout=600)
        walls.append(time.monotonic() - started)
        logs.append(out)
        assert process.returncode == 0, out

    lines = {node: [_line(log, node) for log in logs] for node in (*SHARED, "cpt")}
    for node in SHARED:
        ran = [line for line in lines[node] if line.startswith("running")]
        assert len(ran) == 1, f"{node} ran {len(ran)} times: {lines[node]}"
    assert all(line.startswith("running") for line in lines["cpt"])
    waited = sum("waiting for pid" in log for log in logs)
    print(f"\nwall times: alpha {walls[0]:.1f} s, beta {walls[1]:.1f} s; runs that waited on a lock: {waited}")
    for node in SHARED:
        print(f"  {node}: " + " | ".join(lines[node]))

    # Every result whole; one folder per shared stage, one cpt per recipe; nothing half-made left behind.
    for stage, count in {"model": 1, "corpus": 1, "pack": 1, "cpt": 2}.items():
        finals = [p for p in (store / stage).iterdir() if p.is_dir() and "." not in p.name]
        assert len(finals) == count, f"{stage}: {sorted(p.name for p in (store / stage).iterdir())}"
        for final in finals:
            assert (final / SUCCESS).read_text().strip()
            manifest = json.loads((final / MANIFEST).read_text())
            assert manifest["key"].startswith(final.name) and manifest["stage"] == stage
    unfinished = (".partial", ".lock.json")
    leftovers = [p.name for p in store.glob("*/*") if p.name.endswith(unfinished) or ".unfinished" in p.name]
    assert leftovers == []
    # Each recipe's refs point at the shared results.
    for name in ("alpha", "beta"):
        refs = {node: json.loads((store / "refs" / name / f"{node}.json").read_text())["key"] for node in SHARED}
        assert all((store / node / key[:12] / SUCCESS).exists() for node, key in refs.items())
