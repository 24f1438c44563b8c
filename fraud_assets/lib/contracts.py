"""Data contracts: a pandera `DataFrameModel`'s verdict on a DuckDB table.

The contract for a table is written once (a `DataFrameModel` beside the asset) and enforced in one
place: `contract_result` evaluates it where the data is, in DuckDB (lib/contract_sql.py compiles the
model to SQL) - only the partition(s) being materialised when the asset is partitioned - collecting
every failure, not just the first, and summarises the failures in the check's metadata. Failure
samples go through `mask_pans` so a contract failure can never print a card number. Checks declare it
with `table_checks(asset, table, [contract(model), ...])` (lib/table_checks.py).

Also here: `per_partition`, which every partitioned check's result goes through so a single-run
backfill records its verdict for each day it covered. The PAN-leak scan is `fraud_assets.lib.pan_leaks`.
"""

import functools
from collections.abc import Mapping, Sequence

import dagster as dg
import duckdb
import pandas as pd
import pandera.pandas as pa

from fraud_assets.lib.contract_sql import (
    SAMPLE_CHARS,
    Contract,
    ContractReport,
    compile_contract,
    evaluate,
    evaluate_by_day,
)
from fraud_assets.lib.dagster_compat import check_target, latest_materialization_ids
from fraud_assets.lib.markdown import markdown_table
from fraud_assets.lib.pan import mask_pans
from fraud_assets.lib.warehouse import table_exists


def _asset_key(asset: dg.AssetKey | dg.AssetsDefinition | str | Sequence[str]) -> dg.AssetKey:
    if isinstance(asset, dg.AssetsDefinition):
        return asset.key
    return dg.AssetKey.from_coercible(asset)


def _partitions_def(asset: object, partitions_def: dg.PartitionsDefinition | None):
    if partitions_def is not None:
        return partitions_def
    if isinstance(asset, dg.AssetsDefinition):
        return asset.partitions_def
    return None


# Metadata key of the per-day copies `per_partition` records for a range run (the alert sensor alerts on
# the range's own evaluation, not once per day).
EVALUATED_OVER = "evaluated_over"


def partition_span(keys: Sequence[str], unit: str = "partitions") -> str:
    """The partitions of a run in a few characters: the key, or `first..last (n <unit>)`."""
    return keys[0] if len(keys) == 1 else f"{keys[0]}..{keys[-1]} ({len(keys)} {unit})"


def per_partition(
    context: dg.AssetCheckExecutionContext | dg.AssetExecutionContext,
    result: dg.AssetCheckResult,
    per_day: Mapping[str, dg.AssetCheckResult] | None = None,
) -> dg.AssetCheckResult:
    """`result`, after recording it for every partition of a partition-range run.

    Dagster records a partitioned check's evaluation per partition only in a single-partition run; in a
    range run (a single-run backfill, the lookback sensor's rebuild) it records one evaluation without a
    partition, which the per-partition check status ignores: every day of the range would stay
    "skipped", and a blocking check then holds that day's downstream assets back for good (automation
    waits for `all_deps_blocking_checks_passed`). So each day of the range gets the range's verdict
    (checked over the range, it passed or failed for all of it), pinned to that day's latest
    materialisation, with the range in metadata (`evaluated_over`). Checks declared with
    `partitioned_asset_check` go through it, and so do checks an asset runs in its own step (after its
    materialisation, whose per-day records the copies point to). A check that judges each day on its own
    (monitoring) gives its days' verdicts in `per_day`; the range's `result` is then what the alert sensor
    reads.
    """
    if context.has_partition_key or not context.has_partition_key_range:
        return result
    spec = _spec_of(context, result)
    keys = list(context.partition_keys)
    span = partition_span(keys)
    # The latest materialisation of every day of the range: two queries, not one per day.
    latest_ids = latest_materialization_ids(context.instance, spec.asset_key, keys)
    latest = {
        rec.partition_key: rec
        for rec in context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=spec.asset_key, storage_ids=list(latest_ids.values())),
            limit=max(len(latest_ids), 1),
        ).records
    }
    for key in keys:
        own = (per_day or {}).get(key, result)
        rec = latest.get(key)
        target = (
            check_target(
                storage_id=rec.storage_id, run_id=rec.event_log_entry.run_id, timestamp=rec.timestamp
            )
            if rec
            else None
        )
        context.op_execution_context.log_event(
            dg.AssetCheckEvaluation(
                asset_key=spec.asset_key,
                check_name=spec.name,
                passed=own.passed,
                metadata={**own.metadata, EVALUATED_OVER: span},
                severity=own.severity,
                description=own.description,
                blocking=spec.blocking,
                partition=key,
                target_materialization_data=target,
            )
        )
    return result


