"""SQL of the cleaned reference tables: terminals, cards, FX rates, labels, and the reference quarantine.

Reference rows (chargebacks, FX) are never dropped silently: each raw row is kept, quarantined in
cleaned.reference_quarantine with the FIRST reason that applies, or counted as a duplicate (another row
of the same key was kept). The `*_JUDGED` queries give every raw row its verdict; the table SQL selects
from them, so kept and quarantined rows cannot disagree.
"""

from __future__ import annotations

from fraud_assets.lib.landing import EARLIEST_DATE, LATEST_DATE
from fraud_assets.lib.reason_codes import FRAUD, NON_FRAUD, classify_sql

# Snapshot rows: raw gives each unusable row its reason at the door (`invalid_reason`); a cardholder row
# whose card number is not a valid one (raw keeps it masked) cannot be a card either. A quarantined row
# is no new version: the version before it stays in force.
#
# One snapshot file listing a key twice with different values (`_values`: what the versioned table keeps)
# contradicts itself, as an FX file giving two rates for one day does: nobody can tell which row is true,
# so all of that file's usable rows of the key are quarantined (`conflicting_terminal`, `conflicting_card`)
# and the key is unknown to that file, as if each row were bad. Rows with the same values are duplicates
# (one is read). Rows with a reason of their own keep it and take no part. A customer listed with two
# card numbers holds two cards (each its own key, features read cards by token): no conflict.
TERMINAL_VALUES = "merchant_id, mcc, country, currency, timezone, x, y"
MERCHANTS_JUDGED = """
WITH stated AS (
    SELECT *, struct_pack(
            merchant_id := merchant_id, mcc := CAST(mcc AS VARCHAR), country := country,
            currency := upper(currency), timezone := timezone, x := x, y := y) AS _values
    FROM raw.merchants
)
SELECT *, coalesce(
        invalid_reason,
        CASE WHEN count(DISTINCT _values) OVER listing > 1 THEN 'conflicting_terminal' END
    ) AS _reason
FROM stated
WINDOW listing AS (PARTITION BY source_file, terminal_id, invalid_reason IS NULL)"""
CARD_VALUES = "pan_bin, pan_last4, customer_id, home_x, home_y, home_country"
CARDHOLDERS_JUDGED = f"""
WITH stated AS (SELECT *, struct_pack({CARD_VALUES}) AS _values FROM raw.cardholders)
SELECT *, coalesce(
        invalid_reason,
        CASE WHEN card_token IS NULL THEN 'invalid_pan' END,
        CASE WHEN count(DISTINCT _values) OVER listing > 1 THEN 'conflicting_card' END
    ) AS _reason
FROM stated
WINDOW listing AS (PARTITION BY source_file, card_token, invalid_reason IS NULL)"""


def _conflict_offending(key: str, values: str) -> tuple[str, str]:
    """Offending column and value of a conflicting key (quarantine_sql): the first of `values` on which
    the key's rows in the file differ (compared as kept: `_values`; in a list, NULL counts as a value),
    and this row's value of it as received."""
    names = [v.strip() for v in values.split(",")]
    window = f"OVER (PARTITION BY source_file, {key}, _reason)"
    differs = [f"count(DISTINCT [_values.{n}]) {window} > 1" for n in names]
    column = " ".join(f"WHEN {d} THEN '{n}'" for d, n in zip(differs, names, strict=True))
    value = " ".join(f"WHEN {d} THEN CAST({n} AS VARCHAR)" for d, n in zip(differs, names, strict=True))
    return f"CASE {column} END", f"CASE {value} END"


