"""Translate held-out documents with three decoders, for one model: sentence, incremental (window k), whole document.

Placed only when the recipe has a ``doc_translation:`` section, once per evaluated model like eval. The
documents are the corpus's held-out documents of the named sources (their ``meta.pairs``: a Bible chapter's
verses, a gettext catalog chunk's messages), cut to their first ``sentences`` pairs; the few-shot pairs and
the whole-document example come from the same source's training documents. Every model and decoder
translates the same sentences, so the report pairs them item by item. The decoding and scoring live in
``eval.doc_translation``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from eval import doc_translation
from stages.base import MODEL, Params, StageContext, StageError, StageSpec, Wiring
from stages.lib.jsonl import read_jsonl
from stages.lib.modeling import device_and_precision, load_model, load_tokenizer, runtime_choices


class DocTranslationParams(Params):
    sources: list[str] = Field(default_factory=list)
    """Domain sources whose held-out documents carry aligned pairs (empty: every such source)."""
    documents: int = Field(4, ge=1)
    """Held-out documents per source; every decoder translates each one. Position i of every document is one
    generation batch, so up to ``batch_size`` documents cost little more than one."""
    sentences: int = Field(5, ge=2)
    """Each document is cut to its first this many sentences (cost: documents x sentences x decoders)."""
    windows: list[int] = Field(default_factory=lambda: [0, 2])
    """Incremental decoders' context windows k (previous source sentences with the model's translations); 0 is
    sentence by sentence."""
    whole_document: bool = True
    """Also translate each document in one generation."""
    num_fewshot: int = Field(2, ge=0)
    """Training pairs before each sentence prompt, as in the sentence-level translation task (the first pairs of
    one training document, which also serves as the whole-document example: fewer if it is shorter)."""
    batch_size: int = Field(8, ge=1)
    """Prompts per generation batch (transformers backend)."""
    backend: Literal["auto", "hf", "vllm"] = "auto"
    """auto: vllm where it is installed and a GPU is present, else transformers."""
    seed: int = 0
    """Which held-out documents are chosen."""
    trust_remote_code: bool = False
    """Only when the recipe asks: the model's own code runs on this machine."""

    @field_validator("windows")
    @classmethod
    def _windows(cls, value: list[int]) -> list[int]:
        if not value or any(k < 0 for k in value):
            raise ValueError("windows: give one or more context sizes >= 0 (0 = sentence by sentence), e.g. [0, 1, 3]")
        return sorted(set(value))


def _sources_with_pairs(records: list[dict[str, Any]]) -> list[str]:
    return sorted({r["source"] for r in records if doc_translation.has_pairs(r)})


def _generator(model_path: str, params: DocTranslationParams, ctx: StageContext) -> tuple[Any, str]:
    import importlib.util

    import torch

    device, bf16 = device_and_precision()
    vllm_ready = importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()
    if params.backend == "vllm" and not vllm_ready:
        raise StageError("doc_translation.backend=vllm needs a CUDA GPU and vllm (make install-gpu); use auto or hf")
    if params.backend == "vllm" or (params.backend == "auto" and vllm_ready):  # pragma: no cover - GPU only
        from eval.generation import VLLMGenerator

        return VLLMGenerator(model_path, "bfloat16" if bf16 else "float32"), "vllm"
    from eval.generation import HFGenerator

    dtype = torch.bfloat16 if bf16 else torch.float32
    model = load_model(model_path, params.trust_remote_code, dtype=dtype).to(device)
    tokenizer = load_tokenizer(model_path, params.trust_remote_code)
    return HFGenerator(model, tokenizer, batch_size=params.batch_size), "hf"


