"""Cleaned assets: typed, deduplicated, reversals applied, UTC, EUR; reference tables; labels.

Reference tables keep the latest snapshot / latest landed version per key (SQL constants below).
Transactions, quarantine and the per-date reconciliation are produced by one step per set of
business dates (a backfill is one run, written in chunks of dates); each table's partition write is
one transaction (`replace_partition`).
"""

from collections.abc import Sequence

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from fraud_assets.defs.cleaned import schemas
from fraud_assets.defs.cleaned.transform import (
    QUARANTINE_COLUMNS,
    RECONCILIATION_COLUMNS,
    TRANSACTION_COLUMNS,
    _masked,
    clean_authorizations,
)
from fraud_assets.defs.raw import assets as raw
from fraud_assets.lib.catalog_metadata import column_schema_metadata
from fraud_assets.lib.partitions import business_date_partitions
from fraud_assets.lib.warehouse import (
    replace_partition,
    replace_partitions,
    replace_table,
    table_exists,
    table_metadata,
)

OWNERS = ["team:fraud-data-science"]
GROUP = "cleaned"
CHUNK_DAYS = 31
PARTITION_FILTER = "CAST(business_date AS VARCHAR) IN (SELECT unnest(?::VARCHAR[]))"

# Latest snapshot wins: a terminal's attributes come from the newest merchants file that lists it.
TERMINALS_SQL = """
SELECT terminal_id, merchant_id, CAST(mcc AS VARCHAR) AS mcc, country, upper(currency) AS currency,
       timezone, x, y
FROM raw.merchants
WHERE terminal_id IS NOT NULL AND timezone IS NOT NULL
QUALIFY row_number() OVER (
    PARTITION BY terminal_id ORDER BY business_date DESC, landing_date DESC, source_file DESC, row_number
) = 1
ORDER BY terminal_id
"""
# One card per customer (contract); a card token appears once, from its newest snapshot.
CARDS_SQL = """
SELECT card_token, pan_bin, pan_last4, customer_id, home_x, home_y, home_country
FROM raw.cardholders
WHERE card_token IS NOT NULL AND customer_id IS NOT NULL
QUALIFY row_number() OVER (
    PARTITION BY card_token ORDER BY business_date DESC, landing_date DESC, source_file DESC, row_number
) = 1
ORDER BY customer_id
"""
# Reference rows (chargebacks, FX) are never dropped silently: each raw row is kept, quarantined in
# cleaned.reference_quarantine with the FIRST reason that applies, or counted as a duplicate (another
# row of the same key was kept). The `*_JUDGED` views give every raw row its verdict; the table SQL
# below selects from them, so kept and quarantined rows cannot disagree.
FX_JUDGED = """
WITH typed AS (
    SELECT *, TRY_CAST(trim(rate_date) AS DATE) AS _rate_date, upper(trim(quote_currency)) AS _ccy,
           TRY_CAST(CASE WHEN regexp_full_match(trim(rate), '-?[0-9]+([.,][0-9]+)?')
                         THEN replace(trim(rate), ',', '.') END AS DOUBLE) AS _rate
    FROM raw.fx_rates
)
SELECT *, CASE
        WHEN malformed_reason IS NOT NULL THEN 'malformed_line'
        WHEN _rate_date IS NULL THEN 'invalid_rate_date'
        WHEN coalesce(nullif(upper(trim(base_currency)), ''), 'EUR') <> 'EUR' THEN 'unknown_base_currency'
        WHEN NOT coalesce(regexp_full_match(_ccy, '[A-Z]{3}'), false) THEN 'invalid_currency'
        WHEN _rate IS NULL THEN 'invalid_rate'
        WHEN _rate <= 0 THEN 'non_positive_rate'
    END AS _reason
FROM typed
"""
FX_OFFENDING = {
    "malformed_line": ("raw_line", "raw_line_masked"),
    "invalid_rate_date": ("rate_date", "rate_date"),
    "unknown_base_currency": ("base_currency", "base_currency"),
    "invalid_currency": ("quote_currency", "quote_currency"),
    "invalid_rate": ("rate", "rate"),
    "non_positive_rate": ("rate", "rate"),
}
CHARGEBACK_JUDGED = """
WITH typed AS (
    SELECT *,
           TRY_CAST(CASE WHEN regexp_full_match(trim(transaction_id), '[0-9]{1,18}')
                         THEN trim(transaction_id) END AS BIGINT) AS _transaction_id,
           CAST(TRY_STRPTIME(trim(tx_datetime), '%Y-%m-%dT%H:%M:%SZ') AS TIMESTAMP) AS _tx_datetime,
           CAST(TRY_STRPTIME(trim(reported_at), '%Y-%m-%dT%H:%M:%SZ') AS TIMESTAMP) AS _reported_at
    FROM raw.chargebacks
)
SELECT *, CASE
        WHEN malformed_reason IS NOT NULL THEN 'malformed_line'
        WHEN _transaction_id IS NULL THEN 'invalid_transaction_id'
        WHEN _reported_at IS NULL THEN 'invalid_reported_at'
        WHEN nullif(trim(tx_datetime), '') IS NOT NULL AND _tx_datetime IS NULL THEN 'invalid_tx_datetime'
        -- reported after the file reached us: the clock or the row is wrong
        WHEN _reported_at > ingested_at OR _reported_at >= landing_date + INTERVAL 1 DAY
            THEN 'future_timestamp'
        WHEN _reported_at < _tx_datetime THEN 'reported_before_transaction'
    END AS _reason
FROM typed
"""
CHARGEBACK_OFFENDING = {
    "malformed_line": ("raw_line", "raw_line_masked"),
    "invalid_transaction_id": ("transaction_id", "transaction_id"),
    "invalid_reported_at": ("reported_at", "reported_at"),
    "invalid_tx_datetime": ("tx_datetime", "tx_datetime"),
    "future_timestamp": ("reported_at", "reported_at"),
    "reported_before_transaction": ("reported_at", "reported_at"),
}
REFERENCE_REASONS = tuple(dict.fromkeys([*CHARGEBACK_OFFENDING, *FX_OFFENDING]))

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
# Earliest report per transaction: a fraud is known from the first chargeback that names it; later
# reports of the same transaction count as duplicates.
LABELS_SQL = f"""
WITH judged AS ({CHARGEBACK_JUDGED})
SELECT _transaction_id AS transaction_id, card_token, _tx_datetime AS tx_datetime,
       _reported_at AS reported_at, trim(chargeback_id) AS chargeback_id, trim(reason_code) AS reason_code
FROM judged
WHERE _reason IS NULL
QUALIFY row_number() OVER (PARTITION BY _transaction_id ORDER BY _reported_at, chargeback_id) = 1
ORDER BY transaction_id
"""
REF_QUAR = "cleaned.reference_quarantine"
# Definition-time column schemas of the reference tables (their pandera contracts).
REFERENCE_MODELS = {
    "terminals": schemas.TerminalsModel,
    "cards": schemas.CardsModel,
    "fx_rates": schemas.FxRatesModel,
    "labels": schemas.LabelsModel,
}


