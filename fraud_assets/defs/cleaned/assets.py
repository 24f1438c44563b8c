"""Cleaned assets: typed, deduplicated, reversals applied, UTC, EUR; reference tables; labels.

Reference tables keep the latest landed version per key (cards, FX rates), or every snapshot's version of
a terminal with its validity (SQL in reference.py).
Transactions, quarantine and the per-date reconciliation are produced by one step per set of business
dates (a backfill is one run, cleaned in chunks of dates by the SQL of clean_transactions.sql); each
chunk's three partition writes are one transaction (`replace_partitions`).
"""

import inspect
from collections.abc import Sequence

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from fraud_assets.defs.cleaned import schemas, transform
from fraud_assets.defs.cleaned.reference import (
    CARDHOLDERS_QUARANTINE_SQL,
    CARDS_SQL,
    CHARGEBACK_QUARANTINE_SQL,
    FX_QUARANTINE_SQL,
    FX_SQL,
    LABELS_SQL,
    MERCHANTS_QUARANTINE_SQL,
    NON_FRAUD_DISPUTES_SQL,
    REFERENCE_REASONS,
    TERMINALS_SQL,
    changed_spans_sql,
    snapshot_duplicates_sql,
)
from fraud_assets.defs.cleaned.transform import (
    QUAR,
    QUARANTINE_COLUMNS,
    RECON,
    RECONCILIATION_COLUMNS,
    TRANSACTION_COLUMNS,
    TX,
    typed_select,
)
from fraud_assets.defs.raw import assets as raw
from fraud_assets.lib.catalog_metadata import column_schema_metadata
from fraud_assets.lib.day_metadata import DAY_ROW_COUNT, day_aggregates, spread_over_days
from fraud_assets.lib.pan import mask_pans
from fraud_assets.lib.partitions import business_date_partitions, dates_filter
from fraud_assets.lib.warehouse import (
    ensure_schema,
    replace_partition,
    replace_partitions,
    replace_table,
    table_exists,
    table_metadata,
)

__all__ = ["CARDS_SQL", "FX_SQL", "LABELS_SQL", "REFERENCE_REASONS", "TERMINALS_SQL"]  # read by bench/

OWNERS = ["team:fraud-data-science"]
GROUP = "cleaned"
CHUNK_DAYS = 31

REF_QUAR = "cleaned.reference_quarantine"


def write_reference_quarantine(conn, source: str, sql: str) -> pd.DataFrame:
    """Replace `source`'s slice of cleaned.reference_quarantine (one transaction) with the rows of
    `sql`, offending values masked; returns the rows written."""
    q = conn.execute(sql).df()
    q["offending_value"] = q["offending_value"].map(lambda v: None if pd.isna(v) else mask_pans(str(v)))
    cur = conn.cursor()  # own cursor: see raw.assets.write_frame
    try:
        cur.register("_ref_quarantine_src", q)
        rows = typed_select(QUARANTINE_COLUMNS, "SELECT * FROM _ref_quarantine_src")
        replace_partition(cur, REF_QUAR, rows, "source", [source])
    finally:
        cur.close()
    return q


# Metadata of a cleaned/labels materialisation: which labels it added, removed or moved, as a span. The
# feature lookback sensor reads it (from the instance) to rebuild the days whose features used fewer or
# other labels than are now known.
CHANGED_LABELS = "changed_labels"
CHANGED_FIRST_REPORT = "changed_labels_first_report_date"
CHANGED_LAST_TRANSACTION = "changed_labels_last_transaction_date"
# The earliest transaction date among them: monitoring recomputes the performance of the days from there.
CHANGED_FIRST_TRANSACTION = "changed_labels_first_transaction_date"
_LABEL_DIFF_COLUMNS = "transaction_id, reported_at, tx_datetime"
# Metadata of a cleaned/fx_rates or cleaned/terminals materialisation: the business dates already cleaned
# that this version of the table would clean differently (transform.restated_days); of a cleaned/transactions
# one: the days next to those cleaned whose cleaning their reversal links change (a reversal that landed on
# the next date: transform.restated_by_reversals). The restatement sensor reads it from the instance and
# re-cleans them.
RESTATED_DAYS = "restated_days"
RESTATED_DAYS_COUNT = "restated_days_count"


