"""Report arithmetic and statistics: gain and forgetting with their signs, paired tests on known answers."""

import random

import numpy as np
import pytest

from eval import significance
from eval.report import (
    Cell,
    budget_note,
    change_table,
    compare_models,
    corpus_table,
    html_page,
    main_table,
    markdown,
    probe_coverage,
    training_overlap,
    verdict_table,
    warnings,
)
from eval.significance import Comparison, bootstrap_differences, bootstrap_p, compare, mcnemar_exact


def _evals():
    def summary(general, domain, acc, chrf):
        return {
            "tasks": {
                "bpb_general": {"metric": "bits_per_byte", "value": general},
                "bpb_domain": {"metric": "bits_per_byte", "value": domain},
                "license_id": {
                    "kind": "domain",
                    "metric": "acc",
                    "value": acc,
                    "baseline": {"acc": 0.25},
                    "baseline_name": "chance",
                    "items": 40,
                    "stderr": 0.07,
                },
                "en_es": {
                    "kind": "domain",
                    "metric": "chrf",
                    "value": chrf,
                    "bleu": chrf / 3,
                    "baseline": {"chrf": 21.5, "bleu": 1.2},
                    "baseline_name": "copy the source",
                    "items": 30,
                },
            }
        }

    return {"base": summary(1.0, 0.8, 0.25, 30.0), "cpt": summary(1.1, 0.6, 0.40, 36.0)}


def test_change_table_signs_and_percentages():
    header, rows = change_table(_evals())
    assert header[1].startswith("domain gain") and header[3].startswith("general forgetting")
    assert rows == [["cpt", "+0.2000", "+25.0%", "+0.1000", "+10.0%", "+0.150", "+6.000"]]


def test_main_table_shows_baselines_and_stderr():
    header, rows = main_table(_evals())
    assert header[3] == "domain license_id acc (chance 0.25, n=40)"
    assert header[4] == "domain en_es chrf (copy the source 21.50, n=30)"
    assert rows[1][3] == "0.4000 ± 0.070"
    assert rows[1][4] == "36.0000 (BLEU 12.00)"
    text = markdown("t", [("Scores", (header, rows))])
    assert "| cpt | 1.1000 | 0.6000 | 0.4000 ± 0.070 | 36.0000 (BLEU 12.00) |" in text


# McNemar: only the discordant pairs count. 1 item only base got right, 9 only the other got right:
# p = 2 * (C(10,0) + C(10,1)) / 2^10 = 22 / 1024.
MCNEMAR_BASE = [1] * 5 + [0] * 5 + [1] + [0] * 9
MCNEMAR_OTHER = [1] * 5 + [0] * 5 + [0] + [1] * 9


def test_mcnemar_exact_matches_the_hand_computed_binomial_sum():
    base_only, other_only, p = mcnemar_exact(MCNEMAR_BASE, MCNEMAR_OTHER)
    assert (base_only, other_only) == (1, 9)
    assert p == pytest.approx(22 / 1024, rel=1e-12)
    # The scipy-free path gives the same answers, including 2 vs 8: 2 * (1 + 10 + 45) / 1024.
    assert significance.exact_binomial_two_sided_p(9, 10) == pytest.approx(22 / 1024, rel=1e-12)
    assert significance.exact_binomial_two_sided_p(2, 10) == pytest.approx(112 / 1024, rel=1e-12)
    assert significance.binomial_two_sided_p(2, 10) == pytest.approx(112 / 1024, rel=1e-12)
    assert significance.exact_binomial_two_sided_p(5, 10) == 1.0
    assert mcnemar_exact([1, 0, 1], [1, 0, 1])[2] == 1.0


def test_bootstrap_p_is_one_for_identical_scores_and_near_zero_for_a_clear_shift():
    rng = random.Random(1)
    scores = np.array([rng.uniform(20, 60) for _ in range(50)])
    same = bootstrap_differences(scores, scores.copy(), ratio=False, resamples=2000)
    assert bootstrap_p(same) == 1.0 and same.std() == 0
    shifted = scores + np.array([5 + rng.gauss(0, 1) for _ in range(50)])
    diffs = bootstrap_differences(scores, shifted, ratio=False, resamples=2000)
    assert bootstrap_p(diffs) < 0.002
    # The bootstrap SE of a mean difference is close to sd / sqrt(n).
    assert diffs.std(ddof=1) == pytest.approx((shifted - scores).std(ddof=1) / np.sqrt(50), rel=0.1)


def test_bpb_bootstrap_is_over_documents_of_the_ratio_and_lower_is_better():
    docs = [[100.0 + 10 * i, 80.0 + 7 * i] for i in range(40)]
    base = {"metric": "bits_per_byte", "value": 1.3, "per_item": docs}
    same = compare(base, dict(base), resamples=2000)
    assert same.p == 1.0 and same.mark == significance.WITHIN_NOISE
    better_docs = [[bits * 0.9, size] for bits, size in docs]
    better = compare(base, {**base, "value": 1.17, "per_item": better_docs}, resamples=2000)
    assert better.difference == pytest.approx(-0.13) and better.improvement > 0
    assert better.p < 0.01 and better.mark == significance.BETTER and better.moved is True
    assert better.test == "paired bootstrap"


