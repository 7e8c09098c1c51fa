"""Evaluate one model through lm-eval: held-out bits-per-byte (general, domain) and the recipe's tasks.

The stage writes its lm-eval task YAMLs and their data files into its own output, then calls
``lm_eval.simple_evaluate`` with the HF backend on the model folder. One node per model (base,
cpt, sft, merge) so retraining one model never re-evaluates the others.
"""

from __future__ import annotations

import functools
import json
from itertools import zip_longest
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from eval.tasks import (
    TASK_PREFIX,
    bits_per_byte_task,
    multiple_choice_task,
    short_answer_task,
    translation_task,
    write_task,
)
from stages.base import MODEL, Params, StageContext, StageError, StageSpec, Wiring, require
from stages.lib.jsonl import read_jsonl
from stages.lib.modeling import device_and_precision, runtime_choices
from stages.lib.user_data import TaskDirsError, lm_eval_task_names, pair_text


class EvalParams(Params):
    bpb_docs: int = Field(16, ge=1)
    """Held-out documents per bits-per-byte set; cost grows linearly with docs x chars."""
    bpb_doc_chars: int = Field(1500, ge=100)
    """Each held-out document is cut to this many characters."""
    task_items: int | None = Field(None, ge=1)
    """Score at most this many items per domain task (None: all the corpus built)."""
    batch_size: int = Field(8, ge=1)
    """lm-eval batch size."""
    backend: Literal["auto", "hf", "vllm"] = "auto"
    """lm-eval model backend: auto is vllm where it is installed and a GPU is present (fast generation), else hf."""
    tensor_parallel_size: int = Field(1, ge=1)
    """vllm: GPUs one model is split over."""
    benchmarks: list[str] = Field(default_factory=list)
    """lm-eval's own tasks (mmlu, hellaswag, arc_challenge, medqa_4options, ...): their data comes from the
    hub, so only recipes for machines with access name them; reported as general ability beside ours."""
    num_fewshot: int = Field(2, ge=0)
    """Training pairs shown before each translation prompt, so models never instruction-tuned see the format."""
    task_dirs: list[str] = Field(default_factory=list)
    """Folders of the user's own lm-eval task YAMLs, scored for every model beside the built tasks."""
    trust_remote_code: bool = False

    @field_validator("benchmarks")
    @classmethod
    def _benchmarks_known(cls, value: list[str]) -> list[str]:
        """Names lm-eval does not know, refused at recipe load rather than after all training (eval_base)."""
        if not value:
            return value
        import difflib

        known = lm_eval_benchmark_names()
        problems = []
        for index, name in enumerate(value):
            if name not in known:
                close = difflib.get_close_matches(name, known, n=3)
                hint = f" (did you mean {', '.join(close)}?)" if close else "; list them with `lm-eval ls tasks`"
                problems.append(f"eval.benchmarks.{index}: lm-eval has no task '{name}'{hint}")
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("task_dirs")
    @classmethod
    def _task_dirs_readable(cls, value: list[str]) -> list[str]:
        for folder in value:  # at plan time: the folder exists and names its tasks
            try:
                lm_eval_task_names(Path(folder))
            except TaskDirsError as exc:
                raise ValueError(str(exc)) from exc
        return value


@functools.cache
def lm_eval_benchmark_names() -> tuple[str, ...]:
    """Every task, group and tag lm-eval ships (indexing its YAMLs takes seconds, so once per process)."""
    require("lm_eval", "pip install lm-eval==0.4.13")
    from lm_eval.tasks import TaskManager

    return tuple(sorted(TaskManager(include_defaults=True).all_tasks))


def _bpb_data(corpus: Path, kind: str, params: EvalParams, out: Path) -> Path:
    by_source: dict[str, list[dict[str, Any]]] = {}
    for doc in read_jsonl(corpus / f"{kind}_validation.jsonl"):
        by_source.setdefault(doc["source"], []).append(doc)
    # Round robin over sources, so every general (or domain) source weighs in the score.
    rounds = zip_longest(*by_source.values())
    docs = [doc for batch in rounds for doc in batch if doc is not None][: params.bpb_docs]
    if not docs:
        raise StageError(f"eval: no {kind} validation documents in {corpus}")
    path = out / f"bpb_{kind}.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for doc in docs:
            fh.write(
                json.dumps({"id": doc["id"], "text": doc["text"][: params.bpb_doc_chars]}, ensure_ascii=False) + "\n"
            )
    return path


