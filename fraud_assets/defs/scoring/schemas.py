"""Column schemas of the scoring tables, declared on the asset definitions (see models/schemas.py).

`scoring.transaction_scores` is an interface: monitoring reads transaction_id, score, model_version,
business_date; `ScoresModel` is its pandera contract.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from fraud_assets.defs.features.compute import FEATURE_COLUMNS
from fraud_assets.lib.catalog_metadata import column_lineage

SCORES_COLUMNS: list[tuple[str, str]] = [
    ("transaction_id", "BIGINT"),
    ("card_token", "VARCHAR"),
    ("business_date", "DATE"),
    ("score", "DOUBLE"),
    ("model_version", "VARCHAR"),
    ("scored_at", "TIMESTAMP"),
]
SCORES_DESCRIPTIONS = {
    "transaction_id": "Transaction scored; exactly one row per transaction of the business date.",
    "card_token": "HMAC token of the card (never the PAN).",
    "business_date": "UTC business date (the partition).",
    "score": "Fraud probability from the champion model, 0..1.",
    "model_version": "Registry version that produced the score (models.model_versions).",
    "scored_at": "When the partition was scored, UTC.",
}


class ScoresModel(pa.DataFrameModel):
    """One probability per transaction, with the registry version that computed it."""

    transaction_id: Series[int] = pa.Field(unique=True, ge=0)
    card_token: Series[str]
    business_date: Series[pd.Timestamp]
    score: Series[float] = pa.Field(in_range={"min_value": 0.0, "max_value": 1.0})
    model_version: Series[str] = pa.Field(str_length={"min_value": 1})
    scored_at: Series[pd.Timestamp]

    class Config:
        strict = True
        coerce = True


# The score is the champion's function of the transaction's features (which ones is the model's
# `feature_columns`, so every feature column is a possible input); the version is the champion's.
_FEATURES = "features/transaction_features"
SCORES_LINEAGE = column_lineage(
    {
        **{c: [(_FEATURES, c)] for c in ("transaction_id", "card_token", "business_date")},
        "score": [(_FEATURES, c) for c in FEATURE_COLUMNS],
        "model_version": [("models/champion", "model_version")],
    }
)

# driver_1..driver_<n_drivers>: n_drivers is run config (default 3).
DEFAULT_N_DRIVERS = 3
ALERTS_COLUMNS: list[tuple[str, str]] = [
    ("business_date", "DATE"),
    ("alert_rank", "BIGINT"),
    ("card_token", "VARCHAR"),
    ("score", "DOUBLE"),
    ("transaction_id", "BIGINT"),
    ("tx_datetime", "TIMESTAMP"),
    ("terminal_id", "BIGINT"),
    ("tx_amount", "DOUBLE"),
    ("card_transactions_today", "BIGINT"),
    ("model_version", "VARCHAR"),
    ("drivers", "VARCHAR"),
    *[(f"driver_{j}", "VARCHAR") for j in range(1, DEFAULT_N_DRIVERS + 1)],
    ("created_at", "TIMESTAMP"),
]
ALERTS_DESCRIPTIONS = {
    "business_date": "UTC business date (the partition).",
    "alert_rank": "1 = most suspicious card of the day; at most top_k (default 100) rows per day.",
    "card_token": "HMAC token of the card to investigate (never the PAN); one row per card.",
    "score": "The card's highest transaction score of the day.",
    "transaction_id": "The card's highest-scoring transaction of the day.",
    "tx_datetime": "Time of that transaction, UTC.",
    "terminal_id": "Terminal of that transaction.",
    "tx_amount": "Amount of that transaction, EUR.",
    "card_transactions_today": "Transactions of the card on the business date.",
    "model_version": "Registry version that produced the score.",
    "drivers": "feature=value (+score drop when the feature is set to the day's median), strongest first.",
    **{
        f"driver_{j}": f"Name of the #{j} feature that drove the score (empty if fewer features raised it)."
        for j in range(1, DEFAULT_N_DRIVERS + 1)
    },
    "created_at": "When the queue was built, UTC.",
}

# scoring.shadow_scores: the challenger awaiting approval, beside the champion (never read by the alerts).
SHADOW_COLUMNS: list[tuple[str, str]] = [
    ("transaction_id", "BIGINT"),
    ("card_token", "VARCHAR"),
    ("business_date", "DATE"),
    ("score", "DOUBLE"),
    ("model_version", "VARCHAR"),
    ("champion_version", "VARCHAR"),
    ("scored_at", "TIMESTAMP"),
]
SHADOW_DESCRIPTIONS = {
    "transaction_id": "Transaction scored; one row per transaction of the day while a challenger waits.",
    "card_token": "HMAC token of the card (never the PAN).",
    "business_date": "UTC business date (the partition).",
    "score": "Fraud probability from the challenger awaiting approval, 0..1. Never in the alert queue.",
    "model_version": "The challenger (models.model_events `pending_approval`) that produced the score.",
    "champion_version": "The champion that scored the same day in scoring.transaction_scores.",
    "scored_at": "When the partition was shadow-scored, UTC.",
}
