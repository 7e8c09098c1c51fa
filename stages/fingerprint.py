"""Content fingerprints of external files (sources, local models) for cache keys."""

from __future__ import annotations

import hashlib
from pathlib import Path

# Files above this size are fingerprinted by size plus their first and last MiB: hashing a
# multi-GB checkpoint on every `plan` would cost more than the check is worth.
_FULL_HASH_LIMIT = 64 * 2**20
_EDGE = 2**20


def fingerprint_file(path: Path) -> str:
    """sha256 of a file's bytes (size plus edges for very large files)."""
    digest = hashlib.sha256()
    size = path.stat().st_size
    with path.open("rb") as fh:
        if size <= _FULL_HASH_LIMIT:
            for chunk in iter(lambda: fh.read(2**20), b""):
                digest.update(chunk)
        else:
            digest.update(str(size).encode())
            digest.update(fh.read(_EDGE))
            fh.seek(size - _EDGE)
            digest.update(fh.read(_EDGE))
    return digest.hexdigest()


def fingerprint_paths(paths: list[Path], root: Path | None = None) -> str:
    """One hash over a set of files: their relative names and contents, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        name = str(path.relative_to(root)) if root else path.name
        digest.update(name.encode("utf-8"))
        digest.update(fingerprint_file(path).encode())
    return digest.hexdigest()


def fingerprint_tree(root: Path, pattern: str = "**/*") -> str:
    """Fingerprint every file under ``root`` matching ``pattern``."""
    files = [p for p in root.glob(pattern) if p.is_file()]
    return fingerprint_paths(files, root)
