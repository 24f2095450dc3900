"""The benchmark tools run end to end on a small model and the report renders every figure
and every target from their JSON (the numbers themselves are measured, not tested)."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from bench import compute, http, report, request_path
from mrmp.store import read_manifest

RATES = (0.0, 0.9, 0.98)  # the report's targets read these
CONNECTIONS = (1, 64)


@pytest.fixture(scope="module")
def results(synthetic_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    c = compute.run(synthetic_store, out, repeats=2)
    request_path.run(synthetic_store, out, repeats=1)
    h = http.run(synthetic_store, out, 0.2, 1, CONNECTIONS, RATES, batching_rounds=2)
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
    assert report.backends(rows) == list(compute.BACKENDS)


def test_http_drives_every_scenario_on_its_servers_without_errors(results):
    _, _, h = results
    seqs = [np.zeros((2, 30, 3))] * http.BATCH
    want = {s.name: set(s.servers) for s in http.scenarios(seqs, "m", RATES)}
    assert {name: set(sc["runs"]) for name, sc in h["scenarios"].items()} == want
    for name, sc in h["scenarios"].items():
        for server, by_c in sc["runs"].items():
            assert set(by_c) == {str(c) for c in CONNECTIONS}
            for c, r in by_c.items():
                where = f"{name}, {server}, {c} connections"
                assert r["errors"] == 0, where
                assert r["throughput_rps"] > 0 and 0 < r["p50_ms"] <= r["p99_ms"], where
                # Sequences per network call: none for the floor, the whole request at least
                # for V2 (32 sequences a request), one at least for v1.
                want_batch = {"floor": 0, "v2": http.BATCH, "v1": 1}.get(sc["kind"])
                rounds = r.get("throughput_rounds_rps", [r["throughput_rps"]])
                assert len(rounds) == (2 if sc["kind"] == "v1" and c == "64" else 1), where
                if want_batch == 0:
                    assert r["mean_batch"] == 0, where
                elif want_batch:
                    assert r["mean_batch"] >= want_batch, where


def test_the_bodies_carry_the_sequences_and_the_rate():
    seqs = [np.random.default_rng(i).standard_normal((http.FRAMES, 30, 3)) for i in range(3)]
    body, head = http.v2_binary(np.stack(seqs), 0.98)
    meta = json.loads(body[:head])
    assert meta["inputs"][0]["shape"] == [3, http.FRAMES, 30, 3]
    assert meta["parameters"] == {"rate": 0.98}
    got = np.frombuffer(body[head:], "<f4").reshape(3, http.FRAMES, 30, 3)
    np.testing.assert_array_equal(got, np.stack(seqs).astype(np.float32))
    v1 = json.loads(http.v1_body(seqs[0], 0.5))
    assert v1["rate"] == 0.5
    np.testing.assert_allclose(v1["sequences"][0], seqs[0], atol=5e-5)


def test_report_states_every_target_and_renders_the_results(results, tmp_path):
    out, c, h = results
    md = tmp_path / "benchmarks.md"
    report.write(out, md)
    text = md.read_text()
    assert (out / "latency.png").stat().st_size > 0
    section = text.split("## Where the targets stand\n\n", 1)[1].split("\n\n", 1)[0]
    lines = section.splitlines()
    starts = [
        "- Compute, batch 32: r = 0.98 runs ",
        "- Compute, batch 1: r = 0.98 runs ",
        "- Compute non-increasing in r ",
        "- V2 binary, 32 sequences ",
        "- v1 JSON, one sequence of 45 frames ",
        "- 64 connections of single-sequence v1 requests",
        "- Deriving a new rate, ",
        "- Memory of a cached rate's runner at r = 0.9: ",
    ]
    assert [line[: len(s)] for line, s in zip(lines, starts, strict=False)] == starts
    assert len(lines) == len(starts)
    verdict = r"target [\d.]+(x|%| ms)?( \(the noise\))?: (met|\*\*not met\*\*)"
    for line in lines:
        assert re.search(verdict, line), line
    for name, sc in h["scenarios"].items():
        for server, by_c in sc["runs"].items():
            for conns in by_c:
                assert f"| {name} | {server} | {conns} |" in text
    assert c["command"] in text and h["command"] in text
    assert f"(version {c['model']['version'][:12]})" in text
    assert "| v1, one 45-frame sequence | json lean |" in text


def test_report_refuses_results_of_two_models(results, tmp_path):
    out, _, h = results
    other = tmp_path / "results"
    other.mkdir()
    for name in ("compute.json", "request_path.json"):
        (other / name).write_text((out / name).read_text())
    h = json.loads(json.dumps(h))
    h["model"]["version"] = "0" * 64
    (other / "http.json").write_text(json.dumps(h))
    with pytest.raises(ValueError, match="re-run them all on one model"):
        report.write(other, tmp_path / "benchmarks.md")


def test_committed_benchmarks_measure_the_shipped_model():
    """docs/benchmarks.md is re-measured whenever the shipped weights change."""
    root = Path(__file__).resolve().parent.parent
    shipped = read_manifest(root / "model_store" / "sbu-mrmp").version
    for name in ("compute.json", "request_path.json", "http.json"):
        measured = json.loads((root / "docs" / "benchmarks" / name).read_text())["model"]
        assert measured["version"] == shipped, f"{name}: re-run python -m bench"
