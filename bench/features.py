"""Feature layer benchmark (issue 14): the feature asset with its checks against the fair pandas peer.

1. Handbook world (5,000 customers, 10,000 terminals, 183 days, ~1.77M transactions) loaded with the
   warehouse loader into a temporary DuckDB file. Side by side in one process, alternating, median of
   FRAUD_BENCH_REPEATS (default 3), wall and CPU seconds (user + sys, every thread):
   - the feature asset with its checks: one real Dagster run (ephemeral instance) materialising
     features/transaction_features for every day (single-run backfill) with all its checks, on a fresh
     copy of the warehouse; and its parts outside Dagster: the compute alone, and compute + write
     (table and Parquet exports);
   - the pandas peer (`reference.baseline_features`: read cleaned, the 15 baseline features), in its
     plain form and the tuned variant.
   The asset's baseline values are asserted equal to the peer's on every row (counts exact, the rest to
   1e-9 relative), and the ratios printed.
2. Incremental: one landed day at day 31 and at the last day (after the backfill), asset with its checks
   in Dagster, median of 3: a day reads only its 37-day lookback.
3. Scaling: the world replicated k times (k independent copies of every card, terminal and transaction,
   so the density per entity stays the handbook's). Each side runs in its own subprocess, which reports
   its wall time and peak RSS; a peer that runs out of memory (its address space is capped at
   FRAUD_BENCH_REFERENCE_MEMORY_GB, default 20) is reported as such. Scales: FRAUD_BENCH_FEATURE_SCALES
   (default "1,4,16").
4. With --full: 100M transactions (the world replicated 57 times), feature layer only, time and peak
   RSS; DuckDB is capped at FRAUD_BENCH_DUCKDB_MEMORY (default 16GB) and spills to a temp directory.

`--quick`: a small world and scales 1,2 (checks the harness, not figures to report).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd

from bench.child import cap_memory, peak_rss_mb, run_child
from fraud_assets.defs.features.assets import transaction_features
from fraud_assets.defs.features.checks import FEATURE_CHECKS
from fraud_assets.defs.features.compute import (
    BASELINE_COLUMNS,
    COUNT_COLUMNS,
    drop_scratch,
    feature_table,
    write_features,
)
from fraud_assets.defs.features.reference import baseline_features
from fraud_assets.lib.tables import FEATURES_TABLE
from fraud_assets.resources import build_resources
from fraud_assets.simulator import SimConfig, generate_world
from fraud_assets.simulator.warehouse_loader import load_world_into_cleaned

BENCH = "features"
FULL_SCALE = 57  # 57 x 1.75M ~ 100M transactions
ID_STRIDE = 10**9  # transaction ids of copy i start at i * ID_STRIDE (a world has < 10^9)
TERMINAL_STRIDE = 10**7


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _keys(conn: duckdb.DuckDBPyConnection) -> list[str]:
    rows = conn.execute("SELECT DISTINCT CAST(business_date AS VARCHAR) FROM cleaned.transactions").fetchall()
    return sorted(r[0] for r in rows)


def _read_cleaned(conn: duckdb.DuckDBPyConnection) -> tuple[pd.DataFrame, pd.DataFrame]:
    tx = conn.execute(
        "SELECT transaction_id, tx_datetime, tx_datetime_local, card_token, terminal_id, tx_amount "
        "FROM cleaned.transactions"
    ).df()
    labels = conn.execute("SELECT transaction_id, reported_at FROM cleaned.labels").df()
    return tx, labels


def _assert_equal(sql: pd.DataFrame, ref: pd.DataFrame) -> int:
    sql, ref = sql.sort_index(), ref.sort_index()
    assert sql.index.equals(ref.index), "feature layer and reference cover different transactions"
    for col in BASELINE_COLUMNS:
        a, b = sql[col].to_numpy("float64"), ref[col].to_numpy("float64")
        ok = a == b if col in COUNT_COLUMNS else np.isclose(a, b, rtol=1e-9, atol=0.0)
        assert ok.all(), f"{col}: {int((~ok).sum())} values differ from the pandas reference"
    return len(BASELINE_COLUMNS) * len(sql)


# ----------------------------------------------------------------------------------------------
# Worlds


def build_world(path: Path, quick: bool) -> dict:
    cfg = (
        SimConfig(profile="handbook", days=60, customers=300, terminals=600, handbook_labels=True)
        if quick
        else SimConfig(profile="handbook", handbook_labels=True)
    )
    world = generate_world(cfg)
    with duckdb.connect(str(path)) as conn:
        counts = load_world_into_cleaned(conn, world)
    return {"transactions": counts["transactions"], "days": cfg.days, "start": cfg.start_date}


def _cap_memory(conn: duckdb.DuckDBPyConnection, db: Path, duckdb_memory: str | None) -> None:
    """DuckDB's memory_limit (it spills to a temp directory beside the database beyond it)."""
    if duckdb_memory:
        conn.execute(f"SET memory_limit = '{duckdb_memory}'")
        conn.execute(f"SET temp_directory = '{db.parent / 'duckdb_spill'}'")


