"""The content-addressed output store shared by all recipes: ``runs/<stage>/<key[:12]>/``.

A stage writes into ``<key[:12]>.partial/`` (kept across crashes so training can resume from its
checkpoints), then the store writes ``manifest.json``, renames the directory into place and writes
``_SUCCESS`` last. No ``_SUCCESS``, not done: a killed stage never looks finished.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUCCESS = "_SUCCESS"
MANIFEST = "manifest.json"


def write_json_atomic(path: Path, value: Any) -> None:
    """Write JSON to a temporary file then rename it, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


@dataclass
class Store:
    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()  # stages get absolute paths, whatever the working directory

    def final_dir(self, stage: str, key: str) -> Path:
        return self.root / stage / key[:12]

    def partial_dir(self, stage: str, key: str) -> Path:
        return self.root / stage / f"{key[:12]}.partial"

    def is_done(self, stage: str, key: str) -> bool:
        return (self.final_dir(stage, key) / SUCCESS).exists()

    def manifest(self, stage: str, key: str) -> dict[str, Any]:
        return json.loads((self.final_dir(stage, key) / MANIFEST).read_text(encoding="utf-8"))

    def begin(self, stage: str, key: str) -> Path:
        """The directory a stage writes into; an earlier crashed attempt's files are kept there."""
        partial = self.partial_dir(stage, key)
        partial.mkdir(parents=True, exist_ok=True)
        return partial

    def commit(self, stage: str, key: str, manifest: dict[str, Any]) -> Path:
        """Manifest, rename into place, ``_SUCCESS`` last."""
        partial = self.partial_dir(stage, key)
        final = self.final_dir(stage, key)
        write_json_atomic(partial / MANIFEST, manifest)
        if final.exists():  # an unfinished final dir (no _SUCCESS) from an interrupted commit
            shutil.rmtree(final)
        os.replace(partial, final)
        (final / SUCCESS).write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z") + "\n", encoding="utf-8")
        return final

    def invalidate(self, stage: str, key: str) -> None:
        """Forget a finished result (for ``--force``): remove its success marker and files."""
        final = self.final_dir(stage, key)
        if final.exists():
            (final / SUCCESS).unlink(missing_ok=True)
            shutil.rmtree(final)

    # The last run of each node of each recipe, so `explain` can say what changed since.
    def ref_path(self, recipe: str, node: str) -> Path:
        return self.root / "refs" / recipe / f"{node}.json"

    def read_ref(self, recipe: str, node: str) -> dict[str, Any] | None:
        path = self.ref_path(recipe, node)
        if not path.exists():
            return None
        return json.loads(path.read_text(encoding="utf-8"))

    def write_ref(self, recipe: str, node: str, value: dict[str, Any]) -> None:
        write_json_atomic(self.ref_path(recipe, node), value)
