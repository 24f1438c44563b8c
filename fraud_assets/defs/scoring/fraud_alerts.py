"""`scoring/fraud_alerts`: the investigators' queue, the top-k cards of each business day, and its checks
(scoring/checks.py) in the same step."""

from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource
from pydantic import Field

from fraud_assets.defs.models.common import LABELS_TABLE
from fraud_assets.defs.scoring.checks import alerts_checks
from fraud_assets.defs.scoring.common import (
    ALERTS_TABLE,
    FEATURES_TABLE,
    OWNERS,
    SCORES_TABLE,
    SCORING_CODE_VERSION,
    predict,
)
from fraud_assets.defs.scoring.schemas import ALERTS_COLUMNS, ALERTS_DESCRIPTIONS, DEFAULT_N_DRIVERS
from fraud_assets.lib.catalog_metadata import column_schema_metadata
from fraud_assets.lib.day_metadata import day_aggregates, spread_over_days
from fraud_assets.lib.partitions import business_date_partitions, dates_filter, day_batches
from fraud_assets.lib.table_checks import check_specs, run_checks
from fraud_assets.lib.warehouse import replace_partition, table_exists, table_metadata
from fraud_assets.resources import ModelStore

SCORES_KEY = dg.AssetKey(["scoring", "transaction_scores"])
ALERTS_KEY = dg.AssetKey(["scoring", "fraud_alerts"])
# The figures plotted per day, each day's own in a range run too: SQL over the day's alerts, and the cards
# the day's queue was chosen from.
ALERT_PREVIEW_COLUMNS = ("alert_rank", "score", "transaction_id", "tx_amount", "drivers")
DAY_FIGURES = {"alerts": "count(*)", "min_alert_score": "min(score)", "max_alert_score": "max(score)"}
CARD_FIGURES = ("cards_scored", "known_compromised_cards_left_out")


class FraudAlertsConfig(dg.Config):
    top_k: int = Field(default=100, description="Cards per day in the queue (the investigators' budget).")
    n_drivers: int = Field(
        default=DEFAULT_N_DRIVERS,
        description="Features listed as the reasons for each alert (columns driver_1..driver_<n>).",
    )
    include_known_compromised: bool = Field(
        default=False,
        description=(
            "Also queue cards already known compromised (a fraud reported by the day's start). Off: such a "
            "card is blocked once its fraud is reported, so a slot on it finds nothing new."
        ),
    )


# Per business date, each card's highest-scoring transaction (ties: the smaller transaction_id), and the k
# cards whose such score is highest (ties: the smaller card token, as Card Precision@k ranks them in
# lib/metrics.py), with the card's transactions of the day. A card known compromised by the day's start
# (a fraud reported by then: the rule of the gate's test days and of monitoring) is blocked, so it is left
# out unless configured: on a simulated day such cards took most of the 100 places.
KNOWN_CARD = (
    f"EXISTS (SELECT 1 FROM {LABELS_TABLE} l WHERE l.card_token = s.card_token "
    "AND l.reported_at <= CAST(s.business_date AS TIMESTAMP))"
)
TOP_CARDS_SQL = """
SELECT business_date, transaction_id, card_token, score, model_version, card_transactions_today,
       alert_rank
FROM (
    SELECT *, row_number() OVER (PARTITION BY business_date ORDER BY score DESC, card_token)
              AS alert_rank
    FROM (
        SELECT *, row_number() OVER (PARTITION BY business_date, card_token
                                     ORDER BY score DESC, transaction_id) AS card_rank,
               count(*) OVER (PARTITION BY business_date, card_token) AS card_transactions_today
        FROM {scores} s WHERE {where} AND NOT {known}
    )
    WHERE card_rank = 1
)
WHERE alert_rank <= ?
ORDER BY business_date, alert_rank
"""


def drivers(model, rows: pd.DataFrame, medians: np.ndarray, columns: list[str], n: int) -> list[list[tuple]]:
    """Per alert, the features whose replacement by its day's median (`medians`, one row per alert) lowers
    the score most (occlusion): model-agnostic, and one predict over every alert x feature."""
    if rows.empty:
        return []
    X = rows[columns].to_numpy(dtype=float)
    k, m = X.shape
    # block j = every alert with feature j occluded; base scores last
    occluded = np.repeat(X[None, :, :], m + 1, axis=0)
    occluded[np.arange(m), :, np.arange(m)] = medians.T
    scores = predict(model, pd.DataFrame(occluded.reshape(-1, m), columns=columns), columns).reshape(m + 1, k)
    drop = (scores[m][None, :] - scores[:m]).T  # alerts x features
    order = np.argsort(-drop, axis=1, kind="stable")[:, :n]
    return [
        [(columns[j], float(X[i, j]), float(drop[i, j])) for j in order[i] if drop[i, j] > 0]
        for i in range(k)
    ]


# Days ranked per batch of about this many scores: the ranking's window functions and the features'
# medians (a median holds its values and cannot spill) then hold a batch, not a backfill's 100M scores.
ALERT_BATCH_ROWS = 2_000_000


