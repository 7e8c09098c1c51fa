"""The shared-context scorer gives lm-eval's own log-likelihoods and greedy flags, on a tiny real model."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("lm_eval")


def _instances(pairs: list[tuple[str, str]]) -> list:
    from lm_eval.api.instance import Instance

    return [
        Instance(request_type="loglikelihood", doc={}, arguments=pair, idx=index) for index, pair in enumerate(pairs)
    ]


def test_scores_match_lm_eval_per_pair(tiny_model: Path) -> None:
    from lm_eval.models.huggingface import HFLM

    from eval.shared_context import SharedContextHFLM

    items = {  # contexts of different lengths (right padding inside a batch), choices of 1 to many tokens
        "The licensee may copy and distribute the": [" Software", " source code of the program", " work", " it"],
        "Permission is hereby granted, free of charge, to any person obtaining a copy of this software and": [
            " associated documentation files",
            " the",
        ],
        "THE SOFTWARE IS PROVIDED": [' "AS IS"', " WITHOUT WARRANTY OF ANY KIND", " to you"],
    }
    pairs = [(context, choice) for context, choices in items.items() for choice in choices]
    pairs.append(("A context no other request shares", " goes through lm-eval itself"))
    pairs.append(("Permission is", " g"))  # a context that is a prefix of another item's context
    requests = _instances(pairs)

    plain = HFLM(pretrained=str(tiny_model), dtype="float32", batch_size=2, device="cpu")
    shared = SharedContextHFLM(pretrained=str(tiny_model), dtype="float32", batch_size=2, device="cpu")
    expected = plain.loglikelihood(requests, disable_tqdm=True)
    got = shared.loglikelihood(_instances(pairs), disable_tqdm=True)

    assert len(got) == len(expected) == len(pairs)
    for pair, (want_ll, want_greedy), (ll, greedy) in zip(pairs, expected, got, strict=True):
        assert ll == pytest.approx(want_ll, abs=1e-4), pair
        assert greedy == want_greedy, pair
    # the scores are not all alike, so the comparison above can tell pairs apart
    assert len({round(ll, 3) for ll, _ in got}) > len(pairs) // 2


def test_one_token_choices_need_no_second_pass(tiny_model: Path) -> None:
    from lm_eval.models.huggingface import HFLM

    from eval.shared_context import SharedContextHFLM

    pairs = [("Copyright (c) the", choice) for choice in (" a", " b", " c", " d")]
    plain = HFLM(pretrained=str(tiny_model), dtype="float32", batch_size=4, device="cpu")
    shared = SharedContextHFLM(pretrained=str(tiny_model), dtype="float32", batch_size=4, device="cpu")
    calls = []
    forward = shared.model.forward
    shared.model.forward = lambda *args, **kwargs: calls.append(1) or forward(*args, **kwargs)
    got = shared.loglikelihood(_instances(pairs), disable_tqdm=True)
    expected = plain.loglikelihood(_instances(pairs), disable_tqdm=True)
    assert [ll for ll, _ in got] == pytest.approx([ll for ll, _ in expected], abs=1e-4)
    assert len(calls) == 1  # the context pass alone scores every one-token choice


def test_choices_of_very_different_lengths_go_in_separate_passes() -> None:
    from eval.shared_context import _length_batches

    # tokens after each choice's first: one-token choices need no second pass; a 70-token definition is not
    # padded onto 2-token choices, and short ones share a pass
    assert _length_batches([0, 1, 2, 0, 3, 70, 60, 50, 20, 15, 9, 2]) == [[5, 6], [7], [8, 9], [10, 4, 2, 11, 1]]
    assert _length_batches([0, 0, 0]) == []
