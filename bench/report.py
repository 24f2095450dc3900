"""docs/benchmarks.md and its plot, generated from compute.json, request_path.json and
http.json: every number in the report comes from those files, so rerunning the benchmark
rewrites the report. The targets are judged on ratios taken within one run.

    python -m bench.report --results docs/benchmarks --out docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.http import NAIVE, OFF, ON

LABELS = {
    "masked_dense": "masked dense (torch)",
    "sparse": "sparse kernels (torch)",
    "compact": "compacted (torch)",
    "onnxruntime": "onnxruntime",
    "onnxruntime_compact": "onnxruntime, compacted",
    "onnxruntime_split": "split: onnxruntime blocks, CSR fc (tiers)",
    "onnxruntime_shared": "shared onnxruntime graphs, CSR fc (cached rates)",
}
BATCHES = (1, 32)
VERDICT = {True: "met", False: "**not met**"}


def label(backend: str) -> str:
    return LABELS.get(backend, backend.replace("_", " "))


def backends(rows: dict) -> list[str]:
    """The backends every rate was timed on at both batch sizes (keys `<backend>_b1_ms` and
    `<backend>_b32_ms`), in the order compute.json lists them."""
    found = [m[1] for k in next(iter(rows.values())) if (m := re.fullmatch(r"(.+)_b1_ms", k))]
    return [b for b in found if all(f"{b}_b{n}_ms" in r for r in rows.values() for n in BATCHES)]


def best(row: dict, batch: int, names: list[str]) -> tuple[str, float]:
    """The fastest backend for a rate at a batch size: (backend, ms)."""
    return min(((b, row[f"{b}_b{batch}_ms"]) for b in names), key=lambda t: t[1])


def plot(compute: dict, path: Path) -> None:
    rows = compute["latency"]["rates"]
    rates = [float(r) for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, batch in zip(axes, BATCHES, strict=True):
        for b in backends(rows):
            ax.plot(
                rates, [r[f"{b}_b{batch}_ms"] for r in rows.values()], marker="o", label=label(b)
            )
        ax.set_title(f"batch {batch}")
        ax.set_xlabel("pruning rate")
        ax.set_ylabel("compute latency, median (ms)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def compute_section(compute: dict, image: str) -> list[str]:
    rows = compute["latency"]["rates"]
    names = backends(rows)
    lines = [
        "## Compute latency per rate",
        "",
        f"`{compute['command']}`",
        "",
        "Median of the repeated calls. *masked dense* is the naive way (the pruned weights are "
        "zeros in dense matrices); *sparse kernels* is the torch runner the service builds for "
        "a derived rate with onnxruntime off (CSR matmuls where the calibrated crossover or "
        "the memory density says so); *compacted* removes the rows and columns left empty "
        "(`mrmp/compact.py`); *onnxruntime* and *onnxruntime, compacted* run the whole "
        "network's export; *split* runs a tier's export of the blocks and fc as a scipy CSR "
        "matmul before the head's graph; *shared* is what the service builds for a cached "
        "rate: the architecture's graphs exported once, the rate's weights bound, fc as CSR "
        "where sparse (`mrmp/trunk.py`). Speedup: over the fastest backend at rate 0 (the "
        "fastest dense network).",
        "",
        f"![compute latency per rate]({image})",
        "",
    ]
    for batch in BATCHES:
        dense = best(rows["0.00"], batch, names)[1]
        lines += [
            f"### Batch {batch} (ms)",
            "",
            "| rate | observed | GFLOP | "
            + " | ".join(label(b) for b in names)
            + " | fastest | speedup |",
            "|" + "---|" * (len(names) + 5),
        ]
        for rate, row in rows.items():
            name, ms = best(row, batch, names)
            cells = [f"{row[f'{b}_b{batch}_ms']:.3f}" for b in names]
            lines.append(
                f"| {rate} | {row['observed_rate']:.3f} | {row['flops'] / 1e9:.4f} | "
                + " | ".join(cells)
                + f" | {label(name)} | {dense / ms:.2f}x |"
            )
        lines.append("")
    crossover = ", ".join(f"{k} {v:g}" for k, v in compute["latency"]["crossover"].items())
    lines += [
        f"Calibrated CSR crossover density per matrix (0: dense always wins): {crossover}.",
        "",
    ]
    return lines


def memory_section(compute: dict) -> list[str]:
    rows = compute["latency"]["rates"]
    dense = rows["0.00"]["memory_bytes"]["masked_dense"]
    names = list(rows["0.00"]["memory_bytes"])
    lines = [
        "## Memory of a cached network",
        "",
        "Bytes each runner holds (weights, indices, adjacency; ONNX: the file), in MiB, against "
        f"the kept parameters at 4 bytes each and the dense copy ({dense / 2**20:.2f} MiB).",
        "",
        "| rate | kept params | " + " | ".join(label(b) for b in names) + " | sparse / dense |",
        "|" + "---|" * (len(names) + 3),
    ]
    for rate, row in rows.items():
        m = row["memory_bytes"]
        lines.append(
            f"| {rate} | {row['kept_weight_bytes'] / 2**20:.3f} | "
            + " | ".join(f"{m[b] / 2**20:.3f}" for b in names)
            + f" | {m['sparse'] / dense:.1%} |"
        )
    return [*lines, ""]


def derivation_section(compute: dict) -> list[str]:
    steps = list(next(iter(compute["derivation_ms"].values())))
    lines = [
        "## Deriving an uncached rate",
        "",
        "Median over 50 random rates in [0.5, 0.99]: `MagnitudeIndex` (|Z| sorted once at "
        "load) gives the thresholds by binary search and builds the masked weights; *with "
        "runner* adds building the runner, as the service does on a cache miss. The larger "
        "model is the same GCN with a 2048-wide fc layer. Milliseconds.",
        "",
        "| parameters | " + " | ".join(s.replace("_", " ") for s in steps) + " |",
        "|" + "---|" * (len(steps) + 1),
    ]
    for params, d in compute["derivation_ms"].items():
        lines.append(f"| {int(params):,} | " + " | ".join(f"{d[s]:.2f}" for s in steps) + " |")
    return [*lines, ""]


def request_path_section(path: dict) -> list[str]:
    lines = [
        "## The request path, stage by stage",
        "",
        f"`{path['command']}`",
        "",
        "One thread, in process, median microseconds per call: the body's JSON through Python "
        "lists (checked) and straight into arrays (lean), the whole request decoded, the "
        "sequences described, the answer encoded.",
        "",
        "| body | stage | µs |",
        "|---|---|---|",
    ]
    for body, stages in path["stages"].items():
        for stage, us in stages.items():
            lines.append(f"| {body} | {stage.removesuffix('_us').replace('_', ' ')} | {us:,.1f} |")
    return [*lines, ""]


def find(http: dict, kind: str, rate: float | None = None) -> dict:
    """The runs (server -> connections -> row) of the scenario of `kind` at `rate`."""
    for sc in http["scenarios"].values():
        if sc["kind"] == kind and (rate is None or math.isclose(sc["rate"], rate)):
            return sc["runs"]
    raise KeyError(f"http.json has no {kind} scenario at rate {rate}")


def http_section(http: dict) -> list[str]:
    delays = ", ".join(f"{k}: {v:g} ms" for k, v in http["batch_max_delay_ms"].items())
    lines = [
        "## HTTP end to end",
        "",
        f"`{http['command']}`",
        "",
        f"Loopback, load from {http['load_generator']} (closed loop, after a warm-up of up to "
        f"1 s), {http['seconds']} s per row. v1: {http['request']['v1']} per request; V2: "
        f"{http['request']['v2']}. The service runs twice, with dynamic batching on and off "
        f"(batch_max_delay_ms {delays}), and the naive baseline once, each with "
        f"{http['workers']} worker processes on the machine that runs the load generator. The "
        "floor is `POST /v1/ping` on the same server (routing and middleware, no work); the "
        "naive baseline is `bench/naive_app.py`: the dense model in torch behind FastAPI's "
        "default pydantic body parsing and response model. Mean batch: sequences per network "
        f"call the server formed. The v1 rows at {max(http['connections'])} connections are "
        f"the median of {http['batching_rounds']} runs, on and off alternated.",
        "",
        "| scenario | server | connections | p50 (ms) | p99 (ms) | p99 / p50 | req/s | errors | "
        "mean batch | p50 / floor |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    floors = {ON: find(http, "floor"), OFF: find(http, "floor"), NAIVE: find(http, "naive floor")}
    for name, sc in http["scenarios"].items():
        for server, by_c in sc["runs"].items():
            for c, r in by_c.items():
                ratio = r["p50_ms"] / floors[server][server][c]["p50_ms"]
                batch = f"{r['mean_batch']:.1f}" if "mean_batch" in r else ""
                lines.append(
                    f"| {name} | {server} | {c} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | "
                    f"{r['p99_ms'] / r['p50_ms']:.1f} | {r['throughput_rps']:,.0f} | "
                    f"{r['errors']} | {batch} | {ratio:.1f}x |"
                )
    lines.append("")
    naive, ours = find(http, "naive")[NAIVE], find(http, "v1", 0.9)[ON]
    for c in naive:
        lines.append(
            f"- {c} connection(s): the service at its default tier (rate 0.9, batching on) "
            f"answers at {naive[c]['p50_ms'] / ours[c]['p50_ms']:.1f}x lower p50 and "
            f"{ours[c]['throughput_rps'] / naive[c]['throughput_rps']:.1f}x the throughput of "
            "the naive baseline (dense)."
        )
    return [*lines, ""]


def compute_targets(compute: dict) -> list[str]:
    rows = compute["latency"]["rates"]
    names = backends(rows)
    out = []
    for batch, target in ((32, 2.0), (1, 1.5)):
        dense_name, dense = best(rows["0.00"], batch, names)
        name, ms = best(rows["0.98"], batch, names)
        speed = dense / ms
        out.append(
            f"- Compute, batch {batch}: r = 0.98 runs {speed:.2f}x as fast as the fastest dense "
            f"backend ({label(name)} {ms:.3f} ms against {label(dense_name)} {dense:.3f} ms at "
            f"rate 0); target {target:g}x: {VERDICT[speed >= target]}; goal 3x: "
            f"{VERDICT[speed >= 3]}."
        )
    worst = 0.0
    for batch in BATCHES:
        lat = [best(row, batch, names)[1] for row in rows.values()]
        for i in range(1, len(lat)):
            worst = max(worst, lat[i] / min(lat[:i]) - 1)
    out.append(
        f"- Compute non-increasing in r over {', '.join(rows)} (fastest backend per rate, both "
        f"batch sizes): the largest rise over any lower rate is {worst:.0%}; target 10% (the "
        f"noise): {VERDICT[worst <= 0.10]}."
    )
    return out


def http_targets(http: dict) -> list[str]:
    conns = [str(c) for c in http["connections"]]
    v2_low, v2_high = find(http, "v2", 0.0)[ON], find(http, "v2", 0.98)[ON]
    v2 = {c: v2_high[c]["p50_ms"] / v2_low[c]["p50_ms"] for c in conns}
    out = [
        f"- V2 binary, {http['request']['v2']}: p50 at r = 0.98 is {v2['1']:.2f}x that at "
        f"r = 0 (1 connection, batching on; {v2_high['1']['p50_ms']:.2f} against "
        f"{v2_low['1']['p50_ms']:.2f} ms); target 0.55x: {VERDICT[v2['1'] <= 0.55]}; goal "
        f"0.35x: {VERDICT[v2['1'] <= 0.35]}. At "
        + ", ".join(f"{c} connections: {v2[c]:.2f}x" for c in conns[1:])
        + "."
    ]
    floor = find(http, "floor")[ON]["1"]["p50_ms"]
    v1 = {r: find(http, "v1", r)[ON]["1"]["p50_ms"] / floor for r in http["rates"]}
    worst = max(v1.values())
    out.append(
        f"- v1 JSON, {http['request']['v1']}: p50 against the empty-POST floor "
        f"({floor:.3f} ms; 1 connection, batching on), per rate: "
        + ", ".join(f"{r:g}: {x:.1f}x" for r, x in v1.items())
        + f"; target 3x: {VERDICT[worst <= 3]}; goal 2x: {VERDICT[worst <= 2]}."
    )
    c = str(max(http["connections"]))
    on = {r: find(http, "v1", r)[ON][c] for r in http["rates"]}
    gain = {r: on[r]["throughput_rps"] / find(http, "v1", r)[OFF][c]["throughput_rps"] for r in on}
    tail = {r: on[r]["p99_ms"] / on[r]["p50_ms"] for r in on}
    out.append(
        f"- {c} connections of single-sequence v1 requests, throughput with batching on over "
        "off, per rate: "
        + ", ".join(f"{r:g}: {x:.2f}x" for r, x in gain.items())
        + f"; target 1.2x: {VERDICT[min(gain.values()) >= 1.2]}. p99 / p50 with batching on: "
        + ", ".join(f"{r:g}: {x:.1f}" for r, x in tail.items())
        + f"; target 3: {VERDICT[max(tail.values()) <= 3]}."
    )
    return out


def targets_section(compute: dict, http: dict) -> list[str]:
    rows = compute["latency"]["rates"]
    out = ["## Where the targets stand", "", *compute_targets(compute), *http_targets(http)]
    small = min(compute["derivation_ms"], key=int)
    d = compute["derivation_ms"][small]
    # A cached rate is served on the shared graphs (service.host): its runner is that one.
    served = d.get("prior_with_shared_runner", d["prior_with_runner"])
    out.append(
        f"- Deriving a new rate, {int(small):,} parameters: {d['prior']:.2f} ms "
        f"({served:.2f} ms with the runner the service builds for it); target 5 ms: "
        f"{VERDICT[served <= 5]}."
    )
    memory = rows["0.90"]["memory_bytes"]
    kept = memory.get("onnxruntime_shared", memory["sparse"])
    share = kept / rows["0.00"]["memory_bytes"]["masked_dense"]
    out.append(
        f"- Memory of a cached rate's runner at r = 0.9: {share:.1%} of the dense copy; target "
        f"25%: {VERDICT[share <= 0.25]}."
    )
    return [*out, ""]


def write(results: Path, out: Path) -> None:
    """Read the three result files in `results`, write the plot there and the report to `out`.
    Raises ValueError when the files measured different model versions."""
    files = ("compute.json", "request_path.json", "http.json")
    compute, path, http = (json.loads((results / f).read_text()) for f in files)
    versions = {f: d["model"]["version"] for f, d in zip(files, (compute, path, http), strict=True)}
    if len(set(versions.values())) > 1:
        raise ValueError(
            f"{results}: the results measured different model versions "
            f"({', '.join(f'{f} {v[:12]}' for f, v in versions.items())}): re-run them all on "
            "one model (python -m bench)"
        )
    image = results / "latency.png"
    plot(compute, image)
    lines = [
        "# Benchmarks",
        "",
        "Generated by `python -m bench` (compute, request path and HTTP benchmarks, then this "
        "report); do not edit by hand.",
        "",
        f"Machine: {compute['machine']}. Model: `{compute['model']['name']}` "
        f"(version {compute['model']['version'][:12]}), "
        f"{compute['model']['params']['total']:,} parameters "
        f"({compute['model']['params']['prunable']:,} prunable). The machine is a shared "
        "virtual machine: absolute times drift between runs, by well over 10% within a day, "
        "so the targets are judged on ratios taken within one run.",
        "",
        *targets_section(compute, http),
        *compute_section(compute, Path(os.path.relpath(image, out.parent)).as_posix()),
        *derivation_section(compute),
        *memory_section(compute),
        *request_path_section(path),
        *http_section(http),
    ]
    out.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("docs/benchmarks"))
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args()
    write(args.results, args.out)


if __name__ == "__main__":
    main()
