"""`scoring/transaction_scores`: every transaction of a business day scored by the champion."""

import time
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from fraud_assets.defs.scoring.common import (
    OWNERS,
    SCORES_TABLE,
    SCORING_CODE_VERSION,
    champion_model,
    scored_days,
)
from fraud_assets.defs.scoring.schemas import SCORES_COLUMNS, SCORES_DESCRIPTIONS, SCORES_LINEAGE
from fraud_assets.lib.catalog_metadata import COLUMN_LINEAGE_KEY, column_schema_metadata
from fraud_assets.lib.partitions import business_date_partitions
from fraud_assets.lib.warehouse import replace_partition, table_metadata
from fraud_assets.resources import ModelStore

CHAMPION_KEY = dg.AssetKey(["models", "champion"])


@dg.asset(
    key=["scoring", "transaction_scores"],
    group_name="scoring",
    owners=OWNERS,
    kinds={"python", "scikit-learn", "duckdb"},
    code_version=SCORING_CODE_VERSION,
    pool="duckdb",
    partitions_def=business_date_partitions,
    # A backfill (or `make pipeline`) scores every selected day in one run and one write.
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[dg.AssetKey(["features", "transaction_features"]), CHAMPION_KEY],
    metadata=column_schema_metadata(SCORES_COLUMNS, descriptions=SCORES_DESCRIPTIONS, lineage=SCORES_LINEAGE),
    description=(
        "Fraud score (probability) of every transaction of a business day, for the alert queue and "
        "monitoring. Computed by the current champion model (loaded through the checked loader) from "
        "features.transaction_features; each row records the model_version that scored it. Table "
        "scoring.transaction_scores (contract: transaction_id, score, model_version)."
    ),
)
def transaction_scores(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, model_store: ModelStore
) -> dg.MaterializeResult:
    days = list(context.partition_keys)
    with duckdb.get_connection() as conn:
        model, mv = champion_model(conn, model_store)
        t0 = time.perf_counter()
        frames = list(scored_days(conn, model, mv.feature_columns, days))
        seconds = time.perf_counter() - t0
        scored_at = datetime.now(UTC).replace(tzinfo=None)
        columns = [c for c, _ in SCORES_COLUMNS]
        frames = [f.assign(model_version=mv.model_version, scored_at=scored_at)[columns] for f in frames]
        out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
        n = replace_partition(conn, SCORES_TABLE, out, "business_date", days)
        md = table_metadata(
            conn,
            SCORES_TABLE,
            where="CAST(business_date AS VARCHAR) IN (SELECT unnest(?::VARCHAR[]))",
            params=[days],
            descriptions=SCORES_DESCRIPTIONS,
            preview_columns=["transaction_id", "business_date", "score", "model_version"],
            extra={
                "model_version": mv.model_version,
                "rows_scored": n,
                "rows_per_second": float(n / seconds) if seconds > 0 and n else 0.0,
                "mean_score": float(out["score"].mean()) if n else 0.0,
                "p99_score": float(out["score"].quantile(0.99)) if n else 0.0,
                COLUMN_LINEAGE_KEY: SCORES_LINEAGE,
            },
        )
    return dg.MaterializeResult(metadata=md)