def _label_changes(conn, table: str, had_table: bool) -> dict[str, object]:
    """Labels that differ between `_labels_before` and `table` (either side): how many, the earliest report
    date among them and the earliest and latest transaction dates ("" when none; a label without its
    transaction time counts at its report date, which follows the transaction)."""
    new, old = f"SELECT {_LABEL_DIFF_COLUMNS} FROM {table}", "SELECT * FROM _labels_before"
    diff = f"(({new}) EXCEPT ({old})) UNION ALL (({old}) EXCEPT ({new}))" if had_table else new
    n, first_report, first_tx, last_tx = conn.execute(
        "SELECT count(*), min(CAST(reported_at AS DATE)), "
        "min(CAST(coalesce(tx_datetime, reported_at) AS DATE)), "
        f"max(CAST(coalesce(tx_datetime, reported_at) AS DATE)) FROM ({diff})"
    ).fetchone()
    return {
        CHANGED_LABELS: int(n),
        CHANGED_FIRST_REPORT: str(first_report or ""),
        CHANGED_FIRST_TRANSACTION: str(first_tx or ""),
        CHANGED_LAST_TRANSACTION: str(last_tx or ""),
    }


# Metadata of a cleaned/terminals or cleaned/cards materialisation: the first and last business date of
# cleaned transactions whose card or terminal, as of their date, has other values the features read than
# before the rebuild ("" when none). The label lookback sensor rebuilds the features of those days and of
# the days whose lookback reads them.
CHANGED_REFERENCE_FIRST = "changed_reference_first_transaction_date"
CHANGED_REFERENCE_LAST = "changed_reference_last_transaction_date"


def _reference_changes(conn, name: str, key: str, values: str) -> dict[str, object]:
    """The span of cleaned transaction dates on a `key` whose `values` as of their date the rebuild of
    cleaned.`name` changed (nothing before the first build or the first cleaning)."""
    first = last = None
    if transform.has_previous(conn, name) and table_exists(conn, TX):
        spans = changed_spans_sql(transform.previous(name), f"cleaned.{name}", key, values)
        first, last = conn.execute(
            f"SELECT min(t.business_date), max(t.business_date) FROM {TX} t JOIN ({spans}) s "
            f"ON s.{key} = t.{key} AND t.business_date >= s.span_from AND t.business_date < s.span_to"
        ).fetchone()
    return {CHANGED_REFERENCE_FIRST: str(first or ""), CHANGED_REFERENCE_LAST: str(last or "")}


