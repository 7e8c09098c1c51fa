"""File fingerprints for cache keys: every byte counts, and the digest cache is keyed by the file's stat."""

from __future__ import annotations

import os

import pytest

from stages.lib.fingerprint import digest_cache_path, fingerprint_file, fingerprint_tree


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DAPT_DIGEST_CACHE", str(tmp_path / "cache"))


def _rewrite_middle(path, byte: bytes) -> None:
    with path.open("r+b") as fh:
        fh.seek(path.stat().st_size // 2)
        fh.write(byte)


def test_an_edit_in_the_middle_of_a_large_file_changes_its_fingerprint(tmp_path):
    """Files over 64 MiB were keyed by size and first/last MiB: a same-size edit inside reused stale results."""
    big = tmp_path / "corpus.jsonl"
    with big.open("wb") as fh:
        fh.truncate(65 * 2**20)  # sparse: 65 MiB of zeros
    before = fingerprint_file(big)
    _rewrite_middle(big, b"x")
    assert big.stat().st_size == 65 * 2**20 and fingerprint_file(big) != before
    assert digest_cache_path().exists()


def test_the_digest_cache_is_keyed_by_the_files_stat(tmp_path):
    doc = tmp_path / "docs" / "a.md"
    doc.parent.mkdir()
    doc.write_text("clause one\nclause two\n")
    first = fingerprint_tree(doc.parent)
    stat = doc.stat()
    _rewrite_middle(doc, b"X")  # same size, same inode; mtime restored to the nanosecond
    os.utime(doc, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert fingerprint_tree(doc.parent) == first  # the cached digest: nothing in its stat changed
    os.utime(doc, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # what any edit does to the mtime
    assert fingerprint_tree(doc.parent) != first


def test_an_unwritable_cache_still_fingerprints(tmp_path, monkeypatch):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    monkeypatch.setenv("DAPT_DIGEST_CACHE", str(blocker))  # mkdir under a file fails
    doc = tmp_path / "b.txt"
    doc.write_text("text")
    assert fingerprint_file(doc) == "982d9e3eb996f559e633f4d194def3761d909f5a3b647d1a851fead67c32c9d1"


def test_hub_models_and_datasets_are_keyed_by_the_commit_their_revision_points_to(tmp_path, monkeypatch):
    """A hub name alone would reuse results after the repository moved on: the key holds the commit, read
    offline from the local Hugging Face cache's refs (as a download records them)."""
    from huggingface_hub import constants

    from stages import model
    from stages.lib import sources
    from stages.lib.fingerprint import hub_commit

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    params = model.ModelParams(name="org/tiny-lm")
    spec = sources.SourceSpec(name="web", kind="general", type="hf", path="org/web-text")
    assert model.fingerprint(params)["commit"] == "unresolved" and hub_commit("org/tiny-lm") is None
    assert sources.fingerprint(spec).endswith(":unresolved")

    first, second = "a" * 40, "b" * 40
    for folder in ("models--org--tiny-lm", "datasets--org--web-text"):
        (tmp_path / "hub" / folder / "refs").mkdir(parents=True)
        (tmp_path / "hub" / folder / "refs" / "main").write_text(first)
    before = (model.fingerprint(params), sources.fingerprint(spec))
    assert before[0]["commit"] == first and before[1] == f"hub:org/web-text:train:{first}"
    for folder in ("models--org--tiny-lm", "datasets--org--web-text"):
        (tmp_path / "hub" / folder / "refs" / "main").write_text(second)  # main moved on
    assert model.fingerprint(params)["commit"] == second and sources.fingerprint(spec).endswith(second)
    pinned = model.ModelParams(name="org/tiny-lm", revision=first)  # a pinned commit never moves
    assert model.fingerprint(pinned)["commit"] == first
