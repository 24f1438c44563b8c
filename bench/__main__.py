"""`make bench`: runs every benchmark module, prints one table, writes JSON under bench_results/.

Each module in BENCHES exposes `run(args) -> list[dict]`; a dict has `bench`, `metric`, `value`,
`unit` and optional `note`. Timings are medians of repeated runs where a module can afford repeats;
`--quick` runs reduced sizes (a smoke test of the harness, not figures to report).
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
import traceback
from pathlib import Path

BENCHES = ("simulator", "ingestion", "contracts", "features", "spark", "models", "pipeline", "latency")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", nargs="*", choices=BENCHES, help="run only these benchmarks")
    parser.add_argument("--quick", action="store_true", help="small sizes: check the harness works")
    parser.add_argument("--full", action="store_true", help="include the largest scale points (100M rows)")
    parser.add_argument("--out", default="bench_results", help="directory for the JSON results")
    args = parser.parse_args(argv)
    rows: list[dict] = []
    failed: list[str] = []
    for name in args.only or BENCHES:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"bench.{name}":
                print(f"[bench] {name}: not implemented yet", file=sys.stderr)
                continue
            raise
        print(f"[bench] running {name} ...", file=sys.stderr, flush=True)
        try:
            rows.extend(module.run(args))
        except Exception as exc:  # one broken bench must not lose the figures of the others
            traceback.print_exc()
            failed.append(name)
            rows.append(
                {"bench": name, "metric": "FAILED", "value": type(exc).__name__, "note": str(exc)[:200]}
            )
    width = max((len(f"{r['bench']}: {r['metric']}") for r in rows), default=10)
    for r in rows:
        label = f"{r['bench']}: {r['metric']}"
        value = r["value"]
        if isinstance(value, float):
            shown = f"{value:,.3f}"
        else:
            shown = f"{value:,}" if isinstance(value, int) else str(value)
        print(f"{label:<{width}}  {shown:>16} {r.get('unit', '')}  {r.get('note', '')}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    payload = {"machine": platform.uname()._asdict(), "python": sys.version, "results": rows}
    for target in (out / f"bench_{stamp}.json", out / "latest.json"):
        target.write_text(json.dumps(payload, indent=2, default=str))
    print(f"[bench] results written to {out / 'latest.json'}", file=sys.stderr)
    if failed:
        print(f"[bench] FAILED: {', '.join(failed)} (tracebacks above)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
