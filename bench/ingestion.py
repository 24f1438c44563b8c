"""Ingestion throughput: landing files -> raw.file_register -> raw.authorizations -> cleaned.transactions,
with their checks.

The path a user waits for, run as Dagster runs it: one run materialises raw/file_register (and its
checks), a second raw/authorizations for every business date as one range run (its single-run
backfill) with its checks (contract, PAN leak, reconciliation). Then, untimed, the reference data
cleaning needs (cardholders, merchants, FX rates and their cleaned tables), and, timed, the cleaning
step (cleaned transactions, quarantine, reconciliation) for every business date as one range run with
all its checks. Each repeat starts from an empty warehouse; the figure is the median. Rows/s counts raw
authorisation rows (landed lines) for both layers. Beside them, the floor of this machine: DuckDB alone
reading the same files into tables and exporting them as Parquet (`_floor`), nothing else.

Data: the handbook world in /work/bench-data/handbook (or $FRAUD_BENCH_HANDBOOK) when present, else
simulated into a temporary folder as bench/pipeline.py does (`--profile handbook --clean --handbook-labels`;
`--quick`: 10 days, 500 customers). The landing folder is only
read. Also runs the landing fuzz test with its long budget (hypothesis profile `bench`).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from fraud_assets.defs import cleaned, raw
from fraud_assets.lib.landing import business_dates_in_landing
from fraud_assets.lib.settings import WAREHOUSE_FILE
from fraud_assets.resources import LandingZone, PanTokenizer

BENCH_KEY = "bench-key-0123456789abcdef-not-a-secret"
HANDBOOK = Path(os.environ.get("FRAUD_BENCH_HANDBOOK", "/work/bench-data/handbook"))
FUZZ_TEST = "fraud_assets_tests/test_raw_fuzz.py"


def _landing(tmp: Path, quick: bool) -> tuple[Path, str]:
    if not quick and (HANDBOOK / "landing").is_dir():
        return HANDBOOK / "landing", f"handbook world at {HANDBOOK}"
    from fraud_assets.simulator import SimConfig, simulate

    # The world of the speed issue and bench/pipeline.py: `--profile handbook --clean --handbook-labels`.
    world = {"profile": "handbook", "clean": True, "handbook_labels": True}
    cfg = SimConfig(**world, days=10, customers=500, terminals=1000) if quick else SimConfig(**world)
    simulate(tmp / "world", cfg)
    return tmp / "world" / "landing", f"simulated handbook profile, {cfg.days} days"


def _selection(*keys: str) -> dg.AssetSelection:
    assets = dg.AssetSelection.assets(*[dg.AssetKey.from_user_string(k) for k in keys])
    return assets | assets.checks()


def _step_seconds(result: dg.ExecuteInJobResult) -> dict[str, float]:
    """Seconds of each step of a run (asset or check), from its STEP_SUCCESS events."""
    return {
        e.step_key: e.event_specific_data.duration_ms / 1000
        for e in result.all_events
        if e.event_type_value == "STEP_SUCCESS"
    }


def _one_run(landing: Path, work: Path) -> dict[str, float]:
    """Wall seconds of the register run and the authorisations range run, from an empty warehouse,
    and of each of their steps."""
    work.mkdir(parents=True)
    resources = {
        "duckdb": DuckDBResource(database=str(work / WAREHOUSE_FILE)),
        "landing": LandingZone(root=str(landing)),
        "pan_tokenizer": PanTokenizer(key=BENCH_KEY),
    }
    instance = dg.DagsterInstance.ephemeral()
    days = business_dates_in_landing(landing)
    every = [*raw.defs.assets, *raw.defs.asset_checks]
    c0, t0 = _cpu(), time.perf_counter()
    register = dg.materialize(
        every, selection=_selection("raw/file_register"), resources=resources, instance=instance
    )
    c1, t1 = _cpu(), time.perf_counter()
    result = dg.materialize(
        every,
        selection=_selection("raw/authorizations"),
        resources=resources,
        instance=instance,
        tags={"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]},
    )
    c2, t2 = _cpu(), time.perf_counter()
    rows = sum(  # each day's materialisation counts its own rows
        int(m.metadata["rows_acq_a"].value) + int(m.metadata["rows_acq_b"].value)
        for m in result.asset_materializations_for_node("raw__authorizations")
    )
    every += [*cleaned.defs.assets, *cleaned.defs.asset_checks]
    reference = (
        "raw/cardholders",
        "raw/merchants",
        "raw/fx_rates",
        "cleaned/cards",
        "cleaned/terminals",
        "cleaned/fx_rates",
    )
    dg.materialize(every, selection=_selection(*reference), resources=resources, instance=instance)
    c3, t3 = _cpu(), time.perf_counter()
    cleaning = dg.materialize(
        every,
        selection=_selection("cleaned/transactions", "cleaned/quarantine", "cleaned/reconciliation"),
        resources=resources,
        instance=instance,
        tags={"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]},
    )
    c4, t4 = _cpu(), time.perf_counter()
    steps = {**_step_seconds(register), **_step_seconds(result), **_step_seconds(cleaning)}
    cpu = {
        "cpu_register": c1 - c0,
        "cpu_authorizations": c2 - c1,
        "cpu_total": c2 - c0,
        "cpu_cleaned": c4 - c3,
    }
    return {
        "register": t1 - t0,
        "authorizations": t2 - t1,
        "total": t2 - t0,
        "cleaning": t4 - t3,
        "rows": rows,
        **cpu,
        **steps,
    }


def _floor(landing: Path, work: Path) -> dict[str, float]:
    """The floor of raw ingestion on this machine: DuckDB alone reads every landed authorisation file
    (gzip CSV as text, JSON Lines as DuckDB infers it) into a table and exports it as zstd Parquet; nothing
    else (no register, PAN scan, tokenisation, lineage, contract, reconciliation or Dagster)."""
    work.mkdir(parents=True)
    conn = duckdb.connect(str(work / "floor.duckdb"))
    auth = landing / "authorizations"
    c0, t0 = _cpu(), time.perf_counter()
    conn.execute(f"CREATE TABLE a AS SELECT * FROM read_csv('{auth}/*/acq_a_*.csv*', all_varchar = true)")
    conn.execute(
        f"CREATE TABLE b AS SELECT * FROM read_json('{auth}/*/acq_b_*.jsonl*', format = 'newline_delimited')"
    )
    for table in ("a", "b"):
        conn.execute(f"COPY {table} TO '{work / table}.parquet' (FORMAT parquet, COMPRESSION zstd)")
    c1, t1 = _cpu(), time.perf_counter()
    rows = conn.execute("SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM b)").fetchone()[0]
    conn.close()
    return {"floor": t1 - t0, "cpu_floor": c1 - c0, "floor_rows": rows}


def _cpu() -> float:
    """CPU seconds of this process, every thread (DuckDB's included): steadier than wall time on a
    shared machine; with the in-process executor of `materialize` it is the whole run's work."""
    t = os.times()
    return t.user + t.system


def _fuzz(quick: bool) -> dict:
    profile = "ci" if quick else "bench"
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", FUZZ_TEST],
        env={**os.environ, "FRAUD_HYPOTHESIS_PROFILE": profile},
        capture_output=True,
        text=True,
    )
    last = (proc.stdout.strip().splitlines() or [""])[-1]
    return {
        "bench": "ingestion",
        "metric": f"landing fuzz ({profile} budget)",
        "value": "passed" if proc.returncode == 0 else "FAILED",
        "unit": "",
        "note": f"{time.perf_counter() - t0:.0f} s: {last}",
    }


