"""Cleaned checks: contracts, uniqueness, referential integrity, reconciliation, PAN-leak scans.

One step per table (lib/table_checks.py): the checks of cleaned.transactions run together, and so do
those of each other table; every check keeps its own name, blocking flag and severity."""

import dagster as dg

from fraud_assets.defs.cleaned import assets as cl
from fraud_assets.defs.cleaned import schemas
from fraud_assets.defs.cleaned.reference import versions_serving
from fraud_assets.lib.partitions import business_date_partitions
from fraud_assets.lib.reason_codes import FRAUD, NON_FRAUD, classify_sql
from fraud_assets.lib.table_checks import (
    Counts,
    DayResults,
    TableCheck,
    TableScope,
    contract,
    counts_by_day,
    judged_by_day,
    pan_scan,
    table_checks,
)

TX_KEY = dg.AssetKey(["cleaned", "transactions"])
QUAR_KEY = dg.AssetKey(["cleaned", "quarantine"])
RECON_KEY = dg.AssetKey(["cleaned", "reconciliation"])


def _transaction_id_unique(scope: TableScope) -> dg.AssetCheckResult | DayResults:
    """Per day: its transaction_ids that appear more than once in the whole table; and over the run, each
    such id once (an id on two days of a range is one duplicated id, not two): one grouped query."""
    where, params = scope.filter()
    rows = scope.conn.execute(
        f"WITH ids AS (SELECT transaction_id, {scope.day()} AS day FROM {cl.TX} WHERE {where or 'TRUE'}), "
        f"dupes AS (SELECT transaction_id FROM {cl.TX} "
        "WHERE transaction_id IN (SELECT transaction_id FROM ids) GROUP BY 1 HAVING count(*) > 1) "
        "SELECT day, count(DISTINCT transaction_id), grouping(day) AS whole_run "
        "FROM ids SEMI JOIN dupes USING (transaction_id) GROUP BY GROUPING SETS ((day), ())",
        params,
    ).fetchall()
    names = ["duplicated_ids"]
    in_run = next((n for _, n, whole_run in rows if whole_run), 0)

    def judge(c: Counts) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            passed=c["duplicated_ids"] == 0, metadata={"duplicated_ids": c["duplicated_ids"]}
        )

    days = [(day, n) for day, n, whole_run in rows if not whole_run]
    return judged_by_day(
        scope, counts_by_day(scope, days, names), judge, names, combine={"duplicated_ids": lambda _: in_run}
    )


transaction_id_unique = TableCheck(
    "transaction_id_unique",
    "Uniqueness (contract): every transaction_id of the partition appears exactly once in the whole "
    "cleaned.transactions table, across all business dates. Blocking.",
    _transaction_id_unique,
)


def _references_exist(
    name: str, column: str, reference: dg.AssetsDefinition, description: str, blocking: bool
) -> TableCheck:
    """Referential integrity of the partition's `column` against the `reference` table (versioned: the
    version serving each row's business date, at most one); a blocking check fails with ERROR, a
    non-blocking one warns. Metadata: rows and orphan rows."""
    versions = versions_serving(".".join(reference.key.path), column)

    names = ["rows", "orphan_rows"]

    def judge(c: Counts) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            passed=c["orphan_rows"] == 0,
            severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
            metadata=dict(c),
        )

    def run(scope: TableScope) -> dg.AssetCheckResult | DayResults:
        where, params = scope.filter("t.business_date")
        rows = scope.conn.execute(
            f"SELECT {scope.day('t.business_date')}, count(*), count(*) FILTER (WHERE r.{column} IS NULL) "
            f"FROM {cl.TX} t LEFT JOIN ({versions}) r ON r.{column} = t.{column} "
            "AND t.business_date >= r._serves_from AND t.business_date < r._serves_to "
            f"WHERE {where or 'TRUE'} GROUP BY 1",
            params,
        ).fetchall()
        return judged_by_day(scope, counts_by_day(scope, rows, names), judge, names)

    return TableCheck(name, description, run, blocking=blocking, additional_deps=[reference])


terminals_exist = _references_exist(
    "terminals_exist",
    "terminal_id",
    cl.terminals,
    "Referential integrity: every terminal_id of the partition has a version of cleaned.terminals serving "
    "its business date (rows with an unknown terminal are quarantined, so any orphan is a bug). Blocking.",
    blocking=True,
)
cards_exist = _references_exist(
    "cards_exist",
    "card_token",
    cl.cards,
    "Referential integrity: every card_token of the partition exists in cleaned.cards. A card missing "
    "from the cardholder snapshot is an upstream data gap, not a reason to drop the payment: WARN, "
    "not blocking; metadata gives the orphan count.",
    blocking=False,
)