def run(ctx: StageContext, inputs: dict[str, Any], params: EvalParams) -> dict[str, Any]:
    require("lm_eval", "pip install lm-eval==0.4.13")
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    corpus = Path(inputs["corpus"])
    tasks_dir = ctx.out_dir / "tasks"
    data_dir = ctx.out_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    names: dict[str, dict[str, Any]] = {}
    for kind in ("general", "domain"):
        task = write_task(tasks_dir, bits_per_byte_task(f"bpb_{kind}", _bpb_data(corpus, kind, params, data_dir)))
        names[task] = {"kind": kind, "metric": "bits_per_byte"}
    for info_path in sorted((corpus / "tasks").glob("*.json")):
        info = json.loads(info_path.read_text(encoding="utf-8"))
        items = read_jsonl(corpus / "tasks" / f"{info['name']}.jsonl")[: params.task_items]
        data_file = data_dir / f"{info['name']}.jsonl"
        data_file.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), encoding="utf-8")
        if info["output_type"] == "generate_until" and info.get("origin") == "user":
            task = write_task(tasks_dir, short_answer_task(info["name"], data_file))
            metric = "exact_match"
        elif info["output_type"] == "generate_until":
            fewshot = corpus / "tasks" / f"{info['name']}.fewshot.jsonl"
            task = write_task(tasks_dir, translation_task(info["name"], data_file, fewshot, params.num_fewshot))
            metric = "chrf"
        else:
            task = write_task(tasks_dir, multiple_choice_task(info["name"], data_file))
            metric = info.get("metric", "acc")
        names[task] = {
            "kind": info["kind"],
            "metric": metric,
            "baseline": info["baseline"],
            "baseline_name": info["baseline_name"],
            "items": len(items),
            "description": info["description"],
            "origin": info.get("origin", "held_out"),
        }

    task_manager = TaskManager(
        include_path=[str(tasks_dir), *params.task_dirs], include_defaults=bool(params.benchmarks)
    )
    for benchmark in params.benchmarks:
        names[benchmark] = {"kind": "general", "metric": "acc", "benchmark": True, "origin": "benchmark"}
    for folder in params.task_dirs:
        for user_task in lm_eval_task_names(Path(folder)):
            names[user_task] = {
                "kind": "domain",
                "metric": "acc",
                "origin": "user",
                "task_dir": True,
                "description": f"lm-eval task from {folder}",
            }

    external = [name for name, info in names.items() if info.get("benchmark") or info.get("task_dir")]
    overlap = training_overlap(corpus, item_texts(external, task_manager))

    device, bf16 = device_and_precision()
    backend = choose_backend(params.backend)
    model_args = {
        "pretrained": inputs["model"],
        "dtype": "bfloat16" if bf16 else "float32",
        "trust_remote_code": params.trust_remote_code,
    }
    if backend == "vllm":
        model_args |= {"tensor_parallel_size": params.tensor_parallel_size, "gpu_memory_utilization": 0.85}
        model: Any = backend
    else:  # lm-eval's HF model, scoring the choices of an item with one pass over their shared context
        from eval.shared_context import SharedContextHFLM

        model = SharedContextHFLM(**model_args, batch_size=params.batch_size, device=device)
    results = simple_evaluate(
        model=model,
        model_args=model_args if backend == "vllm" else None,  # an LM object carries its own
        tasks=list(names),
        task_manager=task_manager,
        batch_size=params.batch_size,
        device=device,
        log_samples=True,  # per-item scores: the report's paired tests compare models on the same items
        random_seed=0,
        numpy_random_seed=0,
        torch_random_seed=0,
        fewshot_random_seed=0,
    )
    samples = results.pop("samples", None) or {}
    (ctx.out_dir / "lm_eval_results.json").write_text(
        json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8"
    )
    summary: dict[str, Any] = {}
    for task, info in names.items():
        metrics = results["results"][task]
        if info["metric"] == P_CORRECT:  # computed here from lm-eval's per-choice log-likelihoods
            metrics = metrics | p_correct_metrics(samples.get(task, []))
        if f"{info['metric']},none" not in metrics:  # a benchmark scored with another metric (exact_match, ...)
            info["metric"] = next(k.split(",")[0] for k in metrics if k.endswith(",none") and "stderr" not in k)
        entry = {**info, "value": metrics[f"{info['metric']},none"]}
        stderr = metrics.get(f"{info['metric']}_stderr,none")
        if isinstance(stderr, float):
            entry["stderr"] = stderr
        if "bleu,none" in metrics and info["metric"] == "chrf":
            entry["bleu"] = metrics["bleu,none"]
        if "chrf,none" in metrics and info["metric"] == "exact_match":
            entry["chrf"] = metrics["chrf,none"]
        if info["metric"] == P_CORRECT:
            entry["acc"] = metrics["acc,none"]
        if task in overlap:
            entry["train_overlap"] = overlap[task]
        if samples.get(task):
            entry["per_item"] = per_item_scores(samples[task], info["metric"])
            entry.setdefault("items", len(samples[task]))  # the user's lm-eval tasks and benchmarks
        summary[task.removeprefix(TASK_PREFIX)] = entry
    out = ctx.out_dir / "results.json"
    out.write_text(
        json.dumps({"model": inputs["model"], "backend": backend, "tasks": summary}, indent=2) + "\n", encoding="utf-8"
    )
    ctx.log.info("eval of %s: %s", inputs["model"], {k: round(v["value"], 4) for k, v in summary.items()})
    metrics: dict[str, Any] = {k: v["value"] for k, v in summary.items()}
    # lm-eval loads the model itself, with transformers' default attention
    attention = model.model.config._attn_implementation if backend == "hf" else None
    metrics["runtime"] = runtime_choices(bf16, attention) | {"backend": backend}
    return {"outputs": {"results": out}, "metrics": metrics}