def _spec_of(
    context: dg.AssetCheckExecutionContext | dg.AssetExecutionContext, result: dg.AssetCheckResult
) -> dg.AssetCheckSpec:
    """The spec a result is for: the check's own, or in a multi-check step (or an asset's) the one it
    names."""
    if isinstance(context, dg.AssetCheckExecutionContext):
        specs = list(context.check_specs)
    else:
        specs = list(context.assets_def.check_specs)
    if result.check_name is None:
        return specs[0]
    return next(s for s in specs if s.name == result.check_name and result.asset_key in (None, s.asset_key))


def partitioned_asset_check(**kwargs):
    """`@dg.asset_check(**kwargs)` for a check partitioned like its asset, whose result also goes through
    `per_partition`: one place for that rule instead of a call at every return of every check."""

    def decorate(fn):
        @functools.wraps(fn)  # Dagster reads the wrapped signature: context and resources as declared
        def _recorded(context: dg.AssetCheckExecutionContext, **resources):
            return per_partition(context, fn(context, **resources))

        return dg.asset_check(**kwargs)(_recorded)

    return decorate


def summarise_failures(report: ContractReport) -> dict:
    """Check metadata for a failed contract: failure cases counted by (column, check), masked samples."""
    by_check = pd.DataFrame(sorted(report.failures), columns=["column", "check", "failures"])
    samples = report.samples.astype(str).map(lambda v: mask_pans(v)[:SAMPLE_CHARS])
    return {
        "failure_count": dg.MetadataValue.int(int(by_check["failures"].sum())),
        "failed_checks": dg.MetadataValue.int(len(by_check)),
        "failures_by_check": dg.MetadataValue.md(markdown_table(by_check)),
        "failure_samples": dg.MetadataValue.md(markdown_table(samples)),
    }


def validate_frame(model: type[pa.DataFrameModel], df: pd.DataFrame) -> tuple[bool, dict]:
    """Validate `df` with the engine's contract (an in-memory DuckDB); (passed, metadata). For tests and
    notebooks: the same rules, names and counts as the blocking check."""
    with duckdb.connect() as conn:
        conn.register("frame", df)
        conn.execute("CREATE TABLE validated AS SELECT * FROM frame")
        report = evaluate(conn, compile_contract(model), "validated")
    return (True, {}) if report.passed else (False, summarise_failures(report))


def contract_result(
    conn: duckdb.DuckDBPyConnection,
    contract: Contract,
    table: str,
    where: str = "",
    params: list[object] | None = None,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
) -> dg.AssetCheckResult:
    """The contract's verdict on the rows of `table` matching `where`, with its metadata."""
    if not table_exists(conn, table):
        return dg.AssetCheckResult(
            passed=False, severity=severity, metadata={"error": f"table {table} does not exist"}
        )
    return _reported(evaluate(conn, contract, table, where, params or []), severity)


def contract_results_by_day(
    conn: duckdb.DuckDBPyConnection,
    contract: Contract,
    table: str,
    day: str,
    days: Sequence[str],
    where: str = "",
    params: list[object] | None = None,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
) -> tuple[dg.AssetCheckResult, dict[str, dg.AssetCheckResult]]:
    """`contract_result` over the rows of `table` matching `where`, and each of `days` judged on its own
    rows (grouped by the SQL expression `day`, in the same scans): a day without rows validates none."""
    if not table_exists(conn, table):
        missing = contract_result(conn, contract, table, where, params, severity)
        return missing, dict.fromkeys(days, missing)
    overall, by_day = evaluate_by_day(conn, contract, table, day, where, params or [], days=days)
    return _reported(overall, severity), {d: _reported(by_day[d], severity) for d in days}


def _reported(report: ContractReport, severity: dg.AssetCheckSeverity) -> dg.AssetCheckResult:
    md = {} if report.passed else summarise_failures(report)
    md["rows_validated"] = dg.MetadataValue.int(report.rows)
    return dg.AssetCheckResult(passed=report.passed, severity=severity, metadata=md)


def contract_description(model: type[pa.DataFrameModel], table: str) -> str:
    # the docstring's first paragraph, however it is wrapped
    doc = " ".join((model.__doc__ or "").strip().split("\n\n")[0].split())
    return (
        f"Data contract for `{table}` (pandera `{model.__name__}`: column names, types, nullability, "
        f"uniqueness, allowed values). {doc} Evaluated in DuckDB on what was materialised (the run's "
        "partitions of a partitioned table); failures are counted by check and sampled (masked) in "
        "metadata. Blocking: downstream assets do not run on data that breaks its contract."
    )
