"""`scoring/fraud_alerts`: the investigators' queue, the top-k cards of each business day."""

from datetime import UTC, datetime

import dagster as dg
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource
from pydantic import Field

from fraud_assets.defs.scoring.common import (
    ALERTS_TABLE,
    OWNERS,
    SCORES_TABLE,
    SCORING_CODE_VERSION,
    predict,
    read_features_day,
)
from fraud_assets.defs.scoring.schemas import ALERTS_COLUMNS, ALERTS_DESCRIPTIONS, DEFAULT_N_DRIVERS
from fraud_assets.lib.catalog_metadata import column_schema_metadata
from fraud_assets.lib.partitions import business_date_partitions
from fraud_assets.lib.registry import load_version
from fraud_assets.lib.warehouse import replace_partition, table_metadata
from fraud_assets.resources import ModelStore

SCORES_KEY = dg.AssetKey(["scoring", "transaction_scores"])


class FraudAlertsConfig(dg.Config):
    top_k: int = Field(default=100, description="Cards per day in the queue (the investigators' budget).")
    n_drivers: int = Field(
        default=DEFAULT_N_DRIVERS,
        description="Features listed as the reasons for each alert (columns driver_1..driver_<n>).",
    )


def top_cards(scored: pd.DataFrame, k: int) -> pd.DataFrame:
    """Each card's highest-scoring transaction of the day; the k cards with the highest such score."""
    ranked = scored.sort_values(["score", "transaction_id"], ascending=[False, True], kind="mergesort")
    per_card = ranked.groupby("card_token", sort=False).head(1)
    counts = scored.groupby("card_token").size().rename("card_transactions_today")
    top = per_card.head(k).join(counts, on="card_token")
    return top.assign(alert_rank=np.arange(1, len(top) + 1))


def drivers(model, rows: pd.DataFrame, day: pd.DataFrame, columns: list[str], n: int) -> list[list[tuple]]:
    """Per alert, the features whose replacement by the day's median lowers the score most (occlusion):
    model-agnostic, and cheap at k rows x features predictions."""
    if rows.empty:
        return []
    base = predict(model, rows, columns)
    medians = day[columns].astype(float).median()
    X = rows[columns].astype(float).reset_index(drop=True)
    blocks = []
    for c in columns:
        b = X.copy()
        b[c] = medians[c]
        blocks.append(b)
    occluded = predict(model, pd.concat(blocks, ignore_index=True), columns).reshape(len(columns), len(X)).T
    drop = base[:, None] - occluded
    out = []
    for i in range(len(X)):
        order = np.argsort(-drop[i])[:n]
        out.append([(columns[j], float(X.iloc[i, j]), float(drop[i, j])) for j in order if drop[i, j] > 0])
    return out


def alerts_for_day(
    conn, day: str, config: FraudAlertsConfig, model_store: ModelStore
) -> tuple[pd.DataFrame, int]:
    """The alert rows of one business day and the number of cards scored that day."""
    scored = conn.execute(
        f"SELECT transaction_id, card_token, score, model_version FROM {SCORES_TABLE} "
        "WHERE business_date = CAST(? AS DATE)",
        [day],
    ).df()
    feats = read_features_day(conn, day)
    top = top_cards(scored, config.top_k).merge(
        feats.drop(columns=["card_token"]), on="transaction_id", how="left"
    )
    versions = top["model_version"].unique().tolist()
    reasons: list[list[tuple]] = [[] for _ in range(len(top))]
    for version in versions:  # one per day unless the champion changed mid-day
        model, mv = load_version(conn, model_store.path, version, model_store.signer())
        mask = (top["model_version"] == version).to_numpy()
        for i, r in zip(
            np.flatnonzero(mask),
            drivers(model, top[mask], feats, mv.feature_columns, config.n_drivers),
            strict=True,
        ):
            reasons[i] = r
    alerts = pd.DataFrame(
        {
            "business_date": pd.to_datetime(day).date(),
            "alert_rank": top["alert_rank"].astype(int),
            "card_token": top["card_token"],
            "score": top["score"].astype(float),
            "transaction_id": top["transaction_id"],
            "tx_datetime": top["tx_datetime"],
            "terminal_id": top["terminal_id"],
            "tx_amount": top["tx_amount"].astype(float),
            "card_transactions_today": top["card_transactions_today"].astype(int),
            "model_version": top["model_version"],
            "drivers": ["; ".join(f"{c}={v:.4g} (+{d:.3f})" for c, v, d in r) for r in reasons],
            **{
                f"driver_{j + 1}": [r[j][0] if len(r) > j else None for r in reasons]
                for j in range(config.n_drivers)
            },
            "created_at": datetime.now(UTC).replace(tzinfo=None),
        }
    )
    return alerts, int(scored["card_token"].nunique())


@dg.asset(
    key=["scoring", "fraud_alerts"],
    group_name="scoring",
    owners=OWNERS,
    kinds={"python", "duckdb"},
    code_version=SCORING_CODE_VERSION,
    pool="duckdb",
    partitions_def=business_date_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[SCORES_KEY],
    metadata=column_schema_metadata(ALERTS_COLUMNS, descriptions=ALERTS_DESCRIPTIONS),
    automation_condition=dg.AutomationCondition.eager(),
    description=(
        "Daily alert queue for fraud investigators: the top-k cards of the business day (k configurable, "
        "default 100) ranked by each card's highest transaction score, with that transaction, its score, "
        "the model version, and the features that drove the score (occlusion: the features whose "
        "replacement by the day's median lowers the score most). Fewer than k rows only if the day has "
        "fewer cards."
    ),
)
def fraud_alerts(
    context: dg.AssetExecutionContext,
    config: FraudAlertsConfig,
    duckdb: DuckDBResource,
    model_store: ModelStore,
) -> dg.MaterializeResult:
    days = list(context.partition_keys)
    with duckdb.get_connection() as conn:
        per_day = [alerts_for_day(conn, day, config, model_store) for day in days]
        alerts = pd.concat([a for a, _ in per_day], ignore_index=True)
        n = replace_partition(conn, ALERTS_TABLE, alerts, "business_date", days)
        n_cards = sum(c for _, c in per_day)
        md = table_metadata(
            conn,
            ALERTS_TABLE,
            where="CAST(business_date AS VARCHAR) IN (SELECT unnest(?::VARCHAR[]))",
            params=[days],
            descriptions=ALERTS_DESCRIPTIONS,
            preview_columns=["alert_rank", "score", "transaction_id", "tx_amount", "drivers"],
            extra={
                "alerts": n,
                "top_k": config.top_k,
                "cards_scored": n_cards,
                "min_alert_score": float(alerts["score"].min()) if n else 0.0,
                "max_alert_score": float(alerts["score"].max()) if n else 0.0,
            },
        )
    return dg.MaterializeResult(metadata=md)