def quarantine_sql(source: str, judged: str, offending: dict[str, tuple[str, str]], id_column: str) -> str:
    """The rejected rows of `judged` in cleaned.quarantine's columns; offending_value still clear
    (masked in Python before it is written)."""
    col = " ".join(f"WHEN '{r}' THEN '{c}'" for r, (c, _) in offending.items())
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


def _cast_sql(columns: list[tuple[str, str]], view: str) -> str:
    return "SELECT " + ", ".join(f'CAST("{c}" AS {t}) AS "{c}"' for c, t in columns) + f" FROM {view}"


def write_reference_quarantine(conn, source: str, sql: str) -> pd.DataFrame:
    """Replace `source`'s slice of cleaned.reference_quarantine (one transaction) with the rows of
    `sql`, offending values masked; returns the rows written."""
    q = conn.execute(sql).df()
    q["offending_value"] = _masked(q["offending_value"]) if len(q) else q["offending_value"]
    cur = conn.cursor()  # own cursor: see raw.assets.write_frame
    try:
        cur.register("_ref_quarantine_src", q)
        replace_partition(
            cur, REF_QUAR, _cast_sql(QUARANTINE_COLUMNS, "_ref_quarantine_src"), "source", [source]
        )
    finally:
        cur.close()
    return q


# Metadata of a cleaned/labels materialisation: which labels it added, removed or moved, as a span. The
# feature lookback sensor reads it (from the instance) to rebuild the days whose features used fewer or
# other labels than are now known.
CHANGED_LABELS = "changed_labels"
CHANGED_FIRST_REPORT = "changed_labels_first_report_date"
CHANGED_LAST_TRANSACTION = "changed_labels_last_transaction_date"
_LABEL_DIFF_COLUMNS = "transaction_id, reported_at, tx_datetime"


