"""The features asset's Spark engine: launch job.py through Dagster Pipes, then load what it wrote.

The Spark application (the driver runs in a subprocess of the run worker; executors on the cluster of
`spark_master`, or threads of that subprocess for `local[N]`) reads the cleaned layer's Parquet exports
beside the warehouse and writes the output dates' features as Parquet under the warehouse's directory;
the asset then replaces those partitions of features.transaction_features from the files in one DuckDB
transaction, like the DuckDB engine. On a cluster, executors must see both directories at the same path
(the data volume mounted on them too).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from fraud_assets.defs.features.compute import COLUMNS, FEATURES_TABLE
from fraud_assets.lib.partitions import validate_keys
from fraud_assets.lib.warehouse import replace_partition, sql_string
from fraud_assets.resources import FeatureEngine

JOB_MODULE = "fraud_assets.defs.features.spark.job"
SPARK_WORK_DIR = "spark_work"
INPUT_TABLES = ("transactions", "labels", "cards", "terminals")


def java_home() -> str:
    """JAVA_HOME, or the installation the `java` on PATH belongs to, or the machine's OpenJDK 17: Spark 4
    needs Java 17 or 21, and a missing one fails here with a reason rather than deep inside pyspark."""
    configured = os.environ.get("JAVA_HOME")
    if configured and (Path(configured) / "bin" / "java").exists():
        return configured
    on_path = shutil.which("java")
    if on_path:
        return str(Path(os.path.realpath(on_path)).parents[1])
    for candidate in sorted(Path("/usr/lib/jvm").glob("*-17-*")):
        if (candidate / "bin" / "java").exists():
            return str(candidate)
    raise RuntimeError("the spark feature engine needs Java 17 or 21: set JAVA_HOME or put java on PATH")


def spark_conf(engine: FeatureEngine, work: Path, scratch: Path) -> dict[str, str]:
    """Session settings: no UI, UTC (timestamps are UTC wall-clock), scratch space under the run's work
    directory; the resource's own `spark_conf` last, so a deployment can override any of them."""
    return {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(engine.spark_shuffle_partitions),
        "spark.driver.memory": engine.spark_driver_memory,
        "spark.local.dir": str(scratch),
        # UTC in the JVMs too, whatever the machine's zone: no timestamp is ever read as local time
        "spark.driver.extraJavaOptions": f"-Djava.io.tmpdir={scratch} -Duser.timezone=UTC",
        "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
        "spark.sql.warehouse.dir": str(work / "spark-warehouse"),
        **engine.spark_conf,
    }


def spark_env(engine: FeatureEngine, scratch: Path) -> dict[str, str]:
    env = {
        "JAVA_HOME": java_home(),
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "TMPDIR": str(scratch),  # pyspark's own temporary files (the gateway's connection file)
    }
    if engine.spark_master.startswith("local"):
        # A local session binds to loopback: no network interface lookup, nothing reachable from outside.
        env["SPARK_LOCAL_IP"] = "127.0.0.1"
    return env


def missing_exports(exports: Path, partition_keys: list[str]) -> list[str]:
    """The cleaned exports the run needs that do not exist (paths under exports/): the reference tables,
    and the transactions of every output date (the cleaned layer exports a day without rows as an empty
    file, so a missing one means the export is behind)."""
    needed = [Path("cleaned") / t / "data.parquet" for t in INPUT_TABLES if t != "transactions"]
    needed += [
        Path("cleaned") / "transactions" / f"business_date={d.isoformat()}" / "data.parquet"
        for d in validate_keys(partition_keys)
    ]
    return [str(p) for p in needed if not (exports / p).exists()]


def work_dir(warehouse: Path, context: dg.AssetExecutionContext) -> Path:
    """The run's Spark scratch and output directory, beside the warehouse (on the data volume)."""
    return warehouse.resolve().parent / SPARK_WORK_DIR / context.run.run_id


def run_spark_job(
    context: dg.AssetExecutionContext, engine: FeatureEngine, warehouse: Path, partition_keys: list[str]
) -> tuple[Path, dict]:
    """Launch the Spark job through Pipes for these output dates; its output directory and the metadata it
    reported (rows, seconds, master)."""
    exports = warehouse.resolve().parent / "exports"
    missing = missing_exports(exports, partition_keys)
    if missing:
        raise RuntimeError(f"the spark feature engine reads the cleaned layer's exports; missing: {missing}")
    work = work_dir(warehouse, context)
    output, scratch = work / "features", work / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    invocation = dg.PipesSubprocessClient(env=spark_env(engine, scratch), cwd=str(work.parent)).run(
        # The op context: Pipes reads `run_id` from the context it is given, deprecated on the asset one.
        context=context.op_execution_context,
        command=[sys.executable, "-m", JOB_MODULE],
        extras={
            "master": engine.spark_master,
            "partition_keys": partition_keys,
            "exports_dir": str(exports),
            "output_dir": str(output),
            "columns": [list(c) for c in COLUMNS],
            "spark_conf": spark_conf(engine, work, scratch),
        },
    )
    reported = invocation.get_materialize_result()
    metadata = {k: v.value if hasattr(v, "value") else v for k, v in (reported.metadata or {}).items()}
    return output, metadata


def load_features(
    conn: duckdb.DuckDBPyConnection, output: Path, partition_keys: list[str], expected_rows: int
) -> int:
    """Replace the partitions `partition_keys` of the feature table with the rows Spark wrote (a day
    without rows has no directory: its partition is emptied), typed as the table; rows written. Files
    that do not hold the rows Spark reported are refused before anything is replaced."""
    typed = ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in COLUMNS)
    if sorted(output.glob("business_date=*/*.parquet")):
        pattern = sql_string(str(output / "business_date=*" / "*.parquet"))
        rows = f"read_parquet({pattern}, hive_partitioning = true, hive_types = {{'business_date': DATE}})"
    else:
        rows = f"(SELECT {', '.join(f'NULL AS {c}' for c, _ in COLUMNS)} WHERE false)"
    found = conn.execute(f"SELECT count(*) FROM {rows}").fetchall()[0][0]
    if found != expected_rows:
        raise RuntimeError(f"Spark reported {expected_rows} feature rows, its files hold {found}")
    source = f"SELECT {typed} FROM {rows} ORDER BY business_date, transaction_id"
    return replace_partition(conn, FEATURES_TABLE, source, "business_date", partition_keys)


def write_features_on_spark(
    context: dg.AssetExecutionContext,
    engine: FeatureEngine,
    duckdb_resource: DuckDBResource,
    partition_keys: list[str],
) -> tuple[int, dict]:
    """Compute on Spark, then load into the warehouse; rows written and Spark's metadata. The warehouse
    connection is opened only to load (Spark never holds the DuckDB writer lock)."""
    warehouse = Path(duckdb_resource.database)
    try:
        output, metadata = run_spark_job(context, engine, warehouse, partition_keys)
        with duckdb_resource.get_connection() as conn:
            written = load_features(conn, output, partition_keys, metadata["spark_rows"])
    finally:
        shutil.rmtree(work_dir(warehouse, context), ignore_errors=True)
    return written, metadata
