"""Content fingerprints of external files (sources, local models) for cache keys.

Every byte of every file is hashed, so an edit anywhere changes the key. Hashing a multi-GB checkpoint
or corpus on every ``plan`` would be slow, so each file's digest is cached by what ``stat`` says of it
(resolved path, size, mtime in ns, inode, device): an edit changes the mtime, and the file is hashed
again; an unchanged file costs one ``stat``. The cache is a SQLite file (safe for several processes)
under ``$DAPT_DIGEST_CACHE``, else ``$XDG_CACHE_HOME/dapt-pipeline``, else ``~/.cache/dapt-pipeline``;
a tool that rewrites a file and restores its mtime to the nanosecond would fool it, as it fools make.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
from pathlib import Path

_CHUNK = 2**20


def digest_cache_path() -> Path:
    """Where file digests are cached (see the module docstring)."""
    if folder := os.environ.get("DAPT_DIGEST_CACHE"):
        return Path(folder) / "digests.sqlite"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "dapt-pipeline" / "digests.sqlite"


def _open_cache() -> sqlite3.Connection | None:
    """The digest cache, or None where it cannot be written (a read-only home): files are then hashed each time."""
    path = digest_cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=30)
        db.execute(
            "CREATE TABLE IF NOT EXISTS digests (path TEXT, size INTEGER, mtime_ns INTEGER, inode INTEGER, "
            "device INTEGER, sha256 TEXT, PRIMARY KEY (path, size, mtime_ns, inode, device))"
        )
        return db
    except (OSError, sqlite3.Error):
        return None


def _hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _digest(db: sqlite3.Connection | None, path: Path) -> str:
    """sha256 of a file's bytes, from the cache when its stat is unchanged (hashed and stored otherwise)."""
    if db is None:
        return _hash(path)
    stat = path.stat()
    row_key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_dev)
    with db:
        found = db.execute(
            "SELECT sha256 FROM digests WHERE path=? AND size=? AND mtime_ns=? AND inode=? AND device=?", row_key
        ).fetchone()
        if found:
            return found[0]
        value = _hash(path)
        db.execute("DELETE FROM digests WHERE path=?", row_key[:1])  # the file's older versions
        db.execute("INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?, ?)", (*row_key, value))
    return value


def fingerprint_file(path: Path) -> str:
    """sha256 of a file's bytes (every byte; cached by the file's stat)."""
    return fingerprint_paths_digests([path])[0]


def fingerprint_paths_digests(paths: list[Path]) -> list[str]:
    """Each file's sha256, through one connection to the digest cache."""
    db = _open_cache()
    try:
        return [_digest(db, path) for path in paths]
    finally:
        if db is not None:
            db.close()


def fingerprint_paths(paths: list[Path], root: Path | None = None) -> str:
    """One hash over a set of files: their relative names and contents, in sorted order."""
    ordered = sorted(paths)
    digest = hashlib.sha256()
    for path, value in zip(ordered, fingerprint_paths_digests(ordered), strict=True):
        name = str(path.relative_to(root)) if root else path.name
        digest.update(name.encode("utf-8"))
        digest.update(value.encode())
    return digest.hexdigest()


def fingerprint_tree(root: Path, pattern: str = "**/*") -> str:
    """Fingerprint every file under ``root`` matching ``pattern``."""
    files = [p for p in root.glob(pattern) if p.is_file()]
    return fingerprint_paths(files, root)


def hub_commit(repo_id: str, revision: str | None = None, repo_type: str = "model") -> str | None:
    """The commit a hub revision (branch, tag or hash) points to, or None where it cannot be known.

    A cache key on a hub name alone would reuse results after the repository moves on. Offline, the
    answer is the local Hugging Face cache's ``refs/<revision>`` file (what a download recorded);
    online, the hub's own answer. A 40-hex revision is already a commit."""
    revision = revision or "main"
    if re.fullmatch(r"[0-9a-f]{40}", revision):
        return revision
    from huggingface_hub import constants

    folder = f"{repo_type}s--{repo_id.replace('/', '--')}"
    ref = Path(constants.HF_HUB_CACHE) / folder / "refs" / revision
    if ref.is_file():
        return ref.read_text(encoding="utf-8").strip()
    if constants.HF_HUB_OFFLINE:
        return None
    from huggingface_hub import HfApi

    try:
        return HfApi().repo_info(repo_id, revision=revision, repo_type=repo_type).sha
    except Exception:  # network or permission trouble: the key says "unresolved", the run will say why
        return None
