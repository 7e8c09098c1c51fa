"""The eval stage's scorer against lm-eval's own HF model, same tasks, same model, same process.

Arms, one after the other: lm-eval's ``HFLM`` (one forward pass per context and choice) and
``eval.shared_context.SharedContextHFLM`` (an item's context once, then its choices). Both score every
task an eval stage wrote; the script fails if any score differs (bits-per-byte by more than 1e-6), and
reports seconds and the ratio.

    python bench/eval_throughput.py --eval-dir runs/eval/<key> --model runs/model/<key>/model \
        --out bench/results/eval_legal.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def task_folder(eval_dir: Path) -> Path:
    """A copy of the eval stage's task YAMLs pointing at its data files where they are now (the stage wrote
    them while its folder was still ``<key>.partial``)."""
    folder = Path(tempfile.mkdtemp(prefix="eval_bench_"))
    for task in (eval_dir / "tasks").glob("*.yaml"):
        (folder / task.name).write_text(task.read_text().replace(f"{eval_dir.name}.partial/", f"{eval_dir.name}/"))
    return folder


def arm(kind: str, model: str, tasks: list[str], folder: Path, batch_size: int) -> dict[str, Any]:
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from eval.shared_context import SharedContextHFLM

    lm_class = {"lm-eval HFLM": HFLM, "shared context": SharedContextHFLM}[kind]
    lm = lm_class(pretrained=model, dtype="float32", batch_size=batch_size, device="cpu")
    started = time.time()
    results = simple_evaluate(
        model=lm, tasks=tasks, task_manager=TaskManager(include_path=[str(folder)], include_defaults=False)
    )
    seconds = time.time() - started
    scores = {
        task: metrics.get("acc,none", metrics.get("bits_per_byte,none")) for task, metrics in results["results"].items()
    }
    return {"seconds": round(seconds, 1), "scores": scores}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-dir", type=Path, required=True, help="a finished eval stage's folder in the store")
    parser.add_argument("--model", required=True, help="the model folder to score")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    folder = task_folder(args.eval_dir)
    tasks = sorted(path.stem for path in folder.glob("*.yaml"))
    try:
        arms = {
            kind: arm(kind, args.model, tasks, folder, args.batch_size) for kind in ("lm-eval HFLM", "shared context")
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    baseline, ours = arms["lm-eval HFLM"], arms["shared context"]
    differ = {  # accuracies exactly; bits-per-byte to 1e-6 (its matmul sums vary by ~1e-7 between runs)
        t: (baseline["scores"][t], ours["scores"][t])
        for t in tasks
        if abs(baseline["scores"][t] - ours["scores"][t]) > 1e-6
    }
    result = {
        "tasks": tasks,
        "arms": arms,
        "speedup": round(baseline["seconds"] / ours["seconds"], 2),
        "differ": differ,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"lm-eval HFLM {baseline['seconds']} s, shared context {ours['seconds']} s: x{result['speedup']}")
    if differ:
        sys.exit(f"scores differ: {differ}")


if __name__ == "__main__":
    main()
