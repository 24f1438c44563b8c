"""Cleaned assets: typed, deduplicated, reversals applied, UTC, EUR; reference tables; labels.

Reference tables keep the latest snapshot / latest landed version per key (SQL constants below).
Transactions, quarantine and the per-date reconciliation are produced by one step per set of
business dates (a backfill is one run, written in chunks of dates); each table's partition write is
one transaction (`replace_partition`).
"""

from collections.abc import Sequence
from datetime import timedelta

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from fraud_assets.defs.cleaned.transform import (
    QUARANTINE_COLUMNS,
    RECONCILIATION_COLUMNS,
    TRANSACTION_COLUMNS,
    clean_authorizations,
)
from fraud_assets.defs.raw import assets as raw
from fraud_assets.lib.partitions import business_date_partitions
from fraud_assets.lib.warehouse import replace_partition, replace_table, table_exists, table_metadata

OWNERS = ["team:fraud-data-science"]
GROUP = "cleaned"
CHUNK_DAYS = 31
DAILY_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=30), warn_window=timedelta(hours=26)
)
REFERENCE_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(days=8), warn_window=timedelta(days=2)
)
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
# A corrected rate (later landed file) replaces an earlier one for the same day and currency.
FX_SQL = """
WITH typed AS (
    SELECT TRY_CAST(trim(rate_date) AS DATE) AS rate_date, upper(trim(quote_currency)) AS quote_currency,
           TRY_CAST(replace(trim(rate), ',', '.') AS DOUBLE) AS rate, landing_date, source_file, row_number
    FROM raw.fx_rates
    WHERE malformed_reason IS NULL AND coalesce(upper(trim(base_currency)), 'EUR') = 'EUR'
)
SELECT rate_date, quote_currency, rate FROM typed
WHERE rate_date IS NOT NULL AND regexp_full_match(quote_currency, '[A-Z]{3}') AND rate > 0
QUALIFY row_number() OVER (
    PARTITION BY rate_date, quote_currency ORDER BY landing_date DESC, source_file DESC, row_number DESC
) = 1
ORDER BY rate_date, quote_currency
"""
# Earliest report per transaction: a fraud is known from the first chargeback that names it.
LABELS_SQL = """
WITH typed AS (
    SELECT TRY_CAST(trim(transaction_id) AS BIGINT) AS transaction_id, card_token,
           TRY_STRPTIME(trim(tx_datetime), '%Y-%m-%dT%H:%M:%SZ') AS tx_datetime,
           TRY_STRPTIME(trim(reported_at), '%Y-%m-%dT%H:%M:%SZ') AS reported_at,
           trim(chargeback_id) AS chargeback_id, trim(reason_code) AS reason_code
    FROM raw.chargebacks
    WHERE malformed_reason IS NULL
)
SELECT transaction_id, card_token, CAST(tx_datetime AS TIMESTAMP) AS tx_datetime,
       CAST(reported_at AS TIMESTAMP) AS reported_at, chargeback_id, reason_code
FROM typed
WHERE transaction_id IS NOT NULL AND reported_at IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY transaction_id ORDER BY reported_at, chargeback_id) = 1
ORDER BY transaction_id
"""


def _cast_sql(columns: list[tuple[str, str]], view: str) -> str:
    return "SELECT " + ", ".join(f'CAST("{c}" AS {t}) AS "{c}"' for c, t in columns) + f" FROM {view}"


def _reference_asset(name: str, sql: str, upstream: dg.AssetsDefinition, description: str):
    table = f"cleaned.{name}"

    @dg.asset(
        key=["cleaned", name],
        group_name=GROUP,
        owners=OWNERS,
        kinds={"duckdb", "sql"},
        code_version="1",
        pool="duckdb",
        deps=[upstream],
        freshness_policy=REFERENCE_FRESHNESS,
        description=description,
    )
    def _asset(duckdb: DuckDBResource) -> dg.MaterializeResult:
        with duckdb.get_connection() as conn:
            source_rows = conn.execute(f"SELECT count(*) FROM raw.{upstream.key.path[-1]}").fetchall()[0][0]
            written = replace_table(conn, table, sql)
            md = table_metadata(conn, table, extra={"source_rows": int(source_rows)})
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
    "by the rate of the transaction's business date.",
)
labels = _reference_asset(
    "labels",
    LABELS_SQL,
    raw.chargebacks,
    "Fraud labels for model training and monitoring: one row per reported transaction_id with the "
    "EARLIEST chargeback `reported_at` (a transaction is fraud as known at time t iff reported_at <= t), "
    "its card_token, tx_datetime, chargeback_id and reason_code. Unparseable chargeback rows are left out "
    "(count = source_rows - rows_written in metadata).",
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
        for table, frame, cols in (
            (TX, out.transactions, TRANSACTION_COLUMNS),
            (QUAR, out.quarantine, QUARANTINE_COLUMNS),
            (RECON, out.reconciliation, RECONCILIATION_COLUMNS),
        ):
            cur = conn.cursor()  # own cursor: see raw.assets.write_frame
            try:
                cur.register("_cleaned_src", frame)
                replace_partition(cur, table, _cast_sql(cols, "_cleaned_src"), "business_date", chunk)
            finally:
                cur.close()
        for k in totals:
            totals[k] += int(out.reconciliation[k].sum())
        for r, n in out.by_reason.items():
            by_reason[r] = by_reason.get(r, 0) + n
    return {**totals, "by_reason": by_reason}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            key=["cleaned", "transactions"],
            group_name=GROUP,
            owners=OWNERS,
            kinds={"python", "duckdb"},
            code_version="1",
            deps=[raw.authorizations, ["cleaned", "terminals"], ["cleaned", "fx_rates"]],
            freshness_policy=DAILY_FRESHNESS,
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
        dg.AssetSpec(
            key=["cleaned", "quarantine"],
            group_name=GROUP,
            owners=OWNERS,
            kinds={"python", "duckdb"},
            code_version="1",
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
        dg.AssetSpec(
            key=["cleaned", "reconciliation"],
            group_name=GROUP,
            owners=OWNERS,
            kinds={"python", "duckdb"},
            code_version="1",
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
