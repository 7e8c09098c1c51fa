"""Shared fixtures: a tiny Llama built from a config with a tokenizer trained here, tiny real corpora.

Nothing is downloaded: the tokenizer is a byte-level BPE trained on real text from installed
packages, the model is random-initialised from a ``transformers`` config (about 60k parameters),
and the text comes from the licensedcode-data wheel and Python's own docstrings.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

FIXTURES = Path(__file__).parent / "fixtures"
PACKAGES = ("datatrove", "trl", "peft", "accelerate", "datasets", "lm_eval", "ftfy", "submitit")
"""Installed packages whose Markdown READMEs (in their wheels' METADATA) serve as a user's own documents."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` need CUDA: skipped, with the reason shown, where there is none."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def stdlib_docstrings(limit: int = 120) -> list[str]:
    """Real English prose: the standard library's module docstrings, parsed (not imported) from source."""
    import ast
    import sysconfig

    texts = []
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        if len(texts) >= limit or path.name.startswith("_"):
            continue
        try:
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        except (SyntaxError, UnicodeDecodeError):
            continue
        if len(doc) >= 300:
            texts.append(doc)
    return texts


def readme_sections() -> list[tuple[str, str, str]]:
    """(package, heading, section text) of the installed packages' Markdown READMEs."""
    import re
    from email.parser import Parser
    from importlib import metadata

    sections = []
    for package in PACKAGES:
        body = Parser().parsestr(metadata.distribution(package).read_text("METADATA") or "").get_payload()
        for chunk in re.split(r"\n(?=#{1,3} )", body or ""):
            heading, _, text = chunk.partition("\n")
            words = text.split()
            if heading.startswith("#") and len(words) >= 40 and "```" not in text[:200]:
                sections.append((package, heading.strip("# ").strip(), chunk.strip()))
    return sections


def licence_texts(limit: int = 40) -> list[str]:
    from stages.lib.sources import _licensedcode_dir

    return [
        p.read_text(encoding="utf-8").split("---", 2)[-1] for p in sorted(_licensedcode_dir().glob("*.LICENSE"))[:limit]
    ]


@pytest.fixture(scope="session")
def general_jsonl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("general") / "general.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for text in stdlib_docstrings():
            fh.write(json.dumps({"text": text}) + "\n")
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, general_jsonl: Path) -> Path:
    """A 2-layer Llama with a 512-token BPE vocabulary, saved as a normal HF folder."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_model")
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    texts = licence_texts() + [json.loads(line)["text"] for line in general_jsonl.read_text().splitlines()]
    bpe.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=512, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        bos_token="<|im_start|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def tiny_recipe(path: Path, model: Path, general: Path, **sections: dict) -> Path:
    """A recipe that runs the whole DAG in about a minute on 2 cores."""
    recipe = {
        "name": path.stem,
        "base_model": str(model),
        "seed": 0,
        "sources": [
            {
                "name": "licenses",
                "kind": "domain",
                "type": "licensedcode",
                "license": "CC-BY-4.0",
                "max_documents": 160,
            },
            {
                "name": "messages_fr",
                "kind": "domain",
                "type": "gettext",
                "language": "fr",
                "path": str(FIXTURES / "locale"),
                "min_chars": 40,
                "filters": ["encoding", "boilerplate", "language"],  # interleaved pairs repeat their line labels
            },
            {
                "name": "stdlib_docs",
                "kind": "general",
                "type": "jsonl",
                "path": str(general),
                "license": "PSF-2.0",
                "filters": ["encoding", "boilerplate", "gopher_repetition", "language"],  # docstrings quote code
            },
        ],
        "corpus": {
            "validation_fraction": 0.1,
            "eval_fraction": 0.15,
            "tasks": [
                {"type": "license_id", "source": "licenses"},
                {"type": "translation", "source": "messages_fr", "name": "en_fr", "max_sft_pairs": 8},
            ],
            "max_sft_pairs": 16,
            "max_eval_items": 8,
        },
        "cpt": {
            "max_tokens": 2048,
            "seq_len": 64,
            "batch_size": 4,
            "micro_batch_size": 4,
            "eval_every": 2,
            "eval_tokens": 128,
            "save_every": 2,
            "learning_rate": 1e-3,
        },
        "sft": {"max_length": 384, "batch_size": 4, "micro_batch_size": 4, "save_every": 2},
        "eval": {"bpb_docs": 3, "bpb_doc_chars": 300, "batch_size": 4},
    }
    for section, values in sections.items():
        recipe.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return path
