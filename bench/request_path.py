"""The request path stage by stage, single thread, in this process: the body's JSON decoded (the
checked path through Python lists, and the lean path straight into arrays), the request decoded,
its sequences made whole and described (over the batch at once, and one sequence at a time),
the answer encoded; for a v1 body of one 45-frame SBU sequence and a V2 JSON body of 32 (the
bodies of bench/http.py, which measures them over HTTP). Writes request_path.json.

    python -m bench.request_path --model model_store/sbu-mrmp --out docs/benchmarks
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
from fastapi.testclient import TestClient

from bench.http import BATCH, sequences
from mrmp.store import read_manifest
from service.app import create_app
from service.decoding import decode_json, numeric
from service.json_arrays import decode_json_arrays
from service.routes_v1 import decode_body, decode_classify, encode_classify
from service.settings import Settings
from service.v2_codec import decode_infer, encode_infer


def median_us(fn: Callable[[], object], repeats: int) -> float:
    """Median over `repeats` rounds of the mean time of one call, in microseconds (a round runs
    about 20 ms, so that the clock's resolution and one slow call do not count)."""
    start = time.perf_counter()
    fn()
    per_round = max(1, int(0.02 / max(time.perf_counter() - start, 1e-7)))
    rounds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(per_round):
            fn()
        rounds.append((time.perf_counter() - start) / per_round)
    return round(statistics.median(rounds) * 1e6, 1)


def stages(model: Path, repeats: int, tmp: Path) -> dict[str, dict[str, float]]:
    """Per stage, microseconds, for the v1 body and the V2 JSON body."""
    settings = Settings(model_path=model, tier_dir=tmp / "tiers", onnx_tiers=False)
    app = create_app(settings)
    with TestClient(app) as client:
        while client.get("/v2/health/ready").status_code != 200:
            time.sleep(0.2)
        host, plane = app.state.host, app.state.plane
        classes = len(host.class_names)
        v1 = orjson.dumps({"sequences": [sequences(1)[0].round(4).tolist()], "rate": 0.9})
        v1_req = decode_classify(decode_body(v1), 0.0, settings, classes)
        v1_answer = asyncio.run(plane.infer(v1_req.request))
        batch = np.stack(sequences(BATCH)).round(4)
        tensor = {"name": "skeleton", "shape": list(batch.shape), "datatype": "FP32"}
        v2 = orjson.dumps(
            {
                "inputs": [{**tensor, "data": batch.reshape(-1).tolist()}],
                "parameters": {"rate": 0.9},
            }
        )
        headers = {"content-type": "application/json"}
        v2_req = decode_infer(v2, headers, 0.0, settings, 30)
        v2_answer = asyncio.run(plane.infer(v2_req.request))
        v2_seqs = v2_req.request.sequences
        v1_seqs = v1_req.request.sequences
        return {
            "v1, one 45-frame sequence": {
                "json_checked_us": median_us(
                    lambda: [numeric(s, "s") for s in decode_json(v1)["sequences"]], repeats
                ),
                "json_lean_us": median_us(lambda: decode_body(v1), repeats),
                "decode_request_us": median_us(
                    lambda: decode_classify(decode_body(v1), 0.0, settings, classes), repeats
                ),
                "describe_us": median_us(lambda: plane.describe(v1_seqs), repeats),
                "encode_us": median_us(
                    lambda: orjson.dumps(encode_classify(v1_answer, v1_req.top_k, host)), repeats
                ),
            },
            "V2 JSON, 32 45-frame sequences": {
                "json_checked_us": median_us(
                    lambda: numeric(decode_json(v2)["inputs"][0]["data"], "d", ("value",)),
                    repeats,
                ),
                "json_lean_us": median_us(
                    lambda: decode_json_arrays(v2, ("inputs", 0, "data"), (1, 3, 4), False),
                    repeats,
                ),
                "decode_request_us": median_us(
                    lambda: decode_infer(v2, headers, 0.0, settings, 30), repeats
                ),
                "describe_batch_us": median_us(lambda: plane.describe(v2_seqs), repeats),
                "describe_each_us": median_us(
                    lambda: [plane.describe([s]) for s in v2_seqs], repeats
                ),
                "encode_us": median_us(lambda: encode_infer(v2_answer, v2_req, host), repeats),
            },
        }


def run(model: Path, out: Path, repeats: int = 15) -> dict:
    """Measure the stages, write `out`/request_path.json, return it."""
    manifest = read_manifest(model)
    with tempfile.TemporaryDirectory() as tmp:
        result = {
            "command": f"python -m bench.request_path --model {model} --out {out} "
            f"--repeats {repeats}",
            "model": {"name": manifest.name, "version": manifest.version},
            "stages": stages(model, repeats, Path(tmp)),
        }
    out.mkdir(parents=True, exist_ok=True)
    (out / "request_path.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("model_store/sbu-mrmp"))
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    print(json.dumps(run(args.model, args.out, args.repeats), indent=1))


if __name__ == "__main__":
    main()
