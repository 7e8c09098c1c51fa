"""The store: a stage is done only after its atomic commit; partial work survives for resume; runs sharing
a store take turns per key and never remove each other's finished results."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipeline.store import SUCCESS, Store, StoreBusy, StoreError


def test_commit_is_the_only_way_to_done(tmp_path):
    store = Store(tmp_path)
    partial = store.begin("cpt", "abcdef1234567890")
    (partial / "checkpoint").mkdir()
    assert not store.is_done("cpt", "abcdef1234567890")
    # A crash here leaves only the partial directory, which a rerun picks up again.
    assert store.begin("cpt", "abcdef1234567890") == partial and (partial / "checkpoint").exists()
    final = store.commit("cpt", "abcdef1234567890", {"outputs": {}})
    assert store.is_done("cpt", "abcdef1234567890")
    assert (final / SUCCESS).exists() and not partial.exists()
    assert store.manifest("cpt", "abcdef1234567890") == {"outputs": {}}


def test_final_dir_without_success_is_not_done_and_is_replaced(tmp_path):
    store = Store(tmp_path)
    final = store.final_dir("cpt", "k" * 64)
    final.mkdir(parents=True)
    (final / "stale").write_text("from an interrupted commit")
    assert not store.is_done("cpt", "k" * 64)
    store.begin("cpt", "k" * 64)
    store.commit("cpt", "k" * 64, {"outputs": {}})
    assert store.is_done("cpt", "k" * 64) and not (final / "stale").exists()


def test_invalidate_forgets_a_result(tmp_path):
    store = Store(tmp_path)
    store.begin("sft", "a" * 64)
    store.commit("sft", "a" * 64, {"outputs": {}})
    store.invalidate("sft", "a" * 64)
    assert not store.is_done("sft", "a" * 64)


# --- concurrency: a per-key lock, and nothing finished is ever removed by a commit --------------------------

ROOT = Path(__file__).resolve().parents[2]
KEY = "c" * 64


def _hold_lock(store_root: Path, seconds: float) -> subprocess.Popen:
    """Another process holding the key's lock, as a second run on the same store would."""
    code = (
        "import sys, time\n"
        "from pipeline.store import Store\n"
        f"with Store({str(store_root)!r}).lock('cpt', {KEY!r}, recipe='other'):\n"
        "    print('held', flush=True)\n"
        f"    time.sleep({seconds})\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    return process


def test_commit_never_deletes_a_finished_result(tmp_path):
    store = Store(tmp_path)
    final = store.final_dir("cpt", KEY)
    final.mkdir(parents=True)
    (final / "model.safetensors").write_text("another run's finished weights")
    (final / SUCCESS).write_text("done\n")
    store.begin("cpt", KEY)
    with pytest.raises(StoreError, match="already holds a finished result"):
        store.commit("cpt", KEY, {"outputs": {}})
    assert (final / "model.safetensors").read_text() == "another run's finished weights"
    assert store.partial_dir("cpt", KEY).exists()  # this attempt's files are kept, not lost either


def test_success_is_written_before_the_rename(tmp_path):
    """A kill between rename and marker can no longer leave a whole result looking unfinished."""
    store = Store(tmp_path)
    store.begin("cpt", KEY)
    final = store.commit("cpt", KEY, {"outputs": {}})
    assert (final / SUCCESS).exists() and json.loads((final / "manifest.json").read_text()) == {"outputs": {}}
    # A commit killed after the marker and before the rename is finished by the next run, not redone.
    partial = store.begin("sft", KEY)
    (partial / "manifest.json").write_text(json.dumps({"outputs": {}}))
    (partial / SUCCESS).write_text("done\n")
    assert not store.is_done("sft", KEY)
    assert store.complete_interrupted_commit("sft", KEY) and store.is_done("sft", KEY)


def test_no_wait_names_the_holders_pid_and_host(tmp_path):
    holder = _hold_lock(tmp_path, 30)
    try:
        store = Store(tmp_path)
        assert store.holder("cpt", KEY)["pid"] == holder.pid
        with pytest.raises(StoreBusy) as info, store.lock("cpt", KEY, wait=False):
            pass
        assert f"pid {holder.pid} on host {socket.gethostname()} (recipe other" in str(info.value)
    finally:
        holder.kill()
        holder.wait()
    # The kernel drops a killed holder's flock: the key is free again, with no stale lock to clear.
    assert Store(tmp_path).holder("cpt", KEY) is None
    with Store(tmp_path).lock("cpt", KEY, wait=False):
        assert json.loads(Store(tmp_path).owner_path("cpt", KEY).read_text())["pid"] == os.getpid()


def test_wait_blocks_until_the_holder_releases(tmp_path):
    holder = _hold_lock(tmp_path, 1.5)
    told: list[dict] = []
    started = time.monotonic()
    with Store(tmp_path).lock("cpt", KEY, wait=True, on_wait=told.append):
        waited = time.monotonic() - started
    holder.wait()
    assert waited > 0.5 and told and told[0]["pid"] == holder.pid


def test_lock_excludes_threads_of_one_process_too(tmp_path):
    """Two runners in one process (a notebook) also take turns: the lock is per open file, not per process."""
    inside = []
    overlap = []

    def work() -> None:
        with Store(tmp_path).lock("cpt", KEY):
            inside.append(1)
            overlap.append(len(inside))
            time.sleep(0.2)
            inside.pop()

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlap == [1, 1, 1]
