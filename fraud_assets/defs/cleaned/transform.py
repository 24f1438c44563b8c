"""Cleaning authorisations in DuckDB: raw rows as received -> typed EUR/UTC transactions + quarantine.

The rules are SQL over the staged raw rows (clean_transactions.sql, read top to bottom); Python only
masks the few distinct offending values of quarantined rows. Rules, in the order they are applied (a
row gets the FIRST reason that applies):
  malformed_line, invalid_transaction_id, invalid_pan, missing_terminal_id, unknown_terminal,
  invalid_amount, negative_amount, unknown_currency, invalid_timestamp, future_timestamp,
  outside_business_date, invalid_channel, invalid_three_ds, invalid_message_type,
  missing_original_transaction_id.
Then among the valid rows, per `transaction_id` the most recently landed version is kept (latest
landing date, file, row): copies identical to it in every parsed field are exact retransmissions
(`duplicates_removed`); copies that differ are older versions a corrected file replaced (quarantined
`superseded_by_correction`).
Reversal rule: a valid reversal whose `original_transaction_id` is a kept authorisation of the same
card, amount and currency, of its business date or of the REVERSAL_LOOKBACK_DAYS before it, removes both
rows (`reversal_rows` counts each on its own date); a reversal without such an authorisation is
quarantined `orphan_reversal`. A day whose cleaning a reversal landed later changes is restated
(`restated_days`).
Hence per partition: raw rows = cleaned + quarantined + duplicates_removed + reversal_rows.

Ids and amounts are ASCII digits only. Amounts: a zero amount is genuine (account verification);
acq_b is in minor units (ISO 4217 exponent); acq_a tolerates a comma decimal. Timestamps: acq_a is ISO
UTC; acq_b is `DD/MM/YYYY HH:MM:SS` in the terminal's local time, read through its IANA zone (an
ambiguous autumn hour is its first, summer-time, occurrence; a time in the spring gap is shifted
forward by the gap); a leap second `:60` is read as `:59`. EUR amount = amount / rate of the business
date, or of the latest day before it with a rate, at most FX_MAX_AGE_DAYS earlier (EUR: rate 1).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from fraud_assets.defs.cleaned.reference import changed_spans_sql, versions_serving
from fraud_assets.defs.raw.schemas import COLUMNS as RAW_COLUMNS
from fraud_assets.lib.pan import mask_pans
from fraud_assets.lib.partitions import dates_filter
from fraud_assets.lib.settings import REPORTING_CURRENCY
from fraud_assets.lib.warehouse import sql_string, table_exists

# A business date without a reference rate (weekend, holiday) converts with the latest rate published
# before it, at most this many days old: Good Friday to Easter Monday is 4 (Thursday's rate on Monday).
FX_MAX_AGE_DAYS = 4
# A reversal may land on a later business date than its authorisation, at most this many days later: an
# authorisation just before midnight UTC is reversed minutes later, on the next date. Real traffic needs
# no more; each extra day widens the rows read around every chunk and the days a landing restates.
REVERSAL_LOOKBACK_DAYS = 1
# An amount of 10^12 or more, in its currency or in EUR, is `invalid_amount`: beyond any card payment,
# and a number with 13 integral digits can print as a card number to the blocking `no_clear_pan` checks,
# which read number columns by their integral part ("9" x 23 has none, its double 99999999999999991611392
# has one): one such row would block the day's features and scores.
MAX_AMOUNT = 1e12

# Every quarantine reason (rule order, then the dedup and reversal outcomes) and the column whose value
# as received it shows in `offending_value`.
OFFENDING_COLUMN = {
    "malformed_line": "raw_line",
    "invalid_transaction_id": "transaction_id",
    "invalid_pan": "pan",
    "missing_terminal_id": "terminal_id",
    "unknown_terminal": "terminal_id",
    "invalid_amount": "amount",
    "negative_amount": "amount",
    "unknown_currency": "currency",
    "invalid_timestamp": "tx_datetime",
    "future_timestamp": "tx_datetime",
    "outside_business_date": "tx_datetime",
    "invalid_channel": "channel",
    "invalid_three_ds": "three_ds",
    "invalid_message_type": "message_type",
    "missing_original_transaction_id": "original_transaction_id",
    "superseded_by_correction": "transaction_id",
    "orphan_reversal": "original_transaction_id",
}
REASONS = tuple(OFFENDING_COLUMN)

TRANSACTION_COLUMNS = [
    ("transaction_id", "BIGINT"),
    ("business_date", "DATE"),
    ("tx_datetime", "TIMESTAMP"),
    ("tx_datetime_local", "TIMESTAMP"),
    ("card_token", "VARCHAR"),
    ("pan_bin", "VARCHAR"),
    ("pan_last4", "VARCHAR"),
    ("terminal_id", "BIGINT"),
    ("tx_amount", "DOUBLE"),
    ("amount_original", "DOUBLE"),
    ("currency", "VARCHAR"),
    ("fx_rate", "DOUBLE"),
    ("channel", "VARCHAR"),
    ("three_ds", "VARCHAR"),
    ("feed", "VARCHAR"),
    ("source_file", "VARCHAR"),
    ("row_number", "BIGINT"),
]
QUARANTINE_COLUMNS = [
    ("business_date", "DATE"),
    ("source", "VARCHAR"),
    ("feed", "VARCHAR"),
    ("source_file", "VARCHAR"),
    ("row_number", "BIGINT"),
    ("transaction_id", "BIGINT"),
    ("reason", "VARCHAR"),
    ("offending_column", "VARCHAR"),
    ("offending_value", "VARCHAR"),
    ("quarantined_at", "TIMESTAMP"),
]
# What the rules read of cleaned.terminals.
TERMINAL_RULE_COLUMNS = [
    ("terminal_id", "BIGINT"),
    ("timezone", "VARCHAR"),
    ("valid_from", "DATE"),
    ("valid_to", "DATE"),
]
RECONCILIATION_COLUMNS = [
    ("business_date", "DATE"),
    ("raw_rows", "BIGINT"),
    ("cleaned_rows", "BIGINT"),
    ("quarantined_rows", "BIGINT"),
    ("duplicates_removed", "BIGINT"),
    ("reversal_rows", "BIGINT"),
]

VALUE_MACROS_SQL = Path(__file__).with_name("value_macros.sql").read_text()
# cleaned.terminals' versions with the business dates each serves (as of the day a row belongs to).
TERMINAL_VERSIONS_SQL = versions_serving("cleaned.terminals", "terminal_id")


def previous(name: str) -> str:
    """The temp table holding cleaned.`name` as it was before a rebuild (`keep_previous`)."""
    return f"_{name}_before"


JUDGE_SQL = Path(__file__).with_name("clean_transactions.sql").read_text()
# The three tables a cleaning run writes.
TX, QUAR, RECON = "cleaned.transactions", "cleaned.quarantine", "cleaned.reconciliation"


def typed_select(columns: list[tuple[str, str]], source: str) -> str:
    """SELECT of `columns` from `source`, each cast to its documented type (also when no row comes)."""
    return "SELECT " + ", ".join(f'CAST("{c}" AS {t}) AS "{c}"' for c, t in columns) + f" FROM ({source})"


# The three tables' rows of the staged chunk (`judge` must have run on the same connection).
TRANSACTIONS_SQL = typed_select(
    TRANSACTION_COLUMNS,
    """SELECT _tx_id AS transaction_id, business_date, _utc AS tx_datetime, _local AS tx_datetime_local,
       card_token, pan_bin, pan_last4, _terminal_id AS terminal_id, _amount / _rate AS tx_amount,
       _amount AS amount_original, _currency AS currency, _rate AS fx_rate, _channel AS channel,
       _three_ds AS three_ds, feed, source_file, row_number
    FROM _verdicts WHERE _outcome = 'cleaned'""",
)
_OFFENDING_COLUMN_SQL = (
    "CASE v._reason " + " ".join(f"WHEN '{r}' THEN '{c}'" for r, c in OFFENDING_COLUMN.items()) + " END"
)
QUARANTINE_SQL = typed_select(
    QUARANTINE_COLUMNS,
    f"""SELECT v.business_date, 'authorizations' AS source, v.feed, v.source_file, v.row_number,
       v._tx_id AS transaction_id, v._reason AS reason, {_OFFENDING_COLUMN_SQL} AS offending_column,
       m.masked AS offending_value, v.ingested_at AS quarantined_at
    FROM _verdicts v LEFT JOIN _masked_values m ON m.value = v._offending_value
    WHERE v._outcome = 'quarantined' ORDER BY v.source_file, v.row_number""",
)
# A date of the chunk without rows still gets its all-zero row: "checked, nothing landed".
RECONCILIATION_SQL = typed_select(
    RECONCILIATION_COLUMNS,
    """SELECT d.business_date, count(v._outcome) AS raw_rows,
       count(*) FILTER (WHERE v._outcome = 'cleaned') AS cleaned_rows,
       count(*) FILTER (WHERE v._outcome = 'quarantined') AS quarantined_rows,
       count(*) FILTER (WHERE v._outcome = 'duplicate') AS duplicates_removed,
       count(*) FILTER (WHERE v._outcome = 'reversal') AS reversal_rows
    FROM _chunk_dates d LEFT JOIN _verdicts v USING (business_date)
    GROUP BY d.business_date ORDER BY d.business_date""",
)
REASON_COUNTS_SQL = (
    "SELECT _reason, count(*) FROM _verdicts WHERE _outcome = 'quarantined' GROUP BY 1 ORDER BY 1"
)


# Business dates already cleaned whose verdicts the reference tables as they are now would change: the
# rows of a day are judged against the FX rates and terminals known when it was cleaned, and a rate or
# terminal that lands later (a reference rate is published in the afternoon, a new terminal's first
# transactions can come before the merchants snapshot that lists it) or is corrected restates the day.
# Read by cleaned/fx_rates and cleaned/terminals after each rebuild; the restatement sensor re-cleans.
_CLEANED_DAYS = f"SELECT DISTINCT business_date FROM {RECON}"
RESTATED_BY_FX_SQL = f"""
WITH rates_now AS (
    SELECT d.business_date, fx.quote_currency AS currency, arg_max(fx.rate, fx.rate_date) AS rate
    FROM ({_CLEANED_DAYS}) d JOIN cleaned.fx_rates fx ON fx.rate_date <= d.business_date
        AND fx.rate_date >= d.business_date - CAST($max_age AS INTEGER)
    GROUP BY ALL
),
converted AS (
    SELECT DISTINCT business_date, currency, fx_rate FROM cleaned.transactions WHERE currency <> $reporting
),
unconverted AS (
    SELECT DISTINCT business_date, upper(_text(offending_value)) AS currency
    FROM cleaned.quarantine WHERE reason = 'unknown_currency'
)
SELECT c.business_date FROM converted c LEFT JOIN rates_now n USING (business_date, currency)
WHERE n.rate IS DISTINCT FROM c.fx_rate
UNION
SELECT business_date FROM unconverted JOIN rates_now USING (business_date, currency)
ORDER BY 1"""
RESTATED_BY_TERMINALS_SQL = f"""
SELECT DISTINCT q.business_date FROM cleaned.quarantine q JOIN ({TERMINAL_VERSIONS_SQL}) t
    ON t.terminal_id = _id(q.offending_value)
    AND q.business_date >= t._serves_from AND q.business_date < t._serves_to
