"""Report arithmetic: gain and forgetting against base, with their signs."""

from eval.report import change_table, main_table, markdown


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
