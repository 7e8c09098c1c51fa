"""Source adapters: where text comes from. Each yields documents with provenance.

Every document is ``{"id", "source", "text", "meta"}``. Package-backed adapters name the install
command when their package is missing; file adapters name the file and line of a malformed record.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from stages.base import StageError
from stages.fingerprint import fingerprint_paths

PYTHON_DOCS = Path("/usr/share/doc/python3.11/html/_sources")


class SourceSpec(BaseModel):
    """One text source of a recipe."""

    model_config = ConfigDict(extra="forbid")

    name: str
    """Short name, used in stats and provenance."""
    kind: Literal["domain", "general"]
    """``domain`` text is what we specialise on; ``general`` text is replayed against forgetting."""
    type: Literal["licensedcode", "python_docs", "jsonl", "txt", "parquet", "hf"]
    """Adapter: packaged sources (licensedcode, python_docs) or files / a datasets id or saved folder."""
    path: str | None = None
    """File, glob or folder for jsonl/txt/parquet; hub id or ``save_to_disk`` folder for hf."""
    text_field: str = "text"
    """Field holding the text in jsonl/parquet/hf records."""
    split: str = "train"
    """Split to read from an hf dataset."""
    license: str = "unknown"
    """License of the text, recorded with every document's provenance."""
    max_documents: int | None = None
    """Read at most this many documents (None: all)."""
    sample: float = Field(1.0, gt=0, le=1)
    """Keep this share of documents, chosen by a hash of the id (stable across runs and corpus versions)."""
    min_chars: int | None = Field(None, ge=0)
    """Per-source minimum length (None: corpus.min_chars); dictionary entries are short but whole."""
    subjects: list[str] | None = None
    """gcide: keep entries tagged with one of these subject labels, e.g. ["Law"] (None: every entry)."""
    language: str = "es"
    """bible: the target language of the English-aligned text (es); gettext: the catalog language (fr, es, ...)."""
    mode: Literal["target", "interleaved"] = "interleaved"
    """bible/gettext: monolingual target-language text, or English and target lines interleaved."""


def _package_dir(module: str, install: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise StageError(f"source needs the package '{module}': install it with `{install}`")
    return Path(spec.submodule_search_locations[0])


def _licensedcode_dir() -> Path:
    return _package_dir("licensedcode", "pip install licensedcode-data==32.1.0") / "data" / "licenses"


def _files(spec: SourceSpec) -> list[Path]:
    """The files a source reads, for fingerprints and for reading."""
    if spec.type == "licensedcode":
        return sorted(_licensedcode_dir().glob("*.LICENSE"))
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
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else sorted(path.parent.glob(path.name))
    if not files:
        raise StageError(f"source '{spec.name}': no files match '{spec.path}'")
    return files


def fingerprint(spec: SourceSpec) -> str:
    """Content hash of everything the source reads; a hub dataset is named by id and split."""
    if spec.type == "hf" and not Path(spec.path or "").exists():
        return f"hub:{spec.path}:{spec.split}"
    return fingerprint_paths(_files(spec))


def read(spec: SourceSpec) -> Iterator[dict[str, Any]]:
    """Yield the source's documents, at most ``max_documents``.

    An adapter may yield ``{"drop": reason}`` records for entries it skips, so the corpus stage
    counts every drop with its reason."""
    reader = {
        "licensedcode": _read_licensedcode,
        "python_docs": _read_python_docs,
        "jsonl": _read_jsonl,
        "txt": _read_txt,
        "parquet": _read_table,
        "hf": _read_table,
    }[spec.type]
    count = 0
    for doc in reader(spec):
        if spec.max_documents is not None and count >= spec.max_documents:
            return
        if spec.sample < 1 and "drop" not in doc and _unit_hash(doc["id"]) >= spec.sample:
            continue
        count += "drop" not in doc
        doc.setdefault("meta", {})["license"] = spec.license
        doc["source"] = spec.name
        yield doc


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


def _read_jsonl(spec: SourceSpec) -> Iterator[dict[str, Any]]:
    for path in _files(spec):
        text = _decode(path, path.read_bytes())
        if not text.strip():
            raise StageError(f"{path}: empty file (source '{spec.name}' expects one JSON object per line)")
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise StageError(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
            if not isinstance(record, dict) or not isinstance(record.get(spec.text_field), str):
                raise StageError(f"{path}:{number}: expected an object with a string field '{spec.text_field}'")
            meta = {k: v for k, v in record.items() if k != spec.text_field}
            yield {"id": f"{spec.name}:{path.name}:{number}", "text": record[spec.text_field], "meta": meta}


def _read_txt(spec: SourceSpec) -> Iterator[dict[str, Any]]:
    for path in _files(spec):
        text = _decode(path, path.read_bytes())
        if not text.strip():
            raise StageError(f"{path}: empty file (source '{spec.name}')")
        yield {"id": f"{spec.name}:{path.name}", "text": text, "meta": {}}


def _read_table(spec: SourceSpec) -> Iterator[dict[str, Any]]:
    """Parquet files, a ``save_to_disk`` folder or a hub dataset, through ``datasets``."""
    import datasets

    if spec.type == "parquet":
        table = datasets.load_dataset("parquet", data_files=[str(p) for p in _files(spec)], split="train")
    elif Path(spec.path or "").exists():
        table = datasets.load_from_disk(spec.path)
        if isinstance(table, datasets.DatasetDict):
            table = table[spec.split]
    else:
        table = datasets.load_dataset(spec.path, split=spec.split, streaming=True)
    for number, record in enumerate(table):
        if not isinstance(record.get(spec.text_field), str):
            raise StageError(f"source '{spec.name}' record {number}: no string field '{spec.text_field}'")
        meta = {k: v for k, v in record.items() if k != spec.text_field and isinstance(v, str | int | float)}
        yield {"id": f"{spec.name}:{number}", "text": record[spec.text_field], "meta": meta}