WHERE q.reason = 'unknown_terminal'
ORDER BY 1"""
# The days already cleaned that a new version of cleaned.terminals (against `_terminals_before`, the table
# before the rebuild) serves differently: the spans of business dates where a terminal's zone, or whether
# any version serves the day, is not what it was (a snapshot dated S that moves a terminal to another zone
# changes the days >= S, not the earlier ones), and of those, the cleaned days that have rows on it.
RESTATED_BY_TERMINAL_CHANGES_SQL = f"""
WITH differing AS ({changed_spans_sql(previous("terminals"), "cleaned.terminals", "terminal_id", "timezone")})
SELECT DISTINCT r.business_date FROM raw.authorizations r
JOIN differing d ON d.terminal_id = _id(r.terminal_id)
    AND r.business_date >= d.span_from AND r.business_date < d.span_to
WHERE r.business_date IN ({_CLEANED_DAYS})
ORDER BY 1"""


def keep_previous(conn: duckdb.DuckDBPyConnection, name: str) -> None:
    """Keep cleaned.`name` (a versioned reference table) as it is now, before a rebuild, in the temp table
    `previous(name)`, for what the rebuild changed (`restated_days`, the features' reference changes); a
    table from before versions is one version per key. Nothing is kept before the first build."""
    conn.execute(f"DROP TABLE IF EXISTS {previous(name)}")
    table = f"cleaned.{name}"
    if not table_exists(conn, table):
        return
    names = {
        c
        for (c,) in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'cleaned' "
            "AND table_name = ?",
            [name],
        ).fetchall()
    }
    versions = "" if "valid_from" in names else ", NULL::DATE AS valid_from, NULL::DATE AS valid_to"
    conn.execute(f"CREATE TEMP TABLE {previous(name)} AS SELECT *{versions} FROM {table}")


def has_previous(conn: duckdb.DuckDBPyConnection, name: str) -> bool:
    sql = "SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = ?"
    return bool(conn.execute(sql, [previous(name)]).fetchone()[0])


# Days around the chunk (not in it) whose stored cleaning its reversal links change: a row that is now half
# of a matched pair but still stored, as a genuine transaction (its reversal landed on the next date after
# its day was cleaned) or as an `orphan_reversal` (its authorisation's day landed after it).
RESTATED_BY_REVERSALS_SQL = """
SELECT DISTINCT n.business_date FROM _neighbour_verdicts n
SEMI JOIN (
    SELECT business_date, source_file, row_number FROM {tx} WHERE {days}
    UNION ALL SELECT business_date, source_file, row_number FROM {quar} WHERE {days}
) stored USING (business_date, source_file, row_number)
WHERE n._outcome = 'reversal'
ORDER BY 1"""


def restated_by_reversals(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """The days around the chunk `judge` staged whose stored cleaning its reversal links change (empty
    before the first cleaning)."""
    linked = conn.execute(
        "SELECT DISTINCT CAST(business_date AS VARCHAR) FROM _neighbour_verdicts WHERE _outcome = 'reversal'"
    ).fetchall()
    if not linked or not all(table_exists(conn, t) for t in (TX, QUAR)):
        return []
    days = dates_filter(sorted(d for (d,) in linked))  # only those days' rows of the stored tables
    sql = RESTATED_BY_REVERSALS_SQL.format(tx=TX, quar=QUAR, days=days)
    return [str(day) for (day,) in conn.execute(sql).fetchall()]


def restated_days(conn: duckdb.DuckDBPyConnection, reference: str) -> list[str]:
    """The cleaned business dates whose cleaning `reference` (`fx_rates` or `terminals`, as the table is
    now) would change: a day converted with another rate than it would get now, a day that quarantined
    `unknown_currency` rows of a currency that has a rate now, or `unknown_terminal` rows of a terminal
    that has a version serving the day now; with the table before the rebuild (`keep_previous`), also a
    day with rows on a terminal whose zone or existence on that day the rebuild changed. Empty before the
    first cleaning."""
    if not all(table_exists(conn, t) for t in (TX, QUAR, RECON)):
        return []
    conn.execute(VALUE_MACROS_SQL)  # the offending values are read as the cleaning read them
    if reference == "fx_rates":
        rows = conn.execute(
            RESTATED_BY_FX_SQL, {"max_age": FX_MAX_AGE_DAYS, "reporting": REPORTING_CURRENCY}
        ).fetchall()
    elif reference == "terminals":
        rows = conn.execute(RESTATED_BY_TERMINALS_SQL).fetchall()
        if has_previous(conn, "terminals"):
            rows = sorted(set(rows) | set(conn.execute(RESTATED_BY_TERMINAL_CHANGES_SQL).fetchall()))
    else:
        raise ValueError(f"no cleaning rule reads {reference!r}")
    return [str(day) for (day,) in rows]


def _date_literals(keys: Sequence[str]) -> str:
    """Partition keys as DATE literals (validated as dates: they become SQL text)."""
    return ", ".join(f"DATE {sql_string(dt.date.fromisoformat(str(k)).isoformat())}" for k in keys)


def judge(conn: duckdb.DuckDBPyConnection, keys: Sequence[str]) -> None:
    """Stage the verdict of every raw.authorizations row of the business dates `keys` in this
    connection's temp table `_verdicts`, with `_masked_values` (offending value -> masked) beside it, and
    the verdicts of the rows of the days around them a reversal links to them in `_neighbour_verdicts`.

    Reads raw.authorizations, cleaned.terminals and cleaned.fx_rates, which must exist."""
    dates = _date_literals(keys)
    conn.execute(f"CREATE OR REPLACE TEMP TABLE _chunk_dates AS SELECT unnest([{dates}]) AS business_date")
    conn.execute(
        "CREATE OR REPLACE TEMP VIEW _raw_chunk AS "
        f"SELECT * FROM raw.authorizations WHERE business_date IN ({dates})"
    )
    # The days a reversal link may reach from the chunk, outside it: its reversals' authorisations may be
    # earlier, its authorisations' reversals later.
    chunk = {dt.date.fromisoformat(str(k)) for k in keys}
    steps = range(1, REVERSAL_LOOKBACK_DAYS + 1)
    earlier = sorted({d - dt.timedelta(days=n) for d in chunk for n in steps} - chunk)
    later = sorted({d + dt.timedelta(days=n) for d in chunk for n in steps} - chunk)
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE _neighbour_dates (business_date DATE); "
        + "".join(f"INSERT INTO _neighbour_dates VALUES ('{d.isoformat()}'); " for d in earlier + later)
    )
    for view, days in (("_raw_earlier", earlier), ("_raw_later", later)):
        conn.execute(
            f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM raw.authorizations "
            f"WHERE {dates_filter([d.isoformat() for d in days])}"
        )
    conn.execute("SET VARIABLE reporting_currency = ?", [REPORTING_CURRENCY])
    conn.execute("SET VARIABLE fx_max_age_days = ?", [FX_MAX_AGE_DAYS])
    conn.execute("SET VARIABLE reversal_lookback_days = ?", [REVERSAL_LOOKBACK_DAYS])
    conn.execute("SET VARIABLE max_amount = ?", [MAX_AMOUNT])
    conn.execute(VALUE_MACROS_SQL)
    conn.execute(f"CREATE OR REPLACE TEMP VIEW _terminal_versions AS {TERMINAL_VERSIONS_SQL}")
    conn.execute(JUDGE_SQL)
    # The few distinct offending values: any of them may be a card number typed in the wrong field.
    values = [
        v
        for (v,) in conn.execute(
            "SELECT DISTINCT _offending_value FROM _verdicts "
            "WHERE _outcome = 'quarantined' AND _offending_value IS NOT NULL"
        ).fetchall()
    ]
    masked = pa.table(
        {
            "value": pa.array(values, pa.string()),
            "masked": pa.array([mask_pans(v) for v in values], pa.string()),
        }
    )
    conn.register("_masked_values_arrow", masked)
    try:
        conn.execute("CREATE OR REPLACE TEMP TABLE _masked_values AS SELECT * FROM _masked_values_arrow")
    finally:
        conn.unregister("_masked_values_arrow")


def drop_staging(conn: duckdb.DuckDBPyConnection) -> None:
    for table in ("_verdicts", "_neighbour_verdicts", "_masked_values", "_chunk_dates", "_neighbour_dates"):
        conn.execute(f"DROP TABLE IF EXISTS {table}")
    for view in ("_raw_chunk", "_raw_earlier", "_raw_later", "_terminal_versions"):
        conn.execute(f"DROP VIEW IF EXISTS {view}")


def reason_counts(conn: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return {str(r): int(n) for r, n in conn.execute(REASON_COUNTS_SQL).fetchall()}


@dataclass
class Cleaned:
    transactions: pd.DataFrame
    quarantine: pd.DataFrame
    reconciliation: pd.DataFrame
    by_reason: dict[str, int] = field(default_factory=dict)


def clean_authorizations(raw: pd.DataFrame, terminals: pd.DataFrame, fx: pd.DataFrame) -> Cleaned:
    """The cleaning rules on frames, in a private in-memory DuckDB (the engine the asset uses): for
    rule tests and notebooks. `raw`: raw.authorizations rows; `terminals`: terminal_id, timezone
    (optionally valid_from, valid_to: several versions of a terminal);
    `fx`: rate_date, quote_currency, rate."""
    with duckdb.connect() as conn:
        conn.execute("CREATE SCHEMA raw; CREATE SCHEMA cleaned")
        for table, frame, columns in (
            ("raw.authorizations", raw, RAW_COLUMNS["raw.authorizations"]),
            ("cleaned.terminals", terminals, TERMINAL_RULE_COLUMNS),
            (
                "cleaned.fx_rates",
                fx,
                [("rate_date", "DATE"), ("quote_currency", "VARCHAR"), ("rate", "DOUBLE")],
            ),
        ):
            # a frame without versions (valid_from, valid_to) is one version per terminal, serving every day
            missing = [c for c, _ in columns if c not in frame.columns]
            frame = frame.assign(**{c: pd.Series([None] * len(frame), dtype=object) for c in missing})
            conn.register("_frame", frame)
            conn.execute(f"CREATE TABLE {table} AS {typed_select(columns, 'SELECT * FROM _frame')}")
            conn.unregister("_frame")
        dates = conn.execute("SELECT DISTINCT business_date FROM raw.authorizations").fetchall()
        keys = [str(d) for (d,) in dates]
        judge(conn, keys)
        return Cleaned(
            transactions=conn.execute(f"{TRANSACTIONS_SQL} ORDER BY transaction_id").df(),
            quarantine=conn.execute(QUARANTINE_SQL).df(),
            reconciliation=conn.execute(RECONCILIATION_SQL).df(),
            by_reason=reason_counts(conn),
        )
