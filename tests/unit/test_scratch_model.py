"""``base_model: scratch:...``: a small Llama with random weights and SmolLM2's tokenizer, built by the real stage."""

from __future__ import annotations

import json
import logging
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from stages import model
from stages.base import StageContext


def _build(tmp_path, name: str):
    out = tmp_path / "stage"
    out.mkdir(parents=True)
    result = model.run(StageContext(out_dir=out, log=logging.getLogger("test")), {}, model.ModelParams(name=name))
    return result["outputs"]["model"]


def test_a_scratch_config_file_builds_an_untrained_model_on_smollm2s_tokenizer(tmp_path):
    config = tmp_path / "config.json"
    shape = {"model_type": "llama", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}
    config.write_text(json.dumps(shape | {"intermediate_size": 64, "tie_word_embeddings": True}))
    folder = _build(tmp_path, f"scratch:{config}")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    built = AutoModelForCausalLM.from_pretrained(folder)
    assert built.config.vocab_size == len(tokenizer) == 49152 and built.config.hidden_size == 32
    text = "En el principio creó Dios los cielos y la tierra."
    ids = tokenizer(text, return_tensors="pt").input_ids
    assert tokenizer.decode(ids[0], skip_special_tokens=True) == text
    with torch.no_grad():
        loss = built(input_ids=ids, labels=ids).loss.item()
    assert abs(loss - math.log(len(tokenizer))) < 1.0  # untrained: about uniform over the vocabulary
    again = AutoModelForCausalLM.from_pretrained(_build(tmp_path / "again", f"scratch:{config}"))
    assert torch.equal(built.model.embed_tokens.weight, again.model.embed_tokens.weight)  # seeded: same weights


def test_presets_are_named_by_their_parameter_count():
    from transformers import AutoConfig

    for name in model.SCRATCH:
        config = AutoConfig.for_model(vocab_size=49152, **model._scratch_config(name))
        with torch.device("meta"):
            count = sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())
        assert round(count / 1e6) == int(name.rsplit("-", 1)[1].removesuffix("m")), (name, count)


def test_an_unknown_scratch_name_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"neither a scratch preset .*scratch:llama-7m"):
        model.ModelParams(name="scratch:llama-700m")