# Terminals, versioned (SCD type 2): each merchants snapshot is the full truth as of its snapshot
# (business) date. Of several files of one date, the latest landed (then name) is that date's snapshot.
# A terminal's version starts at the snapshot that lists it with other values than the snapshot before
# (or after one that did not list it), and ends (`valid_to`) at the next snapshot that changes or no longer
# lists it; NULL while the newest snapshot still lists it. Which version serves a business date:
# `versions_serving` below.
#
# A quarantined row (its `_reason`: raw's `invalid_reason`, or `conflicting_terminal`: MERCHANTS_JUDGED)
# is no knowledge of its terminal, neither new values nor a drop: the terminal's values from the snapshot
# before carry through that snapshot (a bad row must not end a version and restate the days after it),
# provided the snapshot before listed it (a carried value or a usable row: consecutive snapshots, `_run`).
# A terminal whose first listing is bad is not known until a usable one. A snapshot holding a row without
# any terminal id cannot show that a terminal it does not list is gone (that row may be it): it drops
# none, each listed before carries through it.
TERMINALS_SQL = f"""
WITH snapshots AS (
    SELECT DISTINCT business_date AS snapshot_date, landing_date, source_file FROM raw.merchants
    QUALIFY row_number() OVER (PARTITION BY business_date ORDER BY landing_date DESC, source_file DESC) = 1
),
ordered AS (
    SELECT *, lead(snapshot_date) OVER (ORDER BY snapshot_date) AS next_snapshot,
           lag(snapshot_date) OVER (ORDER BY snapshot_date) AS previous_snapshot,
           row_number() OVER (ORDER BY snapshot_date) AS _ordinal
    FROM snapshots
),
in_force AS (
    SELECT s._ordinal, m.terminal_id, m._reason IS NULL AS _usable, m.row_number,
           CASE WHEN m._reason IS NULL THEN m._values END AS _values
    FROM ({MERCHANTS_JUDGED}) m JOIN ordered s ON s.source_file = m.source_file
),
-- per snapshot and terminal its first usable row, else the mark that it had only quarantined ones
named AS (
    SELECT _ordinal, terminal_id, _values FROM in_force WHERE terminal_id IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY _ordinal, terminal_id ORDER BY _usable DESC, row_number) = 1
),
unnamed AS (
    SELECT b._ordinal, t.terminal_id, NULL AS _values
    FROM (SELECT DISTINCT _ordinal FROM in_force WHERE terminal_id IS NULL) b
    JOIN (SELECT terminal_id, min(_ordinal) AS _first FROM named GROUP BY ALL) t ON t._first < b._ordinal
    ANTI JOIN named n ON n._ordinal = b._ordinal AND n.terminal_id = t.terminal_id
),
runs AS (
    SELECT *, _ordinal - row_number() OVER (PARTITION BY terminal_id ORDER BY _ordinal) AS _run
    FROM (SELECT * FROM named UNION ALL SELECT * FROM unnamed)
),
carried AS (
    SELECT _ordinal, terminal_id,
           last_value(_values IGNORE NULLS) OVER (
               PARTITION BY terminal_id, _run ORDER BY _ordinal ROWS UNBOUNDED PRECEDING
           ) AS v
    FROM runs
),
listed AS (
    SELECT s.snapshot_date, s.next_snapshot, s.previous_snapshot, c.terminal_id, unnest(c.v)
    FROM carried c JOIN ordered s USING (_ordinal)
    WHERE c.v IS NOT NULL
),
-- a listing opens a version when the terminal's previous listing is not the snapshot just before
-- (first listed, or listed again after a snapshot dropped it) or had other values
flagged AS (
    SELECT *, lag(snapshot_date) OVER terminal IS DISTINCT FROM previous_snapshot
            OR lag(struct_pack({TERMINAL_VALUES})) OVER terminal
               IS DISTINCT FROM struct_pack({TERMINAL_VALUES}) AS opens
    FROM listed
    WINDOW terminal AS (PARTITION BY terminal_id ORDER BY snapshot_date)
),
numbered AS (
    SELECT *, sum(CAST(opens AS INTEGER)) OVER (PARTITION BY terminal_id ORDER BY snapshot_date) AS version
    FROM flagged
)
SELECT terminal_id, {TERMINAL_VALUES},
       min(snapshot_date) AS valid_from, arg_max_null(next_snapshot, snapshot_date) AS valid_to
FROM numbered
GROUP BY terminal_id, version, {TERMINAL_VALUES}
ORDER BY terminal_id, valid_from
"""
# Serving dates far outside any business date (2000-01-01..2099-12-31).
_BEFORE_ALL, _AFTER_ALL = "DATE '0001-01-01'", "DATE '9999-12-31'"


