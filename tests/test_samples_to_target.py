"""bench/samples_to_target.py: the first evaluation reaching a target, from either stored curve layout."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import samples_to_target as stt  # noqa: E402


def test_curve_rows_reads_both_layouts():
    as_dicts = {"curve": [{"samples": 10, "seconds": 1.0, "acc": 0.2}]}
    as_rows = {"sys": {"curve_columns": ["seconds", "samples", "acc"], "curve": [[1.0, 10, 0.2]]}}
    assert stt.curve_rows(as_dicts, "curve") == stt.curve_rows(as_rows, "sys") == as_dicts["curve"]


def test_samples_to_is_the_first_row_at_or_above_the_target():
    rows = [{"samples": s, "seconds": s / 10, "acc": a} for s, a in [(10, 0.5), (20, 0.9), (30, 0.85), (40, 0.95)]]
    assert stt.samples_to(rows, "acc", 0.9) == {"samples": 20, "seconds": 2.0, "value": 0.9}
    assert stt.samples_to(rows, "acc", 0.95)["samples"] == 40
    assert stt.samples_to(rows, "acc", 0.96) is None


def test_every_target_names_a_stored_curve_and_metric():
    for system, bench, key, metric, target, _ in stt.TARGETS:
        rows = stt.curve_rows(json.loads((stt.RESULTS / f"{bench}_cpu.json").read_text()), key)
        assert metric in rows[0], (system, metric)
        assert 0 < target <= 1
