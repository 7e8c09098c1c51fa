"""The report as a person sees it: built by the real report stage, rendered in headless Chromium.

A report that passes its string checks can still be a broken page (an image that does not decode, a
table the browser drops, a blank render), so this test loads report.html in a real browser, reads back
the DOM it built and takes a screenshot. Chromium is required, not optional: a skipped browser check
would hide a broken report in CI (``.ci/run`` installs it).
"""

from __future__ import annotations

import base64
import json
import random
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from eval import significance

CHROMIUM = Path("/usr/bin/chromium")
MODELS = ("base", "cpt", "sft", "merge")
ITEMS = 80
DOCS = 40


def _results(model_index: int) -> dict:
    """Synthetic eval results on shared items: cpt and merge learn the domain, sft changes little."""
    rng = random.Random(7)
    truth = [rng.random() < 0.3 for _ in range(ITEMS)]
    docs = [(rng.uniform(600, 1200), rng.uniform(500, 800)) for _ in range(DOCS)]
    chrf_base = [rng.uniform(15, 45) for _ in range(ITEMS // 2)]
    learned = model_index in (1, 3)
    acc_items = [1.0 if t or (learned and i % 3 == 0) else 0.0 for i, t in enumerate(truth)]
    domain_scale = 0.8 if learned else 1.0
    general_scale = 1.06 if model_index == 1 else 1.0
    domain = [[bits * domain_scale * random.Random(i).uniform(0.97, 1.03), size] for i, (bits, size) in enumerate(docs)]
    general = [[bits * general_scale, size * 1.2] for bits, size in docs]
    chrf = [c + (6 if learned else 0) + random.Random(i + model_index).gauss(0, 1) for i, c in enumerate(chrf_base)]

    def ratio(pairs):
        return sum(b for b, _ in pairs) / sum(s for _, s in pairs)

    return {
        "model": f"/models/{MODELS[model_index]}",
        "backend": "hf",
        "tasks": {
            "bpb_general": {"kind": "general", "metric": "bits_per_byte", "value": ratio(general), "per_item": general},
            "bpb_domain": {"kind": "domain", "metric": "bits_per_byte", "value": ratio(domain), "per_item": domain},
            "license_id": {
                "kind": "domain",
                "metric": "acc",
                "value": sum(acc_items) / ITEMS,
                "stderr": 0.05,
                "baseline": {"acc": 0.25},
                "baseline_name": "chance",
                "items": ITEMS,
                "per_item": acc_items,
            },
            "en_es": {
                "kind": "domain",
                "metric": "chrf",
                "value": sum(chrf) / len(chrf),
                "stderr": 1.2,
                "bleu": 5.0,
                "baseline": {"chrf": 21.5},
                "baseline_name": "copy the source",
                "items": len(chrf),
                "per_item": chrf,
            },
            "license_recall": {
                "kind": "domain",
                "metric": "acc",
                "value": 0.3 + 0.1 * learned,
                "stderr": 0.06,
                "baseline": {"acc": 0.25},
                "items": 50,
                "origin": "training",
            },
        },
    }


def _build_report(root: Path) -> Path:
    """Lay out the report stage's inputs as the engine would and run the real stage."""
    from stages.base import StageContext
    from stages.report import ReportParams, run

    inputs: dict[str, str] = {}
    for index, model in enumerate(MODELS):
        path = root / f"eval_{model}" / "results.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(_results(index)))
        inputs[f"eval_{model}"] = str(path)
    corpus = root / "corpus"
    corpus.mkdir()
    reasons = {"min_chars": 120, "language": 40, "gopher_quality": 9, "dedup": 4, "decontaminated": 2}
    stats = {
        "sources": {
            "licenses": {
                "kind": "domain",
                "license": "CC-BY-4.0",
                "filters": ["min_chars", "language", "gopher_quality"],
                "profile": "legal",
                "dropped": reasons,
                "boilerplate_lines_removed": 12,
                "splits": {"train": {"documents": 500, "bytes": 900_000}, "eval": {"documents": 40, "bytes": 60_000}},
                "kept": 540,
                "read": 715,
            },
            "python_docs": {
                "kind": "general",
                "license": "PSF-2.0",
                "filters": [],
                "dropped": {},
                "splits": {"train": {"documents": 300, "bytes": 800_000}, "validation": {"documents": 30, "bytes": 1}},
                "kept": 330,
            },
        },
        "tasks": {},
        "sft_pairs": 100,
        "decontaminated": 2,
        "minhash_threshold": 0.8,
        "warnings": ["source licenses lost 175 of 715 documents (24%) to filters"],
    }
    (corpus / "stats.json").write_text(json.dumps(stats))
    cpt = root / "cpt" / "curves.jsonl"
    cpt.parent.mkdir()
    history = [
        {"step": s, "loss": 3 - s / 10, "eval_general_loss": 2.5 + s / 100, "eval_domain_loss": 3 - s / 20}
        for s in range(1, 5)
    ]
    cpt.write_text("".join(json.dumps(h) + "\n" for h in history))
    packed = root / "packed"
    packed.mkdir()
    pack = {
        "seq_len": 256,
        "sets": {
            "train": {
                "documents": 800,
                "tokens": 90_000,
                "blocks": 360,
                "packing_efficiency": 0.97,
                "target_share": 1.0,
            }
        },
    }
    (packed / "pack.json").write_text(json.dumps(pack))
    out = root / "report"
    out.mkdir()
    cpt_run = root / "cpt" / "manifest.json"  # the engine's ``manifest`` output of the cpt node
    cpt_run.write_text(json.dumps({"metrics": {"train_tokens": 32768, "general_token_share": 0.25}}))
    inputs |= {"corpus": str(corpus), "cpt": str(cpt), "cpt_run": str(cpt_run), "packed": str(packed)}
    run(StageContext(out_dir=out, recipe="legal"), inputs, ReportParams())
    return out


class _Dom(HTMLParser):
    """Collect the verdict table's rows and every image from the DOM Chromium dumped."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.verdict_rows: list[list[str]] = []
        self._in_verdict = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        if tag == "img":
            self.images.append(attr)
        elif tag == "table" and attr.get("id") == "verdict":
            self._in_verdict = True
        elif self._in_verdict and tag == "tr":
            self.verdict_rows.append([])
        elif self._in_verdict and tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_verdict = False
        elif self._in_verdict and tag in ("td", "th") and self._cell is not None:
            self.verdict_rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    if not CHROMIUM.exists():
        pytest.fail(
            "headless Chromium is required to check the report page: "
            "apt-get update && apt-get install -y chromium (.ci/run does this)"
        )
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ]
    return subprocess.run([str(CHROMIUM), *flags, *args], capture_output=True, text=True, timeout=180, check=True)


# The report itself carries no script; this probe, added to a copy, records whether each image decoded.
_PROBE = (
    "<script>window.addEventListener('load',()=>{for(const i of document.images)"
    "{i.setAttribute('data-natural',i.naturalWidth+'x'+i.naturalHeight)}})</script>"
)


def test_report_renders_in_chromium_with_verdict_first_and_plots(tmp_path):
    out = _build_report(tmp_path / "run")
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.index("id='verdict'") < page.index("<h2>Warnings") < page.index("<h2>Plots") < page.index("Scores")
    probed = out / "probed.html"
    probed.write_text(page.replace("</body>", _PROBE + "</body>"), encoding="utf-8")

    dom = _Dom()
    dump = _chromium(tmp_path / "profile", "--virtual-time-budget=5000", "--dump-dom", probed.as_uri())
    dom.feed(dump.stdout)

    groups, header, *rows = dom.verdict_rows
    assert header[0] == "model" and "domain gain (bits/byte drop)" in header
    assert "held-out tasks" in groups and "seen in training (closed-book probe)" in groups
    assert [row[0] for row in rows] == ["cpt", "sft", "merge"]
    by_model = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    assert significance.BETTER in by_model["cpt"]["domain gain (bits/byte drop)"]
    assert significance.WORSE in by_model["cpt"]["general forgetting (bits/byte rise)"]
    assert significance.WITHIN_NOISE in by_model["sft"]["license_id acc"]
    assert significance.BETTER in by_model["merge"]["license_id acc"]
    assert significance.BETTER in by_model["merge"]["en_es chrf"]
    assert "no per-item data" in by_model["merge"]["license_recall acc"]

    images = {img.get("alt"): img for img in dom.images}
    for alt in ("Task scores against their baselines", "Bits-per-byte: domain and general"):
        src = images[alt]["src"]
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = (int(v) for v in images[alt]["data-natural"].split("x"))
        assert width > 100 and height > 100, f"{alt} did not decode in the browser"

    shot = tmp_path / "report.png"
    _chromium(tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,2000", (out / "report.html").as_uri())
    assert shot.exists() and shot.stat().st_size > 10_000
    from matplotlib.image import imread

    pixels = imread(shot)
    colours = {tuple(p) for p in pixels[::7, ::7].reshape(-1, pixels.shape[-1]).tolist()}
    assert len(colours) > 20, "the screenshot is blank"


def _build_comparison(root: Path, grouped: bool) -> Path:
    """The compare stage's inputs as a sweep (branches over one base) or as domains (each group its own base)."""
    from stages.base import StageContext
    from stages.compare import CompareParams, run

    inputs: dict[str, str] = {}
    root.mkdir(parents=True)

    def results(name: str, index: int) -> None:
        path = root / f"{name}.json"
        path.write_text(json.dumps(_results(index)))
        inputs[name] = str(path)

    if grouped:
        for group in ("legal", "health"):
            for index, model in ((0, "base"), (1, "cpt"), (3, "merged")):
                results(f"eval_{model}@{group}", index)
    else:
        results("eval_base", 0)
        for index, branch in ((1, "replay_ratio-0.1"), (3, "replay_ratio-0.5")):
            results(f"eval_cpt@{branch}", index)
            curves = root / f"curves-{branch}.jsonl"
            history = [
                {"step": s, "eval_general_loss": 2.5 + s / (50 * index), "eval_domain_loss": 3 - s / 20}
                for s in range(5)
            ]
            curves.write_text("".join(json.dumps(h) + "\n" for h in history))
            inputs[f"cpt@{branch}"] = str(curves)
    out = root / "compare"
    out.mkdir()
    run(StageContext(out_dir=out, recipe="legal-sweep"), inputs, CompareParams())
    return out


def _table_rows(dump: str, element_id: str) -> list[list[str]]:
    dom = _Dom()
    dom.feed(dump.replace(f'id="{element_id}"', 'id="verdict"').replace(f"id='{element_id}'", "id='verdict'"))
    return dom.verdict_rows


def test_comparison_pages_render_in_chromium(tmp_path):
    sweep = _build_comparison(tmp_path / "sweep", grouped=False)
    page = (sweep / "report.html").read_text(encoding="utf-8")
    probed = sweep / "probed.html"
    probed.write_text(page.replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    dump = _chromium(tmp_path / "profile", "--virtual-time-budget=5000", "--dump-dom", probed.as_uri()).stdout
    rows = _table_rows(dump, "verdict")
    assert [row[0] for row in rows[2:]] == ["cpt replay_ratio-0.1", "cpt replay_ratio-0.5"]
    dom = _Dom()
    dom.feed(dump)
    decoded = {img["alt"]: img.get("data-natural", "0x0") for img in dom.images}
    assert set(decoded) == {"Domain gain against general forgetting", "CPT held-out loss of every branch"}
    assert all(int(size.split("x")[0]) > 100 for size in decoded.values()), decoded

    domains = _build_comparison(tmp_path / "domains", grouped=True)
    dump = _chromium(tmp_path / "profile", "--dump-dom", (domains / "report.html").as_uri()).stdout
    assert dump.count('id="verdict-') + dump.count("id='verdict-") == 2  # one verdict per domain, ids unique
    for group in ("legal", "health"):
        rows = _table_rows(dump, f"verdict-{group}")
        assert [row[0] for row in rows[2:]] == ["cpt", "merged"]
    assert "Domain gain in every group" in dump and "legal domain gain (bits/byte)" in dump


def test_a_group_may_name_the_model_its_base_holds(tmp_path):
    """An arm compared against the arm before it (translation-paradigm): headings and cells name that model."""
    import pytest

    from stages.base import StageContext, StageError
    from stages.compare import CompareParams, run

    inputs = {}
    for group in ("cpt_data", "after_sft"):
        for index, model in ((0, "base"), (1, "cpt")):
            path = tmp_path / f"eval_{model}@{group}.json"
            path.write_text(json.dumps(_results(index)))
            inputs[f"eval_{model}@{group}"] = str(path)
    out = tmp_path / "compare"
    out.mkdir()
    run(StageContext(out_dir=out), inputs, CompareParams(references={"cpt_data": "cpt_plain"}))
    page = (out / "report.md").read_text(encoding="utf-8")
    assert "## cpt_data: each model against cpt_plain" in page and "## after_sft: each model against base" in page
    assert "the model's score minus cpt_plain's on the same items" in page
    with pytest.raises(StageError, match=r"\['typo'\] name no group"):
        run(StageContext(out_dir=tmp_path / "x"), inputs, CompareParams(references={"typo": "cpt_plain"}))
    with pytest.raises(StageError, match=r"\['cpt_data: cpt'\] name a model the group also holds"):
        run(StageContext(out_dir=tmp_path / "y"), inputs, CompareParams(references={"cpt_data": "cpt"}))
    assert "references" not in CompareParams().model_dump()  # unset: every stored compare key stays
