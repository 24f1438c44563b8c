"""Raw checks: per table one step (lib/table_checks.py) with its contract, its PAN-leak scan and its
landed = raw reconciliation; the register's step adds the rejected-files alarm."""

import dagster as dg

from fraud_assets.defs.raw import assets as raw_assets
from fraud_assets.defs.raw import schemas
from fraud_assets.lib.table_checks import TableCheck, TableScope, contract, pan_scan, table_checks
from fraud_assets.lib.warehouse import table_exists

ASSETS = {
    raw_assets.file_register: "raw.file_register",
    raw_assets.authorizations: "raw.authorizations",
    raw_assets.chargebacks: "raw.chargebacks",
    raw_assets.cardholders: "raw.cardholders",
    raw_assets.merchants: "raw.merchants",
    raw_assets.fx_rates: "raw.fx_rates",
}


# Each rejected file with the ingested file of the same source, feed and business date that came after
# it (a later landing date; on the same one, a later registration, or a name that sorts after it, the
# `_002` re-send convention), if any: what the producer re-sent in its place.
REJECTED_SQL = """
SELECT r.source_file, r.reason,
       (SELECT min(g.source_file) FROM raw.file_register g
        WHERE g.status = 'ingested' AND g.source = r.source AND g.feed = r.feed
          AND g.business_date = r.business_date
          AND (g.landing_date > r.landing_date
               OR (g.landing_date = r.landing_date AND (g.registered_at > r.registered_at
                   OR (g.registered_at = r.registered_at AND g.source_file > r.source_file))))
       ) AS resent_as
FROM raw.file_register r WHERE r.status = 'rejected' ORDER BY 1
"""
NAMED_IN_DESCRIPTION = 5


def _rejected_files(scope: TableScope) -> dg.AssetCheckResult:
    rejected = scope.conn.execute(REJECTED_SQL).df()
    open_ = rejected[rejected["resent_as"].isna()]
    names = [f"{f} ({r})" for f, r in zip(open_["source_file"], open_["reason"], strict=True)]
    more = len(names) - NAMED_IN_DESCRIPTION
    return dg.AssetCheckResult(
        passed=open_.empty,
        severity=dg.AssetCheckSeverity.ERROR,
        # What an alert says: which files, why (names are stored masked).
        description=None
        if open_.empty
        else f"{len(open_)} rejected landing file(s) not re-sent: "
        + ", ".join(names[:NAMED_IN_DESCRIPTION])
        + (f" and {more} more" if more > 0 else ""),
        metadata={
            "rejected_files": dg.MetadataValue.int(len(rejected)),
            "rejected_not_resent": dg.MetadataValue.int(len(open_)),
            "rejections": dg.MetadataValue.md(
                rejected.fillna("").to_markdown(index=False) if len(rejected) else "_none_"
            ),
        },
    )


no_rejected_files = TableCheck(
    "no_rejected_files",
    "Fails (ERROR, not blocking) while a rejected landing file (unreadable, empty, over a cap, a symlink, "
    "wrongly typed, unrecognised name...: docs/landing-zone.md lists the reasons) has not been re-sent: "
    "the other files flow on, and the failure stays visible until the producer re-sends a good file (an "
    "ingested file of the same source, feed and business date that came after it). Its description names "
    "the files; metadata lists every rejected file with its reason and the file re-sent in its place.",
    _rejected_files,
    blocking=False,
)


def landed_vs_raw(conn, source: str, where: str = "", params: list | None = None) -> tuple[int, int]:
    """(rows landed per the register's ingested files, rows in raw.<source>) over the same dates."""
    filt = f" AND {where}" if where else ""
    landed = conn.execute(
        f"SELECT coalesce(sum(rows_landed), 0) FROM raw.file_register WHERE status = 'ingested' "
        f"AND source = ?{filt}",
        [source, *(params or [])],
    ).fetchone()[0]
    raw_rows = 0
    if table_exists(conn, f"raw.{source}"):
        raw_rows = conn.execute(
            f"SELECT count(*) FROM raw.{source}{' WHERE ' + where if where else ''}", params or []
        ).fetchone()[0]
    return int(landed), int(raw_rows)


def landed_rows_reconcile(source: str, description: str) -> TableCheck:
    """Rows landed in the ingested `source` files (of the run's business dates) = rows in raw.<source>."""

    def run(scope: TableScope) -> dg.AssetCheckResult:
        landed, raw_rows = landed_vs_raw(scope.conn, source, *scope.filter())
        return dg.AssetCheckResult(
            passed=landed == raw_rows,
            metadata={"rows_landed": landed, "rows_raw": raw_rows, "difference": raw_rows - landed},
        )

    return TableCheck("landed_rows_reconcile", description, run, requires_table=False)


def _reconcile(source: str) -> TableCheck:
    if source == "authorizations":
        return landed_rows_reconcile(
            source,
            "Reconciliation for the partition: rows landed in the ingested authorisation files of this "
            "business date (raw.file_register.rows_landed) = rows in raw.authorizations. Blocking: a lost "
            "or doubled line must not reach cleaning. Both counts in metadata.",
        )
    return landed_rows_reconcile(
        source,
        f"Reconciliation: rows landed in every ingested {source} file = rows in raw.{source}. "
        "Blocking. Both counts in metadata.",
    )


RAW_CHECKS = [
    table_checks(
        asset,
        table,
        [
            contract(schemas.CONTRACTS[table]),
            pan_scan(),
            no_rejected_files if asset is raw_assets.file_register else _reconcile(asset.key.path[-1]),
        ],
    )
    for asset, table in ASSETS.items()
]
