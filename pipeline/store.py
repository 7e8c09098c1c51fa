"""The content-addressed output store shared by all recipes: ``runs/<stage>/<key[:12]>/``.

A stage writes into ``<key[:12]>.partial/`` (kept across crashes so training can resume from its
checkpoints); the store then writes ``manifest.json`` and ``_SUCCESS`` inside it and renames the
folder into place, so a result is either absent or whole: no ``_SUCCESS``, not done, and there is no
window between the rename and the marker. A finished folder (one holding ``_SUCCESS``) is never
deleted by a commit.

Several runs may share one store (two terminals, a Slurm array, a teammate's run). A per-key lock,
``<key[:12]>.lock`` beside the result, is held from ``begin`` to ``commit``: a second run that needs
the same key waits and then reuses the finished result, or fails at once with the holder's pid and
host (``<key[:12]>.lock.json``).

Which lock works where. The lock is ``filelock.FileLock``, i.e. ``flock(2)`` on the lock file:
- local disks: works between processes of one machine;
- NFS (v4, or v3 with lockd/NLM): works across machines, since Linux emulates ``flock`` with NFS
  byte-range locks; a mount with ``nolock`` or ``local_lock=flock|all`` makes the lock node-local,
  so two machines would not see each other's locks;
- Lustre: works across nodes only when the client mounts with ``-o flock``; ``localflock`` locks
  within one node only (unsafe for runs on two nodes); ``noflock`` makes ``flock`` fail with ENOSYS,
  and filelock then falls back to its soft lock (an exclusive-create marker file, with a warning),
  which works on any shared file system but is left behind by a killed holder;
- other parallel file systems: check that ``flock`` is coherent across clients first (BeeGFS, for
  one, keeps it node-local unless ``tuneUseGlobalFileLocks`` is set).
A plain ``fcntl.flock`` without filelock behaves the same, minus the soft fallback.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUCCESS = "_SUCCESS"
MANIFEST = "manifest.json"


class StoreError(RuntimeError):
    """The store refuses an operation that would lose or corrupt a result."""


class StoreBusy(StoreError):
    """Another run holds the lock of a key this run needs (``--no-wait``)."""


def write_json_atomic(path: Path, value: Any) -> None:
    """Write JSON to a temporary file then rename it, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def describe_owner(owner: dict[str, Any] | None) -> str:
    """``pid 123 on host gpu01 (recipe legal, since 12:01:02)``, or what is known of it."""
    if not owner:
        return "another run (it has just taken the lock; its pid is not recorded yet)"
    since = time.strftime("%H:%M:%S", time.localtime(owner.get("since", 0)))
    return f"pid {owner.get('pid')} on host {owner.get('host')} (recipe {owner.get('recipe') or '?'}, since {since})"