def test_compare_picks_the_test_and_says_when_it_cannot():
    base = {"metric": "acc", "value": 0.3, "per_item": MCNEMAR_BASE}
    worse = compare({**base, "per_item": MCNEMAR_OTHER, "value": 0.7}, base)
    assert worse.test == "McNemar exact" and worse.mark == significance.WORSE
    assert worse.p == pytest.approx(22 / 1024) and worse.se is not None and worse.moved is True
    old = compare({"metric": "acc", "value": 0.3}, {"metric": "acc", "value": 0.5})
    assert old.test == "no per-item data" and old.mark == "" and old.p is None and old.moved is None
    uneven = compare(base, {**base, "per_item": [1, 0]})
    assert uneven.p is None and "differ" in uneven.test
    # The mark follows the per-item statistic the test ran on (sentence chrF), not corpus chrF.
    chrf = compare(
        {"metric": "chrf", "value": 30.0, "per_item": [20.0, 30.0, 40.0] * 10},
        {"metric": "chrf", "value": 30.5, "per_item": [15.0, 25.0, 35.0] * 10},
        resamples=2000,
    )
    assert chrf.difference == pytest.approx(0.5) and chrf.paired_difference == pytest.approx(-5.0)
    assert chrf.mark == significance.WORSE and chrf.moved is True
    # Not significant: within noise, whatever the sign.
    assert Comparison(0.05, 0.04, 0.2, "x").mark == significance.WITHIN_NOISE


def _paired_evals():
    """base, cpt and sft on the same items: cpt clearly better on the 0/1 task, sft no different."""
    rng = random.Random(0)
    truth = [rng.random() < 0.3 for _ in range(60)]
    docs = [[rng.uniform(500, 900), rng.uniform(400, 600)] for _ in range(30)]

    def model(acc_flip, bpb_scale, training_value):
        items = [1.0 if (t or (i % 3 == 0 and acc_flip)) else 0.0 for i, t in enumerate(truth)]
        per_doc = [[bits * bpb_scale, size] for bits, size in docs]
        bpb = sum(b for b, _ in per_doc) / sum(s for _, s in per_doc)
        return {
            "tasks": {
                "bpb_domain": {"kind": "domain", "metric": "bits_per_byte", "value": bpb, "per_item": per_doc},
                "bpb_general": {"kind": "general", "metric": "bits_per_byte", "value": 1.0},
                "license_id": {
                    "kind": "domain",
                    "metric": "acc",
                    "value": sum(items) / len(items),
                    "per_item": items,
                    "baseline": {"acc": 0.25},
                },
                "recall": {"kind": "domain", "metric": "acc", "value": training_value, "origin": "training"},
            }
        }

    return {"base": model(False, 1.0, 0.3), "cpt": model(True, 0.8, 0.5), "sft": model(False, 1.0, 0.3)}


def test_verdict_has_a_row_per_model_marks_and_training_tasks_in_their_own_group():
    evals = _paired_evals()
    comparisons = compare_models(evals, resamples=2000)
    table = verdict_table(evals, comparisons)
    assert [row[0] for row in table.rows] == ["cpt", "sft"]
    assert [label for label, _ in table.groups] == [
        "",
        "held-out text",
        "held-out tasks",
        "seen in training (closed-book probe)",
    ]
    assert sum(span for _, span in table.groups) == len(table.header)
    cpt, sft = table.rows
    assert cpt[1].text.startswith("+") and significance.BETTER in cpt[1].text  # domain gain
    assert significance.BETTER in cpt[3].text and significance.WITHIN_NOISE in sft[3].text  # license_id
    assert cpt[4].text == "+0.200 (no per-item data)"  # the training probe, untested
    assert "class='mark up'" in cpt[3].html
    text = markdown("t", [], lead=[("Verdict", table)])
    assert "| model | held-out text: domain gain (bits/byte drop) |" in text
    assert "seen in training (closed-book probe): recall acc" in text
    page = html_page("t", [], [], lead=[("Verdict", table)])
    assert "<table id='verdict'>" in page and "colspan='2' class='group'>held-out text<" in page
    notes = warnings({"sources": {}, "warnings": ["source x lost 30% of its documents"]}, comparisons)
    assert notes[0] == "source x lost 30% of its documents"
    assert any("no per-item data for bpb_general, recall" in n for n in notes)


