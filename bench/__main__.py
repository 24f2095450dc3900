"""Every benchmark in one command: compute, the request path, HTTP, then the report
(docs/benchmarks.md). Run it on a quiet machine: the figures are wall-clock times.

    python -m bench
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench import compute, http, report, request_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("model_store/sbu-mrmp"))
    parser.add_argument("--results", type=Path, default=Path("docs/benchmarks"))
    parser.add_argument("--report", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--repeats", type=int, default=200, help="compute: calls per median")
    parser.add_argument("--seconds", type=float, default=4, help="HTTP: per measured run")
    parser.add_argument("--workers", type=int, default=2, help="HTTP: processes per server")
    args = parser.parse_args()
    compute.run(args.model, args.results, args.repeats)
    request_path.run(args.model, args.results)
    http.run(args.model, args.results, args.seconds, args.workers)
    report.write(args.results, args.report)
    print(f"wrote {args.report}")


if __name__ == "__main__":
    main()
