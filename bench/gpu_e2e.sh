#!/usr/bin/env bash
# The whole DAG of recipes/legal-full.yaml on a borrowed GPU machine, offline, from an empty store through
# the report; report.md, report.html and every stage's seconds come back in $OUT.
#
# The machine has no network and its image lacks most of what the pipeline uses (device KINDS.md), so a
# payload travels with it: `bash bench/gpu_e2e_payload.sh` here builds .gpu_e2e/part-NN (about 150 MB in
# three parts of at most 56 MiB; one call carries at most 64 MiB). Carry them in consecutive calls, each
# within the 30 s the machine stays warm, the last one running the recipe:
#   run  command='bash bench/gpu_e2e.sh receive'  carry=['.gpu_e2e/part-00']
#   run  command='bash bench/gpu_e2e.sh receive'  carry=['.gpu_e2e/part-01']
#   run  command='bash bench/gpu_e2e.sh run'      carry=['.gpu_e2e/part-02']  timeout_s=600
# `receive` keeps the carried part in /tmp (it lasts as long as the machine); `run` receives its own part,
# checks that every part is there (naming the missing ones), unpacks, installs the wheels into /tmp/site,
# puts GCIDE and the Python docs where the sources read them, and runs the pipeline.
#
# Budget: install about 30 s; the pipeline estimated at under 10 min (legal-full's header), bounded here
# by STAGE_BUDGET_S so the call returns with its logs in time. Set SET="k=v k=v" for overrides (a smaller
# cpt.max_tokens to fit a slower GPU). Locally (a dry run of everything but the GPU):
#   GPU_E2E_PYTHON=.venv/bin/python GPU_E2E_NO_INSTALL=1 SET="..." bash bench/gpu_e2e.sh run
set -uo pipefail
OUT=${OUT:-/tmp/gpu_e2e_out}
PARTS=/tmp/gpu_e2e/parts
PY=${GPU_E2E_PYTHON:-python3}
STAGE_BUDGET_S=${STAGE_BUDGET_S:-540}
mkdir -p "$OUT" "$PARTS"
cd "$(dirname "$0")/.." || exit 1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True

receive() {
    local part
    for part in .gpu_e2e/part-*; do
        [[ -f "$part" ]] && cp "$part" "$PARTS/" && echo "received $(basename "$part") ($(stat -c %s "$part") bytes)"
    done
    ls "$PARTS"
}

unpack() {
    local expected missing=0 i
    expected=$(ls "$PARTS" | wc -l)
    for ((i = 0; i < expected; i++)); do
        [[ -f "$PARTS/part-$(printf %02d "$i")" ]] || { echo "missing part-$(printf %02d "$i")"; missing=1; }
    done
    # The last part is the short one: a full-size last part means a later one is missing.
    [[ $(stat -c %s "$PARTS/$(ls "$PARTS" | tail -1)") -lt 58720256 ]] || { echo "the last part received is full size: a later part is missing"; missing=1; }
    if ((missing)); then
        echo "resend the missing parts with 'bash bench/gpu_e2e.sh receive' (the machine was given back between calls?)"
        return 1
    fi
    rm -rf /tmp/gpu_e2e/payload && mkdir -p /tmp/gpu_e2e/payload
    cat "$PARTS"/part-* | xz -d | tar -C /tmp/gpu_e2e/payload -xf - || return 1
    if [[ -z "${GPU_E2E_NO_INSTALL:-}" ]]; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
            /tmp/gpu_e2e/payload/whl/*.whl || return 1
    fi
    mkdir -p /tmp/site && cp -r /tmp/gpu_e2e/payload/site/. /tmp/site/
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    # The sources read GCIDE and the Python docs where Debian installs them.
    mkdir -p /usr/share/dictd /usr/share/doc/python3.11/html/_sources || return 1
    cp -n /tmp/gpu_e2e/payload/dictd/* /usr/share/dictd/
    cp -rn /tmp/gpu_e2e/payload/python-docs/. /usr/share/doc/python3.11/html/_sources/
}

run_recipe() {
    local store=/tmp/gpu_e2e/runs status
    rm -rf "$store"
    echo "== $(date -u +%T) versions"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    "$PY" -c "import torch, transformers, trl, lm_eval, datatrove; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__, 'trl', trl.__version__)"
    echo "== $(date -u +%T) pipeline run legal-full"
    timeout "$STAGE_BUDGET_S" "$PY" -m pipeline run legal-full --store "$store" ${SET:+--set "$SET"}
    status=$?
    echo "== $(date -u +%T) pipeline exit $status"
    "$PY" - "$store" "$OUT/stage_seconds.json" <<'PY'
import json, sys
from pathlib import Path

store, out = Path(sys.argv[1]), Path(sys.argv[2])
seconds = {}
for manifest in sorted(store.glob("*/*/manifest.json")):
    data = json.loads(manifest.read_text())
    seconds[manifest.parent.parent.name + "/" + manifest.parent.name[:12]] = {
        "seconds": data.get("timings", {}).get("seconds"),
        "runtime": data.get("metrics", {}).get("runtime"),
    }
out.write_text(json.dumps(seconds, indent=2) + "\n")
print(json.dumps(seconds, indent=2))
PY
    for name in report.md report.html; do
        find "$store/report" -name "$name" -path "*/report/*" ! -path "*.partial*" -exec cp {} "$OUT/$name" \; 2>/dev/null
    done
    # A stage that failed or ran out of time left its log in a .partial folder: bring back up to two.
    find "$store" -path "*.partial/stage.log" 2>/dev/null | head -2 | while read -r log; do
        cp "$log" "$OUT/$(basename "$(dirname "$(dirname "$log")")")_stage.log"
    done
    return "$status"
}

case "${1:-}" in
receive) receive 2>&1 | tee "$OUT/log" ;;
run) { receive && unpack && run_recipe; } 2>&1 | tee "$OUT/log" ;;
*) echo "usage: bash bench/gpu_e2e.sh receive|run" >&2; exit 2 ;;
esac
exit "${PIPESTATUS[0]}"
