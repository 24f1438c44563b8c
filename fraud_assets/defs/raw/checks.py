"""Raw checks: contracts, PAN-leak scans, landed = raw reconciliation, and the rejected-files alarm."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from fraud_assets.defs.raw import assets as raw_assets
from fraud_assets.defs.raw import schemas
from fraud_assets.lib.contracts import (
    contract_check,
    partition_filter,
    partitioned_asset_check,
)
from fraud_assets.lib.pan_leaks import pan_leak_check
from fraud_assets.lib.partitions import business_date_partitions
from fraud_assets.lib.warehouse import table_exists

MODELS = {
    raw_assets.file_register: (schemas.FileRegisterModel, "raw.file_register"),
    raw_assets.authorizations: (schemas.RawAuthorizationsModel, "raw.authorizations"),
    raw_assets.chargebacks: (schemas.RawChargebacksModel, "raw.chargebacks"),
    raw_assets.cardholders: (schemas.RawCardholdersModel, "raw.cardholders"),
    raw_assets.merchants: (schemas.RawMerchantsModel, "raw.merchants"),
    raw_assets.fx_rates: (schemas.RawFxRatesModel, "raw.fx_rates"),
}

contract_checks = [contract_check(a, model, table) for a, (model, table) in MODELS.items()]
leak_checks = [pan_leak_check(a, table) for a, (_, table) in MODELS.items()]


@dg.asset_check(
    asset=raw_assets.file_register,
    name="no_rejected_files",
    description=(
        "Fails (ERROR, not blocking) while any landing file is rejected (unreadable, empty, header only, "
        "wrong encoding, unrecognised name...): the other files flow on, and the failure stays visible "
        "until the producer re-sends a good file. Metadata lists each rejected file with its reason."
    ),
    blocking=False,
    pool="duckdb",
)
def no_rejected_files(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as conn:
        rejected = conn.execute(
            "SELECT source_file, reason FROM raw.file_register WHERE status = 'rejected' ORDER BY 1"
        ).df()
    return dg.AssetCheckResult(
        passed=rejected.empty,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "rejected_files": dg.MetadataValue.int(len(rejected)),
            "rejections": dg.MetadataValue.md(
                rejected.to_markdown(index=False) if len(rejected) else "_none_"
            ),
        },
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


@partitioned_asset_check(
    asset=raw_assets.authorizations,
    name="landed_rows_reconcile",
    description=(
        "Reconciliation for the partition: rows landed in the ingested authorisation files of this "
        "business date (raw.file_register.rows_landed) = rows in raw.authorizations. Blocking: a lost "
        "or doubled line must not reach cleaning. Both counts in metadata."
    ),
    blocking=True,
    partitions_def=business_date_partitions,
    pool="duckdb",
)
def authorizations_landed_rows_reconcile(
    context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource
) -> dg.AssetCheckResult:
    where, params = partition_filter(context, "business_date")
    with duckdb.get_connection() as conn:
        landed, raw_rows = landed_vs_raw(conn, "authorizations", where, params)
    return dg.AssetCheckResult(
        passed=landed == raw_rows,
        metadata={"rows_landed": landed, "rows_raw": raw_rows, "difference": raw_rows - landed},
    )


def _reference_reconcile(asset: dg.AssetsDefinition, source: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset,
        name="landed_rows_reconcile",
        description=(
            f"Reconciliation: rows landed in every ingested {source} file = rows in raw.{source}. "
            "Blocking. Both counts in metadata."
        ),
        blocking=True,
        pool="duckdb",
    )
    def _check(duckdb: DuckDBResource) -> dg.AssetCheckResult:
        with duckdb.get_connection() as conn:
            landed, raw_rows = landed_vs_raw(conn, source)
        return dg.AssetCheckResult(
            passed=landed == raw_rows,
            metadata={"rows_landed": landed, "rows_raw": raw_rows, "difference": raw_rows - landed},
        )

    return _check


reference_reconcile_checks = [
    _reference_reconcile(a, a.key.path[-1])
    for a in (raw_assets.chargebacks, raw_assets.cardholders, raw_assets.merchants, raw_assets.fx_rates)
]

RAW_CHECKS = [
    *contract_checks,
    *leak_checks,
    no_rejected_files,
    authorizations_landed_rows_reconcile,
    *reference_reconcile_checks,
]
