"""Computing and writing features.transaction_features for a set of business dates.

The heavy lifting is one SQL statement (transaction_features.sql, window semantics documented there).
For output dates K it reads cleaned transactions from min(K) - 37 days to max(K) (30-day card windows,
30-day windows delayed by 7 days for terminals and merchant categories) and the labels reported before
the end of max(K), and writes exactly the partitions K in one transaction. A single day and a full
backfill run the same statement; the backfill is just one pass over a wider range.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pandas as pd

from fraud_assets.lib.warehouse import replace_partition

TABLE = "features.transaction_features"
LABEL_DELAY_DAYS = 7
CARD_LOOKBACK_DAYS = 30
LOOKBACK_DAYS = 30 + LABEL_DELAY_DAYS
SQL_PATH = Path(__file__).with_name("transaction_features.sql")

ID_COLUMNS = ("transaction_id", "business_date", "tx_datetime", "card_token", "terminal_id")
BASELINE_COLUMNS = (
    "tx_amount",
    "is_weekend",
    "is_night",
    "card_nb_tx_1d",
    "card_avg_amount_1d",
    "card_nb_tx_7d",
    "card_avg_amount_7d",
    "card_nb_tx_30d",
    "card_avg_amount_30d",
    "terminal_nb_tx_1d",
    "terminal_risk_1d",
    "terminal_nb_tx_7d",
    "terminal_risk_7d",
    "terminal_nb_tx_30d",
    "terminal_risk_30d",
)
PRODUCTION_COLUMNS = (
    "terminal_known_fraud_7d",
    "terminal_known_fraud_28d",
    "card_amount_ratio_30d",
    "card_amount_zscore_30d",
    "card_secs_since_prev_tx",
    "card_nb_tx_1h",
    "card_nb_tx_6h",
    "card_nb_terminals_1d",
    "card_nb_terminals_7d",
    "dist_home_terminal",
    "dist_prev_terminal",
    "mcc_nb_tx_30d",
    "mcc_risk_30d",
    "is_ecommerce",
    "three_ds_failed",
    "ecommerce_without_3ds",
)
FEATURE_COLUMNS = BASELINE_COLUMNS + PRODUCTION_COLUMNS
COUNT_COLUMNS = tuple(c for c in FEATURE_COLUMNS if "_nb_" in c or "_known_fraud_" in c)
_KEY_TYPES = {
    "transaction_id": "BIGINT",
    "business_date": "DATE",
    "tx_datetime": "TIMESTAMP",
    "card_token": "VARCHAR",
    "terminal_id": "BIGINT",
}
FLAG_COLUMNS = ("is_weekend", "is_night", "is_ecommerce", "three_ds_failed", "ecommerce_without_3ds")

_W = "the card's transactions in (t - {w}, t], current one included"
_D = "the terminal's transactions in (t - 7d - {w}, t - 7d]"
COLUMN_DESCRIPTIONS: dict[str, str] = {
    "transaction_id": "cleaned.transactions id (one row per transaction)",
    "business_date": "UTC business date (partition)",
    "tx_datetime": "transaction time t, UTC",
    "card_token": "HMAC token of the card",
    "terminal_id": "terminal id",
    "tx_amount": "amount in EUR",
    "is_weekend": "1 if Saturday or Sunday in the terminal's local time",
    "is_night": "1 if local hour <= 6",
    **{f"card_nb_tx_{w}": "count of " + _W.format(w=w) for w in ("1d", "7d", "30d", "1h", "6h")},
    **{f"card_avg_amount_{w}": "mean amount of " + _W.format(w=w) for w in ("1d", "7d", "30d")},
    **{f"terminal_nb_tx_{w}": "count of " + _D.format(w=w) for w in ("1d", "7d", "30d")},
    **{
        f"terminal_risk_{w}": "share of " + _D.format(w=w) + " with a fraud label reported <= t (0 if none)"
        for w in ("1d", "7d", "30d")
    },
    **{
        f"terminal_known_fraud_{w}": f"count of the terminal's transactions in (t - {w}, t) with a fraud"
        " label reported <= t (undelayed: every label known at t)"
        for w in ("7d", "28d")
    },
    "card_amount_ratio_30d": "amount / mean amount of the card's other transactions in (t-30d, t]; 1 if none",
    "card_amount_zscore_30d": "(amount - mean) / sample std of the card's other transactions in (t-30d, t]; "
    "0 if fewer than 2 or constant",
    "card_secs_since_prev_tx": "seconds since the card's previous transaction, capped at 30 days",
    "card_nb_terminals_1d": "distinct terminals among " + _W.format(w="1d"),
    "card_nb_terminals_7d": "distinct terminals among " + _W.format(w="7d"),
    "dist_home_terminal": "euclidean distance cardholder home - terminal (grid units)",
    "dist_prev_terminal": "distance from the terminal of the card's previous transaction (0 if none in 30d)",
    "mcc_nb_tx_30d": "count of the merchant category's transactions in (t - 37d, t - 7d]",
    "mcc_risk_30d": "share of those with a fraud label reported <= t (0 if none)",
    "is_ecommerce": "1 if channel = ecommerce",
    "three_ds_failed": "1 if the 3-D Secure outcome is N (failed)",
    "ecommerce_without_3ds": "1 if ecommerce and 3-D Secure is U or missing",
}


# The table's columns in table order, with their DuckDB types (definition-time column schema; the
# asset test checks them against a materialised table).
COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (
        c,
        _KEY_TYPES[c]
        if c in _KEY_TYPES
        else "INTEGER"
        if c in FLAG_COLUMNS
        else "BIGINT"
        if c in COUNT_COLUMNS
        else "DOUBLE",
    )
    for c in ID_COLUMNS + FEATURE_COLUMNS
)


def validate_keys(partition_keys: Sequence[str]) -> list[dt.date]:
    """Partition keys as dates; raises on anything that is not YYYY-MM-DD (keys reach SQL text)."""
    if not partition_keys:
        raise ValueError("no partition keys to compute")
    return sorted({dt.date.fromisoformat(k) for k in partition_keys})


def render_sql(partition_keys: Sequence[str]) -> str:
    """The feature SELECT for these output business dates, with its read range filled in."""
    dates = validate_keys(partition_keys)
    first, last = dates[0], dates[-1]
    read_from = first - dt.timedelta(days=LOOKBACK_DAYS)
    card_from = first - dt.timedelta(days=CARD_LOOKBACK_DAYS)
    out_to = last + dt.timedelta(days=1)
    return SQL_PATH.read_text().format(
        read_from_date=read_from.isoformat(),
        read_from=f"{read_from.isoformat()} 00:00:00",
        card_from=f"{card_from.isoformat()} 00:00:00",
        out_from=f"{first.isoformat()} 00:00:00",
        out_to=f"{out_to.isoformat()} 00:00:00",
        out_last_date=last.isoformat(),
        output_dates=", ".join(f"DATE '{d.isoformat()}'" for d in dates),
    )


def compute_features(conn: duckdb.DuckDBPyConnection, partition_keys: Sequence[str]) -> pd.DataFrame:
    """The features of these business dates as a DataFrame, nothing written (tests, notebooks)."""
    return conn.execute(render_sql(partition_keys) + " ORDER BY transaction_id").df()


def write_features(conn: duckdb.DuckDBPyConnection, partition_keys: Sequence[str]) -> int:
    """Compute and atomically replace the partitions `partition_keys` (and their Parquet exports) with
    the shared `warehouse.replace_partition`. Returns rows written."""
    keys = [d.isoformat() for d in validate_keys(partition_keys)]
    return replace_partition(conn, TABLE, render_sql(keys), "business_date", keys)
