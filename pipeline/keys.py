"""Content-hash cache keys (after dvc's run-cache): stage + version + params + input keys + libraries.

A key never hashes an upstream stage's multi-GB output: it hashes that stage's key. External
files are fingerprinted by content (``stages.lib.fingerprint``), so editing a source reruns what reads it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from typing import Any


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace, so equal values always hash equally."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def library_versions(names: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of the distributions whose upgrade can change a stage's result."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def stage_key(
    stage: str,
    version: int,
    params: dict[str, Any],
    input_keys: dict[str, str],
    external: dict[str, Any],
    libraries: dict[str, str],
) -> str:
    """The cache key of one stage run: sha256 of the canonical JSON of everything that shapes it."""
    payload = {
        "stage": stage,
        "version": version,
        "params": params,
        "inputs": input_keys,
        "external": external,
        "libraries": libraries,
    }
    return sha256_text(canonical_json(payload))
