"""A user's own data: folder sources (Markdown, HTML, PDF), instruction pairs and eval sets.

Every malformed line must stop the recipe when it is loaded, naming file, line and field, before
any stage runs. The text is real: license texts from the licensedcode-data wheel.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.recipe import RecipeError, load_recipe
from stages.lib import sources
from stages.lib.sources import SourceSpec
from stages.lib.user_data import UserDataError, lm_eval_task_names, read_eval_set, read_instructions
from tests.conftest import licence_texts


def minimal_pdf(lines: list[str]) -> bytes:
    """A one-page PDF whose text layer holds ``lines`` (Helvetica), written by hand: no PDF writer installed."""
    escaped = [line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") for line in lines]
    stream = "BT /F1 11 Tf 14 TL 50 780 Td " + " ".join(f"({line}) '" for line in escaped) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 842] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = "%PDF-1.4\n", []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n" + "".join(f"{o:010d} 00000 n \n" for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    return out.encode("latin-1")


@pytest.fixture(scope="module")
def license_paragraphs() -> list[str]:
    paragraphs = [p.strip() for text in licence_texts(12) for p in text.split("\n\n") if len(p.split()) >= 25]
    assert len(paragraphs) >= 12
    return paragraphs


def test_folder_source_reads_markdown_html_and_pdf(tmp_path, license_paragraphs):
    folder = tmp_path / "docs"
    (folder / "guide").mkdir(parents=True)
    (folder / "guide" / "intro.md").write_text(f"# Introduction\n\n{license_paragraphs[0]}\n", encoding="utf-8")
    page = (
        "<html><head><title>Terms</title></head><body>"
        "<nav><a href='/'>Home</a> | <a href='/about'>About</a> | <a href='/blog'>Blog</a></nav>"
        f"<article><h1>Terms</h1><p>{license_paragraphs[1]}</p><p>{license_paragraphs[2]}</p></article>"
        "<footer>Copyright footer text</footer></body></html>"
    )
    (folder / "terms.html").write_text(page, encoding="utf-8")
    words = license_paragraphs[3].split()
    (folder / "scan.pdf").write_bytes(minimal_pdf([" ".join(words[i : i + 10]) for i in range(0, len(words), 10)]))
    (folder / "image.png").write_bytes(b"\x89PNG")  # not a document: left alone
    spec = SourceSpec(name="manual", kind="domain", type="folder", path=str(folder))
    docs = {doc["id"]: doc for doc in sources.read(spec)}
    assert sorted(docs) == ["manual:guide/intro.md", "manual:scan.pdf", "manual:terms.html"]
    assert docs["manual:guide/intro.md"]["text"].startswith("# Introduction")
    html_text = docs["manual:terms.html"]["text"]
    assert license_paragraphs[1].split()[5] in html_text and license_paragraphs[2].split()[-1] in html_text
    assert "Home" not in html_text.split()  # the navigation bar is not main text
    pdf_words = docs["manual:scan.pdf"]["text"].split()
    assert pdf_words[:10] == words[:10]
    assert docs["manual:terms.html"]["meta"]["file"] == "terms.html"


def test_folder_without_documents_is_refused_naming_the_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    spec = SourceSpec(name="manual", kind="domain", type="folder", path=str(tmp_path / "empty"))
    with pytest.raises(Exception, match=r"no \.md/.*files under"):
        sources.check(spec)


def test_instruction_formats_become_prompt_completion_messages(tmp_path):
    path = tmp_path / "pairs.jsonl"
    records = [
        {"prompt": "What is a patent grant?", "completion": "A license to the contributor's patents."},
        {
            "messages": [
                {"role": "system", "content": "You answer questions about licenses."},
                {"role": "user", "content": "Can I sublicense?"},
                {"role": "assistant", "content": "Only where the license says so."},
            ]
        },
        {"prompt": [{"role": "user", "content": "Name a copyleft license."}], "completion": "The GPL."},
    ]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n", encoding="utf-8")
    pairs = [pair for _, pair in read_instructions(path)]
    assert [p["completion"][0]["content"] for p in pairs] == [
        "A license to the contributor's patents.",
        "Only where the license says so.",
        "The GPL.",
    ]
    assert [m["role"] for m in pairs[1]["prompt"]] == ["system", "user"]
    assert pairs[0]["prompt"] == [{"role": "user", "content": "What is a patent grant?"}]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"pairs.jsonl:2: not valid JSON"),
        ('{"prompt": "q"}', r"pairs.jsonl:2: expected fields prompt and completion, or messages"),
        ('{"prompt": "q", "completion": ""}', r"pairs.jsonl:2: field 'completion' is empty"),
        ('{"messages": [{"role": "user", "content": "q"}]}', r"pairs.jsonl:2: 'messages' must end with the assistant"),
        ('{"messages": [{"role": "bot", "content": "q"}]}', r"pairs.jsonl:2: messages\[0\] must be"),
    ],
)
def test_malformed_instruction_line_is_named(tmp_path, line, message):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"prompt": "q", "completion": "a"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(UserDataError, match=message):
        list(read_instructions(path))


def test_eval_sets_multiple_choice_and_short_answer(tmp_path):
    choice = tmp_path / "quiz.jsonl"
    choice.write_text(
        json.dumps(
            {"question": "Which license is copyleft?", "choices": ["MIT", "GPL-3.0", "BSD-2"], "answer": "GPL-3.0"}
        )
        + "\n"
        + json.dumps({"question": "Is Apache-2.0 permissive?", "choices": ["yes", "no"], "answer": 0})
        + "\n",
        encoding="utf-8",
    )
    form, items = read_eval_set(choice)
    assert form == "multiple_choice"
    assert items[0]["answer"] == 1 and items[0]["choices"] == [" MIT", " GPL-3.0", " BSD-2"]
    assert items[0]["question"].endswith("\nAnswer:")
    assert items[0]["held_out"] == ["Which license is copyleft? GPL-3.0"]
    short = tmp_path / "short.jsonl"
    short.write_text(json.dumps({"question": "SPDX id of the MIT license?", "answer": "MIT"}) + "\n", encoding="utf-8")
    form, items = read_eval_set(short)
    assert form == "short_answer" and items[0]["answer"] == "MIT"
    assert items[0]["question"] == "Question: SPDX id of the MIT license?\nAnswer:"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"question": "q", "choices": ["a", "b"], "answer": 2}', r"quiz.jsonl:2: answer index 2 is out of range"),
        ('{"question": "q", "choices": ["a", "b"], "answer": "c"}', r"quiz.jsonl:2: answer 'c' is not one of"),
        ('{"question": "q", "choices": ["a"], "answer": 0}', r"quiz.jsonl:2: field 'choices' must be a list of two"),
        ('{"question": "", "choices": ["a", "b"], "answer": 0}', r"quiz.jsonl:2: field 'question' must be"),
        ('{"question": "q", "answer": "a"}', r"quiz.jsonl:2: a short-answer item in a multiple-choice file \(line 1\)"),
    ],
)
def test_malformed_eval_line_is_named(tmp_path, line, message):
    path = tmp_path / "quiz.jsonl"
    path.write_text('{"question": "q", "choices": ["a", "b"], "answer": 1}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(UserDataError, match=message):
        read_eval_set(path)


def test_lm_eval_task_folder_names_its_tasks_without_running_functions(tmp_path):
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "mine.yaml").write_text(
        "task: my_quiz\ndataset_path: json\nprocess_docs: !function utils.process\noutput_type: multiple_choice\n",
        encoding="utf-8",
    )
    (folder / "_group.yaml").write_text("group: mine\n", encoding="utf-8")
    assert lm_eval_task_names(folder) == ["my_quiz"]
    with pytest.raises(ValueError, match="is not a folder"):
        lm_eval_task_names(tmp_path / "missing")


def _recipe(tmp_path: Path, tiny_model: Path, general_jsonl: Path, **extra) -> Path:
    import yaml

    docs = tmp_path / "docs"
    docs.mkdir(exist_ok=True)
    for number, text in enumerate(licence_texts(6)):
        (docs / f"section_{number}.md").write_text(f"# Section {number}\n\n{text}", encoding="utf-8")
    recipe = {
        "name": "mine",
        "base_model": str(tiny_model),
        "sources": [
            {"name": "manual", "kind": "domain", "type": "folder", "path": str(docs)},
            {"name": "general", "kind": "general", "type": "jsonl", "path": str(general_jsonl)},
        ],
        **extra,
    }
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def test_recipe_without_instruction_data_is_refused_with_the_fix(tmp_path, tiny_model, general_jsonl):
    path = _recipe(tmp_path, tiny_model, general_jsonl)
    with pytest.raises(
        RecipeError,
        match=r"sft has no instruction pairs: add your own under 'instructions:'.*"
        r"reading_comprehension, source: manual",
    ):
        load_recipe(str(path))


@pytest.mark.parametrize("kind", ["instructions", "evals", "sources"])
def test_malformed_user_file_stops_the_recipe_at_load_naming_file_and_line(tmp_path, tiny_model, general_jsonl, kind):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"prompt": "q", "completion": "a"}\n', encoding="utf-8")
    quiz = tmp_path / "quiz.jsonl"
    quiz.write_text('{"question": "q", "choices": ["a", "b"], "answer": 0}\n', encoding="utf-8")
    bad = {"instructions": pairs, "evals": quiz, "sources": tmp_path / "general.jsonl"}[kind]
    general = tmp_path / "general.jsonl"
    general.write_text(general_jsonl.read_text(encoding="utf-8"), encoding="utf-8")
    bad.write_text(bad.read_text(encoding="utf-8") + '{"text": 3, "prompt": 1}\n', encoding="utf-8")
    path = _recipe(
        tmp_path,
        tiny_model,
        general,
        instructions=[{"name": "pairs", "path": str(pairs)}],
        evals=[{"name": "quiz", "path": str(quiz)}],
    )
    line = len(bad.read_text(encoding="utf-8").splitlines())
    with pytest.raises(RecipeError, match=rf"{bad.name}:{line}:"):
        load_recipe(str(path))


def test_folder_sections_split_markdown_at_headings_outside_code(tmp_path, license_paragraphs):
    text = (
        f"# Manual\n\n{license_paragraphs[4]}\n\n## Install\n\n{license_paragraphs[5]}\n\n```sh\n# not a heading\n"
        f"make install\n```\n\n## Tiny\n\nOne line.\n\n## Use\n\n{license_paragraphs[6]}\n\n### Detail\n\n"
        f"{license_paragraphs[7]}\n"
    )
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "manual.md").write_text(text, encoding="utf-8")
    spec = SourceSpec(name="m", kind="domain", type="folder", path=str(tmp_path / "docs"), sections=2)
    docs = list(sources.read(spec))
    assert [d["meta"]["section"] for d in docs] == ["Manual", "Install", "Tiny"]  # "Tiny" is joined to "Use"
    assert "# not a heading" in docs[1]["text"] and docs[2]["text"].startswith("## Tiny")
    assert "## Use" in docs[2]["text"] and "### Detail" in docs[2]["text"]
    assert "".join(d["text"] for d in docs).replace("\n", "") == text.replace("\n", "")
    assert [d["id"] for d in docs] == ["m:manual.md#0", "m:manual.md#1", "m:manual.md#2"]
