"""Report arithmetic: gain and forgetting against base, with their signs."""

from eval.report import change_table, main_table, markdown


def _evals():
    def summary(general, domain, acc):
        return {
            "tasks": {
                "bpb_general": {"metric": "bits_per_byte", "value": general},
                "bpb_domain": {"metric": "bits_per_byte", "value": domain},
                "license_id": {"metric": "acc", "value": acc, "chance": 0.25, "items": 40, "stderr": 0.07},
            }
        }

    return {"base": summary(1.0, 0.8, 0.25), "cpt": summary(1.1, 0.6, 0.40)}


def test_change_table_signs_and_percentages():
    header, rows = change_table(_evals())
    assert header[1].startswith("domain gain") and header[3].startswith("general forgetting")
    assert rows == [["cpt", "+0.2000", "+25.0%", "+0.1000", "+10.0%", "+0.150"]]


def test_main_table_shows_chance_and_stderr():
    header, rows = main_table(_evals())
    assert header[3] == "license_id acc (chance 0.25, n=40)"
    assert rows[1][3] == "0.4000 ± 0.070"
    text = markdown("t", [("Scores", (header, rows))])
    assert "| cpt | 1.1000 | 0.6000 | 0.4000 ± 0.070 |" in text