RECONCILE_COUNTS = [
    "raw_rows",
    "cleaned_rows",
    "quarantined_rows",
    "duplicates_removed",
    "reversal_rows",
    "recorded_cleaned_rows",
    "recorded_quarantined_rows",
]


def reconcile(scope: TableScope) -> dict[str, Counts]:
    """Each day's counts from the tables themselves (not from the cleaning step's own bookkeeping), in one
    grouped query."""
    where, params = scope.filter()
    where = where or "TRUE"
    day = scope.day()

    def counted(table: str, exprs: str) -> str:
        return f"SELECT {day} AS day, {exprs} FROM {table} WHERE {where} GROUP BY 1"

    rows = scope.conn.execute(
        f"""
        WITH r AS ({counted("raw.authorizations", "count(*) AS n")}),
             c AS ({counted(cl.TX, "count(*) AS n")}),
             q AS ({counted(cl.QUAR, "count(*) AS n")}),
             b AS ({
            counted(
                cl.RECON,
                "sum(duplicates_removed) AS dup, sum(reversal_rows) AS rev, "
                "sum(cleaned_rows) AS clean, sum(quarantined_rows) AS quar",
            )
        })
        SELECT day, r.n, c.n, q.n, b.dup, b.rev, b.clean, b.quar
        FROM r FULL JOIN c USING (day) FULL JOIN q USING (day) FULL JOIN b USING (day)
        """,
        params * 4,
    ).fetchall()
    return counts_by_day(scope, rows, RECONCILE_COUNTS)


def _reconciled(c: Counts) -> dg.AssetCheckResult:
    accounted = c["cleaned_rows"] + c["quarantined_rows"] + c["duplicates_removed"] + c["reversal_rows"]
    passed = (
        c["raw_rows"] == accounted
        and c["recorded_cleaned_rows"] == c["cleaned_rows"]
        and c["recorded_quarantined_rows"] == c["quarantined_rows"]
    )
    return dg.AssetCheckResult(passed=passed, metadata={**c, "unaccounted_rows": c["raw_rows"] - accounted})


def _raw_rows_reconcile(scope: TableScope) -> dg.AssetCheckResult | DayResults:
    return judged_by_day(scope, reconcile(scope), _reconciled, RECONCILE_COUNTS)


raw_rows_reconcile = TableCheck(
    "raw_rows_reconcile",
    "Reconciliation for the partition: rows in raw.authorizations = rows in cleaned.transactions + "
    "rows in cleaned.quarantine + duplicates_removed + reversal_rows (the last two from "
    "cleaned.reconciliation). Every count in metadata. Blocking: an unaccounted row stops the flow.",
    _raw_rows_reconcile,
    additional_deps=[["raw", "authorizations"]],
)


# Per reference source: how a raw row's key is read, and the kept table's key columns.
REFERENCE_KEYS = {
    "chargebacks": (
        "raw.chargebacks",
        "cleaned.labels",
        {"transaction_id": "TRY_CAST(trim(r.transaction_id) AS BIGINT)"},
        {"chargeback_id": "trim(r.chargeback_id)"},
    ),
    "fx_rates": (
        "raw.fx_rates",
        "cleaned.fx_rates",
        {
            "rate_date": "TRY_CAST(trim(r.rate_date) AS DATE)",
            "quote_currency": "upper(trim(r.quote_currency))",
        },
        {},
    ),
}
# Per reference source: (metadata name, predicate on a raw row `r`) of the accepted rows deliberately
# not kept, and the predicate of those that may be; an accepted row matching neither is unaccounted.
SET_ASIDE = {
    "chargebacks": (
        "non_fraud_disputes",
        f"({classify_sql('r.reason_code')}) = '{NON_FRAUD}'",
        f"({classify_sql('r.reason_code')}) = '{FRAUD}'",
    ),
}


