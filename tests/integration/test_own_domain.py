"""Your own domain, end to end: a folder of Markdown, 30 instruction pairs and 20 quiz questions.

The Markdown is real and not ours: the README sections of installed packages (their PyPI long
descriptions, in the wheels' METADATA), one file per section. ``pipeline new`` writes the recipe
and plans it; the whole DAG then runs on the tiny model at tiny budgets, and a malformed line in
any of the three files stops ``plan`` naming the file and line, with no stage run.
"""

from __future__ import annotations

import json
import random
import re

import pytest

from pipeline import cli
from pipeline.recipe import load_recipe
from pipeline.runner import Runner
from pipeline.store import Store
from tests.conftest import PACKAGES, readme_sections

TINY = [
    "cpt.max_tokens=2048",
    "cpt.seq_len=64",
    "cpt.batch_size=4",
    "cpt.micro_batch_size=4",
    "cpt.eval_every=4",
    "cpt.eval_tokens=128",
    "cpt.learning_rate=0.001",
    "sft.max_length=384",
    "sft.batch_size=4",
    "sft.micro_batch_size=4",
    "corpus.max_sft_pairs=12",
    "eval.bpb_docs=3",
    "eval.bpb_doc_chars=300",
    "eval.batch_size=8",
]


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("own_domain")
    folder = root / "manual"
    folder.mkdir()
    sections = readme_sections()
    assert len(sections) >= 40, len(sections)
    for number, (package, _, text) in enumerate(sections):
        (folder / f"{package}_{number:03d}.md").write_text(text + "\n", encoding="utf-8")
    rng = random.Random(0)
    pairs = root / "pairs.jsonl"
    with pairs.open("w", encoding="utf-8") as fh:
        for package, heading, text in rng.sample(sections, 30):
            first = re.split(r"(?<=[.!?])\s", " ".join(text.split("\n", 1)[-1].split()))[0]
            fh.write(json.dumps({"prompt": f"What does the {package} section '{heading}' cover?", "completion": first}))
            fh.write("\n")
    quiz = root / "quiz.jsonl"
    with quiz.open("w", encoding="utf-8") as fh:
        for package, heading, _ in rng.sample(sections, 20):
            others = rng.sample([p for p in PACKAGES if p != package], 3)
            record = {"question": f"Which library's README has the section '{heading}'?", "choices": [package, *others]}
            fh.write(json.dumps({**record, "answer": package}) + "\n")
    return folder, pairs, quiz


@pytest.fixture(scope="module")
def lm_eval_folder(user_files, tmp_path_factory):
    """The quiz again as the user's own lm-eval task YAML (``eval.task_dirs``)."""
    folder = tmp_path_factory.mktemp("lm_eval_tasks")
    definition = {
        "task": "my_yaml_quiz",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(user_files[2])}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "{{question}}\nAnswer:",
        "doc_to_choice": "{{choices}}",
        "doc_to_target": "{{choices.index(answer)}}",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
    }
    (folder / "my_yaml_quiz.yaml").write_text(json.dumps(definition), encoding="utf-8")  # JSON is YAML
    return folder


@pytest.fixture(scope="module")
def own_recipe(user_files, tiny_model, general_jsonl, tmp_path_factory):
    folder, pairs, quiz = user_files
    out = tmp_path_factory.mktemp("recipes")
    argv = ["new", "manual", "--domain", str(folder), "--general", str(general_jsonl)]
    argv += ["--instructions", str(pairs), "--evals", str(quiz), "--base-model", str(tiny_model)]
    argv += ["--out-dir", str(out), "--store", str(out / "runs")]
    assert cli.main(argv) == 0
    path = out / "manual.yaml"
    text = path.read_text(encoding="utf-8")  # probe sizes for a minute-long run (list items take no --set)
    path.write_text(
        text.replace("max_eval_items: 200", "max_eval_items: 24").replace("max_eval_items: 100", "max_eval_items: 12")
    )
    return path


def test_new_writes_a_commented_recipe_that_plans(own_recipe):
    text = own_recipe.read_text(encoding="utf-8")
    assert "type: folder" in text and "profile: curated" in text and "reading_comprehension" in text
    assert sum(1 for line in text.splitlines() if "#" in line) >= 20  # every choice has its reason
    recipe = load_recipe(str(own_recipe), TINY)
    assert [n.name for n in recipe.nodes][:3] == ["model", "corpus", "pack"]


