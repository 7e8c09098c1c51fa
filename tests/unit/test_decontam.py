"""Decontamination index: 13-gram hits, whole short texts, and which eval item each hit belongs to."""

from stages.lib.decontam import Index, ngrams

HELD_OUT = (
    "The licensee shall not sublicense, sell or otherwise transfer the software to any third party "
    "without the prior written consent of the licensor"
)


def test_a_shared_13_gram_is_a_hit_and_a_12_gram_is_not():
    index = Index([("item", [HELD_OUT])])
    words = HELD_OUT.split()
    assert index.hits("Preamble. " + " ".join(words[3:16]) + " and more.") == {"item"}
    assert index.hits("Preamble. " + " ".join(words[3:15]) + " and more.") == set()


def test_matching_ignores_case_and_punctuation():
    index = Index([("item", [HELD_OUT])])
    assert index.hits(HELD_OUT.upper().replace(",", " ;")) == {"item"}


def test_short_texts_match_whole_and_only_whole():
    index = Index([("dx", ["Acute bronchitis due to rhinovirus"]), ("other", [HELD_OUT])])
    assert index.hits("Notes: acute bronchitis due to rhinovirus, see J20.") == {"dx"}
    assert index.hits("Notes: acute bronchitis due to streptococcus.") == set()


def test_hits_name_every_item_that_shares_text():
    index = Index([("a", [HELD_OUT]), ("b", [HELD_OUT + " in writing"]), ("c", ["unrelated words only"])])
    assert index.hits(HELD_OUT) == {"a", "b"}


def test_ngrams_of_a_short_text_is_the_text():
    assert ngrams("Two words", 13) == {("two", "words")}
    assert len(ngrams(HELD_OUT, 13)) == len(HELD_OUT.split()) - 12


def test_overlap_share_finds_near_copies_not_documents_sharing_a_clause():
    from stages.lib.decontam import OverlapShare

    clause = "the above copyright notice and this permission notice shall be included in all copies of the software"
    own = " ".join(f"word{i}" for i in range(60))
    near = f"{clause} {own}"
    validation = [("near", near), ("clause", f"{clause} " + " ".join(f"other{i}" for i in range(80))), ("none", own)]
    overlap = OverlapShare(validation, 13)
    overlap.add_training_text(near.replace("word59", "changed"))  # a near-copy: one word differs
    overlap.add_training_text(f"preamble {clause} and more")
    shares = overlap.shares()
    assert shares["near"] > 0.9 and 0 < shares["clause"] < 0.15
    assert shares["none"] > 0.9  # its text is inside the near-copy too: the share counts n-grams, not documents
    assert OverlapShare([], 13).shares() == {}