def versions_serving(table: str, key: str) -> str:
    """The versions of reference `table` (one row per `key` and valid_from, SCD type 2) with the
    business dates each serves, `[_serves_from, _serves_to)`: a version serves the days of its own
    validity, and a key's earliest version also every day before it (reference data that arrived after
    the key's first transactions: the first snapshot listing it is the best knowledge of those days).
    A day at or after a version's valid_to that no later version covers (the key dropped) is served by
    none. Versions of one key never overlap, so a join on key and serving range finds at most one."""
    return f"""
SELECT *, CASE WHEN valid_from IS NULL OR valid_from = min(valid_from) OVER (PARTITION BY {key})
               THEN {_BEFORE_ALL} ELSE valid_from END AS _serves_from,
       coalesce(valid_to, {_AFTER_ALL}) AS _serves_to
FROM {table}"""


def changed_spans_sql(before: str, now: str, key: str, values: str) -> str:
    """Rows (key, span_from, span_to): per key whose versions differ between the versioned tables
    `before` and `now`, the spans of business dates [span_from, span_to) where the version serving the
    day has other `values` (comma-separated columns) or is served on one side only. A snapshot dated S
    that changes a key's values gives the span from S on, not the days before."""
    compared = f"{key}, {values}, _serves_from, _serves_to"
    differs = " OR ".join(f"b.{c.strip()} IS DISTINCT FROM n.{c.strip()}" for c in values.split(","))
    return f"""
WITH before AS ({versions_serving(before, key)}),
now AS ({versions_serving(now, key)}),
changed AS (
    SELECT DISTINCT {key} FROM (
        (SELECT {compared} FROM before EXCEPT SELECT {compared} FROM now)
        UNION ALL
        (SELECT {compared} FROM now EXCEPT SELECT {compared} FROM before)
    )
),
bounds AS (
    SELECT DISTINCT {key}, unnest([_serves_from, _serves_to]) AS bound
    FROM (SELECT {compared} FROM before UNION ALL SELECT {compared} FROM now) SEMI JOIN changed USING ({key})
),
spans AS (
    SELECT {key}, bound AS span_from, lead(bound) OVER (PARTITION BY {key} ORDER BY bound) AS span_to
    FROM bounds
)
SELECT s.{key}, s.span_from, s.span_to FROM spans s
LEFT JOIN before b ON b.{key} = s.{key} AND s.span_from >= b._serves_from AND s.span_from < b._serves_to
LEFT JOIN now n ON n.{key} = s.{key} AND s.span_from >= n._serves_from AND s.span_from < n._serves_to
WHERE s.span_to IS NOT NULL AND ((b.{key} IS NULL) <> (n.{key} IS NULL) OR {differs})"""


_POSITION_COLUMN = (
    "CASE WHEN {x} IS NOT NULL AND NOT (isnan({x}) OR abs({x}) <= 1e9) THEN '{x}' ELSE '{y}' END"
)
_POSITION_VALUE = "CASE WHEN {x} IS NOT NULL AND NOT (isnan({x}) OR abs({x}) <= 1e9) THEN {x} ELSE {y} END"
MERCHANTS_OFFENDING = {
    "missing_terminal_id": ("terminal_id", "terminal_id"),
    "missing_timezone": ("timezone", "timezone"),
    "invalid_timezone": ("timezone", "timezone"),
    "invalid_mcc": ("mcc", "mcc"),
    "invalid_currency": ("currency", "currency"),
    "invalid_position": (_POSITION_COLUMN.format(x="x", y="y"), _POSITION_VALUE.format(x="x", y="y")),
    "conflicting_terminal": _conflict_offending("terminal_id", TERMINAL_VALUES),
}
CARDHOLDERS_OFFENDING = {
    "missing_customer_id": ("customer_id", "customer_id"),
    "missing_pan": ("pan", "NULL"),
    "invalid_position": (
        _POSITION_COLUMN.format(x="home_x", y="home_y"),
        _POSITION_VALUE.format(x="home_x", y="home_y"),
    ),
    "invalid_pan": ("pan", "pan_masked"),
    "conflicting_card": _conflict_offending("card_token", CARD_VALUES),
}