def test_own_domain_runs_end_to_end_with_mined_and_user_tasks(own_recipe, lm_eval_folder, tmp_path):
    store = Store(tmp_path / "runs")
    decisions = Runner(load_recipe(str(own_recipe), [*TINY, f"eval.task_dirs=[{lm_eval_folder}]"]), store).run()
    keys = {d.node.name: d.key for d in decisions}
    stats = store.manifest("corpus", keys["corpus"])["metrics"]
    manual = stats["sources"]["manual"]
    assert manual["profile"] == "curated" and manual["kept"] >= 30
    # A pair quoting a held-out section is decontaminated like any training text; the rest train sft.
    user_pairs = stats["tasks"]["pairs"]
    assert user_pairs["sft_pairs"] + user_pairs.get("dropped_sharing_eval_text", 0) == 30
    assert user_pairs["sft_pairs"] >= 25 and stats["tasks"]["reading_comprehension"]["sft_pairs"] > 0
    assert stats["reading_comprehension_documents"] > 0
    results = json.loads((store.final_dir("eval", keys["eval_merge"]) / "results.json").read_text())["tasks"]
    assert results["quiz"]["origin"] == "user" and results["quiz"]["items"] == 20
    assert results["cloze"]["origin"] == "held_out" and results["knowledge_probe"]["origin"] == "training"
    assert results["my_yaml_quiz"]["origin"] == "user" and len(results["my_yaml_quiz"]["per_item"]) == 20
    assert results["my_yaml_quiz"]["train_overlap"]["items"] == 20  # a task folder is checked against training text
    assert "train_overlap" not in results["quiz"]  # the corpus decontaminated against the built tasks already
    for task in ("quiz", "cloze", "knowledge_probe"):
        assert len(results[task]["per_item"]) == results[task]["items"]
    assert set(results["quiz"]["per_item"]) <= {0.0, 1.0}
    for task in ("cloze", "knowledge_probe"):  # the probability on the right word, beside the accuracy
        assert results[task]["metric"] == "p_correct" and 0 <= results[task]["acc"] <= 1
        assert all(0 < p < 1 for p in results[task]["per_item"])
        assert results[task]["value"] == pytest.approx(sum(results[task]["per_item"]) / results[task]["items"])
    # The probe asks about text cpt trained on: the corpus marked its documents, pack put them first, cpt took them.
    assert stats["probe_documents"]["domain"] >= 1
    cpt = store.manifest("cpt", keys["cpt"])["metrics"]
    assert cpt["domain_probe_blocks_trained"] == min(cpt["domain_blocks"], cpt["domain_probe_blocks"]) >= 1
    assert all(len(pair) == 2 for pair in results["bpb_domain"]["per_item"])
    report = (store.final_dir("report", keys["report"]) / "report.md").read_text(encoding="utf-8")
    assert "quiz" in report and "cloze" in report and "knowledge_probe" in report
    assert "task folders: items in training text" in report
    covered = cpt["domain_probe_blocks_trained"] == cpt["domain_probe_blocks"]
    assert covered != ("knowledge probe asks about" in report)  # the tiny budget leaves some out, and says so


@pytest.mark.parametrize("which", ["manual", "pairs", "quiz"])
def test_malformed_line_in_any_user_file_stops_plan_before_any_stage(user_files, own_recipe, tmp_path, capsys, which):
    folder, pairs, quiz = user_files
    copies = {}
    for name, path in (("pairs", pairs), ("quiz", quiz)):
        copies[name] = tmp_path / path.name
        copies[name].write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    if which == "manual":  # a folder source of JSONL files: a bad line in one of them
        bad = tmp_path / "notes.jsonl"
        bad.write_text('{"text": "a note about the manual"}\n{"text": "unterminated\n', encoding="utf-8")
        line = 2
    else:
        bad = copies[which]
        line = len(bad.read_text(encoding="utf-8").splitlines()) + 1
        bad.write_text(bad.read_text(encoding="utf-8") + '{"question": 1}\n', encoding="utf-8")
    text = own_recipe.read_text(encoding="utf-8")
    text = text.replace(str(pairs), str(copies["pairs"])).replace(str(quiz), str(copies["quiz"]))
    if which == "manual":
        text = re.sub(
            r"type: folder(\s+#[^\n]*)?\n(\s+)path: " + re.escape(str(folder)), rf"type: jsonl\n\2path: {bad}", text
        )
    recipe = tmp_path / "broken.yaml"
    recipe.write_text(text, encoding="utf-8")
    store = tmp_path / "runs"
    assert cli.main(["plan", str(recipe), "--store", str(store)]) == 2
    assert f"{bad.name}:{line}:" in capsys.readouterr().err
    assert not store.exists() or not any(store.rglob("manifest.json"))
