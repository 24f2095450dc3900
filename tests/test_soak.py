"""Long checks against a real server (slow): a 60 s load at 16 connections with no errors, and
10,000 distinct rates that leave the cache and the process memory within their bounds."""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.load import run_load
from tests.service_helpers import sequence
from tests.test_server import start_server

pytestmark = pytest.mark.slow


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def gauges(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics").text
    return {
        s.name: s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if f.type == "gauge" and not s.labels
    }


def stalled_upload(port: int) -> socket.socket:
    """A POST whose headers and first bytes are sent, and the rest of its body never."""
    sock = socket.create_connection(("127.0.0.1", port))
    head = "POST /v1/classify HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n"
    sock.sendall(head.encode() + b'{"sequences": [[[')
    return sock


def test_sixty_seconds_at_sixteen_connections_without_errors(synthetic_store, tmp_path):
    """Meanwhile twelve uploads stall: they are not load (nothing is degraded or refused for
    them) and each is answered 408 once its body is overdue."""
    url, port, proc = start_server(synthetic_store, tmp_path)
    try:
        stalled = [stalled_upload(port) for _ in range(12)]
        bodies = [
            json.dumps({"sequences": [sequence(frames=40, seed=i)], "rate": r}).encode()
            for i, r in enumerate((0.5, 0.9, 0.98, 0.93, 0.7))
        ]
        result = run_load(f"{url}/v1/classify", lambda i: bodies[i % 5], 16, 60.0)
        print(result.summary())
        assert result.errors == 0, result.statuses
        assert result.requests > 1000
        for sock in stalled:
            sock.settimeout(5)
            assert sock.recv(64).startswith(b"HTTP/1.1 408 ")
            sock.close()
        assert gauges(url)["mrmp_in_flight_requests"] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


def test_ten_thousand_distinct_rates_stay_within_bounds(synthetic_store, tmp_path):
    max_entries, max_bytes = 16, 40 * 2**20
    url, _, proc = start_server(
        synthetic_store,
        tmp_path,
        env={"MRMP_CACHE_MAX_ENTRIES": str(max_entries), "MRMP_CACHE_MAX_BYTES": str(max_bytes)},
    )
    try:
        seq = [sequence(frames=4)]
        rates = np.random.default_rng(0).uniform(0.0, 0.99, 10_000)
        with httpx.Client() as http:
            for r in rates[:500]:  # fill the cache, then measure
                assert http.post(f"{url}/v1/classify", json={"sequences": seq, "rate": r})
            baseline = rss_bytes(proc.pid)
            for r in rates[500:]:
                a = http.post(f"{url}/v1/classify", json={"sequences": seq, "rate": float(r)})
                assert a.status_code == 200
        g = gauges(url)
        assert g["mrmp_cache_entries"] <= max_entries
        assert g["mrmp_cache_bytes"] <= max_bytes
        grown = rss_bytes(proc.pid) - baseline
        assert grown < 64 * 2**20, f"RSS grew {grown / 2**20:.1f} MiB over 9,500 requests"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