# Cards, versioned (SCD type 2) like the terminals: a card's version starts at the snapshot date that lists
# it with other values than its previous listing (of several usable rows of a card on one snapshot date,
# the latest landed file's first; the usable rows of one file agree: CARDHOLDERS_JUDGED) and ends
# (`valid_to`) at the next such date; NULL while current. Cardholder files are per shard of customers,
# so a card no snapshot lists again is kept.
CARDS_SQL = f"""
WITH dated AS (
    SELECT business_date AS snapshot_date, card_token, {CARD_VALUES}
    FROM ({CARDHOLDERS_JUDGED})
    WHERE _reason IS NULL
    QUALIFY row_number() OVER (
        PARTITION BY card_token, business_date ORDER BY landing_date DESC, source_file DESC, row_number
    ) = 1
),
numbered AS (
    SELECT *, sum(CAST(opens AS INTEGER)) OVER (PARTITION BY card_token ORDER BY snapshot_date) AS version
    FROM (
        SELECT *, lag(struct_pack({CARD_VALUES})) OVER (PARTITION BY card_token ORDER BY snapshot_date)
                  IS DISTINCT FROM struct_pack({CARD_VALUES}) AS opens
        FROM dated
    )
),
versions AS (
    SELECT card_token, {CARD_VALUES}, min(snapshot_date) AS valid_from
    FROM numbered GROUP BY card_token, version, {CARD_VALUES}
)
SELECT *, lead(valid_from) OVER (PARTITION BY card_token ORDER BY valid_from) AS valid_to
FROM versions
ORDER BY customer_id, valid_from
"""


def utc_timestamp_sql(column: str) -> str:
    """An ISO UTC text column (`YYYY-MM-DDTHH:MM:SSZ`) as TIMESTAMP, NULL when it is not one; a leap
    second (`:60`) is read as `:59`, so it stays on its day."""
    text = f"trim({column})"
    text = f"CASE WHEN ends_with({text}, ':60Z') THEN regexp_replace({text}, ':60Z$', ':59Z') ELSE {text} END"
    return f"CAST(TRY_STRPTIME({text}, '%Y-%m-%dT%H:%M:%SZ') AS TIMESTAMP)"


