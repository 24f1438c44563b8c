"""`scoring/shadow_scores`: the challenger awaiting approval scores every new day beside the champion.

Its scores go to their own table, which nothing in the alert path reads: a challenger is judged on live
traffic before it may decide alerts (monitoring/shadow_comparison compares the two once labels mature).
A day scored while no challenger waits gets an empty partition, so a challenger shadows the days that
arrive after it appeared, not the whole history at once. So does a day the challenger's training data
covers (up to its fold-0 test end), when a re-run or backfill scores it again: the challenger was fitted
and selected on those days, and its lead there would be in-sample, not evidence from live traffic.
"""

from datetime import UTC, date, datetime

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from fraud_assets.defs.monitoring.metrics import psi
from fraud_assets.defs.scoring.common import (
    OWNERS,
    SCORE_PREVIEW_COLUMNS,
    SCORES_TABLE,
    SCORING_CODE_VERSION,
    scored_days,
)
from fraud_assets.defs.scoring.schemas import SHADOW_COLUMNS, SHADOW_DESCRIPTIONS
from fraud_assets.lib.catalog_metadata import column_schema_metadata
from fraud_assets.lib.day_metadata import day_aggregates, spread_over_days
from fraud_assets.lib.partitions import business_date_partitions, dates_filter
from fraud_assets.lib.registry import CHAMPION, ModelVersion, current_alias, get_version, pending_version
from fraud_assets.lib.tables import SHADOW_TABLE
from fraud_assets.lib.warehouse import replace_partition_batches, table_metadata
from fraud_assets.resources import ModelStore

SCORES_KEY = dg.AssetKey(["scoring", "transaction_scores"])
# Plotted per day, each day's own in a range run too (with the day's PSI against the champion).
DAY_FIGURES = {"rows_scored": "count(*)", "mean_score": "avg(score)"}


def live_days(mv: ModelVersion, days: list[str]) -> list[str]:
    """The days of `days` after the challenger's training data (its newest fold's test window ends it)."""
    last = mv.test_end or mv.train_end
    return [d for d in days if last is None or date.fromisoformat(d) > last]


def champion_scores(conn, day: str) -> pd.Series:
    return conn.execute(
        f"SELECT score FROM {SCORES_TABLE} WHERE business_date = CAST(? AS DATE)", [day]
    ).df()["score"]


@dg.asset(
    key=["scoring", "shadow_scores"],
    group_name="scoring",
    owners=OWNERS,
    kinds={"python", "scikit-learn", "duckdb"},
    code_version=SCORING_CODE_VERSION,
    pool="duckdb",
    partitions_def=business_date_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    # After the champion scored the day (same run), so both score the same transactions.
    deps=[dg.AssetKey(["features", "transaction_features"]), SCORES_KEY],
    metadata=column_schema_metadata(SHADOW_COLUMNS, descriptions=SHADOW_DESCRIPTIONS),
    description=(
        "Shadow scores for model risk management: every transaction of a business day scored by the "
        "challenger that awaits approval (models.model_events `pending_approval`), beside the champion's "
        "scoring/transaction_scores. Stored in scoring.shadow_scores, which the alert queue never reads; "
        "monitoring/shadow_comparison compares champion and challenger on the same days. Empty partition "
        "when no challenger waits, and for a day the challenger's training data covers (in-sample: not "
        "evidence from live traffic). Loaded through the signed registry like every model."
    ),
)
def shadow_scores(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, model_store: ModelStore
) -> dg.MaterializeResult:
    days = list(context.partition_keys)
    columns = [c for c, _ in SHADOW_COLUMNS]
    with duckdb.get_connection() as conn:
        version = pending_version(conn)
        champion = current_alias(conn, CHAMPION)
        # A verified row: its windows decide which days the challenger may shadow.
        live = live_days(get_version(conn, version, model_store.signer()), days) if version else []
        psis: dict[str, float] = {}

        def batches():
            # Written batch by batch as scored (memory holds one batch of days, however long the range).
            if not live:
                return
            model, mv = model_store.load(conn, version)
            scored_at = datetime.now(UTC).replace(tzinfo=None)
            for batch in scored_days(conn, model, mv.feature_columns, live):
                for day, scores in batch.groupby("business_date")["score"]:
                    psis[day.isoformat()] = psi(champion_scores(conn, day.isoformat()), scores)
                rows = batch.assign(model_version=version, champion_version=champion, scored_at=scored_at)
                yield rows[columns]

        n = replace_partition_batches(conn, SHADOW_TABLE, SHADOW_COLUMNS, batches(), "business_date", days)
        where = dates_filter(days)
        mean = conn.execute(f"SELECT avg(score) FROM {SHADOW_TABLE} WHERE {where}").fetchone()[0]
        md = table_metadata(
            conn,
            SHADOW_TABLE,
            where=where,
            descriptions=SHADOW_DESCRIPTIONS,
            preview_columns=SCORE_PREVIEW_COLUMNS,
            partitions=len(days),
            extra={
                "challenger": version or "none",
                "champion": champion or "none",
                "rows_scored": n,
                "mean_score": float(mean) if n else 0.0,
                # Left empty: days the challenger was trained or selected on (in-sample, not live).
                "days_in_training_data": len(days) - len(live) if version else 0,
            },
        )
        finite = [v for v in psis.values() if v == v]
        if finite:
            # PSI of the challenger's scores against the champion's on the same day(s): how differently they
            # rank.
            md["score_psi_vs_champion"] = float(max(finite))
        per_day = day_aggregates(conn, SHADOW_TABLE, days, DAY_FIGURES) if len(days) > 1 else {}
        for day, figures in per_day.items():
            figures["score_psi_vs_champion"] = psis.get(day)
        md = spread_over_days(
            context,
            md,
            per_day,
            [*DAY_FIGURES, "score_psi_vs_champion"],
            conn=conn,
            preview_columns=SCORE_PREVIEW_COLUMNS,
        )
    skipped = len(days) - len(live) if version else 0
    context.log.info(
        f"shadow scores: {n} rows by {version or 'no challenger'} for {len(live)} of {len(days)} day(s)"
        + (f"; {skipped} day(s) left empty: in {version}'s training data" if skipped else "")
    )
    return dg.MaterializeResult(metadata=md)
