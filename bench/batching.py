"""Dynamic batching on against off: throughput and latency of single-sequence v1 requests from
many connections, each setting in its own server, alternated over repeats (medians and ranges,
since the figures are wall-clock times on a shared machine). Also the mean batch the server
formed, from its /metrics.

    python -m bench.batching --out docs/benchmarks --connections 64 --repeats 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from bench.http import FRAMES, JOINTS, Scenario, drive, free_port, load_generator, server
from service.settings import BATCH_MAX_DELAY_MS

# A run whose server answered anything but 200 (a worker still preparing its tiers answers 503
# on a loaded machine) measures something else: it is run again, up to this many times.
ATTEMPTS = 3


def served(url: str) -> dict:
    """From the server's /metrics (all workers merged): the mean sequences per network call,
    and the classify answers by HTTP status (a load generator's errors may be its timeouts)."""
    text = httpx.get(f"{url}/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    sizes = {s.name: s.value for s in families["mrmp_batch_size"].samples}
    statuses = {
        s.labels["status"]: int(s.value)
        for s in families["mrmp_requests"].samples
        if s.name == "mrmp_requests_total" and s.labels["endpoint"] == "/v1/classify"
    }
    mean = sizes["mrmp_batch_size_sum"] / max(sizes["mrmp_batch_size_count"], 1)
    return {"mean_batch": round(mean, 2), "statuses": statuses}


def server_cpu_s(port: int) -> float:
    """CPU seconds (user + system) used so far by the server listening on `port` and its
    workers (Linux /proc): per request, a cost that other load on the machine changes far
    less than it changes wall-clock figures."""
    tick = os.sysconf("SC_CLK_TCK")
    supervisors = [
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and _cmdline(p).count(f"--port\0{port}\0")
    ]
    pids = set(supervisors)
    for pid in supervisors:
        with contextlib.suppress(OSError):
            pids.update(
                int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            )
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return total / tick


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def measure(
    model: Path, delay_ms: float, connections: int, seconds: int, workers: int, tmp: Path
) -> dict:
    """One server with batch_max_delay_ms = `delay_ms`, driven for `seconds`."""
    seq = np.random.default_rng(0).standard_normal((FRAMES, JOINTS, 3)).round(4).tolist()
    body = json.dumps({"sequences": [seq], "tier": "balanced"}).encode()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    mrmp = str(Path(sys.executable).parent / "mrmp")
    cmd = [mrmp, "serve", "--model", str(model), "--port", str(port), "--workers", str(workers)]
    env = {
        "MRMP_MODEL_PATH": str(model),
        "MRMP_LOG_LEVEL": "warning",
        "MRMP_BATCH_MAX_DELAY_MS": str(delay_ms),
    }
    scenario = Scenario("v1", "mrmp", "/v1/classify", body)
    with server(cmd, url, "/v2/health/ready", env):
        cpu0 = server_cpu_s(port)
        row = drive(f"{url}/v1/classify", scenario, connections, seconds, tmp)
        cpu = server_cpu_s(port) - cpu0
        row.update(served(url))
        # Every classify answer since start-up (drive's warm-up second included) against the
        # CPU time since start-up was over.
        answered = sum(row["statuses"].values())
        row["server_cpu_us_per_request"] = round(cpu / max(answered, 1) * 1e6, 1)
    return row


def summarize(rows: list[dict]) -> dict:
    out = {}
    for key in ("throughput_rps", "p50_ms", "p99_ms", "mean_batch", "server_cpu_us_per_request"):
        values = [r[key] for r in rows]
        out[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    out["errors"] = sum(r["errors"] for r in rows)
    out["p99_over_p50"] = round(statistics.median(r["p99_ms"] / r["p50_ms"] for r in rows), 2)
    return out


def run(
    model: Path,
    out: Path,
    delays_ms: tuple[float, ...] = (0.0, BATCH_MAX_DELAY_MS),
    connections: int = 64,
    seconds: int = 10,
    workers: int = 2,
    repeats: int = 3,
) -> dict:
    """Every delay `repeats` times, alternated; write `out`/batching.json and return it."""
    runs: dict[str, list[dict]] = {str(d): [] for d in delays_ms}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            for d in delays_ms:
                for _attempt in range(ATTEMPTS):
                    row = measure(model, d, connections, seconds, workers, Path(tmp))
                    print(f"batch_max_delay_ms={d:<5} {json.dumps(row)}", flush=True)
                    if set(row["statuses"]) == {"200"}:
                        break
                runs[str(d)].append(row)
    delays = ",".join(str(d) for d in delays_ms)
    result = {
        "command": f"python -m bench.batching --model {model} --out {out} --delays {delays} "
        f"--connections {connections} --seconds {seconds} --workers {workers} "
        f"--repeats {repeats}",
        "load_generator": load_generator(),
        "request": f"v1 JSON, one sequence of {FRAMES} frames x {JOINTS} joints, tier balanced",
        "runs": runs,
        "summary": {d: summarize(rows) for d, rows in runs.items()},
    }
    off, on = str(delays_ms[0]), str(delays_ms[-1])
    result["speedup"] = round(
        result["summary"][on]["throughput_rps"]["median"]
        / result["summary"][off]["throughput_rps"]["median"],
        2,
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "batching.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("model_store/sbu-mrmp"))
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    parser.add_argument("--delays", default=f"0,{BATCH_MAX_DELAY_MS}", help="ms; the first is off")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    delays = tuple(float(d) for d in args.delays.split(","))
    result = run(
        args.model, args.out, delays, args.connections, args.seconds, args.workers, args.repeats
    )
    print(json.dumps(result["summary"], indent=1), f"speedup {result['speedup']}")


if __name__ == "__main__":
    main()
