"""A closed-loop HTTP load generator: N connections, each posting as soon as its last answer
came back, for a fixed time. Reports throughput, latency quantiles and every non-200 answer.

    python -m bench.load --url http://127.0.0.1:8000 --connections 16 --seconds 60
"""

from __future__ import annotations

import argparse
import json
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import numpy as np


@dataclass
class LoadResult:
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    transport_errors: int = 0

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def errors(self) -> int:
        return self.transport_errors + sum(n for s, n in self.statuses.items() if s != 200)

    def summary(self) -> dict[str, float]:
        lat = np.asarray(self.latencies_ms) if self.latencies_ms else np.zeros(1)
        return {
            "requests": self.requests,
            "errors": self.errors,
            "throughput_rps": round(self.requests / self.seconds, 1),
            "p50_ms": round(float(np.percentile(lat, 50)), 3),
            "p99_ms": round(float(np.percentile(lat, 99)), 3),
        }


def run_load(
    url: str,
    body: Callable[[int], bytes],
    connections: int = 16,
    seconds: float = 60.0,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """POST body(i) to url from `connections` keep-alive connections for `seconds`, timed from
    when every connection's client is made (making one takes milliseconds of CPU)."""
    result = LoadResult(seconds)
    headers = headers or {"content-type": "application/json"}
    lock = threading.Lock()
    deadline = [0.0]
    start = threading.Barrier(
        connections, action=lambda: deadline.__setitem__(0, time.perf_counter() + seconds)
    )
    counter = iter(range(10**12))
    # One TLS context for every client: httpx makes one per client otherwise, milliseconds of
    # CPU each, which at 64 connections delays the load by seconds.
    tls = ssl.create_default_context()

    def worker() -> None:
        lat, statuses, errors = [], Counter(), 0
        with httpx.Client(timeout=30, verify=tls) as client:
            start.wait()
            while time.perf_counter() < deadline[0]:
                with lock:
                    i = next(counter)
                t0 = time.perf_counter()
                try:
                    r = client.post(url, content=body(i), headers=headers)
                except httpx.TransportError:
                    errors += 1
                    continue
                lat.append((time.perf_counter() - t0) * 1e3)
                statuses[r.status_code] += 1
        with lock:
            result.latencies_ms += lat
            result.statuses.update(statuses)
            result.transport_errors += errors

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rate", type=float, default=0.9)
    parser.add_argument("--frames", type=int, default=40)
    args = parser.parse_args()
    joints = httpx.get(f"{args.url}/v1/model").json()["layout"]["num_joints"]
    seq = np.random.default_rng(0).standard_normal((args.frames, joints, 3)).round(4).tolist()
    payload = json.dumps({"sequences": [seq], "rate": args.rate}).encode()
    result = run_load(f"{args.url}/v1/classify", lambda i: payload, args.connections, args.seconds)
    print(json.dumps(result.summary()))


if __name__ == "__main__":
    main()
