"""sft's padding-free batches give the padded batch's loss: transformers keeps the flattened pairs apart."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_padding_free_loss_equals_padded_loss(tiny_model: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    generator = torch.Generator().manual_seed(0)
    examples = []
    for length in (7, 19, 12, 30):  # pairs of different lengths: the padded batch has padding to spare
        ids = torch.randint(3, model.config.vocab_size, (length,), generator=generator).tolist()
        labels = [-100] * (length // 2) + ids[length // 2 :]  # loss on the "completion" half only
        examples.append({"input_ids": ids, "labels": labels})

    padded = DataCollatorForLanguageModeling(pad_token_id=0)(examples)
    flat = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)(examples)
    assert padded["input_ids"].shape == (4, 30) and flat["input_ids"].shape == (1, 68)
    with torch.no_grad():  # use_cache=False as trl's compute_loss passes it: with a cache no packed mask is built
        padded_out = model(**padded, use_cache=False)
        flat_out = model(**flat, use_cache=False)
        # the same flattened row with plain causal attention (no position ids) lets pairs see each other
        mixed_logits = model(input_ids=flat["input_ids"], use_cache=False).logits
    assert float(flat_out.loss) == pytest.approx(float(padded_out.loss), abs=1e-6)
    start = 0
    for row, example in enumerate(examples):
        length = len(example["input_ids"])
        pair = slice(start, start + length)
        assert torch.allclose(flat_out.logits[0, pair], padded_out.logits[row, :length], atol=1e-5)
        if row:  # every pair after the first would differ if the mask let it see the ones before
            assert not torch.allclose(mixed_logits[0, pair], padded_out.logits[row, :length], atol=1e-3)
        start += length
