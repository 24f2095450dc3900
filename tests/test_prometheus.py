"""A real Prometheus (Debian's package, on loopback) scrapes a running service, and a
histogram_quantile query for p95 by rate returns a value for every rate that was requested."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from bench.http import free_port
from tests.service_helpers import sequence
from tests.test_server import start_server

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="Debian's prometheus is not installed")

RATES = (0.5, 0.62, 0.9, 0.931)  # served rates snap to the labels 0.50, 0.62, 0.90, 0.93
QUERY = (
    "histogram_quantile(0.95, sum by (le, rate) (rate(mrmp_inference_duration_seconds_bucket[1m])))"
)


def test_prometheus_scrapes_p95_by_rate(synthetic_store: Path, tmp_path: Path):
    url, port, server = start_server(synthetic_store, tmp_path / "tiers")
    prom_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: mrmp\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
    )
    prom = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    api = f"http://127.0.0.1:{prom_port}/api/v1/query"
    try:
        deadline = time.monotonic() + 60
        labels: set[str] = set()
        while time.monotonic() < deadline:
            for rate in RATES:  # keep requests coming while Prometheus scrapes
                body = {"sequences": [sequence(frames=4)], "rate": rate}
                assert httpx.post(f"{url}/v1/classify", json=body).status_code == 200
            try:
                answer = httpx.get(api, params={"query": QUERY}).json()
            except httpx.TransportError:
                answer = {}
            results = answer.get("data", {}).get("result", [])
            labels = {r["metric"]["rate"] for r in results if r["value"][1] != "NaN"}
            if {"0.50", "0.62", "0.90", "0.93"} <= labels:
                break
            time.sleep(0.5)
        assert {"0.50", "0.62", "0.90", "0.93"} <= labels
        for r in results:
            assert 0 < float(r["value"][1]) < 2.5
    finally:
        prom.send_signal(signal.SIGTERM)
        prom.wait(timeout=30)
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
