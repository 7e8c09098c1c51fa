"""``python -m pipeline new``: the written recipe parses, keeps its comments, validates, and plans.

The files are real (a folder of Markdown, JSONL, text and Parquet files in tmp_path); the command
runs as a subprocess, as a user would run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.new_recipe import NewRecipeError, recipe_text, write_recipe
from pipeline.recipe import RecipeError, load_recipe

ROOT = Path(__file__).resolve().parents[2]
PARAGRAPH = (
    "A contract is an agreement between parties that the law will enforce. Consideration, offer and "
    "acceptance are its elements; a breach entitles the injured party to damages or specific performance. "
)
PENDING_KEYS = ("instructions", "evals", "profile", "folder", "reading_comprehension", "drop_warning")
PENDING_KEYS += ("cloze", "knowledge_probe")
"""Keys other work adds to the recipe schema; until it lands, load_recipe may name only these."""


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    docs = tmp_path / "Legal Docs"
    (docs / "sub").mkdir(parents=True)
    for n in range(4):
        (docs / f"case{n}.md").write_text(f"# Case {n}\n\n" + PARAGRAPH * 6, encoding="utf-8")
    (docs / "sub" / "notes.txt").write_text(PARAGRAPH * 5, encoding="utf-8")
    jsonl = tmp_path / "opinions.jsonl"
    jsonl.write_text("".join(json.dumps({"text": f"Opinion {n}. " + PARAGRAPH * 4}) + "\n" for n in range(5)))
    text = tmp_path / "opinions.txt"  # same stem as the JSONL: the names must still differ
    text.write_text(PARAGRAPH * 8, encoding="utf-8")
    instructions = tmp_path / "my-pairs.jsonl"
    instructions.write_text(json.dumps({"prompt": "What is consideration?", "completion": "Value exchanged."}) + "\n")
    evals = tmp_path / "bar exam.jsonl"
    evals.write_text(
        json.dumps(
            {"question": "A breach entitles the injured party to?", "choices": ["a cake", "damages"], "answer": 1}
        )
        + "\n"
    )
    return {"docs": docs, "jsonl": jsonl, "text": text, "instructions": instructions, "evals": evals}


def _check_loads(path: Path) -> list[str]:
    """Validate with load_recipe; return the problems, which may only concern keys still being added."""
    try:
        load_recipe(str(path))
    except RecipeError as exc:
        problems = str(exc).splitlines()[1:]
        unexpected = [p for p in problems if not any(key in p for key in PENDING_KEYS)]
        assert not unexpected, str(exc)
        return problems
    return []


def test_written_recipe_parses_keeps_comments_and_validates(tmp_path: Path, files: dict[str, Path]) -> None:
    path = write_recipe(
        "contracts",
        [str(files["docs"]), str(files["jsonl"]), str(files["text"])],
        instructions=str(files["instructions"]),
        evals=[str(files["evals"])],
        recipes_dir=tmp_path,
    )
    text = path.read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    assert raw["name"] == "contracts" and raw["base_model"] == "embedded:smollm2-135m-instruct"
    domain = [s for s in raw["sources"] if s["kind"] == "domain"]
    assert [(s["name"], s["type"]) for s in domain] == [
        ("legal_docs", "folder"),
        ("opinions", "jsonl"),
        ("opinions_2", "txt"),
    ]
    assert all(s["profile"] == "curated" for s in domain)
    assert domain[0]["path"] == str(files["docs"].resolve())  # absolute paths, a space kept by quoting
    general = {s["name"]: s for s in raw["sources"] if s["kind"] == "general"}
    assert general["python_docs"]["profile"] == "web" and general["dictionary"]["sample"] == 0.03
    assert raw["instructions"] == [{"name": "my_pairs", "path": str(files["instructions"].resolve())}]
    assert raw["evals"] == [{"name": "bar_exam", "path": str(files["evals"].resolve()), "kind": "domain"}]
    corpus = raw["corpus"]
    assert corpus["reading_comprehension"] == 0.5 and corpus["drop_warning"] == 0.2 and corpus["eval_fraction"] == 0.1
    assert corpus["tasks"] == [
        {"type": "reading_comprehension", "source": "legal_docs"},
        {"type": "cloze", "source": "legal_docs", "max_eval_items": 200},
        {"type": "knowledge_probe", "source": "legal_docs", "max_eval_items": 100},
        {"type": "term_definition", "source": "dictionary", "name": "general_words"},
    ]
    assert raw["cpt"]["max_tokens"] == 32768 and raw["merge"]["method"] == "ties"
    # Every choice says why: each key of the corpus section carries a comment.
    corpus_lines = text.split("\ncorpus:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert all("#" in line for line in corpus_lines if line.strip() and not line.strip().startswith("#"))
    assert "profile: curated" in text and "# encoding repair, boilerplate lines" in text
    _check_loads(path)


def test_own_general_sources_replace_the_packaged_replay(tmp_path: Path, files: dict[str, Path]) -> None:
    pyarrow = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pyarrow.table(
        {"text": [f"General text {n}. " + PARAGRAPH.replace("contract", "river") * 3 for n in range(5)]}
    )
    parquet = tmp_path / "general.parquet"
    pq.write_table(table, parquet)
    raw = yaml.safe_load(recipe_text("mine", [str(files["jsonl"])], general=[str(parquet)]))
    assert [(s["name"], s["kind"], s["type"]) for s in raw["sources"]] == [
        ("opinions", "domain", "jsonl"),
        ("general", "general", "parquet"),
    ]
    assert all(task["type"] != "term_definition" for task in raw["corpus"]["tasks"])
    assert "instructions" not in raw and "evals" not in raw


def test_refusals(tmp_path: Path, files: dict[str, Path]) -> None:
    with pytest.raises(NewRecipeError, match=r"must match \[A-Za-z0-9_.-\]\+"):
        recipe_text("bad name", [str(files["docs"])])
    with pytest.raises(NewRecipeError, match=r"unknown file type '\.csv'"):
        (tmp_path / "table.csv").write_text("a,b\n")
        recipe_text("x", [str(tmp_path / "table.csv")])
    with pytest.raises(NewRecipeError, match="no such file or folder"):
        recipe_text("x", [str(tmp_path / "missing")])
    write_recipe("twice", [str(files["docs"])], recipes_dir=tmp_path)
    with pytest.raises(NewRecipeError, match="--force"):
        write_recipe("twice", [str(files["docs"])], recipes_dir=tmp_path)
    write_recipe("twice", [str(files["jsonl"])], force=True, recipes_dir=tmp_path)
    assert "opinions" in (tmp_path / "twice.yaml").read_text()


def test_relative_paths_outside_the_repository_become_absolute(
    tmp_path: Path, files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # make runs in the repository root: a path relative to here would break there
    text = recipe_text("rel", ["opinions.jsonl"])
    assert yaml.safe_load(text)["sources"][0]["path"] == str(files["jsonl"].resolve())
    assert "# Paths are absolute" in text


def _cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "pipeline", "new", *args, "--out-dir", str(tmp_path), "--store", str(tmp_path)]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_cli_writes_plans_and_prints_the_command(tmp_path: Path, files: dict[str, Path]) -> None:
    done = _cli("contracts", "--domain", str(files["docs"]), "--evals", str(files["evals"]), tmp_path=tmp_path)
    problems = _check_loads(tmp_path / "contracts.yaml")
    if problems:  # schema work still under way: the plan fails as a recipe error, the file stays
        assert done.returncode == 2 and "is kept: fix what is named above" in done.stderr
        return
    assert done.returncode == 0, done.stderr
    assert "run    model        never run for this recipe" in done.stdout
    assert "run    report" in done.stdout
    assert f"run it: python -m pipeline run {tmp_path / 'contracts.yaml'}" in done.stdout


def test_cli_reports_a_bad_instruction_file_and_keeps_the_recipe(tmp_path: Path, files: dict[str, Path]) -> None:
    files["instructions"].write_text('{"prompt": "a", "completion": "b"}\nnot json\n')
    done = _cli(
        "broken", "--domain", str(files["docs"]), "--instructions", str(files["instructions"]), tmp_path=tmp_path
    )
    assert done.returncode == 2
    assert "my-pairs.jsonl:2" in done.stderr and "is kept: fix what is named above" in done.stderr
    assert (tmp_path / "broken.yaml").exists()
    done = _cli("broken", "--domain", str(files["docs"]), tmp_path=tmp_path)
    assert done.returncode == 2 and "pass --force" in done.stderr