P_CORRECT = "p_correct"
"""The probability a model puts on the right choice, its choices' likelihoods normalised to sum to one.
lm-eval logs each choice's log-likelihood but has no such metric; the cloze probes report it because
at 135M parameters and a few thousand training tokens their 0/1 accuracy is too coarse to move: on
the legal knowledge probe, cpt raised it by 0.043 (3.2 paired SE) while accuracy rose 0.048 with
McNemar p = 0.065 (2026-12, 2-core CPU, 150 items)."""


def choice_probability(sample: dict[str, Any]) -> float:
    """One multiple-choice sample's probability on its target choice (softmax over choice log-likelihoods)."""
    import math

    logliks = [float(resp[0]) for resp in sample["filtered_resps"]]
    target = sample["target"]
    if not isinstance(target, int):
        target = int(target) if str(target).isdigit() else [str(c) for c in sample["doc"]["choices"]].index(target)
    top = max(logliks)
    weights = [math.exp(value - top) for value in logliks]
    return weights[target] / sum(weights)


def p_correct_metrics(samples: list[dict[str, Any]]) -> dict[str, float]:
    """lm-eval-shaped ``p_correct`` value and standard error over a task's logged samples."""
    import math

    values = [choice_probability(sample) for sample in samples]
    if not values:
        return {}
    mean = sum(values) / len(values)
    spread = sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1)
    return {f"{P_CORRECT},none": mean, f"{P_CORRECT}_stderr,none": math.sqrt(spread / len(values))}


def per_item_scores(samples: list[dict[str, Any]], metric: str) -> list[Any]:
    """Each item's score in item order, for paired tests between models: 0/1 for accuracy and exact match,
    the right choice's probability for ``p_correct``, sentence chrF for translations, ``[bits, bytes]`` per
    document for bits-per-byte."""
    import math

    import sacrebleu

    ordered = sorted(samples, key=lambda sample: sample["doc_id"])
    if metric == P_CORRECT:
        return [choice_probability(sample) for sample in ordered]
    if metric == "bits_per_byte":
        return [[-sample["bits_per_byte"][0] / math.log(2), sample["bits_per_byte"][1]] for sample in ordered]
    if metric == "chrf":
        scores = []
        for sample in ordered:
            reference, prediction = sample["chrf"]
            reference = reference[0] if isinstance(reference, list | tuple) else reference
            scores.append(sacrebleu.sentence_chrf(str(prediction), [str(reference)]).score)
        return scores
    return [float(sample[metric]) for sample in ordered if metric in sample]


TRAINING_FILES = ("domain_train.jsonl", "general_train.jsonl", "sft_train.jsonl")
"""Every text a training stage can read: cpt's two sides and sft's pairs."""