# A sane EUR rate: no currency is worth more than 1,000 EUR a unit or less than 1e-7 EUR (the weakest
# in circulation trade around 1e6 per EUR). A rate outside is a typo, an overflow or a unit mix-up.
FX_RATE_BAND = (1e-3, 1e7)
FX_JUDGED = f"""
WITH typed AS (
    SELECT *, TRY_CAST(trim(rate_date) AS DATE) AS _rate_date, upper(trim(quote_currency)) AS _ccy,
           -- a `,` decimal is tolerated, but not one followed by exactly three digits: "1,450" (KRW) is
           -- a thousands separator as often as a decimal comma, and 1.45 would be off by 1,000
           TRY_CAST(CASE WHEN regexp_full_match(
                    trim(rate), '-?[0-9]+([.][0-9]+|,([0-9]{{1,2}}|[0-9]{{4,}}))?')
                         THEN replace(trim(rate), ',', '.') END AS DOUBLE) AS _rate
    FROM raw.fx_rates
),
row_judged AS (
    SELECT *, CASE
            WHEN malformed_reason IS NOT NULL THEN 'malformed_line'
            -- a day outside the landing zone's date window (year 9999, 0001-01-01) fails the blocking
            -- contract (pandas' datetime64[ns]) and would hold every later FX cleaning
            WHEN _rate_date IS NULL OR NOT _rate_date BETWEEN DATE '{EARLIEST_DATE}' AND DATE '{LATEST_DATE}'
                THEN 'invalid_rate_date'
            WHEN coalesce(nullif(upper(trim(base_currency)), ''), 'EUR') <> 'EUR' THEN 'unknown_base_currency'
            WHEN NOT coalesce(regexp_full_match(_ccy, '[A-Z]{{3}}'), false) THEN 'invalid_currency'
            WHEN _rate IS NULL THEN 'invalid_rate'
            WHEN _rate <= 0 THEN 'non_positive_rate'
            WHEN NOT _rate BETWEEN {FX_RATE_BAND[0]} AND {FX_RATE_BAND[1]} THEN 'rate_out_of_range'
        END AS _row_reason
    FROM typed
)
-- One delivery (file) giving two different rates for one day and currency contradicts itself: all its
-- rows for that key are quarantined; another file's rate for the key still applies.
SELECT *, coalesce(
        _row_reason,
        CASE WHEN min(_rate) OVER delivery_key <> max(_rate) OVER delivery_key THEN 'conflicting_rate' END
    ) AS _reason
FROM row_judged
WINDOW delivery_key AS (PARTITION BY source_file, _rate_date, _ccy, _row_reason IS NULL)
"""
FX_OFFENDING = {
    "malformed_line": ("raw_line", "raw_line_masked"),
    "invalid_rate_date": ("rate_date", "rate_date"),
    "unknown_base_currency": ("base_currency", "base_currency"),
    "invalid_currency": ("quote_currency", "quote_currency"),
    "invalid_rate": ("rate", "rate"),
    "non_positive_rate": ("rate", "rate"),
    "rate_out_of_range": ("rate", "rate"),
    "conflicting_rate": ("rate", "rate"),
}
# A label must name a transaction of cleaned.transactions, on the same card (a card number that is sent
# must show its BIN and last 4 at least: `invalid_pan` otherwise): a chargeback for an id we never
# cleaned (or not yet: a late authorisation file) or for another card's transaction waits in the
# quarantine, and is judged again at every rebuild of the labels. Only a fraud reason code makes a label
# (lib/reason_codes.py); a usable row with a non-fraud code is a dispute of another kind, counted, and a
# missing or unknown code is quarantined: a scheme chargeback always carries one, and guessing either
# way would pollute the labels or lose a fraud.
CHARGEBACK_JUDGED = f"""
WITH typed AS (
    SELECT *,
           {classify_sql("reason_code")} AS _dispute_kind,
           TRY_CAST(CASE WHEN regexp_full_match(trim(transaction_id), '[0-9]{{1,18}}')
                         THEN trim(transaction_id) END AS BIGINT) AS _transaction_id,
           {utc_timestamp_sql("tx_datetime")} AS _tx_datetime,
           {utc_timestamp_sql("reported_at")} AS _reported_at,
           nullif(trim(amount), '') AS _amount_text
    FROM raw.chargebacks
),
-- The named transaction's own time and card, once it is cleaned: the report is judged against what
-- happened, not against the time the chargeback claims (optional, and the producer's word).
matched AS (
    SELECT typed.*, tx._tx_time, tx._tx_card
    FROM typed LEFT JOIN (
        SELECT transaction_id, min(tx_datetime) AS _tx_time, min(card_token) AS _tx_card
        FROM cleaned.transactions GROUP BY transaction_id
    ) tx ON tx.transaction_id = typed._transaction_id
)
SELECT *, CASE
        WHEN malformed_reason IS NOT NULL THEN 'malformed_line'
        WHEN _transaction_id IS NULL THEN 'invalid_transaction_id'
        WHEN _reported_at IS NULL THEN 'invalid_reported_at'
        WHEN nullif(trim(tx_datetime), '') IS NOT NULL AND _tx_datetime IS NULL THEN 'invalid_tx_datetime'
        -- reported after the file reached us: the clock or the row is wrong
        WHEN _reported_at > ingested_at OR _reported_at >= landing_date + INTERVAL 1 DAY
            THEN 'future_timestamp'
        WHEN _reported_at < coalesce(_tx_time, _tx_datetime) THEN 'reported_before_transaction'
        -- the amount is optional; one that is there is a number of major units, not below zero
        WHEN _amount_text IS NOT NULL AND NOT regexp_full_match(_amount_text, '-?[0-9]+(\\.[0-9]+)?')
            THEN 'invalid_amount'
        WHEN _amount_text IS NOT NULL AND CAST(_amount_text AS DOUBLE) < 0 THEN 'negative_amount'
        WHEN nullif(trim(reason_code), '') IS NULL THEN 'missing_reason_code'
        WHEN _dispute_kind IS NULL THEN 'unknown_reason_code'
        -- a card number that is sent must show the transaction is that card's: a valid one by its token,
        -- one masked by the producer (or mistyped) by the BIN and last 4 it shows (raw's pan_masked);
        -- one that shows neither cannot, and the transaction id alone makes no label then (an absent one
        -- says nothing wrong: the transaction's own card is taken)
        WHEN card_token IS NULL AND pan_masked IS NOT NULL
             AND NOT regexp_full_match(pan_masked, '[0-9]{{6}}[*]{{3,9}}[0-9]{{4}}') THEN 'invalid_pan'
        WHEN NOT EXISTS (SELECT 1 FROM cleaned.transactions t WHERE t.transaction_id = _transaction_id)
            THEN 'unknown_transaction'
        WHEN card_token IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM cleaned.transactions t
            WHERE t.transaction_id = _transaction_id AND t.card_token = matched.card_token
        ) THEN 'card_mismatch'
        WHEN card_token IS NULL AND pan_masked IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM cleaned.transactions t
            WHERE t.transaction_id = _transaction_id
              AND t.pan_bin = left(pan_masked, 6) AND t.pan_last4 = right(pan_masked, 4)
        ) THEN 'card_mismatch'
    END AS _reason
FROM matched
"""
CHARGEBACK_OFFENDING = {
    "malformed_line": ("raw_line", "raw_line_masked"),
    "invalid_transaction_id": ("transaction_id", "transaction_id"),
    "invalid_reported_at": ("reported_at", "reported_at"),
    "invalid_tx_datetime": ("tx_datetime", "tx_datetime"),
    "future_timestamp": ("reported_at", "reported_at"),
    "reported_before_transaction": ("reported_at", "reported_at"),
    "invalid_amount": ("amount", "amount"),
    "negative_amount": ("amount", "amount"),
    "missing_reason_code": ("reason_code", "reason_code"),
    "unknown_reason_code": ("reason_code", "reason_code"),
    "invalid_pan": ("pan", "pan_masked"),
    "unknown_transaction": ("transaction_id", "transaction_id"),
    "card_mismatch": ("pan", "coalesce(pan_masked, concat(pan_bin, '******', pan_last4))"),
}
REFERENCE_REASONS = tuple(
    dict.fromkeys([*CHARGEBACK_OFFENDING, *FX_OFFENDING, *MERCHANTS_OFFENDING, *CARDHOLDERS_OFFENDING])
)

