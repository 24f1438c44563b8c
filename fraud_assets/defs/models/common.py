"""Shared by the models and scoring layers: asset conventions, table names, the data hash of a query."""

from __future__ import annotations

import hashlib

import duckdb
import pandas as pd

from fraud_assets.lib.model_selection import KEY_COLUMNS
from fraud_assets.lib.tables import FEATURES_TABLE, LABELS_TABLE, TRAINING_SET_TABLE  # noqa: F401 (re-exported)

OWNERS = ["team:fraud-data-science"]
# Bumped when training/evaluation logic changes; recorded in every registry row with library versions.
CODE_VERSION = "models-v1"

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
# Candidate materialisation metadata naming who launched the training, as the training run's own process
# tells it (lib/identity.run_launcher: its `dagster/user` tag, else its FRAUD_OPERATOR or OS user): what
# four eyes compares an approver with, whichever run asks for the approval.
TRAINED_BY_KEY = "trained_by"
TRAINED_BY_HOW_KEY = "trained_by_established_by"
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


HASH_CHUNK_VECTORS = 512  # x 2048 rows: about a million rows per chunk


def data_hash(conn: duckdb.DuckDBPyConnection, sql: str) -> str:
    """SHA-256 of a query's rows in the query's order (pandas row hashes, as read by DuckDB's pandas
    conversion): read a million rows at a time, so a training set of any size hashes in bounded memory, to
    the value it would have read whole."""
    digest = hashlib.sha256()
    conn.execute(sql)
    while not (chunk := conn.fetch_df_chunk(HASH_CHUNK_VECTORS)).empty:
        digest.update(pd.util.hash_pandas_object(chunk, index=False).to_numpy().tobytes())
    return digest.hexdigest()
