"""The benchmark tools run end to end on a small model and the report renders every figure
from their JSON (the numbers themselves are measured, not tested)."""

import json
from pathlib import Path

import numpy as np
import pytest

from bench import compute, http, report
from mrmp.store import read_manifest


@pytest.fixture(scope="module")
def results(synthetic_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    c = compute.run(synthetic_store, out, repeats=2)
    h = http.run(synthetic_store, out, seconds=1, workers=1, connections=(1,))
    return out, c, h


def test_compute_covers_every_rate_and_backend(results):
    _, c, _ = results
    rows = c["latency"]["rates"]
    assert [float(r) for r in rows] == list(compute.RATES)
    for rate, row in rows.items():
        for backend in compute.BACKENDS:
            for batch in compute.BATCHES:
                assert row[f"{backend}_b{batch}_ms"] > 0
        assert row["observed_rate"] == pytest.approx(float(rate), abs=0.02)
        assert row["kept_weight_bytes"] == 4 * row["kept_params"]
    assert rows["0.99"]["compacted_layers"]  # at 0.99 matrices lose whole rows and columns
    assert rows["0.99"]["flops"] < rows["0.00"]["flops"]
    assert len(c["derivation_ms"]) == 2  # the model and a 4x larger one


def test_http_drives_every_scenario_without_errors(results):
    _, _, h = results
    names = {s.name for s in http.scenarios(np.zeros((2, 30, 3), np.float32), "m")}
    assert set(h["scenarios"]) == names
    for name, by_c in h["scenarios"].items():
        r = by_c["1"]
        assert r["errors"] == 0, name
        assert r["throughput_rps"] > 0 and 0 < r["p50_ms"] <= r["p99_ms"]


def test_report_renders_the_results(results, tmp_path):
    out, c, h = results
    h = json.loads(json.dumps(h))  # a copy: the fixture is shared
    md = tmp_path / "benchmarks.md"
    # The report states targets at 16 connections: reuse the 1-connection run for them.
    h["scenarios"] = {n: {**by_c, "16": by_c["1"]} for n, by_c in h["scenarios"].items()}
    (out / "http.json").write_text(json.dumps(h))
    report.write(out, md)
    text = md.read_text()
    assert "## Where the targets stand" in text and (out / "latency.png").stat().st_size > 0
    for name in h["scenarios"]:
        assert f"| {name} | 1 |" in text
    assert c["command"] in text and h["command"] in text
    assert f"(version {c['model']['version'][:12]})" in text


def test_report_refuses_results_of_two_models(results, tmp_path):
    out, _, h = results
    other = tmp_path / "results"
    other.mkdir()
    (other / "compute.json").write_text((out / "compute.json").read_text())
    h = json.loads(json.dumps(h))
    h["model"]["version"] = "0" * 64
    (other / "http.json").write_text(json.dumps(h))
    with pytest.raises(ValueError, match="re-run both on one model"):
        report.write(other, tmp_path / "benchmarks.md")


def test_committed_benchmarks_measure_the_shipped_model():
    """docs/benchmarks.md is re-measured whenever the shipped weights change."""
    root = Path(__file__).resolve().parent.parent
    shipped = read_manifest(root / "model_store" / "sbu-mrmp").version
    for name in ("compute.json", "http.json"):
        measured = json.loads((root / "docs" / "benchmarks" / name).read_text())["model"]
        assert measured["version"] == shipped, f"{name}: re-run python -m bench"