def _label_changes(conn, table: str, had_table: bool) -> dict[str, object]:
    """Labels that differ between `_labels_before` and `table` (either side): how many, the earliest report
    date among them and the latest transaction date ("" when none; a label without its transaction time
    counts at its report date, which follows the transaction)."""
    new, old = f"SELECT {_LABEL_DIFF_COLUMNS} FROM {table}", "SELECT * FROM _labels_before"
    diff = f"(({new}) EXCEPT ({old})) UNION ALL (({old}) EXCEPT ({new}))" if had_table else new
    n, first_report, last_tx = conn.execute(
        "SELECT count(*), min(CAST(reported_at AS DATE)), "
        f"max(CAST(coalesce(tx_datetime, reported_at) AS DATE)) FROM ({diff})"
    ).fetchone()
    return {
        CHANGED_LABELS: int(n),
        CHANGED_FIRST_REPORT: str(first_report or ""),
        CHANGED_LAST_TRANSACTION: str(last_tx or ""),
    }


def _reference_asset(
    name: str,
    sql: str,
    upstream: dg.AssetsDefinition,
    description: str,
    quarantine: tuple[str, str] | None = None,
    track_label_changes: bool = False,
):
    """A reference table rebuilt from its raw table; with `quarantine` = (source, SQL), the rows it
    rejects go to that source's slice of cleaned.reference_quarantine, written first so a crash
    between the two writes leaves a visible (failing) reconciliation, never a silent drop. With
    `track_label_changes` (labels), the metadata says which labels the rebuild changed (`_label_changes`)."""
    table = f"cleaned.{name}"

    @dg.asset(
        key=["cleaned", name],
        metadata=column_schema_metadata(REFERENCE_MODELS[name]),
        group_name=GROUP,
        owners=OWNERS,
        kinds={"duckdb", "sql"},
        code_version="2" if quarantine else "1",
        pool="duckdb",
        deps=[upstream],
        description=description,
    )
    def _asset(duckdb: DuckDBResource) -> dg.MaterializeResult:
        with duckdb.get_connection() as conn:
            source_rows = conn.execute(f"SELECT count(*) FROM raw.{upstream.key.path[-1]}").fetchall()[0][0]
            extra: dict[str, object] = {"source_rows": int(source_rows)}
            quarantined = 0
            if quarantine is not None:
                q = write_reference_quarantine(conn, *quarantine)
                quarantined = len(q)
                by_reason = {str(k): int(v) for k, v in q["reason"].value_counts().items()}
                extra["quarantined_rows"] = quarantined
                extra["quarantine_by_reason"] = dg.MetadataValue.json(by_reason)
                extra.update({f"quarantined_{r}": n for r, n in sorted(by_reason.items())})
                extra["quarantine_table"] = dg.MetadataValue.text(f"{REF_QUAR} (source = {quarantine[0]})")
            had_table = track_label_changes and table_exists(conn, table)
            if had_table:
                before = f"SELECT {_LABEL_DIFF_COLUMNS} FROM {table}"
                conn.execute(f"CREATE OR REPLACE TEMP TABLE _labels_before AS {before}")
            written = replace_table(conn, table, sql)
            if quarantine is not None:
                extra["duplicates_removed"] = int(source_rows) - quarantined - written
            if track_label_changes:
                extra.update(_label_changes(conn, table, had_table))
            md = table_metadata(conn, table, extra=extra)
        md["rows_written"] = written
        return dg.MaterializeResult(metadata=md)

    return _asset


