"""JSONL files written by the stages (corpus splits, task items, curves), read back whole.

One helper, here rather than in a stage, so the stages that read another's JSONL output (sft, eval,
report) never import that stage.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every record of a JSONL file, blank lines skipped."""
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
