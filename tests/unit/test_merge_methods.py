"""Merges the merge stage asks mergekit for, checked on tiny models' weights (real mergekit, no mock)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from stages import merge
from stages.base import StageContext


def _shifted(source, folder, seed: int):
    """A copy of ``source`` with every weight moved by a small random task vector."""
    model = AutoModelForCausalLM.from_pretrained(source)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn(parameter.shape, generator=generator))
    model.save_pretrained(folder)
    return folder


def _weights(folder):
    return AutoModelForCausalLM.from_pretrained(folder).state_dict()


@pytest.fixture(scope="module")
def three_models(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("merge_inputs")
    base = folder / "base"
    AutoModelForCausalLM.from_pretrained(tiny_model).save_pretrained(base)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tiny_model / name).exists():
            for target in (base, folder / "cpt", folder / "instruct"):
                target.mkdir(exist_ok=True)
                (target / name).write_bytes((tiny_model / name).read_bytes())
    return base, _shifted(base, folder / "cpt", 1), _shifted(base, folder / "instruct", 2)


def _merge(tmp_path, inputs, **params):
    out = tmp_path / "merge"
    out.mkdir()
    result = merge.run(StageContext(out_dir=out), {k: str(v) for k, v in inputs.items()}, merge.MergeParams(**params))
    return _weights(result["outputs"]["model"])


def test_task_arithmetic_is_the_chat_vector(three_models, tmp_path):
    """cpt of the base plus (instruct - base): the instruct model's chat skills carried onto the cpt model."""
    base, cpt, instruct = three_models
    merged = _merge(tmp_path, {"model": cpt, "instruct": instruct, "base": base}, method="task_arithmetic")
    b, c, i = _weights(base), _weights(cpt), _weights(instruct)
    for name, tensor in merged.items():
        torch.testing.assert_close(tensor, c[name] + i[name] - b[name], atol=1e-5, rtol=0)


def test_ties_merges_several_domain_models_over_the_base(three_models, tmp_path):
    """Two specialists (model, model@other) and the instruct model equal to the base: both task vectors kept."""
    base, cpt, other = three_models
    inputs = {"model": cpt, "model@other": other, "instruct": base, "base": base}
    merged = _merge(tmp_path, inputs, method="ties", density=1.0)
    b, c, o = _weights(base), _weights(cpt), _weights(other)
    name = next(n for n in merged if n.endswith("q_proj.weight"))
    delta = merged[name] - b[name]
    agree = torch.sign(c[name] - b[name]) == torch.sign(o[name] - b[name])
    # where the two task vectors agree in sign, TIES (normalized, full density) takes their mean
    expected = ((c[name] - b[name]) + (o[name] - b[name])) / 2
    torch.testing.assert_close(delta[agree], expected[agree], atol=1e-5, rtol=0)
    assert delta.abs().sum() > 0


def test_slerp_refuses_more_than_one_domain_model(three_models, tmp_path):
    base, cpt, other = three_models
    with pytest.raises(merge.StageError, match="slerp blends two models"):
        _merge(tmp_path, {"model": cpt, "model@other": other, "instruct": base, "base": base}, method="slerp")
