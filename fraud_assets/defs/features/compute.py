"""Computing and writing features.transaction_features for a set of business dates.

For output dates K: feature_inputs.sql stages the cleaned transactions from min(K) - 37 days to max(K)
(30-day card windows, 30-day windows delayed by 7 days for terminals and merchant categories), the labels
reported before the end of max(K) (those of fraud episodes: of transactions from min(K) - 60 days) and the
reference data (each row with the card and terminal versions serving its business date) as narrow temp
tables; windows.py computes every window over them (one sort per entity,
binary-searched frame bounds, prefix sums; the window semantics are stated there); rows.py derives the
ratios and defaults. The rows of K, ordered by business date and
transaction id, are written in one transaction. A single day and a full backfill run the same code; the
backfill is just one pass over a wider range.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from fraud_assets.defs.cleaned.reference import versions_serving
from fraud_assets.defs.features import rows as derive
from fraud_assets.defs.features.windows import (
    KNOWN_FRAUD_COUNTERS,
    US_PER_DAY,
    card_windows,
    terminal_windows,
)
from fraud_assets.lib.feature_columns import BASELINE_COLUMNS, ID_COLUMNS
from fraud_assets.lib.partitions import validate_keys
from fraud_assets.lib.tables import FEATURES_TABLE
from fraud_assets.lib.warehouse import replace_partition

LABEL_DELAY_DAYS = 7
CARD_LOOKBACK_DAYS = 30
WINDOW_LOOKBACK_DAYS = 30 + LABEL_DELAY_DAYS  # the windows' read range
# A terminal's fraud episode and a card's known frauds look at the labelled transactions of 60 days: a
# terminal compromise runs for weeks, and its age tells whether it is still running when the delayed
# risk windows still light up.
EPISODE_DAYS = 60
LOOKBACK_DAYS = max(WINDOW_LOOKBACK_DAYS, EPISODE_DAYS)  # what a day's features read of the cleaned layer
SQL_PATH = Path(__file__).with_name("feature_inputs.sql")
# The temp tables a computation stages in its connection (dropped once the rows are written).
SCRATCH = (
    "feature_episodes",
    "feature_episode_labels",
    "feature_merchant_categories",
    "feature_label_events",
    "feature_labels",
    "feature_terminals",
    "feature_inputs",
    "feature_terminal_versions",
    "feature_card_versions",
    "feature_cards",
)
# The versions of the reference tables (SCD type 2) with the business dates each serves: a transaction
# reads its card's and its terminal's attributes as of its business date (point in time).
CARD_VERSIONS_SQL = versions_serving("cleaned.cards", "card_token")
TERMINAL_VERSIONS_SQL = versions_serving("cleaned.terminals", "terminal_id")
ROWS_VIEW = "feature_rows"
# Output rows computed in one pass: each pass also holds its 37-day lookback, so this bounds memory on
# large worlds (about 1 KB per row at peak); the handbook world (1.8M rows) is one pass.
OUTPUT_ROWS_PER_PASS = 5_000_000

PRODUCTION_COLUMNS = (
    "terminal_known_fraud_7d",
    "terminal_known_fraud_28d",
    "terminal_known_fraud_60d",
    "terminal_days_since_first_fraud_60d",
    "terminal_days_since_last_fraud_60d",
    "card_known_fraud_60d",
    "card_amount_ratio_30d",
    "card_amount_zscore_30d",
    "card_secs_since_prev_tx",
    "card_nb_tx_1h",
    "card_nb_tx_6h",
    "card_nb_terminals_1d",
    "card_nb_terminals_7d",
    "card_amount_ratio_max_30d",
    "card_amount_ratio_older_30d",
    "card_terminal_nb_tx_30d",
    "card_hour_band_share_30d",
    "terminal_nb_tx_14d",
    "terminal_risk_14d",
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
    "terminal_known_fraud_60d": "count of the terminal's transactions in (t - 60d, t) with a fraud label "
    "reported <= t (the terminal's known fraud episode)",
    "terminal_days_since_first_fraud_60d": "days to t from the earliest of the terminal's transactions in "
    "(t - 60d, t) with a fraud label reported <= t (60 if none): how long a known compromise of the terminal "
    "has been running",
    "terminal_days_since_last_fraud_60d": "days to t from the latest of the terminal's transactions in "
    "(t - 60d, t) with a fraud label reported <= t (60 if none)",
    "card_known_fraud_60d": "count of the card's transactions in (t - 60d, t) with a fraud label reported "
    "<= t",
    "card_amount_ratio_30d": "amount / mean amount of the card's other transactions in (t-30d, t]; 1 if none",
    "card_amount_zscore_30d": "(amount - mean) / sample std of the card's other transactions in (t-30d, t]; "
    "0 if fewer than 2 or constant",
    "card_secs_since_prev_tx": "seconds since the card's latest transaction strictly before t, if within 30 "
    "days (a gap of exactly 30 days included); 30 days if none",
    "card_nb_terminals_1d": "distinct terminals among " + _W.format(w="1d"),
    "card_nb_terminals_7d": "distinct terminals among " + _W.format(w="7d"),
    "card_amount_ratio_max_30d": "amount / largest amount of the card's transactions in (t-30d, t) (strictly "
    "before t); 1 if none",
    "card_amount_ratio_older_30d": "amount / mean amount of the card's transactions in (t-30d, t-7d]; "
    "1 if none",
    "card_terminal_nb_tx_30d": "count of " + _W.format(w="30d") + " at this terminal (1: first visit in 30d)",
    "card_hour_band_share_30d": "share of "
    + _W.format(w="30d")
    + " whose local hour is in the current one's 4-hour band (0-3, 4-7, ..., 20-23)",
    "terminal_nb_tx_14d": "count of " + _D.format(w="14d"),
    "terminal_risk_14d": "share of " + _D.format(w="14d") + " with a fraud label reported <= t (0 if none)",
    "dist_home_terminal": "euclidean distance cardholder home - terminal (grid units), both as of the "
    "business date",
    "dist_prev_terminal": "distance from the terminal of the card's previous transaction, each where it was "
    "on its own business date (0 if none in 30d)",
    "mcc_nb_tx_30d": "count of the merchant category's (the terminal's as of D) transactions of the 30 UTC "
    "business days [D - 37, D - 8], D = the row's business date (a daily snapshot)",
    "mcc_risk_30d": "share of the merchant category's transactions of the 30 UTC business days "
    "[D - 37, D - 8] (the ones mcc_nb_tx_30d counts) with a fraud label reported before D 00:00 (0 if none)",
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


def render_sql(partition_keys: Sequence[str]) -> str:
    """The statements that stage the windows' inputs for these output business dates (temp tables)."""
    dates = validate_keys(partition_keys)
    first, last = dates[0], dates[-1]
    read_from = first - dt.timedelta(days=WINDOW_LOOKBACK_DAYS)
    episode_from = first - dt.timedelta(days=EPISODE_DAYS)
    card_from = first - dt.timedelta(days=CARD_LOOKBACK_DAYS)
    out_to = last + dt.timedelta(days=1)
    return SQL_PATH.read_text().format(
        read_from_date=read_from.isoformat(),
        read_from=f"{read_from.isoformat()} 00:00:00",
        episode_from_date=episode_from.isoformat(),
        episode_from=f"{episode_from.isoformat()} 00:00:00",
        episode_us=EPISODE_DAYS * US_PER_DAY,
        card_from=f"{card_from.isoformat()} 00:00:00",
        out_from=f"{first.isoformat()} 00:00:00",
        out_to=f"{out_to.isoformat()} 00:00:00",
        out_last_date=last.isoformat(),
        output_dates=", ".join(f"DATE '{d.isoformat()}'" for d in dates),
        card_versions=CARD_VERSIONS_SQL,
        terminal_versions=TERMINAL_VERSIONS_SQL,
    )


