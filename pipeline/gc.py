"""Find what a store no longer needs: abandoned ``.partial`` folders and results no recipe points to.

A ``.partial`` folder is kept on purpose after a crash (training resumes from its checkpoints), so
only one whose key no running process holds counts as abandoned. A finished result is unreferenced
when no ``refs/<recipe>/<node>.json`` names its key: every recipe's last run of every node keeps its
result, whatever older runs left. ``gc`` lists both with their sizes and deletes nothing unless asked;
each deletion takes the key's lock without waiting and skips a key another run holds. A run holds a
key's lock only while it computes that key, not while it reads a finished result as an input, so
delete when no run is going (a dry run is always safe).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from pipeline.store import SUCCESS, Store, StoreBusy

PARTIAL = ".partial"


@dataclass(frozen=True)
class Garbage:
    path: Path
    stage: str
    key: str
    """The first 12 characters of the key, as the folder is named."""
    why: str
    size: int


def folder_size(path: Path) -> int:
    """Bytes of the files under ``path`` (links not followed)."""
    return sum(item.lstat().st_size for item in path.rglob("*") if item.is_file() and not item.is_symlink())


def referenced_keys(store: Store) -> set[str]:
    """12-character keys named by any recipe's refs: the latest result of every node of every recipe."""
    keys = set()
    for ref in (store.root / "refs").glob("*/*.json"):
        try:
            keys.add(json.loads(ref.read_text(encoding="utf-8"))["key"][:12])
        except (json.JSONDecodeError, KeyError):
            continue  # a ref being written or damaged names nothing; its result is kept by the partial rule
    return keys


def find_garbage(store: Store) -> list[Garbage]:
    """Abandoned partial folders (no process holds their key) and finished results no ref names."""
    keep = referenced_keys(store)
    found = []
    for stage_dir in sorted(p for p in store.root.iterdir() if p.is_dir() and p.name != "refs"):
        for folder in sorted(p for p in stage_dir.iterdir() if p.is_dir()):
            name = folder.name
            if name.endswith(PARTIAL):
                key = name.removesuffix(PARTIAL)
                if store.holder(stage_dir.name, key) is None:
                    found.append(Garbage(folder, stage_dir.name, key, "abandoned partial", folder_size(folder)))
            elif (folder / SUCCESS).exists() and name not in keep:
                found.append(Garbage(folder, stage_dir.name, name, "no recipe refers to it", folder_size(folder)))
    return found


def collect(store: Store, delete: bool = False) -> tuple[list[Garbage], list[str]]:
    """What ``gc`` would remove (``delete=False``) or removed, and the keys skipped because a run holds them."""
    found = find_garbage(store)
    if not delete:
        return found, []
    removed, busy = [], []
    for item in found:
        try:
            with store.lock(item.stage, item.key, wait=False, recipe="gc"):
                if item.path.exists():
                    shutil.rmtree(item.path)
            removed.append(item)
        except StoreBusy:
            busy.append(f"{item.stage}/{item.path.name}")
    return removed, busy


def human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
