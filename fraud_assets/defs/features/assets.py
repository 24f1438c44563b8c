"""features/transaction_features: point-in-time-correct features, one row per cleaned transaction."""

import time

import dagster as dg
from dagster_duckdb import DuckDBResource

from fraud_assets.defs.features.compute import (
    BASELINE_COLUMNS,
    COLUMN_DESCRIPTIONS,
    COLUMNS,
    EPISODE_DAYS,
    FEATURES_TABLE,
    LOOKBACK_DAYS,
    PRODUCTION_COLUMNS,
    WINDOW_LOOKBACK_DAYS,
    write_features,
)
from fraud_assets.defs.features.lineage import COLUMN_LINEAGE
from fraud_assets.defs.features.spark.launcher import write_features_on_spark
from fraud_assets.lib.catalog_metadata import COLUMN_LINEAGE_KEY, column_schema_metadata
from fraud_assets.lib.day_metadata import spread_table_over_days
from fraud_assets.lib.partitions import business_date_partitions, dates_filter
from fraud_assets.lib.warehouse import table_metadata
from fraud_assets.resources import FeatureEngine

OWNERS = ["team:fraud-data-science"]
GROUP = "features"
# Changes whenever the code changes feature values: the UI then shows the partitions computed before as
# built by other code.
CODE_VERSION = "5"
# Plotted per day, each day's own in a range run too (the bootstrap and lookback rebuilds are range runs).
DAY_FIGURES = {
    "rows_written": "count(*)",
    "mean_terminal_risk_30d": "avg(terminal_risk_30d)",
    "mean_card_nb_tx_30d": "avg(card_nb_tx_30d)",
}
# True of each day a run writes (the code's feature counts); the run's own figures (compute time, rows per
# second, the table's rows) are on its last day only.
EVERY_DAY = ("baseline_features", "production_features")
PREVIEW_COLUMNS = ["transaction_id", "business_date", "tx_amount", "card_nb_tx_1d", "terminal_risk_7d"]
# A day's features read the cleaned transactions of the LOOKBACK_DAYS days before it: declared, so the
# UI shows it and automation rebuilds the later days when an earlier day is cleaned again.
TRANSACTIONS_LOOKBACK = dg.TimeWindowPartitionMapping(start_offset=-LOOKBACK_DAYS)
CLEANED_DEPS = [
    dg.AssetDep(dg.AssetKey(["cleaned", "transactions"]), partition_mapping=TRANSACTIONS_LOOKBACK),
    dg.AssetKey(["cleaned", "labels"]),
    dg.AssetKey(["cleaned", "cards"]),
    dg.AssetKey(["cleaned", "terminals"]),
]


@dg.asset(
    key_prefix=GROUP,
    name="transaction_features",
    group_name=GROUP,
    owners=OWNERS,
    kinds={"duckdb", "sql"},
    code_version=CODE_VERSION,
    metadata=column_schema_metadata(COLUMNS, descriptions=COLUMN_DESCRIPTIONS, lineage=COLUMN_LINEAGE),
    pool="duckdb",
    deps=CLEANED_DEPS,
    partitions_def=business_date_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    description=(
        "Model inputs for fraud scoring, one row per cleaned transaction (table "
        "features.transaction_features, daily partitions). For the models and scoring layers and for data "
        "scientists. Holds the 15 Fraud Detection Handbook baseline features (card windows (t-n, t], "
        "terminal windows (t-7d-n, t-7d] with risk from labels reported by t) and the production features "
        "of docs/features.md, all point-in-time correct (card home, terminal location and merchant category "
        "as of the transaction's business date: the cleaned.cards / cleaned.terminals version serving it)."
        "\n\nHow it is built: DuckDB stages the read range, the windows are one "
        "sort per entity with binary-searched frame bounds and exact prefix sums; a run reads "
        f"{WINDOW_LOOKBACK_DAYS} days of transactions before its first day ({EPISODE_DAYS} of the labelled "
        "ones, for the fraud episodes) and writes its partitions atomically, day by day in transaction "
        "order. A backfill is one pass. With the `spark` feature engine (resource "
        "feature_engine) the same definitions run as a Spark application launched through Dagster Pipes, "
        "reading the cleaned layer's Parquet exports; the rows land in the same table."
    ),
)
def transaction_features(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, feature_engine: FeatureEngine
) -> dg.MaterializeResult:
    keys = sorted(context.partition_keys)
    started = time.perf_counter()
    engine_md: dict = {}
    if feature_engine.uses_spark:
        written, engine_md = write_features_on_spark(context, feature_engine, duckdb, keys)
    with duckdb.get_connection() as conn:
        if not feature_engine.uses_spark:
            written = write_features(conn, keys)
        seconds = time.perf_counter() - started
        written_days = dates_filter(keys)
        stats = conn.execute(
            f"SELECT avg(terminal_risk_30d), avg(card_nb_tx_30d) FROM {FEATURES_TABLE} WHERE {written_days}"
        ).fetchall()[0]
        md = table_metadata(
            conn,
            FEATURES_TABLE,
            descriptions=COLUMN_DESCRIPTIONS,
            where=written_days,
            preview_columns=PREVIEW_COLUMNS,
            partitions=len(keys),
            extra={
                "rows_written": written,
                "partitions_written": len(keys),
                "compute_seconds": round(seconds, 3),
                "rows_per_second": round(written / seconds, 1) if seconds > 0 else 0.0,
                "mean_terminal_risk_30d": float(stats[0] or 0.0),
                "mean_card_nb_tx_30d": float(stats[1] or 0.0),
                "baseline_features": len(BASELINE_COLUMNS),
                "production_features": len(PRODUCTION_COLUMNS),
                "feature_engine": feature_engine.engine,
                **engine_md,
                COLUMN_LINEAGE_KEY: COLUMN_LINEAGE,
            },
        )
        md = spread_table_over_days(
            context,
            conn,
            FEATURES_TABLE,
            md,
            DAY_FIGURES,
            preview_columns=PREVIEW_COLUMNS,
            every_day=EVERY_DAY,
        )
    engine = feature_engine.engine
    context.log.info(
        f"features ({engine}): {written} rows for {len(keys)} business date(s) in {seconds:.2f}s"
    )
    return dg.MaterializeResult(metadata=md)
