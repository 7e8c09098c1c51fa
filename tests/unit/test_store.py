"""The store: a stage is done only after its atomic commit; partial work survives for resume."""

from pipeline.store import SUCCESS, Store


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