def _reference_asset(
    name: str,
    sql: str,
    upstream: dg.AssetsDefinition,
    description: str,
    quarantine: tuple[str, str] | None = None,
    set_aside: tuple[str, str] | None = None,
    code_version: str | None = None,
    track_label_changes: bool = False,
    judged_against_transactions: bool = False,
    restates_cleaning: bool = False,
    feature_values: tuple[str, str] | None = None,
):
    """A reference table rebuilt from its raw table; with `quarantine` = (source, SQL), the rows it
    rejects go to that source's slice of cleaned.reference_quarantine, written first so a crash
    between the two writes leaves a visible (failing) reconciliation, never a silent drop. With
    `set_aside` = (metadata name, count SQL), usable raw rows that are deliberately not kept (labels:
    non-fraud disputes) are counted under that name, outside duplicates_removed. With
    `track_label_changes` (labels), the metadata says which labels the rebuild changed (`_label_changes`).
    With `judged_against_transactions` (labels), rows are judged against cleaned.transactions (empty
    until its first materialisation), which is then an upstream asset too. With `restates_cleaning` (FX
    rates, terminals: cleaning reads them), the metadata lists the days already cleaned that the new
    table would clean differently (`RESTATED_DAYS`; cleaned/sensors.py re-cleans them). With
    `feature_values` = (key, columns) (versioned tables the features read), the metadata gives the span of
    transaction dates whose features read other values now (`_reference_changes`)."""
    table = f"cleaned.{name}"
    # The UI's source link names this factory's function (Dagster adds it) and, first, the call that
    # defines this table with its SQL: four tables share the function, each has its own call.
    caller = inspect.currentframe().f_back
    defined_here = dg.LocalFileCodeReference(
        file_path=caller.f_code.co_filename, line_number=caller.f_lineno, label=f"cleaned/{name}: its SQL"
    )

    @dg.asset(
        key=["cleaned", name],
        metadata={
            **column_schema_metadata(
                schemas.REFERENCE_COLUMNS[name],
                descriptions=schemas.COLUMN_DESCRIPTIONS,
                contract=schemas.CONTRACTS[table],
            ),
            "dagster/code_references": dg.CodeReferencesMetadataValue(code_references=[defined_here]),
        },
        group_name=GROUP,
        owners=OWNERS,
        kinds={"duckdb", "sql"},
        code_version=code_version or ("3" if quarantine else "2"),
        pool="duckdb",
        deps=[upstream, *([dg.AssetKey(TX.split("."))] if judged_against_transactions else [])],
        description=description,
    )
    def _asset(duckdb: DuckDBResource) -> dg.MaterializeResult:
        with duckdb.get_connection() as conn:
            if judged_against_transactions:
                ensure_schema(conn, TX)
                columns = ", ".join(f'"{c}" {t}' for c, t in TRANSACTION_COLUMNS)
                conn.execute(f"CREATE TABLE IF NOT EXISTS {TX} ({columns})")
            source_rows = conn.execute(f"SELECT count(*) FROM raw.{upstream.key.path[-1]}").fetchall()[0][0]
            extra: dict[str, object] = {"source_rows": int(source_rows)}
            quarantined = set_aside_rows = 0
            if quarantine is not None:
                q = write_reference_quarantine(conn, *quarantine)
                quarantined = len(q)
                by_reason = {str(k): int(v) for k, v in q["reason"].value_counts().items()}
                extra["quarantined_rows"] = quarantined
                extra["quarantine_by_reason"] = dg.MetadataValue.json(by_reason)
                extra.update({f"quarantined_{r}": n for r, n in sorted(by_reason.items())})
                extra["quarantine_table"] = dg.MetadataValue.text(f"{REF_QUAR} (source = {quarantine[0]})")
            if set_aside is not None:  # after the quarantine write: its SQL may read it
                set_aside_rows = int(conn.execute(set_aside[1]).fetchone()[0])
                extra[set_aside[0]] = set_aside_rows
            had_table = track_label_changes and table_exists(conn, table)
            if had_table:
                before = f"SELECT {_LABEL_DIFF_COLUMNS} FROM {table}"
                conn.execute(f"CREATE OR REPLACE TEMP TABLE _labels_before AS {before}")
            if feature_values is not None:
                transform.keep_previous(conn, name)  # what the days were cleaned and featured with
            written = replace_table(conn, table, sql)
            if quarantine is not None and feature_values is None:
                extra["duplicates_removed"] = int(source_rows) - quarantined - set_aside_rows - written
            elif quarantine is not None:  # versions, not rows: the usable rows are what is accounted
                dup_sql = snapshot_duplicates_sql(f"raw.{upstream.key.path[-1]}", feature_values[0], REF_QUAR)
                duplicates = int(conn.execute(dup_sql, [quarantine[0]]).fetchone()[0])
                extra["kept_rows"] = int(source_rows) - quarantined - duplicates
                extra["duplicates_removed"] = duplicates
            if track_label_changes:
                extra.update(_label_changes(conn, table, had_table))
            if restates_cleaning:
                days = transform.restated_days(conn, name)
                extra[RESTATED_DAYS] = dg.MetadataValue.json(days)
                extra[RESTATED_DAYS_COUNT] = len(days)
            if feature_values is not None:
                extra.update(_reference_changes(conn, name, *feature_values))
            md = table_metadata(
                conn,
                table,
                descriptions=schemas.COLUMN_DESCRIPTIONS,
                contract=schemas.CONTRACTS[table],
                extra=extra,
            )
        md["rows_written"] = written
        return dg.MaterializeResult(metadata=md)

    return _asset