def alerts_for_days(
    conn, days: list[str], config: FraudAlertsConfig, model_store: ModelStore, models: dict | None = None
) -> tuple[pd.DataFrame, dict[str, dict[str, int]]]:
    """The alert rows of these business days and, per day, the cards scored and how many of those were left
    out as known compromised: the queue ranked
    in SQL (TOP_CARDS_SQL), one read of the alerts' features and the days' medians, one batched predict
    per model version (one unless the champion changed within the range), each model loaded once per
    `models` cache."""
    models = {} if models is None else models
    where = dates_filter(days)
    leave_out = not config.include_known_compromised and table_exists(conn, LABELS_TABLE)
    known = KNOWN_CARD if leave_out else "FALSE"
    top = conn.execute(
        TOP_CARDS_SQL.format(scores=SCORES_TABLE, where=where, known=known), [config.top_k]
    ).df()
    cards = {
        day: {"cards_scored": n, "known_compromised_cards_left_out": n_known}
        for day, n, n_known in conn.execute(
            f"SELECT CAST(business_date AS VARCHAR), count(*), count(*) FILTER (WHERE {known}) "
            f"FROM (SELECT DISTINCT business_date, card_token FROM {SCORES_TABLE} WHERE {where}) s GROUP BY 1"
        ).fetchall()
    }
    feats = conn.execute(
        f"SELECT * EXCLUDE (card_token, business_date) FROM {FEATURES_TABLE} "
        f"WHERE {where} AND transaction_id IN (SELECT unnest(?))",
        [top["transaction_id"].tolist()],
    ).df()
    top = top.merge(feats, on="transaction_id", how="left")
    reasons: list[list[tuple]] = [[] for _ in range(len(top))]
    for version in top["model_version"].unique().tolist():
        if version not in models:
            models[version] = model_store.load(conn, version)
        model, mv = models[version]
        columns = mv.feature_columns
        medians = conn.execute(
            "SELECT business_date, "
            + ", ".join(f"median({c}) AS {c}" for c in columns)
            + f" FROM {FEATURES_TABLE} WHERE {where} GROUP BY business_date"
        ).df()
        mask = (top["model_version"] == version).to_numpy()
        rows = top[mask]
        day_medians = rows[["business_date"]].merge(medians, on="business_date", how="left")
        for i, r in zip(
            np.flatnonzero(mask),
            drivers(model, rows, day_medians[columns].to_numpy(dtype=float), columns, config.n_drivers),
            strict=True,
        ):
            reasons[i] = r
    alerts = pd.DataFrame(
        {
            "business_date": pd.to_datetime(top["business_date"]).dt.date,
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
    return alerts, cards


@dg.asset(
    key=ALERTS_KEY,
    group_name="scoring",
    owners=OWNERS,
    kinds={"python", "duckdb"},
    code_version=SCORING_CODE_VERSION,
    pool="duckdb",
    partitions_def=business_date_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[SCORES_KEY],
    metadata=column_schema_metadata(ALERTS_COLUMNS, descriptions=ALERTS_DESCRIPTIONS),
    check_specs=check_specs(
        ALERTS_KEY, ALERTS_TABLE, alerts_checks(), business_date_partitions, with_deps=False
    ),
    description=(
        "Daily alert queue for fraud investigators: the top-k cards of the business day (k configurable, "
        "default 100) ranked by each card's highest transaction score, with that transaction, its score, "
        "the model version, and the features that drove the score (occlusion: the features whose "
        "replacement by the day's median lowers the score most). Cards known compromised by the day's "
        "start (a fraud reported) are left out, as Card Precision@k leaves them out (config "
        "`include_known_compromised`; metadata `known_compromised_cards_left_out`). Fewer than k rows only "
        "if the day has fewer other cards."
    ),
)
def fraud_alerts(
    context: dg.AssetExecutionContext,
    config: FraudAlertsConfig,
    duckdb: DuckDBResource,
    model_store: ModelStore,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    days = list(context.partition_keys)
    with duckdb.get_connection() as conn:
        counts = dict(
            conn.execute(
                f"SELECT CAST(business_date AS VARCHAR), count(*) FROM {SCORES_TABLE} "
                f"WHERE {dates_filter(days)} GROUP BY 1"
            ).fetchall()
        )
        models: dict = {}
        parts = [
            alerts_for_days(conn, batch, config, model_store, models)
            for batch in day_batches(days, counts, ALERT_BATCH_ROWS)
        ]
        frames = [a for a, _ in parts if not a.empty] or [parts[0][0]]
        alerts = pd.concat(frames, ignore_index=True)
        cards = {day: figures for _, by_day in parts for day, figures in by_day.items()}
        n_cards, n_known = (sum(c[k] for c in cards.values()) for k in CARD_FIGURES)
        n = replace_partition(conn, ALERTS_TABLE, alerts, "business_date", days)
        md = table_metadata(
            conn,
            ALERTS_TABLE,
            where=dates_filter(days),
            descriptions=ALERTS_DESCRIPTIONS,
            preview_columns=ALERT_PREVIEW_COLUMNS,
            partitions=len(days),
            extra={
                "alerts": n,
                "top_k": config.top_k,
                "cards_scored": n_cards,
                "known_compromised_cards_left_out": n_known,
                "min_alert_score": float(alerts["score"].min()) if n else 0.0,
                "max_alert_score": float(alerts["score"].max()) if n else 0.0,
            },
        )
        if len(days) > 1:
            per_day = day_aggregates(conn, ALERTS_TABLE, days, DAY_FIGURES)
            for day, figures in per_day.items():
                figures.update(cards.get(day, dict.fromkeys(CARD_FIGURES, 0)))
            md = spread_over_days(
                context,
                md,
                per_day,
                [*DAY_FIGURES, *CARD_FIGURES],
                conn=conn,
                preview_columns=ALERT_PREVIEW_COLUMNS,
                every_day=["top_k"],  # the day's budget; the table's rows are the run's
            )
        yield dg.MaterializeResult(metadata=md)
        checks = alerts_checks(config.top_k)
        yield from run_checks(context, conn, ALERTS_KEY, ALERTS_TABLE, checks, business_date_partitions)