# A corrected rate (later landed file) replaces an earlier one for the same day and currency; the
# replaced rows count as duplicates.
FX_SQL = f"""
WITH judged AS ({FX_JUDGED})
SELECT _rate_date AS rate_date, _ccy AS quote_currency, _rate AS rate FROM judged
WHERE _reason IS NULL
QUALIFY row_number() OVER (
    PARTITION BY _rate_date, _ccy ORDER BY landing_date DESC, source_file DESC, row_number DESC
) = 1
ORDER BY rate_date, quote_currency
"""
# Earliest fraud report per transaction: a fraud is known from the first fraud-coded chargeback that
# names it (an earlier non-fraud dispute of the same transaction does not count); later fraud reports of
# the same transaction count as duplicates.
LABELS_SQL = f"""
WITH judged AS ({CHARGEBACK_JUDGED})
SELECT _transaction_id AS transaction_id, coalesce(card_token, _tx_card) AS card_token,
       _tx_time AS tx_datetime, _reported_at AS reported_at, trim(chargeback_id) AS chargeback_id,
       upper(trim(reason_code)) AS reason_code
FROM judged
WHERE _reason IS NULL AND _dispute_kind = '{FRAUD}'
QUALIFY row_number() OVER (PARTITION BY _transaction_id ORDER BY _reported_at, chargeback_id) = 1
ORDER BY transaction_id
"""