terminals = _reference_asset(
    "terminals",
    TERMINALS_SQL,
    raw.merchants,
    "Terminal reference table for feature engineers and for cleaning (IANA time zone of each terminal "
    "converts processor B's local times), versioned (SCD type 2): one row per terminal_id and version of "
    "the full merchants snapshots (merchant_id, mcc, country, currency, timezone, x, y), valid from the "
    "snapshot date that introduced its values to valid_to, the next snapshot that changes or no longer "
    "lists the terminal (null: current). A business date is cleaned with the version serving it: the "
    "one valid on that date, or the terminal's earliest one for a date before it (reference data that "
    "arrived late); a terminal dropped by a snapshot is unknown from that snapshot's date on. A terminal "
    "listed after days quarantined its transactions `unknown_terminal` re-cleans those days, and a "
    "snapshot dated S that changes a terminal's zone or drops it re-cleans the cleaned days >= S with "
    "rows on it (metadata `restated_days`, reference_restatement_sensor). Metadata "
    "changed_reference_first/last_transaction_date: the transaction dates whose terminal location or "
    "merchant category the rebuild changed (label_lookback_sensor rebuilds their features). A snapshot "
    "row that cannot be used (raw.merchants.invalid_reason: missing terminal id or zone, a zone, MCC or "
    "currency the contract refuses, an infinite position; `conflicting_terminal`: every row of a terminal "
    "that one snapshot file lists twice with different values) is written with its reason to "
    "cleaned.reference_quarantine (source = merchants) and is no knowledge of its terminal: the version "
    "before it carries on (no drop, no restatement); identical rows of a terminal in one file are "
    "duplicates, one read. source_rows = kept_rows + quarantined_rows + duplicates_removed.",
    quarantine=("merchants", MERCHANTS_QUARANTINE_SQL),
    code_version="5",
    restates_cleaning=True,
    feature_values=("terminal_id", "x, y, mcc"),
)
cards = _reference_asset(
    "cards",
    CARDS_SQL,
    raw.cardholders,
    "Card reference table for feature engineers, versioned (SCD type 2): one row per card_token (HMAC of "
    "the PAN) and version, with pan_bin, pan_last4, customer_id and the cardholder's home "
    "location/country, valid from the cardholder snapshot date that introduced its values to valid_to, "
    "the next snapshot date that changes them (null: current). Features read the version serving the "
    "transaction's business date (a card's earliest version serves the days before it). Metadata "
    "changed_reference_first/last_transaction_date: the transaction dates whose card home the rebuild "
    "changed (label_lookback_sensor rebuilds their features). A snapshot row that cannot be used "
    "(raw.cardholders.invalid_reason: missing customer id or card number, an infinite home; a card "
    "number that is not a valid one; `conflicting_card`: every row of a card that one snapshot file lists "
    "twice with different values) is written with its reason to cleaned.reference_quarantine (source = "
    "cardholders) and opens no version; identical rows of a card in one file are duplicates, one read. A "
    "customer with several card numbers holds several cards (no conflict). "
    "source_rows = kept_rows + quarantined_rows + duplicates_removed.",
    quarantine=("cardholders", CARDHOLDERS_QUARANTINE_SQL),
    code_version="5",
    feature_values=("card_token", "home_x, home_y"),
)
fx_rates = _reference_asset(
    "fx_rates",
    FX_SQL,
    raw.fx_rates,
    "EUR reference FX rates, typed: one rate (quote currency units per EUR) per rate_date and "
    "quote_currency, a later-landed correction replacing the earlier value. Cleaning divides amounts "
    "by the rate of the transaction's business date (or the latest before it, at most 4 days old). "
    "Rows that cannot be used (malformed line, bad "
    "date, base currency other than EUR, bad currency code, non-numeric or non-positive rate, a rate "
    "outside the sane band 0.001-10,000,000, two different rates for one day and currency in one file) are "
    "written with their reason and masked value to cleaned.reference_quarantine (source = fx_rates); "
    "source_rows = rows_written + quarantined_rows + duplicates_removed (replaced versions). A rate that "
    "lands or is corrected after days were cleaned re-cleans the days it changes (metadata "
    "`restated_days`, reference_restatement_sensor).",
    quarantine=("fx_rates", FX_QUARANTINE_SQL),
    restates_cleaning=True,
)
labels = _reference_asset(
    "labels",
    LABELS_SQL,
    raw.chargebacks,
    "Fraud labels for model training and monitoring: one row per transaction_id reported as FRAUD, with "
    "the EARLIEST fraud chargeback's `reported_at` (a transaction is fraud as known at time t iff "
    "reported_at <= t), its card_token, tx_datetime, chargeback_id and reason_code.\n\nOnly a fraud reason "
    "code makes a label (Visa 10.x, Mastercard 4837, 4840, 4849, 4863, 4870, 4871, Amex F-codes and FR2, "
    "Discover UA01, UA02, UA05, UA06; fraud_assets/lib/reason_codes.py, compared trimmed and "
    "case-insensitively): a usable chargeback with a known non-fraud code (authorisation, processing "
    "error, consumer dispute) is no label and is counted as `non_fraud_disputes` (a transaction "
    "disputed so and later reported as fraud is labelled at its fraud report).\n\nRows that cannot be "
    "used (malformed line, bad transaction id, "
    "unparseable or future report time, report before the transaction, unparseable or negative amount, "
    "a missing or unrecognised reason code, a card number showing no BIN and last 4, a transaction not in "
    "cleaned.transactions or of another card) are written with their reason and masked value to "
    "cleaned.reference_quarantine (source = chargebacks); source_rows = rows_written + quarantined_rows + "
    "duplicates_removed (later fraud reports) + non_fraud_disputes.\n\n"
    "Metadata changed_labels / changed_labels_first_report_date / changed_labels_first_transaction_date / "
    "changed_labels_last_transaction_date: the labels this rebuild added, removed or moved (a late "
    "chargeback file), which label_lookback_sensor uses to rebuild the days whose features were computed "
    "without them and performance_labels_sensor to recompute the performance of the days they label.",
    quarantine=("chargebacks", CHARGEBACK_QUARANTINE_SQL),
    set_aside=("non_fraud_disputes", NON_FRAUD_DISPUTES_SQL),
    code_version="5",
    track_label_changes=True,
    judged_against_transactions=True,
)


