"""Per-document attention gives the masked SDPA's logits and gradients, and leaves every other batch to SDPA."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stages.lib import document_attention


def _models(tiny_model: Path) -> tuple:
    import torch
    from transformers import AutoModelForCausalLM

    document_attention.register()
    masked = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32, attn_implementation="sdpa")
    split = AutoModelForCausalLM.from_pretrained(
        tiny_model, dtype=torch.float32, attn_implementation=document_attention.NAME
    )
    masked.config.use_cache = split.config.use_cache = False
    return masked, split


def test_document_spans_start_where_positions_restart() -> None:
    import torch

    positions = torch.tensor([[5, 6, 0, 1, 2, 0], [0, 1, 2, 3, 4, 5]])
    assert document_attention.document_spans(positions) == [[(0, 2), (2, 5), (5, 6)], [(0, 6)]]


def test_packed_rows_give_the_masked_logits_and_gradients(tiny_model: Path) -> None:
    import torch

    masked, split = _models(tiny_model)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(3, masked.config.vocab_size, (2, 48), generator=generator)
    # row 0: the tail of a document, then two whole ones; row 1: four documents
    positions = torch.tensor(
        [list(range(7, 17)) + list(range(20)) + list(range(18)), list(range(12)) * 4], dtype=torch.long
    )
    batch = {"input_ids": ids, "labels": ids, "position_ids": positions}
    masked_out, split_out = masked(**batch), split(**batch)
    masked_out.loss.backward()
    split_out.loss.backward()
    assert torch.allclose(split_out.logits, masked_out.logits, atol=1e-5)
    for (name, a), (_, b) in zip(masked.named_parameters(), split.named_parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, atol=1e-5), name
    with torch.no_grad():  # and the documents really are kept apart: plain causal attention differs
        crossing = masked(input_ids=ids).logits
    assert not torch.allclose(crossing[1, 12:], split_out.logits[1, 12:], atol=1e-3)


def test_padded_and_single_document_batches_go_to_sdpa_unchanged(tiny_model: Path) -> None:
    import torch

    masked, split = _models(tiny_model)
    ids = torch.randint(3, masked.config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(1))
    padding = torch.ones_like(ids)
    padding[1, 10:] = 0
    with torch.no_grad():
        for kwargs in ({"attention_mask": padding}, {}, {"position_ids": torch.arange(16).repeat(2, 1)}):
            assert torch.equal(split(input_ids=ids, **kwargs).logits, masked(input_ids=ids, **kwargs).logits)


def test_a_saved_model_names_no_custom_attention(tiny_model: Path, tmp_path: Path) -> None:
    """Other tools (mergekit, lm-eval, vLLM) load what cpt and sft save: it must not ask for our function."""
    _, split = _models(tiny_model)
    split.save_pretrained(tmp_path)
    assert document_attention.NAME not in json.dumps(json.loads((tmp_path / "config.json").read_text()))


@pytest.mark.parametrize("length", [1, 5])
def test_one_token_documents_are_their_own_span(length: int) -> None:
    import torch

    positions = torch.zeros((1, length), dtype=torch.long)
    assert document_attention.document_spans(positions) == [[(i, i + 1) for i in range(length)]]
