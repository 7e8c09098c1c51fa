#!/usr/bin/env bash
# Prepared run for a borrowed GPU machine (no network): install the carried wheels, run the GPU tests and
# the throughput bench, leave the results in $OUT. Carry: wheels/ (datasets, trl, peft deps, lm-eval, ...),
# bench_data/corpus (a corpus stage's data/ folder) and bench_data/model (the embedded model folder).
set -euo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
# Install what the GPU image lacks (it has torch, transformers, peft, accelerate) from the carried wheels.
python -m pip install -q --no-index --find-links wheels datasets trl==1.16.0 lm-eval==0.4.13 mergekit==0.1.5 \
    gguf submitit sacrebleu simple-icd-10-cm pysword pyyaml pydantic
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
timeout 240 python -m pytest -q -m gpu tests/gpu 2>&1 | tail -5 | tee "$OUT/gpu_tests.txt"
python bench/cpt_throughput.py --model-config qwen2.5-0.5b --seq-len 2048 --batch-size 16 \
    --micro-batch-size 8 --steps 20 --corpus bench_data/corpus --tokenizer bench_data/model \
    --out "$OUT/cpt_throughput_gpu.json" 2>&1 | tail -8 | tee "$OUT/cpt_throughput_gpu.txt"
