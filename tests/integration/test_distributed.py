"""Multi-process training on CPU: the cpt stage reruns itself under torchrun (gloo DDP) and returns rank 0's result."""

import json

from stages import cpt, pack
from stages.base import StageContext
from tests.conftest import licence_texts, stdlib_docstrings


def _corpus(folder):
    folder.mkdir()
    texts = {"domain": licence_texts(30), "general": stdlib_docstrings(60)}
    for kind, docs in texts.items():
        for split, part in (("train", docs[:-5]), ("validation", docs[-5:])):
            with (folder / f"{kind}_{split}.jsonl").open("w") as fh:
                for i, text in enumerate(part):
                    fh.write(json.dumps({"id": f"{kind}{i}", "source": kind, "text": text}) + "\n")
    return folder


def _packed(folder, tokenizer, seq_len=64):
    """The pack stage's blocks of ``_corpus``'s documents."""
    out = folder / "pack"
    out.mkdir(parents=True)
    corpus = _corpus(folder / "corpus")
    result = pack.run(
        StageContext(out_dir=out),
        {"corpus": str(corpus), "tokenizer": str(tokenizer)},
        pack.PackParams(seq_len=seq_len),
    )
    return result["outputs"]["packed"]


def test_cpt_runs_on_two_processes(tmp_path, tiny_model):
    params = cpt.CptParams(
        max_tokens=1024, seq_len=64, batch_size=4, micro_batch_size=2, num_processes=2, eval_every=2,
        eval_tokens=128, save_every=2, learning_rate=1e-3,
    )  # fmt: skip
    out = tmp_path / "out"
    out.mkdir()
    result = cpt.run(
        StageContext(out_dir=out, node="cpt"),
        {"model": str(tiny_model), "packed": str(_packed(tmp_path / "c", tiny_model))},
        params,
    )
    assert result["metrics"]["processes"] == 2
    assert result["metrics"]["steps"] == 1024 // 64 // 4
    assert (result["outputs"]["model"] / "model.safetensors").exists()
    history = [json.loads(line) for line in (out / "curves.jsonl").read_text().splitlines()]
    assert any("eval_domain_loss" in r for r in history) and any("loss" in r for r in history)
    assert not (out / ".launch_result.json").exists() and not (out / "checkpoints").exists()