def reconcile_reference(conn, source: str) -> dict[str, int]:
    """Where every raw row of a reference source went, from the tables themselves.

    accepted = raw rows not in the quarantine; of those, set-aside rows (chargebacks: non-fraud
    disputes, by their reason code) are counted, the others are candidates for the kept table;
    duplicates = candidates - distinct candidate keys. Also: candidates whose key is missing from the kept
    table (silently dropped), kept rows with no candidate behind them (invented, or a non-fraud dispute
    made a label), and quarantine rows that match no raw row."""
    raw_table, kept, keys, extra = REFERENCE_KEYS[source]
    aside_name, aside, keepable = SET_ASIDE.get(source, ("", "FALSE", "TRUE"))
    key_match = " AND ".join(f"k.{c} = {e}" for c, e in keys.items())
    source_match = " AND ".join([key_match, *(f"k.{c} = {e}" for c, e in extra.items())])
    key_tuple = ", ".join(keys.values())
    sql = f"""
    WITH q AS (SELECT source_file, row_number FROM {cl.REF_QUAR} WHERE source = ?),
    r AS (SELECT * FROM {raw_table}),
    accepted AS (SELECT r.* FROM r ANTI JOIN q USING (source_file, row_number)),
    candidates AS (SELECT * FROM accepted r WHERE coalesce({keepable}, false))
    SELECT
        (SELECT count(*) FROM r),
        (SELECT count(*) FROM q),
        (SELECT count(*) FROM q SEMI JOIN r USING (source_file, row_number)),
        (SELECT count(*) FROM {kept}),
        (SELECT count(*) FROM accepted),
        (SELECT count(*) FROM accepted r WHERE coalesce({aside}, false)),
        (SELECT count(*) FROM candidates),
        (SELECT count(*) FROM (SELECT DISTINCT {key_tuple} FROM candidates r)),
        (SELECT count(*) FROM candidates r WHERE NOT EXISTS (SELECT 1 FROM {kept} k WHERE {key_match})),
        (SELECT count(*) FROM {kept} k WHERE NOT EXISTS (SELECT 1 FROM candidates r WHERE {source_match}))
    """
    names = (
        "raw_rows",
        "quarantined_rows",
        "quarantined_rows_in_raw",
        "kept_rows",
        "accepted_rows",
        aside_name or "set_aside_rows",
        "candidate_rows",
        "accepted_keys",
        "dropped_rows",
        "kept_rows_without_source",
    )
    c = dict(zip(names, (int(v) for v in conn.execute(sql, [source]).fetchall()[0]), strict=True))
    c["duplicates_removed"] = c.pop("candidate_rows") - c["accepted_keys"]
    if not aside_name:
        del c["set_aside_rows"]
    return c


def _reference_reconcile(source: str) -> TableCheck:
    raw_table, kept, _, _ = REFERENCE_KEYS[source]
    aside = SET_ASIDE.get(source)

    def run(scope: TableScope) -> dg.AssetCheckResult:
        c = reconcile_reference(scope.conn, source)
        accounted = c["kept_rows"] + c["quarantined_rows"] + c["duplicates_removed"]
        unaccounted = c["raw_rows"] - accounted - (c[aside[0]] if aside else 0)
        passed = (
            unaccounted == 0
            and c["kept_rows"] == c["accepted_keys"]
            and c["dropped_rows"] == 0
            and c["kept_rows_without_source"] == 0
            and c["quarantined_rows_in_raw"] == c["quarantined_rows"]
        )
        return dg.AssetCheckResult(passed=passed, metadata={**c, "unaccounted_rows": unaccounted})

    aside_text = f" + {aside[0]} (accepted rows with a non-fraud reason code, never kept)" if aside else ""
    return TableCheck(
        f"{source}_rows_reconcile",
        f"Reconciliation of {raw_table}: raw rows = rows in {kept} + rows quarantined in "
        f"{cl.REF_QUAR} (source = {source}) + duplicates (accepted rows sharing a kept key){aside_text}; "
        f"no accepted row's key is missing from {kept}, no kept row lacks an accepted raw row, every "
        "quarantined row is a raw row. Every count in metadata. Blocking: no silent drop.",
        run,
        additional_deps=[["raw", source]],
    )


# Per snapshot source: the raw table, the versioned table, its key, and the snapshots in force (merchants:
# the latest landed file of each date is that date's snapshot; cardholder files are shards, all in force).
SNAPSHOT_KEYS = {
    "merchants": (
        "raw.merchants",
        "cleaned.terminals",
        "terminal_id",
        "SELECT source_file FROM raw.merchants QUALIFY row_number() OVER "
        "(PARTITION BY business_date ORDER BY landing_date DESC, source_file DESC) = 1",
    ),
    "cardholders": (
        "raw.cardholders",
        "cleaned.cards",
        "card_token",
        "SELECT source_file FROM raw.cardholders",
    ),
}


