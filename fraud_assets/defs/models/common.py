"""Shared by the models and scoring layers: asset conventions, table names, reading the training set."""

from __future__ import annotations

import hashlib

import duckdb
import pandas as pd

from fraud_assets.lib.model_selection import KEY_COLUMNS

OWNERS = ["team:fraud-data-science"]
# Bumped when training/evaluation logic changes; recorded in every registry row with library versions.
CODE_VERSION = "models-v1"

FEATURES_TABLE = "features.transaction_features"
LABELS_TABLE = "cleaned.labels"
TRAINING_SET_TABLE = "models.training_set"
# Columns of models.training_set that are not model inputs: keys, the split, the label.
TRAINING_SET_META = (
    "fold",
    "split",
    "transaction_id",
    "business_date",
    "tx_datetime",
    "card_token",
    "terminal_id",
    "label",
    "weight",
)
EVALUATION_TABLE = "models.evaluation"
EXPECTED_COST_TABLE = "models.expected_cost"

NUMERIC_TYPES = (
    "BOOLEAN",
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "FLOAT",
    "DOUBLE",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
)
# Never features, whatever the feature table grows: identifiers and anything that could carry the label.
LEAKY_NAMES = {"label", "is_fraud", "tx_fraud", "tx_fraud_scenario", "fraud", "reported_at", "chargeback_id"}


def feature_columns(
    conn: duckdb.DuckDBPyConnection, table: str = FEATURES_TABLE, exclude: tuple = ()
) -> list[str]:
    """Numeric, non-key columns of the feature table, in table order (read, not hard-coded, so new
    production features are picked up)."""
    cols = []
    for name, typ, *_ in conn.execute(f"DESCRIBE {table}").fetchall():
        t = str(typ).upper()
        if name in KEY_COLUMNS or name.endswith("_id") or name in LEAKY_NAMES or name in exclude:
            continue
        if t in NUMERIC_TYPES or t.startswith("DECIMAL"):
            cols.append(name)
    return cols


def data_hash(df: pd.DataFrame) -> str:
    """SHA-256 of a frame's content, independent of row order."""
    ordered = df.sort_values(list(df.columns[:3])).reset_index(drop=True)
    return hashlib.sha256(pd.util.hash_pandas_object(ordered, index=False).to_numpy().tobytes()).hexdigest()
