"""The Spark side of the feature engine: run by the features asset through Dagster Pipes
(`python -m fraud_assets.defs.features.spark.job`), never imported by the code location.

Reads the cleaned layer's Parquet exports (transactions Hive-partitioned by business_date; labels, cards and
terminals whole), computes the features of the output dates with the Spark SQL of sql.py, and writes them
as Parquet partitioned by business_date to the output directory, which the asset loads into the warehouse.
Everything the asset passes comes in the Pipes extras; logs and figures go back through Pipes.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from dagster_pipes import PipesContext, open_dagster_pipes
from pyspark.sql import SparkSession

from fraud_assets.defs.features.spark import sql

INPUT_TABLES = ("transactions", "labels", "cards", "terminals")


def open_session(master: str, conf: dict[str, str]) -> SparkSession:
    builder = SparkSession.builder.master(master).appName("fraud_assets.transaction_features")
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def register_inputs(spark: SparkSession, exports: Path, dates: list[dt.date]) -> None:
    """One view per cleaned table. Transactions: only the day files of the read range (the files hold
    business_date themselves, so no partition discovery is needed)."""
    first = min(dates) - dt.timedelta(days=sql.LOOKBACK_DAYS)
    days = [first + dt.timedelta(days=i) for i in range((max(dates) - first).days + 1)]
    root = exports / "cleaned" / "transactions"
    day_files = [root / f"business_date={d.isoformat()}" / "data.parquet" for d in days]
    spark.read.parquet(*[str(f) for f in day_files if f.exists()]).createOrReplaceTempView("transactions")
    for table in INPUT_TABLES:
        if table != "transactions":
            spark.read.parquet(str(exports / "cleaned" / table / "data.parquet")).createOrReplaceTempView(
                table
            )


def compute(spark: SparkSession, exports: Path, dates: list[dt.date], columns: list[tuple[str, str]]):
    """The feature rows of these output dates as a DataFrame with the table's columns."""
    register_inputs(spark, exports, dates)
    for name, query in sql.views(dates).items():
        spark.sql(query).createOrReplaceTempView(name)
    return spark.sql(sql.select_features(columns))


def run(pipes: PipesContext) -> None:
    extras = pipes.extras
    master = extras["master"]
    dates = sorted(dt.date.fromisoformat(k) for k in extras["partition_keys"])
    output = Path(extras["output_dir"])
    started = time.perf_counter()
    spark = open_session(master, extras["spark_conf"])
    try:
        spark.sparkContext.setLogLevel(extras.get("log_level", "WARN"))
        session_seconds = time.perf_counter() - started
        pipes.log.info(
            f"Spark {spark.version} session on {master} ({spark.sparkContext.defaultParallelism} cores) in "
            f"{session_seconds:.1f}s; features of {len(dates)} business date(s) {dates[0]} .. {dates[-1]}"
        )
        features = compute(spark, Path(extras["exports_dir"]), dates, [tuple(c) for c in extras["columns"]])
        features.repartition("business_date").sortWithinPartitions(
            "business_date", "transaction_id"
        ).write.mode("overwrite").partitionBy("business_date").parquet(str(output))
        compute_seconds = time.perf_counter() - started - session_seconds
        # days without transactions get no directory; none at all leaves nothing to read back
        written = any(output.glob("business_date=*"))
        rows = spark.read.parquet(str(output)).count() if written else 0
        cores = spark.sparkContext.defaultParallelism
    finally:
        spark.stop()
    pipes.log.info(f"Spark wrote {rows} feature rows in {compute_seconds:.1f}s to {output}")
    pipes.report_asset_materialization(
        metadata={
            "spark_master": master,
            "spark_version": spark.version,
            "spark_cores": cores,
            "spark_rows": rows,
            "spark_session_seconds": round(session_seconds, 3),
            "spark_compute_seconds": round(compute_seconds, 3),
            "spark_rows_per_second": round(rows / compute_seconds, 1) if compute_seconds > 0 else 0.0,
        }
    )


def main() -> None:
    with open_dagster_pipes() as pipes:
        run(pipes)


if __name__ == "__main__":
    main()