def run(ctx: StageContext, inputs: dict[str, Any], params: DocTranslationParams) -> dict[str, Any]:
    corpus = Path(inputs["corpus"])
    held_out = read_jsonl(corpus / "domain_eval.jsonl")
    train = read_jsonl(corpus / "domain_train.jsonl")
    available = _sources_with_pairs(held_out)
    sources = params.sources or available
    missing = [s for s in sources if s not in available]
    if missing or not sources:
        raise StageError(
            f"doc_translation.sources: {missing or 'none'} have no held-out documents with aligned sentence pairs "
            f"in {corpus}; sources that do: {available or 'none (translation sources are bible and gettext)'}"
        )
    generate, backend = _generator(inputs["model"], params, ctx)
    decoders: list[int | None] = [*params.windows, *([None] if params.whole_document else [])]
    plans = []
    for source in sources:
        docs = doc_translation.documents_from_corpus(held_out, source, params.documents, params.sentences, params.seed)
        shown = doc_translation.documents_from_corpus(train, source, 1, max(3, params.num_fewshot), params.seed)
        if not docs or not shown:
            raise StageError(f"doc_translation: source '{source}' has no held-out or no training documents with pairs")
        example = list(zip(shown[0].sentences, shown[0].references, strict=True))
        plans.append((source, docs, example))
    total = sum(len(d.sentences) for _, docs, _ in plans for d in docs) * len(decoders)
    try:
        by_source = _translate(ctx, plans, decoders, generate, params, total)
    except ValueError as exc:  # a prompt longer than the model's context
        raise StageError(f"doc_translation: {exc} (doc_translation.sentences, num_fewshot, windows)") from exc
    out = ctx.out_dir / "results.json"
    payload = {"model": inputs["model"], "backend": backend, "references": _references(plans), "sources": by_source}
    out.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    metrics: dict[str, Any] = {
        f"{source}/{name}/{key}": scores[key]
        for source, entry in by_source.items()
        for name, scores in entry["decoders"].items()
        for key in ("chrf", "d_bleu")
    }
    metrics["runtime"] = runtime_choices() | {"backend": backend}
    return {"outputs": {"results": out}, "metrics": metrics}


def _translate(
    ctx: StageContext,
    plans: list[tuple[str, list[Any], list[tuple[str, str]]]],
    decoders: list[int | None],
    generate: Any,
    params: DocTranslationParams,
    total: int,
) -> dict[str, Any]:
    """Every decoder over every source's documents: scores, timings and the translations themselves."""
    by_source: dict[str, Any] = {}
    with ctx.progress(total=total, unit="sentence") as bar:
        for source, docs, example in plans:
            entry: dict[str, Any] = {
                "source_lang": docs[0].source_lang,
                "target_lang": docs[0].target_lang,
                "documents": [d.id for d in docs],
                "baseline": _without_items(doc_translation.copy_baseline(docs)),
                "decoders": {},
            }
            for window in decoders:
                name = doc_translation.decoder_name(window)
                started, tokens = time.monotonic(), generate.generated_tokens
                if window is None:
                    hypotheses = doc_translation.decode_document(docs, example, generate)
                    bar.update(sum(len(d.sentences) for d in docs))
                else:
                    fewshot = example[: params.num_fewshot]
                    hypotheses = doc_translation.decode_incremental(docs, window, fewshot, generate, bar.update)
                scores = doc_translation.score(docs, hypotheses)
                scores |= {
                    "seconds": round(time.monotonic() - started, 1),
                    "generated_tokens": generate.generated_tokens - tokens,
                    "hypotheses": hypotheses,
                }
                entry["decoders"][name] = scores
                ctx.log.info(
                    "%s %s: chrF %.2f BLEU %.2f d-BLEU %.2f consistency %s (%.0f s)",
                    source, name, scores["chrf"], scores["bleu"], scores["d_bleu"], scores["consistency"],
                    scores["seconds"],
                )  # fmt: skip
            by_source[source] = entry
    return by_source


def _without_items(scores: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in scores.items() if k not in ("per_item", "per_document")}


def _references(plans: list[tuple[str, list[Any], Any]]) -> dict[str, list[dict[str, Any]]]:
    return {
        source: [{"id": d.id, "sentences": list(d.sentences), "references": list(d.references)} for d in docs]
        for source, docs, _ in plans
    }


SPEC = StageSpec(
    name="doc_translation",
    version=3,  # 2: a term's rendering must be 0.6 like the reference's; 3: stop on generated text only
    params=DocTranslationParams,
    inputs=("model", "corpus"),
    wiring=Wiring(inputs={"model": MODEL, "corpus": "corpus.data"}, per_model=True, with_section=True),
    accelerated=True,
    run=run,
    doc="Document-level translation of held-out documents by one model: sentence, incremental and whole-document.",
    libraries=("torch", "transformers", "sacrebleu"),
)