def test_corpus_table_one_row_per_source_with_top_reasons_and_the_rest_folded():
    stats = {
        "sources": {
            "licenses": {
                "kind": "domain",
                "license": "CC-BY-4.0",
                "filters": ["min_chars", "language"],
                "dropped": {"min_chars": 30, "language": 12, "dedup": 5, "decontaminated": 2, "gopher_quality": 1},
                "boilerplate_lines_removed": 7,
                "splits": {"train": {"documents": 900, "bytes": 2_000_000}, "eval": {"documents": 50, "bytes": 1}},
                "kept": 950,
            },
            "docs": {
                "kind": "general",
                "license": "PSF-2.0",
                "dropped": {},
                "splits": {"validation": {"documents": 10, "bytes": 0}},
                "kept": 10,
                "read": 40,
            },
        }
    }
    header, rows = corpus_table(stats)
    assert header[3:6] == ["train documents", "validation documents", "eval documents"]
    licenses, docs = rows
    assert licenses[3:8] == ["900", "-", "50", "2.00", "50 (5.0%)"]
    reasons = licenses[8]
    assert isinstance(reasons, Cell)
    assert reasons.text == "min_chars: 30, language: 12, dedup: 5 +2 more"
    assert "<details><summary>+2 more</summary>decontaminated: 2<br>gopher_quality: 1</details>" in reasons.html
    assert licenses[9:] == ["7", "min_chars, language"]
    assert docs[6:] == ["0.00", "0 (0.0%)", "none", "0", "none"]
    # Older stats carry no warnings: the report flags heavy drops itself (read defaults to kept + dropped).
    assert warnings({"sources": {"docs": {"dropped": {"x": 30}, "kept": 10}}}, {}) == [
        "source docs lost 30 of 40 documents (75%) to filters"
    ]


def test_budget_note_only_when_no_domain_task_moved_and_with_the_measured_share():
    evals = _paired_evals()
    assert budget_note(evals, compare_models(evals, resamples=500), 32768, 0.75, 1_780_470) is None  # cpt moved
    flat = {name: evals["base"] for name in ("base", "cpt", "sft")}
    note = budget_note(flat, compare_models(flat, resamples=500), 32768, 0.75, 1_780_470)
    assert note.startswith("No domain task (license_id, recall) moved beyond two paired standard errors")
    assert "about 24,576 of them domain text: 1.4% of the 1,780,470 domain training tokens" in note


def test_probe_coverage_warns_only_when_cpt_skipped_probe_blocks():
    assert probe_coverage({"domain_probe_blocks": 5, "domain_probe_blocks_trained": 5}) == []
    assert probe_coverage({}) == []
    (line,) = probe_coverage({"domain_probe_blocks": 5, "domain_probe_blocks_trained": 3})
    assert "5 blocks" in line and "3 of them" in line and "cpt.max_tokens" in line


def test_p_correct_is_the_right_choice_share_of_the_choice_likelihoods():
    """The eval stage's p_correct from lm-eval's logged samples: (log-likelihood, greedy) per choice."""
    import math

    from stages.evaluate import choice_probability, p_correct_metrics, per_item_scores

    even = {"doc_id": 1, "target": 2, "filtered_resps": [[-3.0, False]] * 4, "doc": {}}
    sure = {"doc_id": 0, "target": 0, "filtered_resps": [[-1.0, True], [-30.0, False]], "doc": {}}
    text = {"doc_id": 2, "target": " b", "filtered_resps": [[math.log(0.2), False], [math.log(0.6), False]],
            "doc": {"choices": [" a", " b"]}}  # fmt: skip
    assert choice_probability(even) == pytest.approx(0.25)
    assert choice_probability(sure) == pytest.approx(1.0)
    assert choice_probability(text) == pytest.approx(0.75)
    assert per_item_scores([even, sure, text], "p_correct") == pytest.approx([1.0, 0.25, 0.75])
    metrics = p_correct_metrics([even, sure, text])
    assert metrics["p_correct,none"] == pytest.approx(2 / 3)
    assert metrics["p_correct_stderr,none"] == pytest.approx(np.std([0.25, 1.0, 0.75], ddof=1) / math.sqrt(3))


def test_training_overlap_table_and_a_warning_only_for_tasks_with_overlapping_items():
    assert training_overlap(_evals()) == (None, [])  # no benchmark or task folder: no section
    evals = _evals()
    evals["base"]["tasks"]["mmlu"] = {
        "value": 0.3,
        "train_overlap": {"items": 40, "overlapping": 3, "short": 2, "n": 13},
    }
    evals["base"]["tasks"]["my_quiz"] = {
        "value": 0.5,
        "train_overlap": {"items": 20, "overlapping": 0, "short": 0, "n": 13},
    }
    table, notes = training_overlap(evals)
    assert table == (
        ["task", "items", "sharing a 13-gram", "share", "too short to check"],
        [["mmlu", 40, 3, "7.5%", 2], ["my_quiz", 20, 0, "0.0%", 0]],
    )
    assert len(notes) == 1 and notes[0].startswith("3 of 40 items of mmlu share a 13-gram")
