"""The README's first command on a fresh clone, timed per stage: what a new user waits for.

Clones the repository (its committed HEAD) into a scratch folder, runs ``make recipe=RECIPE`` there (install,
Debian sources when missing, then the pipeline into the clone's own empty store) and writes the wall time, the
install time (wall time before the first stage started) and each node's seconds from the store's manifests.
With ``--baseline COMMIT`` the same is done first for that commit, so the table compares two runs on one machine
in one session; the two runs go one after the other, never side by side, since both need both cores.

    python bench/first_run.py --recipe legal --out bench/results/first_run_legal.json [--baseline 70bad70]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def machine() -> dict[str, Any]:
    """CPU model, cores and the instruction sets that decide precision (AVX2, AMX)."""
    flags = ""
    model = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = line
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "avx2": " avx2" in flags,
        "amx": " amx_bf16" in flags,
        "python": platform.python_version(),
    }


def stage_seconds(store: Path) -> list[dict[str, Any]]:
    """Every node the run finished, in start order, with its seconds (from its manifest)."""
    rows = []
    for manifest in store.glob("*/*/manifest.json"):
        record = json.loads(manifest.read_text(encoding="utf-8"))
        timings = record.get("timings", {})
        if "seconds" in timings:
            rows.append(
                {"node": record["node"], "started": timings["started"], "seconds": round(timings["seconds"], 1)}
            )
    return sorted(rows, key=lambda row: row["started"])


def first_run(commit: str, recipe: str, scratch: Path) -> dict[str, Any]:
    """Clone ``commit``, run ``make recipe=...`` in it and time the whole and each stage."""
    clone = scratch / commit
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", commit], check=True)
    log = scratch / f"{commit}.log"
    started = time.time()
    with log.open("w") as fh:
        done = subprocess.run(["make", f"recipe={recipe}"], cwd=clone, stdout=fh, stderr=subprocess.STDOUT)
    wall = time.time() - started
    if done.returncode:
        sys.exit(f"make recipe={recipe} failed at {commit} (exit {done.returncode}); see {log}")
    stages = stage_seconds(clone / "runs")
    install = stages[0]["started"] - started if stages else None
    return {
        "commit": commit,
        "wall_seconds": round(wall, 1),
        "install_seconds": round(install, 1) if install is not None else None,
        "stages": [{"node": row["node"], "seconds": row["seconds"]} for row in stages],
        "log": str(log),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="legal")
    parser.add_argument("--baseline", help="a commit to time first, on the same machine")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    scratch = Path(tempfile.mkdtemp(prefix="first_run_"))
    runs = [first_run(commit, args.recipe, scratch) for commit in filter(None, [args.baseline, head.stdout.strip()])]
    result = {"recipe": args.recipe, "machine": machine(), "pip_cache": "as found on this machine", "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for run in runs:
        table = ", ".join(f"{row['node']} {row['seconds']:.0f}s" for row in run["stages"])
        print(f"{run['commit']}: {run['wall_seconds'] / 60:.1f} min (install {run['install_seconds']:.0f}s; {table})")


if __name__ == "__main__":
    main()
