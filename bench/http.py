"""HTTP benchmark on loopback: the service against its own empty-POST floor and a naive
baseline (the same model dense, behind FastAPI's default pydantic parsing), at 1 and 16
connections, all in one run. The load comes from wrk (Debian package `wrk`) when it is on the
PATH, else from the Python generator in bench/load.py (which takes more of the CPU).

    python -m bench.http --out docs/benchmarks
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from bench.load import run_load
from mrmp.store import read_manifest

# The median SBU sequence has 23 frames (of 10 to 46) of 30 joints.
FRAMES, JOINTS = 23, 30

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
    server: str  # "mrmp" or "naive"
    path: str
    body: bytes
    content_type: str = "application/json"
    header_length: int | None = None  # V2 binary: the JSON header's length


def scenarios(seq: np.ndarray, model_name: str) -> list[Scenario]:
    listed = seq.round(4).tolist()

    def v1(rate: float) -> bytes:
        return json.dumps({"sequences": [listed], "rate": rate}).encode()

    blob = seq.astype("<f4").tobytes()
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "skeleton",
                    "shape": [1, *seq.shape],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(blob)},
                }
            ],
            "parameters": {"rate": 0.98},
        }
    ).encode()
    return [
        Scenario("floor: empty POST", "mrmp", "/v1/ping", b""),
        Scenario("v1 JSON, tier 0.50 (accurate)", "mrmp", "/v1/classify", v1(0.5)),
        Scenario("v1 JSON, tier 0.90 (balanced)", "mrmp", "/v1/classify", v1(0.9)),
        Scenario("v1 JSON, tier 0.98 (fast)", "mrmp", "/v1/classify", v1(0.98)),
        Scenario("v1 JSON, cached rate 0.93", "mrmp", "/v1/classify", v1(0.93)),
        Scenario(
            "V2 binary tensor, tier 0.98",
            "mrmp",
            f"/v2/models/{model_name}/infer",
            head + blob,
            "application/octet-stream",
            len(head),
        ),
        Scenario("naive: empty POST", "naive", "/ping", b""),
        Scenario("naive: FastAPI + pydantic, dense", "naive", "/classify", v1(0.0)),
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


def drive(url: str, sc: Scenario, connections: int, seconds: int, tmp: Path) -> dict:
    """One measured run (after a warm-up of a second): throughput, p50, p99, errors."""
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

        def run(duration: int) -> dict:
            out = subprocess.run(
                [wrk, "-t1", f"-c{connections}", f"-d{duration}s", "-s", str(script), url],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            return json.loads(out.strip().splitlines()[-1])

        run(1)
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
    run_load(url, lambda i: sc.body, connections, 1.0, headers)
    return run_load(url, lambda i: sc.body, connections, seconds, headers).summary()


def load_generator() -> str:
    wrk = shutil.which("wrk")
    if not wrk:
        return "bench/load.py (Python threads)"
    out = subprocess.run([wrk, "--version"], capture_output=True, text=True)
    return (out.stdout or out.stderr).splitlines()[0].strip()


def run(
    model: Path,
    out: Path,
    seconds: int = 10,
    workers: int = 2,
    connections: tuple[int, ...] = (1, 16),
) -> dict:
    """Start both servers in turn, drive every scenario, write `out`/http.json, return it."""
    seq = np.random.default_rng(0).standard_normal((FRAMES, JOINTS, 3)).astype(np.float32)
    manifest = read_manifest(model)
    model_name = manifest.name
    ports = {"mrmp": free_port(), "naive": free_port()}
    urls = {k: f"http://127.0.0.1:{p}" for k, p in ports.items()}

    def port_workers(name: str) -> list[str]:
        return ["--port", str(ports[name]), "--workers", str(workers)]

    bin_dir = Path(sys.executable).parent
    commands = {
        "mrmp": (
            [str(bin_dir / "mrmp"), "serve", "--model", str(model), *port_workers("mrmp")],
            "/v2/health/ready",
        ),
        "naive": (
            [
                *(sys.executable, "-m", "uvicorn", "bench.naive_app:create_app", "--factory"),
                *port_workers("naive"),
                *("--log-level", "warning", "--no-access-log"),
            ],
            "/docs",
        ),
    }
    env = {"MRMP_MODEL_PATH": str(model), "MRMP_LOG_LEVEL": "warning"}
    rows: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("mrmp", "naive"):
            cmd, ready = commands[name]
            with server(cmd, urls[name], ready, env):
                for sc in (s for s in scenarios(seq, model_name) if s.server == name):
                    for c in connections:
                        r = drive(urls[name] + sc.path, sc, c, seconds, Path(tmp))
                        rows.setdefault(sc.name, {})[str(c)] = r
                        print(f"{sc.name:40s} c={c:<3d} {json.dumps(r)}", flush=True)
    conns = ",".join(str(c) for c in connections)
    result = {
        "command": f"python -m bench.http --model {model} --out {out} --seconds {seconds} "
        f"--workers {workers} --connections {conns}",
        "model": {"name": model_name, "version": manifest.version},
        "load_generator": load_generator(),
        "sequence": f"one sequence of {FRAMES} frames x {JOINTS} joints (the SBU median)",
        "workers": workers,
        "seconds": seconds,
        "scenarios": rows,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "http.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("model_store/sbu-mrmp"))
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="server processes (both servers)")
    parser.add_argument("--connections", default="1,16")
    args = parser.parse_args()
    conns = tuple(int(c) for c in args.connections.split(","))
    run(args.model, args.out, args.seconds, args.workers, conns)


if __name__ == "__main__":
    main()