def _arrays(conn: duckdb.DuckDBPyConnection, sql: str) -> dict[str, np.ndarray]:
    table = conn.sql(sql).to_arrow_table()
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}


def _in_card_order(tx: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The staged transactions in the card windows' order (card, time, transaction id). feature_inputs is
    written in that order, but a scan returns insertion order only while DuckDB's preserve_insertion_order
    is on (the default; a deployment may turn it off to save memory): checked in one pass, sorted if not."""
    card, us, tid = (tx[c].astype(np.int64) for c in ("card_id", "us", "transaction_id"))
    d_card, d_us, d_id = np.diff(card), np.diff(us), np.diff(tid)
    if ((d_card > 0) | ((d_card == 0) & ((d_us > 0) | ((d_us == 0) & (d_id > 0))))).all():
        return tx
    order = np.lexsort((tid, us, card))
    return {name: values[order] for name, values in tx.items()}


def feature_table(conn: duckdb.DuckDBPyConnection, partition_keys: Sequence[str]) -> pa.Table:
    """The feature rows of these business dates in table column order, ordered by business date and
    transaction id (so the table is stored day by day and a day's reads skip the other days)."""
    dates = validate_keys(partition_keys)
    conn.execute(render_sql(partition_keys))
    tx = _in_card_order(_arrays(conn, "SELECT * FROM feature_inputs"))
    events = _arrays(conn, "SELECT * FROM feature_label_events")
    cards = _arrays(conn, "SELECT * FROM feature_cards ORDER BY card_id")
    terminals = _arrays(conn, "SELECT * FROM feature_terminals ORDER BY terminal_id")
    # A row's card and terminal attributes: its version's (-1, the extra last entry: none serves its date)
    card_versions = _arrays(conn, "SELECT home_x, home_y FROM feature_card_versions ORDER BY card_version")
    terminal_versions = _arrays(
        conn, "SELECT x, y, mcc FROM feature_terminal_versions ORDER BY terminal_version"
    )
    categories = _arrays(conn, "SELECT * FROM feature_merchant_categories")
    episodes = _arrays(conn, "SELECT * FROM feature_episodes ORDER BY transaction_id")

    us, card = tx["us"].astype(np.int64), tx["card_id"].astype(np.int64)
    terminal_ids, terminal = np.unique(tx["terminal_id"].astype(np.int64), return_inverse=True)
    if not np.array_equal(terminal_ids, terminals["terminal_id"]):
        raise RuntimeError("transaction_features: staged terminals differ from the transactions' terminals")
    # Windows of the output rows only (the rest of the read range is their history), ordered by business
    # date and transaction id.
    output = np.flatnonzero(tx["is_output"].astype(bool))
    day = tx["business_date"].astype("datetime64[D]").astype(np.int64)[output]
    order = np.lexsort((tx["transaction_id"][output], day))
    rows, day = output[order], day[order]
    # The card and terminal windows share no state and numpy releases the GIL in their sorts, searches
    # and scans: on two threads they take the time of the longer one.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="feature-windows") as pool:
        card_job = pool.submit(
            card_windows, card, us, tx["tx_amount"].astype(np.float64), terminal, tx["local_hour"], output
        )
        terminal_job = pool.submit(
            terminal_windows,
            terminal,
            us,
            np.searchsorted(terminal_ids, events["terminal_id"].astype(np.int64)),
            events["us"].astype(np.int64),
            {c: events[c].astype(np.int64) for c in KNOWN_FRAUD_COUNTERS},
            rows,
        )
        at = {name: values[order] for name, values in card_job.result().items()}
        at |= terminal_job.result()
    amount = tx["tx_amount"].astype(np.float64)[rows]
    term, card_of = terminal[rows], card[rows]
    tv, cv = tx["terminal_version"].astype(np.int64), tx["card_version"].astype(np.int64)
    x = np.append(terminal_versions["x"].astype(np.float64), np.nan)[tv]  # per staged row
    y = np.append(terminal_versions["y"].astype(np.float64), np.nan)[tv]
    home_x = np.append(card_versions["home_x"].astype(np.float64), np.nan)[cv[rows]]
    home_y = np.append(card_versions["home_y"].astype(np.float64), np.nan)[cv[rows]]
    prev = np.maximum(at["prev_row"], 0)

    # Merchant-category snapshot of each row's day and category (its terminal's as of its date).
    mcc_names, mcc_of_version = np.unique(
        np.append(terminal_versions["mcc"].astype(str), "unknown"), return_inverse=True
    )
    first_day = np.datetime64(dates[0], "D").astype(np.int64)
    n_days = (dates[-1] - dates[0]).days + 1
    snapshot = np.zeros((2, n_days, len(mcc_names)), dtype=np.int64)
    if len(categories["mcc"]):
        cat_day = categories["business_date"].astype("datetime64[D]").astype(np.int64) - first_day
        cat_mcc = np.searchsorted(mcc_names, categories["mcc"].astype(str))
        snapshot[0, cat_day, cat_mcc] = categories["mcc_nb_tx_30d"]
        snapshot[1, cat_day, cat_mcc] = categories["mcc_known_fraud_30d"]
    mcc_nb, mcc_known = snapshot[:, day - first_day, mcc_of_version[tv[rows]]]

    values: dict[str, np.ndarray] = {
        "tx_amount": amount,
        **derive.flags(tx["flags"].astype(np.int64)[rows]),
        **{f"card_nb_tx_{w}": at[f"card_nb_tx_{w}"] for w in ("1h", "6h", "1d", "7d", "30d")},
        **{f"card_avg_amount_{w}": at[f"card_sum_{w}"] / at[f"card_nb_tx_{w}"] for w in ("1d", "7d", "30d")},
        **{f"terminal_nb_tx_{w}": at[f"terminal_nb_tx_{w}"] for w in ("1d", "7d", "30d")},
        **{
            f"terminal_risk_{w}": derive.share(at[f"known_delayed_{w}"], at[f"terminal_nb_tx_{w}"])
            for w in ("1d", "7d", "30d")
        },
        "terminal_known_fraud_7d": at["known_recent_7d"],
        "terminal_known_fraud_28d": at["known_recent_28d"],
        **derive.episodes(tx["transaction_id"][rows], us[rows], episodes, EPISODE_DAYS * US_PER_DAY),
        **derive.card_amount_stats(amount, at["card_nb_tx_30d"], at["card_sum_30d"], at["card_sumsq_30d"]),
        **derive.previous_transaction(at["prev_gap_us"], x[rows], y[rows], x[prev], y[prev]),
        "card_nb_terminals_1d": at["card_nb_terminals_1d"],
        "card_nb_terminals_7d": at["card_nb_terminals_7d"],
        "card_amount_ratio_max_30d": derive.ratio_to(amount, at["card_max_amount_before_30d"]),
        "card_amount_ratio_older_30d": derive.ratio_to(
            amount, derive.mean_or_nan(at["card_sum_older"], at["card_nb_tx_older"])
        ),
        "card_terminal_nb_tx_30d": at["card_terminal_nb_tx_30d"],
        "card_hour_band_share_30d": at["card_hour_band_nb_tx_30d"] / at["card_nb_tx_30d"],
        "terminal_nb_tx_14d": at["terminal_nb_tx_14d"],
        "terminal_risk_14d": derive.share(at["known_delayed_14d"], at["terminal_nb_tx_14d"]),
        "dist_home_terminal": np.hypot(home_x - x[rows], home_y - y[rows]),
        "mcc_nb_tx_30d": mcc_nb,
        "mcc_risk_30d": derive.share(mcc_known, mcc_nb),
    }
    ids = {
        "transaction_id": pa.array(tx["transaction_id"][rows]),
        "business_date": pa.array(tx["business_date"].astype("datetime64[D]")[rows]),
        "tx_datetime": pa.array(us[rows], type=pa.timestamp("us")),
        "card_token": pa.DictionaryArray.from_arrays(
            pa.array(card_of.astype(np.int32)), pa.array(cards["card_token"].astype(str))
        ),
        "terminal_id": pa.array(terminal_ids[term]),
    }
    # typed as the table's columns; NaN stands for NULL (a card or terminal missing from the reference data)
    columns = [ids[c] if c in ids else pa.array(values[c], from_pandas=True) for c, _ in COLUMNS]
    return pa.Table.from_arrays(columns, names=[c for c, _ in COLUMNS])


def drop_scratch(conn: duckdb.DuckDBPyConnection) -> None:
    for name in SCRATCH:
        conn.execute(f"DROP TABLE IF EXISTS {name}")


def compute_features(conn: duckdb.DuckDBPyConnection, partition_keys: Sequence[str]) -> pd.DataFrame:
    """The features of these business dates as a DataFrame, nothing written (tests, notebooks)."""
    try:
        table = feature_table(conn, partition_keys)
    finally:
        drop_scratch(conn)
    conn.register(ROWS_VIEW, table)
    try:
        return conn.execute(f"SELECT {_typed_columns()} FROM {ROWS_VIEW} ORDER BY transaction_id").df()
    finally:
        conn.unregister(ROWS_VIEW)


def _typed_columns() -> str:
    return ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in COLUMNS)


def passes(
    conn: duckdb.DuckDBPyConnection, partition_keys: Sequence[str], max_output_rows: int
) -> list[list[str]]:
    """The business dates split into runs of consecutive dates with at most `max_output_rows` output rows
    each (a single day may exceed it): memory stays bounded by one pass's lookback plus its output."""
    dates = validate_keys(partition_keys)
    counts = dict(
        conn.execute(
            "SELECT business_date, count(*) FROM cleaned.transactions "
            f"WHERE business_date BETWEEN DATE '{dates[0]}' AND DATE '{dates[-1]}' GROUP BY ALL"
        ).fetchall()
    )
    chunks: list[list[str]] = [[]]
    rows = 0
    for d in dates:
        n = counts.get(d, 0)
        if chunks[-1] and rows + n > max_output_rows:
            chunks.append([])
            rows = 0
        chunks[-1].append(d.isoformat())
        rows += n
    return chunks


def write_features(
    conn: duckdb.DuckDBPyConnection,
    partition_keys: Sequence[str],
    max_output_rows: int = OUTPUT_ROWS_PER_PASS,
) -> int:
    """Compute and atomically replace the partitions `partition_keys` (and their Parquet exports) with
    the shared `warehouse.replace_partition`, in passes of at most `max_output_rows` output rows (one pass
    at the handbook's size; each pass is one transaction). Returns rows written."""
    written = 0
    for keys in passes(conn, partition_keys, max_output_rows):
        try:
            table = feature_table(conn, keys)
        finally:
            drop_scratch(conn)
        written += replace_partition(conn, FEATURES_TABLE, table, "business_date", keys)
        del table
    return written