def item_texts(names: list[str], task_manager: Any) -> dict[str, list[str]]:
    """Each named lm-eval task's (or group's) items, as text a training document could hold.

    An item is the decontamination query its task declares (lm-eval's ``doc_to_decontamination_query``),
    else its prompt followed by the right answer. A group (mmlu) gathers its subtasks' items.
    """
    from lm_eval.api.task import Task
    from lm_eval.tasks import get_task_dict

    def leaves(node: Any) -> list[Any]:
        if isinstance(node, Task):
            return [node]
        return [leaf for child in node.values() for leaf in leaves(child)] if isinstance(node, dict) else []

    return {
        name: [_item_text(task, doc) for task in leaves(get_task_dict([name], task_manager)) for doc in task.eval_docs]
        for name in names
    }


def _item_text(task: Any, doc: dict[str, Any]) -> str:
    if getattr(task, "should_decontaminate", lambda: False)():
        return str(task.doc_to_decontamination_query(doc))
    prompt, target = task.doc_to_text(doc), task.doc_to_target(doc)
    if task.OUTPUT_TYPE == "multiple_choice":
        choices = task.doc_to_choice(doc)
        if isinstance(prompt, int):  # one context per choice (winogrande): the right one is the text
            prompt = choices[prompt] if prompt < len(choices) else ""
        if isinstance(target, int) and target < len(choices):
            target = choices[target]
    if isinstance(target, list):
        target = " ".join(str(t) for t in target)
    return f"{prompt} {target}"


def training_overlap(corpus: Path, texts: dict[str, list[str]], n: int = 13) -> dict[str, dict[str, int]]:
    """Per task, how many of its items share a word ``n``-gram with the corpus's training text.

    The corpus stage keeps the recipe's own eval items out of training, but lm-eval benchmarks and the
    user's task folders are not known to it, so their overlap is measured here and reported, as lm-eval's
    decontamination notes do: an item counts as overlapping when any of its 13-grams is in the training
    text. lm-eval's own ``get_train_overlap`` reads only pre-built Pile-format n-gram buckets, so the
    n-grams are matched with this project's ``OverlapShare``. Items under ``n`` words cannot be checked
    this way (lm-eval skips them too) and are counted as ``short``.
    """
    from stages.lib import decontam

    if not texts:
        return {}
    share = decontam.OverlapShare(
        (((task, number), text) for task, items in texts.items() for number, text in enumerate(items)), n=n
    )
    for name in TRAINING_FILES:
        path = corpus / name
        if not path.exists():
            continue
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    record = json.loads(line)  # a cpt document, or an SFT pair (chat turns, as the corpus writes them)
                    share.add_training_text(record["text"] if "text" in record else pair_text(record))
    shares = share.shares()
    return {
        task: {
            "items": len(items),
            "overlapping": sum(1 for number in range(len(items)) if shares[(task, number)] > 0),
            "short": sum(1 for text in items if len(decontam.words(text)) < n),
            "n": n,
        }
        for task, items in texts.items()
    }


def fingerprint(params: EvalParams) -> dict[str, Any]:
    """The user's lm-eval task folders by content, so an edited task YAML reruns every eval."""
    from stages.lib.fingerprint import fingerprint_tree

    prints: dict[str, Any] = {f"task_dir:{folder}": fingerprint_tree(Path(folder)) for folder in params.task_dirs}
    if params.benchmarks or params.task_dirs:  # only their results gained the training-overlap count
        prints["train_overlap"] = 1
    return prints


def choose_backend(requested: str) -> str:
    """hf, or vllm where it is installed and CUDA is present; asking for vllm without them is an error."""
    import importlib.util

    import torch

    available = importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()
    if requested == "vllm" and not available:
        raise StageError("eval.backend=vllm needs a CUDA GPU and vllm (make install-gpu); use auto or hf")
    return "vllm" if requested == "vllm" or (requested == "auto" and available) else "hf"


SPEC = StageSpec(
    name="eval",
    version=5,
    params=EvalParams,
    inputs=("model", "corpus"),
    wiring=Wiring(inputs={"model": MODEL, "corpus": "corpus.data"}, per_model=True),
    accelerated=True,
    run=run,
    doc="lm-eval on one model: held-out bits-per-byte (general, domain) and domain tasks.",
    libraries=("lm_eval", "torch", "transformers", "datasets"),
    fingerprint=fingerprint,
)