def run(args) -> list[dict]:
    quick = bool(getattr(args, "quick", False))
    repeats = 2 if quick else 3
    with tempfile.TemporaryDirectory(prefix="bench_ingestion_") as tmp_dir:
        tmp = Path(tmp_dir)
        landing, what = _landing(tmp, quick)
        runs = [
            _one_run(landing, tmp / f"run{i}") | _floor(landing, tmp / f"floor{i}") for i in range(repeats)
        ]
    rows = runs[0]["rows"]
    med = {
        k: statistics.median(r[k] for r in runs)
        for k in (
            "register",
            "authorizations",
            "total",
            "cleaning",
            "cpu_register",
            "cpu_authorizations",
            "cpu_total",
            "cpu_cleaned",
            "floor",
            "cpu_floor",
        )
    }
    out = [
        {
            "bench": "ingestion",
            "metric": "raw rows/s (register + raw/authorizations + checks)",
            "value": rows / med["total"],
            "unit": "rows/s",
            "note": f"{rows:,} rows, {what}; median of {repeats}: {med['total']:.1f} s",
        },
        {
            "bench": "ingestion",
            "metric": "raw rows per CPU second (same path)",
            "value": rows / med["cpu_total"],
            "unit": "rows/cpu-s",
            "note": f"{med['cpu_total']:.1f} CPU s (register {med['cpu_register']:.1f}, "
            f"authorizations {med['cpu_authorizations']:.1f}); 2 cores give at most twice this per second",
        },
        {
            "bench": "ingestion",
            "metric": "raw/file_register run (with checks)",
            "value": med["register"],
            "unit": "s",
            "note": "every file read: hash, caps, line count",
        },
        {
            "bench": "ingestion",
            "metric": "raw/authorizations range run (with checks)",
            "value": med["authorizations"],
            "unit": "s",
            "note": f"{rows / med['authorizations']:,.0f} rows/s",
        },
    ]
    out.append(
        {
            "bench": "ingestion",
            "metric": "floor: DuckDB reads the authorisation files and exports them, nothing else",
            "value": runs[0]["floor_rows"] / med["floor"],
            "unit": "rows/s",
            "note": f"median of {repeats}: {med['floor']:.2f} s, {med['cpu_floor']:.1f} CPU s; "
            f"the raw path's {med['total']:.1f} s is {med['total'] / med['floor']:.1f}x it",
        }
    )
    out += [
        {
            "bench": "ingestion",
            "metric": "cleaned rows/s (cleaned/transactions, quarantine, reconciliation + checks)",
            "value": rows / med["cleaning"],
            "unit": "rows/s",
            "note": f"{rows:,} raw rows; median of {repeats}: {med['cleaning']:.1f} s, "
            f"{med['cpu_cleaned']:.1f} CPU s",
        },
    ]
    for step in sorted(k for k in runs[0] if k.startswith(("raw__", "cleaned"))):
        seconds = statistics.median(r[step] for r in runs)
        out.append(
            {"bench": "ingestion", "metric": f"step {step}", "value": seconds, "unit": "s", "note": ""}
        )
    out.append(_fuzz(quick))
    return out


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    for r in run(p.parse_args()):
        print(r)