def replicate(base: Path, target: Path, k: int) -> int:
    """A world made of k copies of `base` (distinct ids and tokens per copy). Capped like the feature layer's
    child: at 100M rows the sort would otherwise take DuckDB's default 80% of the machine's memory."""
    target.unlink(missing_ok=True)
    with duckdb.connect(str(target)) as conn:
        _cap_memory(conn, target, os.environ.get("FRAUD_BENCH_DUCKDB_MEMORY", "16GB"))
        conn.execute(f"ATTACH '{base}' AS base (READ_ONLY)")
        conn.execute("CREATE SCHEMA cleaned")
        copies = f"range({k}) AS r(i)"
        # Copy 0 keeps its tokens; copy i gets HMAC-like 64-hex tokens derived from the original.
        tok = "CASE WHEN i = 0 THEN card_token ELSE sha256(card_token || CAST(i AS VARCHAR)) END"
        conn.execute(
            f"""CREATE TABLE cleaned.transactions AS
                SELECT * REPLACE (transaction_id + i * {ID_STRIDE} AS transaction_id, {tok} AS card_token,
                                  terminal_id + i * {TERMINAL_STRIDE} AS terminal_id)
                FROM base.cleaned.transactions, {copies} ORDER BY business_date, tx_datetime"""
        )
        conn.execute(
            f"""CREATE TABLE cleaned.labels AS
                SELECT * REPLACE (transaction_id + i * {ID_STRIDE} AS transaction_id, {tok} AS card_token)
                FROM base.cleaned.labels, {copies}"""
        )
        conn.execute(
            f"CREATE TABLE cleaned.cards AS SELECT * REPLACE ({tok} AS card_token) "
            f"FROM base.cleaned.cards, {copies}"
        )
        conn.execute(
            f"""CREATE TABLE cleaned.terminals AS
                SELECT * REPLACE (terminal_id + i * {TERMINAL_STRIDE} AS terminal_id)
                FROM base.cleaned.terminals, {copies}"""
        )
        return int(conn.execute("SELECT count(*) FROM cleaned.transactions").fetchall()[0][0])


# ----------------------------------------------------------------------------------------------
# Subprocess sides: each prints one JSON line with its own wall time and peak RSS.


def child_sql(db: str, duckdb_memory: str | None) -> dict:
    started, cpu0 = time.perf_counter(), _cpu_seconds()
    with duckdb.connect(db) as conn:
        _cap_memory(conn, Path(db), duckdb_memory)
        rows = write_features(conn, _keys(conn))
    return {
        "rows": rows,
        "seconds": time.perf_counter() - started,
        "cpu_seconds": _cpu_seconds() - cpu0,
        "peak_rss_mb": peak_rss_mb(),
    }


def child_reference(db: str, memory_gb: float) -> dict:
    """The plain pandas peer in this process, its address space capped at `memory_gb`."""
    cap_memory(memory_gb)
    started, cpu0 = time.perf_counter(), _cpu_seconds()
    try:
        with duckdb.connect(db, read_only=True) as conn:
            tx, labels = _read_cleaned(conn)
        out = baseline_features(tx, labels)
    except MemoryError:
        return {"oom": True, "seconds": time.perf_counter() - started, "peak_rss_mb": peak_rss_mb()}
    return {
        "rows": len(out),
        "seconds": time.perf_counter() - started,
        "cpu_seconds": _cpu_seconds() - cpu0,
        "peak_rss_mb": peak_rss_mb(),
    }


# ----------------------------------------------------------------------------------------------