def reconcile_snapshot(conn, source: str) -> dict[str, int]:
    """Where every raw row of a snapshot source went, from the tables themselves: raw rows = kept +
    duplicates (rows with no quarantine row; a duplicate repeats a key its file lists before) +
    quarantined; a raw row flagged `invalid_reason` that is not quarantined, a quarantine row with no raw
    row, and a row of a snapshot in force, not quarantined, whose key no version serves on the snapshot's
    date (a genuine row dropped) are each counted."""
    raw_table, kept, key, in_force = SNAPSHOT_KEYS[source]
    sql = f"""
    WITH q AS (SELECT source_file, row_number FROM {cl.REF_QUAR} WHERE source = ?),
    kept_rows AS (SELECT * FROM {raw_table} ANTI JOIN q USING (source_file, row_number))
    SELECT
        (SELECT count(*) FROM {raw_table}),
        (SELECT count(*) FROM q),
        (SELECT count(*) FROM q SEMI JOIN {raw_table} r USING (source_file, row_number)),
        (SELECT count(*) FROM kept_rows),
        (SELECT count(*) - count(DISTINCT struct_pack(source_file, {key})) FROM kept_rows),
        (SELECT count(*) FROM kept_rows WHERE invalid_reason IS NOT NULL),
        (SELECT count(*) FROM kept_rows r WHERE source_file IN ({in_force}) AND NOT EXISTS (
            SELECT 1 FROM {kept} k WHERE k.{key} = r.{key} AND k.valid_from <= r.business_date
                AND (k.valid_to IS NULL OR k.valid_to > r.business_date)))
    """
    names = (
        "raw_rows",
        "quarantined_rows",
        "quarantined_rows_in_raw",
        "kept_rows",
        "duplicates_removed",
        "flagged_rows_not_quarantined",
        "dropped_rows",
    )
    c = dict(zip(names, (int(v) for v in conn.execute(sql, [source]).fetchone()), strict=True))
    c["kept_rows"] -= c["duplicates_removed"]
    return c


def _snapshot_reconcile(source: str) -> TableCheck:
    raw_table, kept, key, _ = SNAPSHOT_KEYS[source]

    def run(scope: TableScope) -> dg.AssetCheckResult:
        c = reconcile_snapshot(scope.conn, source)
        unaccounted = c["raw_rows"] - c["kept_rows"] - c["duplicates_removed"] - c["quarantined_rows"]
        passed = (
            unaccounted == 0
            and c["quarantined_rows_in_raw"] == c["quarantined_rows"]
            and c["flagged_rows_not_quarantined"] == 0
            and c["dropped_rows"] == 0
        )
        return dg.AssetCheckResult(passed=passed, metadata={**c, "unaccounted_rows": unaccounted})

    return TableCheck(
        f"{source}_rows_reconcile",
        f"Reconciliation of {raw_table}: raw rows = kept rows + duplicates (identical rows of a {key} in "
        f"one file, one kept) + rows quarantined in {cl.REF_QUAR} (source = {source}); every row raw flags "
        f"(`invalid_reason`) is quarantined, every quarantined row is a raw row, and every kept row of a "
        f"snapshot in force has a version of {kept} serving its {key} on the snapshot's date. Every count "
        "in metadata. Blocking: no silent drop.",
        run,
        additional_deps=[["raw", source]],
    )


def _reference_quarantine_checks(asset: dg.AssetsDefinition) -> dg.AssetChecksDefinition:
    """cleaned.reference_quarantine is written by cleaned/labels, cleaned/fx_rates, cleaned/terminals and
    cleaned/cards (each its own source slice): each writer carries a contract check and a PAN scan of the
    table, as a step of its own (the checks of a table other than the asset's)."""
    return table_checks(
        asset,
        cl.REF_QUAR,
        [
            contract(schemas.CONTRACTS[cl.REF_QUAR], name="reference_quarantine_contract"),
            pan_scan("reference_quarantine_no_clear_pan"),
        ],
    )


def _checks(table: str, *more: TableCheck) -> list[TableCheck]:
    """The table's contract (`schemas.CONTRACTS`) and PAN-leak scan, then its own checks."""
    return [contract(schemas.CONTRACTS[table]), pan_scan(), *more]


P = business_date_partitions
CLEANED_CHECKS = [
    table_checks(
        TX_KEY,
        cl.TX,
        _checks(cl.TX, transaction_id_unique, terminals_exist, cards_exist, raw_rows_reconcile),
        partitions_def=P,
    ),
    table_checks(QUAR_KEY, cl.QUAR, _checks(cl.QUAR), partitions_def=P),
    table_checks(RECON_KEY, cl.RECON, _checks(cl.RECON), partitions_def=P),
    table_checks(cl.labels, "cleaned.labels", _checks("cleaned.labels", _reference_reconcile("chargebacks"))),
    table_checks(
        cl.fx_rates, "cleaned.fx_rates", _checks("cleaned.fx_rates", _reference_reconcile("fx_rates"))
    ),
    table_checks(cl.cards, "cleaned.cards", _checks("cleaned.cards", _snapshot_reconcile("cardholders"))),
    table_checks(
        cl.terminals, "cleaned.terminals", _checks("cleaned.terminals", _snapshot_reconcile("merchants"))
    ),
    _reference_quarantine_checks(cl.labels),
    _reference_quarantine_checks(cl.fx_rates),
    _reference_quarantine_checks(cl.terminals),
    _reference_quarantine_checks(cl.cards),
]