def clean_partitions(conn, keys: Sequence[str]) -> dict[str, object]:
    """Clean raw.authorizations for `keys`, chunk by chunk (bounded memory); totals for metadata, with
    the days outside `keys` whose stored cleaning a reversal link changes (`RESTATED_DAYS`).

    Each chunk's transactions, quarantine and reconciliation are written in one transaction."""
    if not table_exists(conn, "raw.authorizations"):
        raise dg.Failure(
            description="raw.authorizations does not exist: materialise raw/authorizations first"
        )
    totals = dict.fromkeys(
        ("raw_rows", "cleaned_rows", "quarantined_rows", "duplicates_removed", "reversal_rows"), 0
    )
    by_reason: dict[str, int] = {}
    restated: set[str] = set()
    cur = conn.cursor()  # own cursor: the staging temp tables stay private to this step
    try:
        for start in range(0, len(keys), CHUNK_DAYS):
            chunk = list(keys[start : start + CHUNK_DAYS])
            transform.judge(cur, chunk)
            restated |= set(transform.restated_by_reversals(cur))
            replace_partitions(
                cur,
                {
                    TX: transform.TRANSACTIONS_SQL,
                    QUAR: transform.QUARANTINE_SQL,
                    RECON: transform.RECONCILIATION_SQL,
                },
                "business_date",
                chunk,
            )
            sums = cur.execute(
                f"SELECT {', '.join(f'sum({k})' for k in totals)} FROM ({transform.RECONCILIATION_SQL})"
            ).fetchone()
            for k, v in zip(totals, sums, strict=True):
                totals[k] += int(v or 0)
            for r, n in transform.reason_counts(cur).items():
                by_reason[r] = by_reason.get(r, 0) + n
        transform.drop_staging(cur)
    finally:
        cur.close()
    # a day of `keys` in another chunk is cleaned by this step, seeing this chunk's rows
    return {**totals, "by_reason": by_reason, RESTATED_DAYS: sorted(restated - set(keys))}


def _cleaning_spec(table: str, columns: list[tuple[str, str]], **kwargs) -> dg.AssetSpec:
    """A table written by the cleaning step (`cleaned_transactions`), with the layer's standard and its
    contract (`schemas.CONTRACTS`) beside its columns."""
    return dg.AssetSpec(
        key=table.split("."),
        metadata=column_schema_metadata(
            columns, descriptions=schemas.COLUMN_DESCRIPTIONS, contract=schemas.CONTRACTS[table]
        ),
        group_name=GROUP,
        owners=OWNERS,
        kinds={"sql", "duckdb"},
        code_version="4",
        **kwargs,
    )


TX_KEY, QUAR_KEY, RECON_KEY = (dg.AssetKey(t.split(".")) for t in (TX, QUAR, RECON))


