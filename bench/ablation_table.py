"""The training-kernel ablation as a markdown table: one row per arm, one column group per results file.

``bench/cpt_throughput.py --arms ... --out FILE`` writes one file per model shape (``bench/gpu_run.sh`` writes
two); this prints what bench/README.md's ablation table holds, so a GPU session with minutes to spare pastes
measured rows instead of copying numbers by hand. Usage::

    python bench/ablation_table.py cpt_ablation_0.5b.json cpt_ablation_1.5b.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

PLAIN = "plain Trainer, unpacked"


def arms(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The arm entries of one results file, in the order they ran (the other keys describe the run)."""
    return {k: v for k, v in results.items() if isinstance(v, dict) and ("tokens_per_second" in v or "error" in v)}


def cells(arm: dict[str, Any] | None, plain: dict[str, Any] | None) -> list[str]:
    """tokens/s (with the ratio to the plain Trainer where it ran), MFU, peak memory; the error of a failed arm."""
    if arm is None:
        return ["not run", "", ""]
    if "error" in arm:
        return [f"failed: {arm['error'].splitlines()[0][:80]}".replace("|", "/"), "", ""]
    rate = f"{arm['tokens_per_second']:,.0f}"
    if plain and "tokens_per_second" in plain:
        rate += f" (x{arm['tokens_per_second'] / plain['tokens_per_second']:.2f})"
    mfu = f"{arm['mfu']:.1%}" if arm.get("mfu") is not None else ""
    memory = f"{arm['peak_memory_gib']}" if arm.get("peak_memory_gib") is not None else ""
    return [rate, mfu, memory]


def table(files: list[Path]) -> str:
    loaded = [json.loads(path.read_text(encoding="utf-8")) for path in files]
    names: list[str] = []
    for results in loaded:
        names += [name for name in arms(results) if name not in names]
    heads = []
    for path, results in zip(files, loaded, strict=True):
        settings = results.get("settings", {})
        shape = f"{settings.get('model_config') or path.stem}, seq {settings.get('seq_len')}"
        heads += [f"{shape}: tokens/s (vs plain)", "MFU", "peak GiB"]
    lines = ["| arm | " + " | ".join(heads) + " |", "|---" * (1 + len(heads)) + "|"]
    for name in names:
        row = []
        for results in loaded:
            found = arms(results)
            row += cells(found.get(name), found.get(PLAIN))
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    devices = sorted({str(results.get("device")) for results in loaded})
    return "\n".join(lines) + f"\n\nDevice: {', '.join(devices)}."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="results files of bench/cpt_throughput.py --out")
    print(table(parser.parse_args().files))


if __name__ == "__main__":
    main()