@dataclass
class Store:
    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()  # stages get absolute paths, whatever the working directory

    def final_dir(self, stage: str, key: str) -> Path:
        return self.root / stage / key[:12]

    def partial_dir(self, stage: str, key: str) -> Path:
        return self.root / stage / f"{key[:12]}.partial"

    def lock_path(self, stage: str, key: str) -> Path:
        return self.root / stage / f"{key[:12]}.lock"

    def owner_path(self, stage: str, key: str) -> Path:
        """Who holds the lock: pid, host, recipe, since; written after taking it, removed before releasing it."""
        return self.root / stage / f"{key[:12]}.lock.json"

    def is_done(self, stage: str, key: str) -> bool:
        return (self.final_dir(stage, key) / SUCCESS).exists()

    def manifest(self, stage: str, key: str) -> dict[str, Any]:
        return json.loads((self.final_dir(stage, key) / MANIFEST).read_text(encoding="utf-8"))

    # --- the per-key lock -------------------------------------------------------------------------
    def read_owner(self, stage: str, key: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.owner_path(stage, key).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def holder(self, stage: str, key: str) -> dict[str, Any] | None:
        """The run holding this key's lock now (``{}`` when its info is not written yet), or None when free.

        Probes by taking the lock without waiting and letting it go at once."""
        from filelock import FileLock, Timeout

        path = self.lock_path(stage, key)
        if not path.exists():
            return None
        probe = FileLock(str(path))
        try:
            probe.acquire(blocking=False)
        except Timeout:
            return self.read_owner(stage, key) or {}
        probe.release()
        return None

    @contextmanager
    def lock(
        self,
        stage: str,
        key: str,
        wait: bool = True,
        recipe: str = "",
        on_wait: Callable[[dict[str, Any] | None], None] | None = None,
    ) -> Iterator[None]:
        """Hold the key's lock from ``begin`` to ``commit``; see the module docstring for file systems.

        ``wait=False`` raises ``StoreBusy`` naming the holder's pid and host instead of waiting;
        ``on_wait`` is told who holds it before a wait begins (to say why the run pauses)."""
        from filelock import FileLock, Timeout

        path = self.lock_path(stage, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path))
        try:
            try:
                lock.acquire(blocking=False)
            except Timeout:
                owner = self.read_owner(stage, key)
                if not wait:
                    raise StoreBusy(
                        f"{stage} {key[:12]} is being computed by {describe_owner(owner)}; rerun with --wait "
                        f"(the default) to wait for it and reuse its result (lock: {path})"
                    ) from None
                if on_wait is not None:
                    on_wait(owner)
                lock.acquire()
        except OSError as exc:
            if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise StoreError(
                    f"cannot lock {path}: {exc.strerror}; the store's file system refuses flock (NFS mounted "
                    "'nolock'? Lustre without '-o flock'?): mount it with locks or put the store on a local disk"
                ) from exc
            raise
        try:
            owner_info = {"pid": os.getpid(), "host": socket.gethostname(), "recipe": recipe, "since": time.time()}
            write_json_atomic(self.owner_path(stage, key), owner_info)
            yield
        finally:
            # Before releasing: once released, the next holder writes its own info, which must stay.
            self.owner_path(stage, key).unlink(missing_ok=True)
            lock.release()

    # --- writing a result -------------------------------------------------------------------------
    def begin(self, stage: str, key: str) -> Path:
        """The directory a stage writes into; an earlier crashed attempt's files are kept there.

        Callers hold ``lock(stage, key)`` from here to ``commit``."""
        partial = self.partial_dir(stage, key)
        partial.mkdir(parents=True, exist_ok=True)
        return partial

    def discard_partial(self, stage: str, key: str) -> None:
        """Remove an earlier attempt's files (a forced rerun starts clean, not from old checkpoints).

        Callers hold the key's lock, so no other run is writing there."""
        shutil.rmtree(self.partial_dir(stage, key), ignore_errors=True)

    def commit(self, stage: str, key: str, manifest: dict[str, Any]) -> Path:
        """Manifest and ``_SUCCESS`` inside the partial folder, then one rename into place.

        A finished folder already in place is never deleted (``StoreError``): under the lock that
        cannot happen, so it means another writer ignored the lock, and its result is kept."""
        partial = self.partial_dir(stage, key)
        final = self.final_dir(stage, key)
        write_json_atomic(partial / MANIFEST, manifest)
        (partial / SUCCESS).write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z") + "\n", encoding="utf-8")
        if final.exists():
            self._remove_unfinished(stage, key)
        os.replace(partial, final)
        return final

    def _remove_unfinished(self, stage: str, key: str) -> None:
        """Clear a final folder without ``_SUCCESS`` (an old-style interrupted commit, a half-done invalidate).

        It is moved aside first and checked again there, so a result finished meanwhile is never deleted."""
        final = self.final_dir(stage, key)
        if (final / SUCCESS).exists():
            raise StoreError(
                f"{final} already holds a finished result; not replacing it (this attempt's files are kept in "
                f"{self.partial_dir(stage, key)})"
            )
        aside = final.with_name(f"{final.name}.unfinished.{os.getpid()}")
        os.replace(final, aside)
        if (aside / SUCCESS).exists():  # finished between the check and the move: put it back
            os.replace(aside, final)
            raise StoreError(f"{final} was finished by another writer meanwhile; not replacing it")
        shutil.rmtree(aside)

    def complete_interrupted_commit(self, stage: str, key: str) -> bool:
        """Finish a commit killed between writing ``_SUCCESS`` in the partial folder and its rename.

        Returns True when the result is now in place; the caller holds the key's lock."""
        partial = self.partial_dir(stage, key)
        if self.is_done(stage, key) or not (partial / SUCCESS).exists() or not (partial / MANIFEST).exists():
            return False
        if self.final_dir(stage, key).exists():
            self._remove_unfinished(stage, key)
        os.replace(partial, self.final_dir(stage, key))
        return True

    def invalidate(self, stage: str, key: str) -> None:
        """Forget a finished result (for ``--force``): remove its success marker and files.

        Callers hold the key's lock, so no other run is committing it at the same time."""
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
