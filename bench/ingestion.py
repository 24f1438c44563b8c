"""Ingestion throughput: landing files -> raw.authorizations -> cleaned.transactions (rows/s).

Simulates a realistic world with the default mess (handbook size: 183 days, 5,000 customers,
10,000 terminals, ~1.75M authorisations; `--quick`: 10 days, 500 customers), registers the landing
zone and loads the reference tables, then times the two partitioned steps the way the assets run
them (`ingest_authorizations`, `clean_partitions`, one DuckDB connection, same code path):
  - one day: a single business date, median of repeats;
  - backfill: every business date in one run (BackfillPolicy.single_run), chunked writes.
Rows/s counts raw authorisation rows (landed lines) processed end to end.
"""

from __future__ import annotations

import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

from fraud_assets.defs.cleaned.assets import CARDS_SQL, FX_SQL, TERMINALS_SQL, clean_partitions
from fraud_assets.defs.raw.assets import (
    _reference_frame,
    build_register,
    ingest_authorizations,
    write_frame,
)
from fraud_assets.lib.warehouse import replace_table
from fraud_assets.resources import build_resources

BENCH_KEY = "bench-key-0123456789abcdef-not-a-secret"


def _prepare(data_dir: Path, quick: bool) -> tuple[dict, list[str]]:
    from fraud_assets.simulator import SimConfig, simulate

    cfg = SimConfig(profile="realistic", days=10, customers=500, terminals=1000) if quick else SimConfig()
    simulate(data_dir, cfg)
    res = build_resources(data_dir, BENCH_KEY)
    with res["duckdb"].get_connection() as conn:
        write_frame(conn, "raw.file_register", build_register(res["landing"].path, None))
        tok = res["pan_tokenizer"].tokenizer()
        for source in ("merchants", "cardholders", "fx_rates", "chargebacks"):
            write_frame(conn, f"raw.{source}", _reference_frame(conn, res["landing"], source, tok))
        for name, sql in (
            ("terminals", TERMINALS_SQL),
            ("cards", CARDS_SQL),
            ("fx_rates", FX_SQL),
        ):
            replace_table(conn, f"cleaned.{name}", sql)
    keys = [(cfg.start_date + dt.timedelta(days=i)).isoformat() for i in range(cfg.days)]
    return res, keys


def _run(res: dict, keys: list[str]) -> tuple[float, int]:
    tok = res["pan_tokenizer"].tokenizer()
    with res["duckdb"].get_connection() as conn:
        start = time.perf_counter()
        ingest_authorizations(conn, res["landing"], tok, keys)
        totals = clean_partitions(conn, keys)
        elapsed = time.perf_counter() - start
    return elapsed, int(totals["raw_rows"])


def run(args) -> list[dict]:
    quick = bool(getattr(args, "quick", False))
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench_ingestion_") as tmp:
        t0 = time.perf_counter()
        res, keys = _prepare(Path(tmp) / "data", quick)
        setup = time.perf_counter() - t0
        day = keys[len(keys) // 2]
        day_runs = [_run(res, [day]) for _ in range(3 if quick else 5)]
        day_s = statistics.median(t for t, _ in day_runs)
        day_rows = day_runs[0][1]
        repeats = 1 if not quick else 2
        fill_runs = [_run(res, keys) for _ in range(repeats)]
        fill_s = statistics.median(t for t, _ in fill_runs)
        fill_rows = fill_runs[0][1]
    size = f"{len(keys)} days{' (quick)' if quick else ''}"
    rows += [
        {
            "bench": "ingestion",
            "metric": "one day rows/s",
            "value": day_rows / day_s,
            "unit": "rows/s",
            "note": f"{day_rows:,} rows, median of {len(day_runs)}: {day_s:.2f} s",
        },
        {
            "bench": "ingestion",
            "metric": "backfill rows/s",
            "value": fill_rows / fill_s,
            "unit": "rows/s",
            "note": f"{fill_rows:,} rows, {size}, single run, {fill_s:.1f} s (median of {repeats})",
        },
        {
            "bench": "ingestion",
            "metric": "setup (simulate + register + reference)",
            "value": setup,
            "unit": "s",
            "note": "not part of the throughput",
        },
    ]
    return rows


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    for r in run(p.parse_args()):
        print(r)