def _row(metric: str, value, unit: str = "", note: str = "") -> dict:
    row = {"bench": BENCH, "metric": metric, "value": value, "unit": unit, "note": note}
    # Also as it happens: a long run stopped half-way still leaves its figures in the log.
    print(f"[bench] {json.dumps(row)}", file=sys.stderr, flush=True)
    return row


QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
PAN_KEY = "bench-features-key-not-a-secret-0123456789"


def _timed(fn) -> tuple[float, float, object]:
    started, cpu0 = time.perf_counter(), _cpu_seconds()
    out = fn()
    return time.perf_counter() - started, _cpu_seconds() - cpu0, out


def _materialize(data_dir: Path, instance: dg.DagsterInstance, keys: list[str]) -> dict[str, float]:
    """features/transaction_features with its checks over `keys` in one Dagster run; step seconds."""
    partition = (
        {"partition_key": keys[0]}
        if len(keys) == 1
        else {
            "tags": {
                "dagster/asset_partition_range_start": keys[0],
                "dagster/asset_partition_range_end": keys[-1],
            }
        }
    )
    result = dg.materialize(
        [transaction_features, *FEATURE_CHECKS],
        instance=instance,
        resources=build_resources(data_dir, PAN_KEY),
        run_config=QUIET,
        **partition,
    )
    failed = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
    if not result.success or failed:
        raise RuntimeError(f"feature run failed (checks failing: {failed})")
    return {
        ev.step_key: ev.event_specific_data.duration_ms / 1000
        for ev in result.all_events
        if ev.event_type_value == "STEP_SUCCESS"
    }


def _fresh_copy(base: Path, data_dir: Path) -> None:
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    shutil.copy(base, data_dir / "warehouse.duckdb")


def _peer(db: Path, tuned: bool) -> pd.DataFrame:
    with duckdb.connect(str(db), read_only=True) as conn:
        tx, labels = _read_cleaned(conn)
    return baseline_features(tx, labels, tuned=tuned)


