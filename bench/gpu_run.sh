#!/usr/bin/env bash
# Prepared run for a borrowed GPU machine (no network; python3 there is 3.12 with torch, transformers,
# accelerate, pandas, pyarrow, ... already installed). It installs the carried wheels, runs the GPU tests and
# the kernel-lever ablation of the throughput bench, and leaves the results in $OUT: log (everything),
# gpu_tests.xml, cpt_ablation_0.5b.json, cpt_ablation_1.5b.json (each rewritten after every arm, so an arm cut
# off by its timeout loses only itself and the ones after it), ablation.md (bench/ablation_table.py: the rows of
# bench/README.md's ablation table).
# Worst case 9 min 20 s (install ~20 s, tests <= 180 s, benches <= 200 + 160 s): under the device's 10 a call.
#
# Run from the repository root as `bash bench/gpu_run.sh`, carrying these ignored folders (.git/info/exclude):
#   .whl/        python 3.12 wheels of what the image lacks: pydantic (+ pydantic-core, annotated-types,
#                typing-inspection, typing-extensions>=4.16), datasets (+ dill, multiprocess), datatrove (+ loguru,
#                orjson, ftfy, wcwidth), and transformers 5.24.0: the image's 5.17 has no
#                TrainingArguments(activation_checkpointing=...), which cpt, sft and the bench pass; liger-kernel
#                0.8.5 (pure python; its Triton comes with the image's CUDA torch) and trl 1.16.0 (the sft GPU
#                tests; skipped without it). Fetched with
#                `python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp
#                --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl NAME==VERSION`.
#   bench_data/licensedcode-data-32.1.0-licenses.tar.gz   licensedcode/data/licenses/ of the licensedcode-data
#                wheel (the tiny-model fixture reads its license texts; the whole wheel is 27 MB)
#   bench_data/corpus   a corpus stage's data/ folder (domain_train trimmed to a third, general_train to a tenth)
#   bench_data/model    the embedded model's tokenizer files and config.json (no weights)
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
cd "$(dirname "$0")/.." || exit 1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True  # less fragmentation at micro-batch 8 x 2048

main() {
    local failed=0
    echo "== $(date -u +%T) install the carried wheels"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl || { echo "wheel install failed"; return 1; }
    tar -xzf bench_data/licensedcode-data-32.1.0-licenses.tar.gz -C /tmp/site || return 1
    export PYTHONPATH=/tmp/site

    echo "== $(date -u +%T) GPU and versions"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || failed=1
    python3 - <<'PY' || failed=1
import importlib.metadata as md
import sys

import torch

names = ["torch", "transformers", "accelerate", "peft", "datasets", "pydantic", "pydantic-core", "triton", "liger-kernel", "trl",
         "typing-extensions", "pyarrow", "fsspec", "huggingface-hub", "tokenizers", "datatrove"]
versions = []
for name in names:
    try:
        versions.append(f"{name} {md.version(name)}")
    except md.PackageNotFoundError:
        versions.append(f"{name} -")
gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA"
print(f"python {sys.version.split()[0]}, {gpu}\n" + ", ".join(versions))
import transformers
import stages.cpt, stages.evaluate, tests.integration.test_distributed  # what the GPU tests import
print("transformers imported from", transformers.__file__)
PY

    echo "== $(date -u +%T) pytest -m gpu tests/gpu"
    timeout 180 python3 -m pytest -q -m gpu tests/gpu -rs --durations=15 --junitxml="$OUT/gpu_tests.xml" || failed=1

    # One lever at a time on SDPA with the block mask, then together; compiling arms last (they take longest).
    # The plain unpacked Trainer is the baseline of the ">= 3x" goal.
    echo "== $(date -u +%T) bench/cpt_throughput.py: Qwen2.5-0.5B shape, seq 2048, random weights"
    timeout 200 python3 bench/cpt_throughput.py --model-config qwen2.5-0.5b --seq-len 2048 --batch-size 16 \
        --micro-batch-size 8 --steps 8 --warmup-steps 3 --corpus bench_data/corpus --tokenizer bench_data/model \
        --arms plain,sdpa,flash,flex,liger,flex+liger,flex+liger+2x,compile,flex+liger+compile \
        --out "$OUT/cpt_ablation_0.5b.json" || failed=1
    echo "== $(date -u +%T) bench/cpt_throughput.py: Qwen2.5-1.5B shape, seq 4096, random weights"
    timeout 160 python3 bench/cpt_throughput.py --model-config qwen2.5-1.5b --seq-len 4096 --batch-size 8 \
        --micro-batch-size 4 --steps 6 --warmup-steps 2 --corpus bench_data/corpus --tokenizer bench_data/model \
        --arms sdpa,flex+liger,flex+liger+2x,flex+liger+compile --out "$OUT/cpt_ablation_1.5b.json" || failed=1
    python3 bench/ablation_table.py "$OUT"/cpt_ablation_*.json > "$OUT/ablation.md" && cat "$OUT/ablation.md"
    echo "== $(date -u +%T) done, failed=$failed"
    return "$failed"
}

main 2>&1 | tee "$OUT/log"