@dg.multi_asset(
    specs=[
        _cleaning_spec(
            TX,
            TRANSACTION_COLUMNS,
            deps=[raw.authorizations, ["cleaned", "terminals"], ["cleaned", "fx_rates"]],
            description=(
                "Clean card transactions for the feature layer and analysts: one row per `transaction_id`, "
                "typed, in EUR and UTC.\n\n"
                "- exact retransmissions removed; reversed authorisations removed with their reversal (a "
                "reversal landed on the next business date lists the authorisation's day in metadata "
                "`restated_days`, and reference_restatement_sensor cleans that day again);\n"
                "- `tx_datetime` in UTC (processor B's local times converted with the time zone of the "
                "terminal's version serving the business date, from cleaned.terminals), `tx_datetime_local` "
                "at the terminal;\n"
                "- `tx_amount` in EUR (`amount_original` / `fx_rate` of the business date);\n"
                "- the card as `card_token` / `pan_bin` / `pan_last4`, never the PAN; `terminal_id`, "
                "`channel`, `three_ds`; lineage to the landing file (`feed`, `source_file`, `row_number`)."
                "\n\nRules: fraud_assets/defs/cleaned/clean_transactions.sql (SQL in DuckDB)."
            ),
        ),
        _cleaning_spec(
            QUAR,
            QUARANTINE_COLUMNS,
            deps=[raw.authorizations],
            description=(
                "Every authorisation row that did not make it into cleaned/transactions (other than exact "
                "retransmissions and applied reversals), for data engineers and the producers: "
                "business_date, "
                "source, feed, source_file, row_number, transaction_id (if parseable), reason (e.g. "
                "invalid_pan, unknown_terminal, negative_amount, malformed_line, future_timestamp), "
                "offending_column and offending_value (PANs masked), quarantined_at (= when the row was "
                "ingested)."
            ),
        ),
        _cleaning_spec(
            RECON,
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
    where = dates_filter(keys)
    with duckdb.get_connection() as conn:
        totals = clean_partitions(conn, keys)
        by_reason = totals.pop("by_reason")
        restated = totals.pop(RESTATED_DAYS)
        extras = {
            TX: {
                **{k: int(v) for k, v in totals.items()},
                "partitions_written": len(keys),
                RESTATED_DAYS: dg.MetadataValue.json(restated),
                RESTATED_DAYS_COUNT: len(restated),
            },
            QUAR: {"quarantined_rows": int(totals["quarantined_rows"]), **_reason_figures(by_reason)},
            RECON: {},
        }
        tx_md, quar_md, recon_md = (
            table_metadata(
                conn,
                table,
                descriptions=schemas.COLUMN_DESCRIPTIONS,
                contract=schemas.CONTRACTS[table],
                where=where,
                partitions=len(keys),
                extra=extra,
            )
            for table, extra in extras.items()
        )
        if len(keys) > 1:
            # Each day's own counts on its materialisation (the plots over partitions), not the range's.
            counts = [c for c, _ in RECONCILIATION_COLUMNS if c != "business_date"]
            recon = day_aggregates(conn, RECON, keys, {c: f"sum({c})" for c in counts})
            tx_days = day_aggregates(conn, TX, keys, {})
            for day, figures in tx_days.items():
                figures.update({c: v for c, v in recon[day].items() if c in counts})
            reasons = {
                f"quarantined_{r}": f"count(*) FILTER (WHERE reason = '{_sql_text(r)}')" for r in by_reason
            }
            quar_days = day_aggregates(conn, QUAR, keys, reasons)
            for figures in quar_days.values():
                day_reasons = {k.removeprefix("quarantined_"): int(figures.pop(k, 0) or 0) for k in reasons}
                figures.update(_reason_figures({r: n for r, n in day_reasons.items() if n}))
                figures["quarantined_rows"] = figures[DAY_ROW_COUNT]
            tx_md = spread_over_days(context, tx_md, tx_days, counts, asset_key=TX_KEY, conn=conn)
            quar_md = spread_over_days(
                context,
                quar_md,
                quar_days,
                ["quarantined_rows", "quarantine_by_reason", *reasons],
                asset_key=QUAR_KEY,
                conn=conn,
            )
            recon_rows = {day: {DAY_ROW_COUNT: f[DAY_ROW_COUNT]} for day, f in recon.items()}
            recon_md = spread_over_days(context, recon_md, recon_rows, [], asset_key=RECON_KEY, conn=conn)
        yield dg.MaterializeResult(asset_key=TX_KEY, metadata=tx_md)
        yield dg.MaterializeResult(asset_key=QUAR_KEY, metadata=quar_md)
        yield dg.MaterializeResult(asset_key=RECON_KEY, metadata=recon_md)


def _reason_figures(by_reason: dict[str, int]) -> dict[str, object]:
    return {
        "quarantine_by_reason": dg.MetadataValue.json(by_reason),
        **{f"quarantined_{r}": n for r, n in sorted(by_reason.items())},
    }


def _sql_text(value: str) -> str:
    return value.replace("'", "''")


CLEANED_ASSETS = [terminals, cards, fx_rates, labels, cleaned_transactions]