def _median(samples: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def run(args) -> list[dict]:
    quick = bool(getattr(args, "quick", False))
    full = bool(getattr(args, "full", False))
    scales_env = os.environ.get("FRAUD_BENCH_FEATURE_SCALES", "1,2" if quick else "1,4,16")
    scales = [int(s) for s in scales_env.split(",") if s.strip()]
    repeats = int(os.environ.get("FRAUD_BENCH_REPEATS", "3"))
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench_features_") as tmp:
        tmpdir = Path(tmp)
        base = tmpdir / "world.duckdb"
        info = build_world(base, quick)
        n = info["transactions"]
        size = "quick world" if quick else "handbook size"
        with duckdb.connect(str(base)) as conn:
            keys = _keys(conn)
        data_dir = tmpdir / "data"

        # 1. Side by side, alternating, median of `repeats`. A fresh warehouse copy for every write.
        samples: dict[str, list[tuple[float, float]]] = {}
        steps: list[dict[str, float]] = []
        for _ in range(repeats):
            _fresh_copy(base, data_dir)
            instance = dg.DagsterInstance.ephemeral()
            wall, cpu, step = _timed(lambda: _materialize(data_dir, instance, keys))  # noqa: B023
            samples.setdefault("asset", []).append((wall, cpu))
            steps.append(step)
            for tuned in (False, True):
                wall, cpu, _ = _timed(lambda: _peer(base, tuned))  # noqa: B023
                samples.setdefault(f"peer tuned={tuned}", []).append((wall, cpu))
            _fresh_copy(base, data_dir)
            with duckdb.connect(str(data_dir / "warehouse.duckdb")) as conn:
                wall, cpu, _ = _timed(lambda: (feature_table(conn, keys), drop_scratch(conn)))  # noqa: B023
                samples.setdefault("compute", []).append((wall, cpu))
                wall, cpu, _ = _timed(lambda: write_features(conn, keys))  # noqa: B023
                samples.setdefault("write", []).append((wall, cpu))
        asset, peer, tuned = (_median(samples[k]) for k in ("asset", "peer tuned=False", "peer tuned=True"))
        compute, write = _median(samples["compute"]), _median(samples["write"])
        step_medians = {k: statistics.median(s[k] for s in steps) for k in steps[0]}

        # Values: the features write_features wrote last (the asset runs the same code) against the peer.
        with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as conn:
            columns = ", ".join(BASELINE_COLUMNS)
            sql = conn.execute(f"SELECT transaction_id, {columns} FROM {FEATURES_TABLE}").df()
        compared = _assert_equal(sql.set_index("transaction_id"), _peer(base, tuned=False))
        del sql

        def note(cpu: float, runs: int = repeats) -> str:
            return f"median of {runs}, cpu {cpu:.1f} s"

        in_steps = ", ".join(f"{k} {v:.1f} s" for k, v in step_medians.items())
        rows += [
            _row("transactions", n, "rows", size),
            _row(
                "asset with its checks (one Dagster run, all days)",
                asset[0],
                "s",
                f"{note(asset[1])}; {in_steps}",
            ),
            _row("  its compute (read, windows, rows), no write", compute[0], "s", note(compute[1])),
            _row("  its compute + write + Parquet exports", write[0], "s", note(write[1])),
            _row("pandas peer: read, 15 baseline features", peer[0], "s", note(peer[1])),
            _row("pandas peer, tuned variant", tuned[0], "s", note(tuned[1])),
            _row(
                "speed-up: asset with checks vs peer",
                peer[0] / asset[0],
                "x",
                f"cpu {peer[1] / asset[1]:.2f}x",
            ),
            _row(
                "speed-up: asset with checks vs tuned peer",
                tuned[0] / asset[0],
                "x",
                f"cpu {tuned[1] / asset[1]:.2f}x",
            ),
            _row("baseline values asserted equal", compared, "values", "counts exact, rest 1e-9 rel"),
        ]

        # 2. Incremental day cost, asset with its checks (the writes above left every partition in place).
        day31 = (info["start"] + dt.timedelta(days=30)).isoformat()
        last = (info["start"] + dt.timedelta(days=info["days"] - 1)).isoformat()
        instance = dg.DagsterInstance.ephemeral()
        per_day = {
            day: _median([_timed(lambda: _materialize(data_dir, instance, [day]))[:2] for _ in range(3)])  # noqa: B023
            for day in (day31, last)
        }
        rows += [
            _row(
                f"one day at day 31 ({day31}), asset with checks",
                per_day[day31][0],
                "s",
                note(per_day[day31][1], 3),
            ),
            _row(
                f"one day at day {info['days']} ({last}), asset with checks",
                per_day[last][0],
                "s",
                note(per_day[last][1], 3),
            ),
            _row(f"day {info['days']} / day 31", per_day[last][0] / per_day[day31][0], "x", "target <= 1.5x"),
        ]

        # 3. Scaling, each side in a subprocess.
        for k in scales:
            db = tmpdir / f"scale_{k}.duckdb"
            total = replicate(base, db, k)
            for side, label in (("--child-sql", "feature layer"), ("--child-reference", "pandas peer")):
                res = run_child("bench.features", [side, str(db)])
                name = f"scale {k}x ({total / 1e6:.1f}M tx) {label}"
                if res.get("oom") or res.get("failed"):
                    note_k = "out of memory" if res.get("oom") else f"failed rc={res.get('returncode')}"
                    rows.append(_row(f"{name} time", "n/a", "", note_k))
                    continue
                rows.append(_row(f"{name} time", res["seconds"], "s", f"cpu {res['cpu_seconds']:.1f} s"))
                rows.append(_row(f"{name} peak RSS", res["peak_rss_mb"], "MiB"))
            db.unlink(missing_ok=True)

        # 4. 100M transactions, feature layer only.
        if full:
            db = tmpdir / "scale_100m.duckdb"
            total = replicate(base, db, FULL_SCALE)
            res = run_child("bench.features", ["--child-sql", str(db)])
            name = f"100M run ({total / 1e6:.1f}M tx) feature layer"
            if res.get("failed"):
                rows.append(_row(f"{name} time", "n/a", "", f"failed rc={res.get('returncode')}"))
            else:
                rows.append(_row(f"{name} time", res["seconds"], "s"))
                rows.append(_row(f"{name} peak RSS", res["peak_rss_mb"], "MiB", "must fit 24 GiB"))
    return rows


def _main(argv: list[str]) -> int:
    side, db = argv[0], argv[1]
    if side == "--child-sql":
        out = child_sql(db, os.environ.get("FRAUD_BENCH_DUCKDB_MEMORY", "16GB"))
    elif side == "--child-reference":
        out = child_reference(db, float(os.environ.get("FRAUD_BENCH_REFERENCE_MEMORY_GB", "20")))
    else:
        raise SystemExit(f"unknown side {side}")
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
