"""HTTP benchmark on loopback, all in one run: the service with dynamic batching on (the
default batch_max_delay_ms) and off (0), side by side, against its own empty-POST floor and a
naive baseline (the same model dense, behind FastAPI's default pydantic parsing). Per rate and
number of connections: v1 JSON with one 45-frame SBU sequence, and V2 binary with 32 of them
per request. The three servers run at once (idle but for the one driven), so that the rows of
one scenario are measured back to back. The load comes from wrk (Debian package `wrk`) when it
is on the PATH, else from the Python generator in bench/load.py (which takes more of the CPU).

    python -m bench.http --out docs/benchmarks
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from bench.load import run_load
from mrmp.store import read_manifest
from service.settings import BATCH_MAX_DELAY_MS
from training.datasets import data_root, load_sbu

# 45 frames: most SBU sequences are at least this long (10 to 46 frames, median 23).
FRAMES, JOINTS, BATCH = 45, 30, 32
RATES = (0.0, 0.5, 0.9, 0.98)
CONNECTIONS = (1, 16, 64)
ON, OFF, NAIVE = "batching on", "batching off", "naive"
DELAY_MS = {ON: BATCH_MAX_DELAY_MS, OFF: 0.0}

WRK_SCRIPT = """
wrk.method = "POST"
local f = io.open(os.getenv("BENCH_BODY"), "rb"); wrk.body = f:read("*a"); f:close()
wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE")
local split = os.getenv("BENCH_HEADER_LENGTH")
if split ~= "" then wrk.headers["Inference-Header-Content-Length"] = split end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "status_errors": %d, '
    .. '"socket_errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass
class Scenario:
    name: str
    kind: str  # "floor", "v1", "v2", "naive floor" or "naive"
    rate: float | None
    servers: tuple[str, ...]
    path: str
    body: bytes
    content_type: str = "application/json"
    header_length: int | None = None  # V2 binary: the JSON header's length


def sequences(n: int) -> list[np.ndarray]:
    """n SBU sequences of FRAMES frames (their first FRAMES frames when longer; the SBU data
    from MRMP_DATA_DIR), float64 (frames, joints, 3), or standard-normal ones when the data is
    absent."""
    try:
        data = [s for s in load_sbu(data_root()).sequences if len(s) >= FRAMES]
    except FileNotFoundError:
        data = []
    if not data:
        rng = np.random.default_rng(0)
        return [rng.standard_normal((FRAMES, JOINTS, 3)) for _ in range(n)]
    return [data[i % len(data)][:FRAMES].astype(np.float64) for i in range(n)]


def v1_body(seq: np.ndarray, rate: float) -> bytes:
    """A v1 classify body of one sequence (coordinates to 4 decimals, as a client sends)."""
    return json.dumps({"sequences": [seq.round(4).tolist()], "rate": rate}).encode()


def v2_binary(batch: np.ndarray, rate: float) -> tuple[bytes, int]:
    """A V2 infer body with the tensor as binary data: (body, length of its JSON header)."""
    blob = batch.astype("<f4").tobytes()
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "skeleton",
                    "shape": list(batch.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(blob)},
                }
            ],
            "parameters": {"rate": rate},
        }
    ).encode()
    return head + blob, len(head)


