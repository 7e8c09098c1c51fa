"""The *-gpu recipes read hub datasets through the same adapter as local folders: test it on local copies.

Each hub source of each GPU recipe is replaced by a small ``save_to_disk`` folder with the fields and
split the recipe names, then read by ``stages.lib.sources.read`` as the corpus stage would.
"""

import pytest

from pipeline.recipe import available_recipes, load_recipe
from stages.lib.sources import PAIRS_PER_DOCUMENT, read

GPU_RECIPES = [name for name in available_recipes() if name.endswith("-gpu")]


def _local_copy(spec, folder):
    import datasets

    if spec.text_field == "translation":
        rows = [{"translation": {"en": f"Sentence number {i}.", spec.language: f"Frase {i}."}} for i in range(70)]
    else:
        rows = [{spec.text_field: f"Document {i}. " * 40, "id": str(i)} for i in range(5)]
    datasets.DatasetDict({spec.split: datasets.Dataset.from_list(rows)}).save_to_disk(str(folder))
    return spec.model_copy(update={"path": str(folder)})


def test_there_is_a_gpu_variant_per_domain():
    assert set(GPU_RECIPES) == {"legal-gpu", "sec-finance-gpu", "health-gpu", "translation-gpu"}


@pytest.mark.parametrize("name", GPU_RECIPES)
def test_gpu_recipe_sources_read_from_local_copies(name, tmp_path):
    recipe = load_recipe(name)
    assert not recipe.params["model"].name.startswith("embedded:"), "a GPU variant names a real base model"
    assert recipe.params["eval_base"].benchmarks, "a GPU variant runs lm-eval's standard benchmarks"
    hub = [s for s in recipe.params["corpus"].sources if s.type == "hf"]
    assert {s.kind for s in hub} == {"domain", "general"}, "domain and general text come from the hub"
    for spec in hub:
        docs = list(read(_local_copy(spec, tmp_path / spec.name)))
        assert docs and all(d["text"] for d in docs), spec.name
        if spec.text_field == "translation":
            full, rest = divmod(70, PAIRS_PER_DOCUMENT)
            assert [len(d["meta"]["pairs"]) for d in docs] == [PAIRS_PER_DOCUMENT] * full + [rest]
            label = "Spanish" if spec.language == "es" else "French"
            if spec.mode == "interleaved":
                assert docs[0]["text"].startswith(f"English: Sentence number 0.\n{label}: Frase 0.")
            else:
                assert docs[0]["text"].startswith("Frase 0.\nFrase 1.")