terminals = _reference_asset(
    "terminals",
    TERMINALS_SQL,
    raw.merchants,
    "Terminal reference table for feature engineers and for cleaning (IANA time zone of each terminal "
    "converts processor B's local times): one row per terminal_id from the newest merchants snapshot "
    "that lists it: merchant_id, mcc, country, currency, timezone, x, y.",
)
cards = _reference_asset(
    "cards",
    CARDS_SQL,
    raw.cardholders,
    "Card reference table for feature engineers: one row per card_token (HMAC of the PAN) with "
    "pan_bin, pan_last4, customer_id and the cardholder's home location/country, from the newest "
    "cardholder snapshot.",
)
fx_rates = _reference_asset(
    "fx_rates",
    FX_SQL,
    raw.fx_rates,
    "EUR reference FX rates, typed: one rate (quote currency units per EUR) per rate_date and "
    "quote_currency, a later-landed correction replacing the earlier value. Cleaning divides amounts "
    "by the rate of the transaction's business date. Rows that cannot be used (malformed line, bad "
    "date, base currency other than EUR, bad currency code, non-numeric or non-positive rate) are "
    "written with their reason and masked value to cleaned.reference_quarantine (source = fx_rates); "
    "source_rows = rows_written + quarantined_rows + duplicates_removed (replaced versions).",
    quarantine=("fx_rates", FX_QUARANTINE_SQL),
)
labels = _reference_asset(
    "labels",
    LABELS_SQL,
    raw.chargebacks,
    "Fraud labels for model training and monitoring: one row per reported transaction_id with the "
    "EARLIEST chargeback `reported_at` (a transaction is fraud as known at time t iff reported_at <= t), "
    "its card_token, tx_datetime, chargeback_id and reason_code. Rows that cannot be used (malformed "
    "line, bad transaction id, unparseable or future report time, report before the transaction) are "
    "written with their reason and masked value to cleaned.reference_quarantine (source = "
    "chargebacks); source_rows = rows_written + quarantined_rows + duplicates_removed (later reports). "
    "Metadata changed_labels / changed_labels_first_report_date / changed_labels_last_transaction_date: "
    "the labels this rebuild added, removed or moved (a late chargeback file), which the feature lookback "
    "sensor uses to rebuild the days whose features were computed without them.",
    quarantine=("chargebacks", CHARGEBACK_QUARANTINE_SQL),
    track_label_changes=True,
)

TX, QUAR, RECON = "cleaned.transactions", "cleaned.quarantine", "cleaned.reconciliation"


def clean_partitions(conn, keys: Sequence[str]) -> dict[str, object]:
    """Clean raw.authorizations for `keys`, chunk by chunk; totals for metadata."""
    terms = conn.execute("SELECT terminal_id, timezone FROM cleaned.terminals").df()
    fx = conn.execute("SELECT rate_date, quote_currency, rate FROM cleaned.fx_rates").df()
    totals = {
        "raw_rows": 0,
        "cleaned_rows": 0,
        "quarantined_rows": 0,
        "duplicates_removed": 0,
        "reversal_rows": 0,
    }
    by_reason: dict[str, int] = {}
    for start in range(0, len(keys), CHUNK_DAYS):
        chunk = list(keys[start : start + CHUNK_DAYS])
        raw_rows = (
            conn.execute(f"SELECT * FROM raw.authorizations WHERE {PARTITION_FILTER}", [chunk]).df()
            if table_exists(conn, "raw.authorizations")
            else None
        )
        if raw_rows is None:
            raise dg.Failure(
                description="raw.authorizations does not exist: materialise raw/authorizations first"
            )
        out = clean_authorizations(raw_rows, terms, fx)
        # A date with no rows still gets its (all-zero) reconciliation row: "checked, nothing landed".
        recon = out.reconciliation.set_index("business_date").reindex(pd.to_datetime(chunk), fill_value=0)
        out.reconciliation = recon.rename_axis("business_date").reset_index()
        # One transaction for the three tables: a crash never leaves them out of step.
        cur = conn.cursor()  # own cursor: see raw.assets.write_frame
        try:
            for name, frame in (("tx", out.transactions), ("q", out.quarantine), ("r", out.reconciliation)):
                cur.register(f"_cleaned_{name}", frame)
            replace_partitions(
                cur,
                {
                    TX: _cast_sql(TRANSACTION_COLUMNS, "_cleaned_tx"),
                    QUAR: _cast_sql(QUARANTINE_COLUMNS, "_cleaned_q"),
                    RECON: _cast_sql(RECONCILIATION_COLUMNS, "_cleaned_r"),
                },
                "business_date",
                chunk,
            )
        finally:
            cur.close()
        for k in totals:
            totals[k] += int(out.reconciliation[k].sum())
        for r, n in out.by_reason.items():
            by_reason[r] = by_reason.get(r, 0) + n
    return {**totals, "by_reason": by_reason}


