"""The feature step on Spark local[2] beside DuckDB (issue 17): figures for sizing, not a race.

Handbook world (5,000 customers, 10,000 terminals, 183 days, ~1.77M transactions) loaded into the cleaned
tables of a temporary warehouse and exported as the cleaned assets export it (transactions
Hive-partitioned by business date). Then features/transaction_features for every day in one Dagster run
per engine (ephemeral instance, no checks: the step alone), alternating, FRAUD_BENCH_SPARK_REPEATS runs
each (default 1: a Spark run at this size takes minutes on 2 cores). Reported per engine: the step's wall
seconds, rows/s and rows/s per core; for Spark also the session start and the Spark job alone (read
Parquet, windows, write Parquet), which is the figure that scales with executors on a cluster. Both
engines' tables are asserted equal (row count and a checksum of every column).

`--quick`: a small world (checks the harness, not figures to report).
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import duckdb

from fraud_assets.defs.features.assets import transaction_features
from fraud_assets.defs.features.compute import COLUMNS, FEATURES_TABLE
from fraud_assets.lib.warehouse import replace_partition
from fraud_assets.resources import FeatureEngine, build_resources
from fraud_assets.simulator import SimConfig, generate_world
from fraud_assets.simulator.warehouse_loader import load_world_into_cleaned

BENCH = "spark"
PAN_KEY = "bench-spark-key-not-a-secret-0123456789"
REGISTRY_KEY = "bench-spark-registry-key-not-a-secret-0123"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
SPARK_CORES = 2


def _row(metric: str, value, unit: str = "", note: str = "") -> dict:
    row = {"bench": BENCH, "metric": metric, "value": value, "unit": unit, "note": note}
    print(f"[bench] {BENCH}: {metric} = {value} {unit} {note}", file=sys.stderr, flush=True)
    return row


def build_cleaned(data_dir: Path, quick: bool) -> list[str]:
    """The world's cleaned layer in data_dir/warehouse.duckdb with its Parquet exports; business dates."""
    cfg = (
        SimConfig(profile="handbook", days=60, customers=300, terminals=600, handbook_labels=True)
        if quick
        else SimConfig(profile="handbook", handbook_labels=True)
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as conn:
        load_world_into_cleaned(conn, generate_world(cfg))
        keys = [
            str(d)
            for (d,) in conn.execute(
                "SELECT DISTINCT business_date FROM cleaned.transactions ORDER BY 1"
            ).fetchall()
        ]
        conn.execute("CREATE TEMP TABLE staged AS SELECT * FROM cleaned.transactions")
        replace_partition(conn, "cleaned.transactions", "SELECT * FROM staged", "business_date", keys)
    (data_dir / "exports" / "cleaned" / "transactions" / "data.parquet").unlink()
    return keys


def _materialize(data_dir: Path, keys: list[str], engine: FeatureEngine) -> tuple[float, dict]:
    """One Dagster run of the feature asset over every day; (step seconds, its metadata)."""
    resources = build_resources(data_dir, PAN_KEY, REGISTRY_KEY) | {"feature_engine": engine}
    result = dg.materialize(
        [transaction_features],
        resources=resources,
        instance=dg.DagsterInstance.ephemeral(),
        run_config=QUIET,
        tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]},
    )
    step = next(e for e in result.all_events if e.event_type_value == "STEP_SUCCESS")
    days = result.asset_materializations_for_node("features__transaction_features")
    # The run's own figures (engine timings) are on the range's last day.
    last = max(days, key=lambda m: m.partition or "")
    metadata = {k: getattr(v, "value", v) for k, v in last.metadata.items()}
    # Each day's materialisation counts its own rows.
    metadata["rows_written"] = sum(int(m.metadata["rows_written"].value) for m in days)
    return step.event_specific_data.duration_ms / 1000, metadata


def _checksum(data_dir: Path) -> tuple:
    """Row count and, per column, a sum that any differing value changes (floats rounded to 9 digits)."""
    sums = []
    for c, t in COLUMNS:
        if t == "DOUBLE":
            sums.append(f"round(sum(round({c}, 9)), 3)")
        elif t in ("BIGINT", "INTEGER"):
            sums.append(f"sum({c})")
        else:
            sums.append(f"count(DISTINCT {c})")
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as conn:
        return conn.execute(f"SELECT count(*), {', '.join(sums)} FROM {FEATURES_TABLE}").fetchone()


def run(args) -> list[dict]:
    quick = getattr(args, "quick", False)
    repeats = int(os.environ.get("FRAUD_BENCH_SPARK_REPEATS", "1"))
    size = "quick world" if quick else "handbook size"
    work = Path(tempfile.mkdtemp(prefix="bench_spark_"))
    try:
        started = time.perf_counter()
        keys = build_cleaned(work / "base", quick)
        print(f"[bench] {BENCH}: world ready in {time.perf_counter() - started:.0f}s", file=sys.stderr)
        engines = {
            "duckdb": FeatureEngine(engine="duckdb"),
            "spark": FeatureEngine(engine="spark", spark_master=f"local[{SPARK_CORES}]"),
        }
        samples: dict[str, list[tuple[float, dict]]] = {name: [] for name in engines}
        for _ in range(repeats):
            for name, engine in engines.items():
                shutil.rmtree(work / name, ignore_errors=True)
                shutil.copytree(work / "base", work / name)
                samples[name].append(_materialize(work / name, keys, engine))
        if _checksum(work / "duckdb") != _checksum(work / "spark"):
            raise RuntimeError("Spark and DuckDB feature tables differ")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rows_written = samples["duckdb"][0][1]["rows_written"]
    duckdb_cores = os.cpu_count() or 1
    out = [_row("transactions", rows_written, "rows", size)]
    for name, cores in (("duckdb", duckdb_cores), ("spark", SPARK_CORES)):
        seconds = statistics.median(s for s, _ in samples[name])
        note = f"feature step in Dagster, {cores} cores, median of {repeats}"
        out += [
            _row(f"{name} step", round(seconds, 2), "s", note),
            _row(f"{name} rows/s", round(rows_written / seconds), "rows/s", note),
            _row(f"{name} rows/s per core", round(rows_written / seconds / cores), "rows/s", note),
        ]
    session = statistics.median(m["spark_session_seconds"] for _, m in samples["spark"])
    job = statistics.median(m["spark_compute_seconds"] for _, m in samples["spark"])
    note = "Spark job alone: read Parquet, windows, write Parquet (what scales with executors)"
    out += [
        _row("spark session start", round(session, 2), "s", "local[2] JVM and SparkSession"),
        _row("spark job", round(job, 2), "s", note),
        _row("spark job rows/s per core", round(rows_written / job / SPARK_CORES), "rows/s", note),
    ]
    return out


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.spark")
    parser.add_argument("--quick", action="store_true")
    for r in run(parser.parse_args()):
        print(r)
