"""`scoring/transaction_scores`: every transaction of a business day scored by the champion, and its checks
(scoring/checks.py) in the same step."""

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
from dagster_duckdb import DuckDBResource

from fraud_assets.defs.scoring.checks import SCORES_CHECKS
from fraud_assets.defs.scoring.common import (
    OWNERS,
    SCORE_PREVIEW_COLUMNS,
    SCORES_TABLE,
    SCORING_CODE_VERSION,
    champion_model,
    scored_days,
)
from fraud_assets.defs.scoring.schemas import SCORES_COLUMNS, SCORES_DESCRIPTIONS, SCORES_LINEAGE, ScoresModel
from fraud_assets.lib.catalog_metadata import COLUMN_LINEAGE_KEY, column_schema_metadata
from fraud_assets.lib.day_metadata import day_aggregates, spread_over_days
from fraud_assets.lib.partitions import business_date_partitions, dates_filter
from fraud_assets.lib.table_checks import check_specs, run_checks
from fraud_assets.lib.warehouse import replace_partition_batches, table_metadata
from fraud_assets.resources import ModelStore

CHAMPION_KEY = dg.AssetKey(["models", "champion"])
SCORES_KEY = dg.AssetKey(["scoring", "transaction_scores"])
# The figures plotted per day (SQL over the day's rows), each day's own in a range run too.
DAY_FIGURES = {
    "rows_scored": "count(*)",
    "mean_score": "avg(score)",
    "p99_score": "quantile_cont(score, 0.99)",
}


@dg.asset(
    key=SCORES_KEY,
    group_name="scoring",
    owners=OWNERS,
    kinds={"python", "scikit-learn", "duckdb"},
    code_version=SCORING_CODE_VERSION,
    pool="duckdb",
    partitions_def=business_date_partitions,
    # A backfill (or `make pipeline`) scores every selected day in one run, a batch of days per write.
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[dg.AssetKey(["features", "transaction_features"]), CHAMPION_KEY],
    metadata=column_schema_metadata(
        SCORES_COLUMNS, descriptions=SCORES_DESCRIPTIONS, lineage=SCORES_LINEAGE, contract=ScoresModel
    ),
    check_specs=check_specs(
        SCORES_KEY, SCORES_TABLE, SCORES_CHECKS, business_date_partitions, with_deps=False
    ),
    description=(
        "Fraud score (probability) of every transaction of a business day, for the alert queue and "
        "monitoring. Computed by the current champion model (loaded through the checked loader) from "
        "features.transaction_features; each row records the model_version that scored it. Table "
        "scoring.transaction_scores (contract: transaction_id, score, model_version)."
    ),
)
def transaction_scores(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, model_store: ModelStore
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    days = list(context.partition_keys)
    columns = [c for c, _ in SCORES_COLUMNS]
    with duckdb.get_connection() as conn:
        model, mv = champion_model(conn, model_store)
        scored_at = datetime.now(UTC).replace(tzinfo=None)
        t0 = time.perf_counter()
        # Each batch of days is written (its own transaction) as it is scored: a backfill of 100M
        # transactions never sits in memory, and each day holds one model's scores.
        batches = (
            batch.assign(model_version=mv.model_version, scored_at=scored_at)[columns]
            for batch in scored_days(conn, model, mv.feature_columns, days)
        )
        n = replace_partition_batches(conn, SCORES_TABLE, SCORES_COLUMNS, batches, "business_date", days)
        seconds = time.perf_counter() - t0
        # One pass over the run's scores gives each day its figures (a one-day run's are the run's).
        per_day = day_aggregates(conn, SCORES_TABLE, days, DAY_FIGURES)
        day = per_day[days[0]] if len(days) == 1 else {}
        md = table_metadata(
            conn,
            SCORES_TABLE,
            where=dates_filter(days),
            descriptions=SCORES_DESCRIPTIONS,
            contract=ScoresModel,
            preview_columns=SCORE_PREVIEW_COLUMNS,
            partitions=len(days),
            extra={
                "model_version": mv.model_version,
                "rows_scored": n,
                "rows_per_second": float(n / seconds) if seconds > 0 and n else 0.0,
                "mean_score": float(day.get("mean_score") or 0.0),
                "p99_score": float(day.get("p99_score") or 0.0),
                COLUMN_LINEAGE_KEY: SCORES_LINEAGE,
            },
        )
        md = spread_over_days(
            context, md, per_day, DAY_FIGURES, conn=conn, preview_columns=SCORE_PREVIEW_COLUMNS
        )
        yield dg.MaterializeResult(metadata=md)
        yield from run_checks(
            context, conn, SCORES_KEY, SCORES_TABLE, SCORES_CHECKS, business_date_partitions
        )