def _cleaning_spec(name: str, columns: list[tuple[str, str]], **kwargs) -> dg.AssetSpec:
    """A table written by the cleaning step (`cleaned_transactions`), with the layer's standard."""
    return dg.AssetSpec(
        key=["cleaned", name],
        metadata=column_schema_metadata(columns),
        group_name=GROUP,
        owners=OWNERS,
        kinds={"python", "duckdb"},
        code_version="1",
        **kwargs,
    )


@dg.multi_asset(
    specs=[
        _cleaning_spec(
            "transactions",
            TRANSACTION_COLUMNS,
            deps=[raw.authorizations, ["cleaned", "terminals"], ["cleaned", "fx_rates"]],
            description=(
                "Clean card transactions for the feature layer and analysts: one row per transaction_id, "
                "typed, exact retransmissions removed, reversed authorisations removed (with their "
                "reversal), "
                "tx_datetime in UTC (processor B's local times converted via the terminal's time zone), "
                "tx_datetime_local, tx_amount in EUR (amount_original / fx_rate of the business date), "
                "card_token/pan_bin/pan_last4, terminal_id, channel, three_ds, lineage. Rules in "
                "fraud_assets/defs/cleaned/transform.py."
            ),
        ),
        _cleaning_spec(
            "quarantine",
            QUARANTINE_COLUMNS,
            deps=[raw.authorizations],
            description=(
                "Every authorisation row that did not make it into cleaned/transactions (other than exact "
                "retransmissions and applied reversals), for data engineers and the producers: "
                "business_date, "
                "source, feed, source_file, row_number, transaction_id (if parseable), reason (e.g. "
                "invalid_pan, unknown_terminal, non_positive_amount, malformed_line, future_timestamp), "
                "offending_column and offending_value (PANs masked), quarantined_at (= when the row was "
                "ingested)."
            ),
        ),
        _cleaning_spec(
            "reconciliation",
            RECONCILIATION_COLUMNS,
            deps=[raw.authorizations],
            description=(
                "Per business date, where every raw authorisation row went: raw_rows = cleaned_rows + "
                "quarantined_rows + duplicates_removed + reversal_rows. Read by the reconciliation check "
                "and by monitoring."
            ),
        ),
    ],
    partitions_def=business_date_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool="duckdb",
    can_subset=False,
)
def cleaned_transactions(context: dg.AssetExecutionContext, duckdb: DuckDBResource):
    keys = list(context.partition_keys)
    where = PARTITION_FILTER
    with duckdb.get_connection() as conn:
        totals = clean_partitions(conn, keys)
        by_reason = totals.pop("by_reason")
        yield dg.MaterializeResult(
            asset_key=["cleaned", "transactions"],
            metadata=table_metadata(
                conn,
                TX,
                where=where,
                params=[keys],
                extra={**{k: int(v) for k, v in totals.items()}, "partitions_written": len(keys)},
            ),
        )
        yield dg.MaterializeResult(
            asset_key=["cleaned", "quarantine"],
            metadata=table_metadata(
                conn,
                QUAR,
                where=where,
                params=[keys],
                extra={
                    "quarantined_rows": int(totals["quarantined_rows"]),
                    "quarantine_by_reason": dg.MetadataValue.json(by_reason),
                    **{f"quarantined_{r}": n for r, n in sorted(by_reason.items())},
                },
            ),
        )
        yield dg.MaterializeResult(
            asset_key=["cleaned", "reconciliation"],
            metadata=table_metadata(conn, RECON, where=where, params=[keys]),
        )


CLEANED_ASSETS = [terminals, cards, fx_rates, labels, cleaned_transactions]