def scenarios(
    seqs: list[np.ndarray], model_name: str, rates: tuple[float, ...] = RATES
) -> list[Scenario]:
    """Every scenario: the floor, v1 (seqs[0]) and V2 binary (all of seqs) per rate on both
    service servers, then the naive baseline's floor and dense classify (v1 body)."""
    both = (ON, OFF)
    out = [Scenario("floor: empty POST", "floor", None, both, "/v1/ping", b"")]
    for rate in rates:
        out.append(
            Scenario(
                f"v1 JSON, 1 sequence, rate {rate:.2f}",
                "v1",
                rate,
                both,
                "/v1/classify",
                v1_body(seqs[0], rate),
            )
        )
    batch = np.stack(seqs)
    for rate in rates:
        body, head = v2_binary(batch, rate)
        out.append(
            Scenario(
                f"V2 binary, {len(seqs)} sequences, rate {rate:.2f}",
                "v2",
                rate,
                both,
                f"/v2/models/{model_name}/infer",
                body,
                "application/octet-stream",
                head,
            )
        )
    naive = (NAIVE,)
    return [
        *out,
        Scenario("naive: empty POST", "naive floor", None, naive, "/ping", b""),
        Scenario(
            "naive: FastAPI + pydantic, dense",
            "naive",
            0.0,
            naive,
            "/classify",
            v1_body(seqs[0], 0.0),
        ),
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server(cmd: list[str], url: str, ready_path: str, env: dict[str, str]) -> Iterator[None]:
    proc = subprocess.Popen(
        cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL, start_new_session=True
    )
    try:
        # Every worker must be ready (each prepares its own tiers, which takes the CPU): ask
        # on fresh connections, which the kernel spreads over the workers, until 20 in a row
        # say ready.
        deadline, streak = time.monotonic() + 180, 0
        while streak < 20:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd} exited with {proc.returncode}")
            try:
                ok = httpx.get(url + ready_path).status_code == 200
            except httpx.TransportError:
                ok = False
            streak = streak + 1 if ok else 0
            if time.monotonic() > deadline:
                raise RuntimeError(f"{cmd} never turned ready")
            if not ok:
                time.sleep(0.2)
        time.sleep(2)
        yield
    finally:  # the server and its workers, whatever happened
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def drive(url: str, sc: Scenario, connections: int, seconds: float, tmp: Path) -> dict:
    """One measured run of `seconds` (wrk: rounded up to whole seconds) after a warm-up of up
    to a second: throughput, p50, p99 (ms), errors (non-200 answers and transport errors)."""
    warm_up = min(1.0, seconds)
    body = tmp / "body"
    body.write_bytes(sc.body)
    wrk = shutil.which("wrk")
    if wrk:
        script = tmp / "post.lua"
        script.write_text(WRK_SCRIPT)
        env = {
            **os.environ,
            "BENCH_BODY": str(body),
            "BENCH_CONTENT_TYPE": sc.content_type,
            "BENCH_HEADER_LENGTH": str(sc.header_length or ""),
        }

        def run(duration: float) -> dict:
            length = f"-d{math.ceil(duration)}s"
            out = subprocess.run(
                [wrk, "-t1", f"-c{connections}", length, "-s", str(script), url],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            return json.loads(out.strip().splitlines()[-1])

        run(warm_up)
        r = run(seconds)
        return {
            "throughput_rps": round(r["requests"] / (r["duration_us"] / 1e6), 1),
            "p50_ms": r["p50_us"] / 1e3,
            "p99_ms": r["p99_us"] / 1e3,
            "errors": r["status_errors"] + r["socket_errors"],
            "requests": r["requests"],
        }
    headers = {"content-type": sc.content_type}
    if sc.header_length is not None:
        headers["inference-header-content-length"] = str(sc.header_length)
    run_load(url, lambda i: sc.body, connections, warm_up, headers)
    return run_load(url, lambda i: sc.body, connections, seconds, headers).summary()


def batch_counts(url: str) -> tuple[float, float]:
    """From the server's /metrics (all workers merged): (sequences, network calls) so far."""
    text = httpx.get(f"{url}/metrics").text
    family = next(f for f in text_string_to_metric_families(text) if f.name == "mrmp_batch_size")
    sizes = {s.name: s.value for s in family.samples}
    return sizes["mrmp_batch_size_sum"], sizes["mrmp_batch_size_count"]


def measure(
    url: str, sc: Scenario, connections: int, seconds: float, tmp: Path, batches: bool
) -> dict:
    """drive(), and with `batches` the row's `mean_batch`: sequences per network call the
    server formed during the measured run (its /metrics before and after)."""
    before = batch_counts(url) if batches else None
    r = drive(url + sc.path, sc, connections, seconds, tmp)
    if before:
        after = batch_counts(url)
        r["mean_batch"] = round((after[0] - before[0]) / max(after[1] - before[1], 1), 2)
    return r


def median_row(runs: list[dict]) -> dict:
    """One row from repeated runs: the median of each figure, errors and requests summed, and
    every run's throughput."""
    if len(runs) == 1:
        return runs[0]
    row = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    row.update({k: sum(r[k] for r in runs) for k in ("errors", "requests")})
    row["throughput_rounds_rps"] = [r["throughput_rps"] for r in runs]
    return row


def load_generator() -> str:
    wrk = shutil.which("wrk")
    if not wrk:
        return "bench/load.py (Python threads)"
    out = subprocess.run([wrk, "--version"], capture_output=True, text=True)
    return (out.stdout or out.stderr).splitlines()[0].strip()


def commands(model: Path, workers: int, ports: dict[str, int]) -> dict[str, tuple]:
    """Per server: (command line, readiness path, environment)."""

    def port_workers(name: str) -> list[str]:
        return ["--port", str(ports[name]), "--workers", str(workers)]

    mrmp = str(Path(sys.executable).parent / "mrmp")
    env = {"MRMP_MODEL_PATH": str(model), "MRMP_LOG_LEVEL": "warning"}
    out: dict[str, tuple] = {
        name: (
            [mrmp, "serve", "--model", str(model), *port_workers(name)],
            "/v2/health/ready",
            {**env, "MRMP_BATCH_MAX_DELAY_MS": str(delay)},
        )
        for name, delay in DELAY_MS.items()
    }
    out[NAIVE] = (
        [
            *(sys.executable, "-m", "uvicorn", "bench.naive_app:create_app", "--factory"),
            *port_workers(NAIVE),
            *("--log-level", "warning", "--no-access-log"),
        ],
        "/docs",
        env,
    )
    return out


def run(
    model: Path,
    out: Path,
    seconds: float = 4,
    workers: int = 2,
    connections: tuple[int, ...] = CONNECTIONS,
    rates: tuple[float, ...] = RATES,
    batching_rounds: int = 3,
) -> dict:
    """Start the three servers, drive every scenario on each of its servers at every number of
    connections, write `out`/http.json and return it. A service row also has `mean_batch`:
    the sequences per network call the server formed during the measured run. The v1 rows at
    the largest number of connections are the median of `batching_rounds` runs."""
    seqs = sequences(BATCH)
    manifest = read_manifest(model)
    ports = {name: free_port() for name in (ON, OFF, NAIVE)}
    urls = {name: f"http://127.0.0.1:{p}" for name, p in ports.items()}
    all_scenarios = scenarios(seqs, manifest.name, rates)
    rows = {
        sc.name: {"kind": sc.kind, "rate": sc.rate, "runs": {s: {} for s in sc.servers}}
        for sc in all_scenarios
    }
    top = max(connections)
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        for name, (cmd, ready, env) in commands(model, workers, ports).items():
            stack.enter_context(server(cmd, urls[name], ready, env))
        for c in connections:
            for sc in all_scenarios:
                # The batching target compares throughputs of separate runs: more rounds,
                # alternated, so that one disturbed run does not decide it.
                n = batching_rounds if sc.kind == "v1" and c == top else 1
                measured: dict[str, list[dict]] = {name: [] for name in sc.servers}
                for _ in range(n):
                    for name in sc.servers:
                        r = measure(urls[name], sc, c, seconds, Path(tmp), name != NAIVE)
                        measured[name].append(r)
                        print(f"{sc.name:36s} {name:12s} c={c:<3d} {json.dumps(r)}", flush=True)
                for name, runs in measured.items():
                    rows[sc.name]["runs"][name][str(c)] = median_row(runs)
    result = {
        "command": f"python -m bench.http --model {model} --out {out} --seconds {seconds} "
        f"--workers {workers} --connections {','.join(map(str, connections))} "
        f"--rates {','.join(map(str, rates))} --batching-rounds {batching_rounds}",
        "model": {"name": manifest.name, "version": manifest.version},
        "load_generator": load_generator(),
        "request": {
            "v1": f"one sequence of {FRAMES} frames x {JOINTS} joints",
            "v2": f"{len(seqs)} sequences of {FRAMES} frames x {JOINTS} joints, FP32 binary",
        },
        "batch_max_delay_ms": DELAY_MS,
        "workers": workers,
        "seconds": seconds,
        "connections": list(connections),
        "rates": list(rates),
        "batching_rounds": batching_rounds,
        "scenarios": rows,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "http.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("model_store/sbu-mrmp"))
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    parser.add_argument("--seconds", type=float, default=4, help="per measured run")
    parser.add_argument("--workers", type=int, default=2, help="server processes (each server)")
    parser.add_argument("--connections", default=",".join(map(str, CONNECTIONS)))
    parser.add_argument("--rates", default=",".join(map(str, RATES)))
    parser.add_argument(
        "--batching-rounds", type=int, default=3, help="v1 runs at the most connections"
    )
    args = parser.parse_args()
    conns = tuple(int(c) for c in args.connections.split(","))
    rates = tuple(float(r) for r in args.rates.split(","))
    run(args.model, args.out, args.seconds, args.workers, conns, rates, args.batching_rounds)


if __name__ == "__main__":
    main()