# Usable chargebacks with a non-fraud reason code: neither labels nor quarantined, counted (metadata
# `non_fraud_disputes`) so source_rows still reconciles. Read once the chargebacks' quarantine slice is
# written (every row with a reason is in it): cheaper than judging every row against the transactions
# again.
NON_FRAUD_DISPUTES_SQL = f"""
SELECT count(*) FROM raw.chargebacks r
ANTI JOIN (
    SELECT source_file, row_number FROM cleaned.reference_quarantine WHERE source = 'chargebacks'
) q USING (source_file, row_number)
WHERE ({classify_sql("r.reason_code")}) = '{NON_FRAUD}'
"""


def snapshot_duplicates_sql(raw_table: str, key: str, quarantine_table: str) -> str:
    """The count of rows of a snapshot source (`raw_table`) not in its slice of `quarantine_table`
    (parameter: the source) that repeat a `key` their file lists before: duplicates, identical to it
    (rows of a key that differ within a file are quarantined), of which one is read."""
    return f"""
SELECT count(*) - count(DISTINCT struct_pack(source_file, {key}))
FROM {raw_table} ANTI JOIN (
    SELECT source_file, row_number FROM {quarantine_table} WHERE source = ?
) q USING (source_file, row_number)"""


def _column_sql(column: str) -> str:
    """An offending column: a name (quoted as text), or SQL choosing one (a CASE)."""
    return f"'{column}'" if column.isidentifier() else column


def quarantine_sql(source: str, judged: str, offending: dict[str, tuple[str, str]], id_column: str) -> str:
    """The rejected rows of `judged` in cleaned.quarantine's columns; offending_value still clear
    (masked in Python before it is written)."""
    col = " ".join(f"WHEN '{r}' THEN {_column_sql(c)}" for r, (c, _) in offending.items())
    val = " ".join(f"WHEN '{r}' THEN CAST({v} AS VARCHAR)" for r, (_, v) in offending.items())
    return f"""
WITH judged AS ({judged})
SELECT business_date, '{source}' AS source, feed, source_file, row_number, {id_column} AS transaction_id,
       _reason AS reason, CASE _reason {col} END AS offending_column,
       CASE _reason {val} END AS offending_value, ingested_at AS quarantined_at
FROM judged WHERE _reason IS NOT NULL
ORDER BY source_file, row_number
"""


CHARGEBACK_QUARANTINE_SQL = quarantine_sql(
    "chargebacks", CHARGEBACK_JUDGED, CHARGEBACK_OFFENDING, "_transaction_id"
)
FX_QUARANTINE_SQL = quarantine_sql("fx_rates", FX_JUDGED, FX_OFFENDING, "CAST(NULL AS BIGINT)")
MERCHANTS_QUARANTINE_SQL = quarantine_sql(
    "merchants", MERCHANTS_JUDGED, MERCHANTS_OFFENDING, "CAST(NULL AS BIGINT)"
)
CARDHOLDERS_QUARANTINE_SQL = quarantine_sql(
    "cardholders", CARDHOLDERS_JUDGED, CARDHOLDERS_OFFENDING, "CAST(NULL AS BIGINT)"
)
