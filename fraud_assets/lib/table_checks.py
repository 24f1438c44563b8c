"""One step per table: the checks that read the same table run together (`dg.multi_asset_check`).

A table usually carries a contract, a PAN-leak scan and a reconciliation. Declared one by one, each is
a step of its own (a process start, a DuckDB connection, events). `table_checks` declares them as one
multi-asset check: one step, one connection, every selected check still recorded under its own name
(the check keys, and so alerts and automation, do not change). Blocking stays per check: Dagster fails
the step after every result is recorded, so one failure never hides another. A partitioned step
validates the run's partition(s), and each result goes through `per_partition` like any partitioned
check: in a range run each day gets a copy of the range's verdict, unless the check judges each day on its
own and returns `DayResults` (each day its own verdict and figures, as the UI's per-day history should show,
and a bad day holds back its own downstream only). `contract` and `pan_scan` do, and so does a check whose
query counts by `scope.day()` and hands the groups to `counts_by_day` and `judged_by_day`.

    table_checks(raw_assets.authorizations, "raw.authorizations", [
        contract(schemas.RawAuthorizationsModel),
        pan_scan(),
        TableCheck("landed_rows_reconcile", "Rows landed = rows in {table}. Blocking.", landed_reconcile),
    ])

A `TableCheck` is a name, a description (`{table}` is filled in) and a function of the `TableScope`
the run looks at; `contract(model)` and `pan_scan()` build the common ones.
"""

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import NamedTuple

import dagster as dg
import duckdb
import pandera.pandas as pa
from dagster_duckdb import DuckDBResource

from fraud_assets.lib.contract_sql import compile_contract
from fraud_assets.lib.contracts import (
    _asset_key,
    _partitions_def,
    contract_description,
    contract_result,
    contract_results_by_day,
    per_partition,
)
from fraud_assets.lib.pan_leaks import find_pan_leaks, find_pan_leaks_by_day, leak_result, scan_description
from fraud_assets.lib.partitions import dates_filter
from fraud_assets.lib.warehouse import table_exists


@dataclasses.dataclass(frozen=True)
class TableScope:
    """What the checks of one step look at: the table, and the run's partitions (None: all of it)."""

    conn: duckdb.DuckDBPyConnection
    table: str
    partition_keys: list[str] | None
    partition_column: str

    def filter(self, column: str | None = None) -> tuple[str, list[object]]:
        """SQL filter + params selecting the run's partitions on `column` (default: the partition
        column); ("", []) when the step is not partitioned."""
        if self.partition_keys is None:
            return "", []
        col = column or self.partition_column
        # Typed date literals, not a text cast of the column: zone maps skip the other days' row groups, so
        # a day's checks do not scan the whole history.
        return dates_filter(self.partition_keys, col), []

    @property
    def one_verdict(self) -> bool:
        """One result for the run: a one-day run, or a step without partitions (a range judges each day)."""
        return self.partition_keys is None or len(self.partition_keys) <= 1

    def day(self, column: str | None = None) -> str:
        """What a check's query groups by to count each day on its own (`counts_by_day`): `column`
        (default: the partition column), or one group for the whole table when the step is not
        partitioned."""
        # A constant, not NULL: the groups of two tables are joined on it.
        return "'all'" if self.partition_keys is None else column or self.partition_column


class DayResults(NamedTuple):
    """What a check that judges each business date on its own returns in a range run: the range's result
    (the alert sensor reads it) and each day's, recorded on that day (`per_partition`'s `per_day`)."""

    overall: dg.AssetCheckResult
    per_day: Mapping[str, dg.AssetCheckResult]


Counts = dict[str, int]


def counts_by_day(
    scope: TableScope, rows: Sequence[Sequence[object]], names: Sequence[str]
) -> dict[str, Counts]:
    """`rows` of a query grouped by business date (the date first, then one count per name in `names`) as
    each day's counts: every day of the run, a day without a row at zero (without partitions: the days
    found)."""
    found = {str(row[0])[:10]: dict(zip(names, (int(v or 0) for v in row[1:]), strict=True)) for row in rows}
    days = scope.partition_keys if scope.partition_keys is not None else sorted(found)
    return {day: found.get(day, dict.fromkeys(names, 0)) for day in days}


def judged_by_day(
    scope: TableScope,
    by_day: Mapping[str, Counts],
    judge: Callable[[Counts], dg.AssetCheckResult],
    names: Sequence[str],
    combine: Mapping[str, Callable[[Sequence[int]], int]] | None = None,
) -> "dg.AssetCheckResult | DayResults":
    """Each day judged on its own counts. One-day and unpartitioned runs get a single result (the counts
    summed); a range run gets `DayResults`: each day's verdict, and the range's over the summed counts
    (`combine` names another reduction for a count, max for a largest-day figure), failed when any day
    failed, naming the failing days."""
    combine = combine or {}
    totals = {n: combine.get(n, sum)([c[n] for c in by_day.values()] or [0]) for n in names}
    overall = judge(totals)
    if scope.one_verdict:
        return overall
    return with_failing_days(overall, {day: judge(c) for day, c in by_day.items()})


def with_failing_days(overall: dg.AssetCheckResult, per_day: Mapping[str, dg.AssetCheckResult]) -> DayResults:
    """The range's result `overall` failed when any day of `per_day` failed, naming the failing days."""
    failing = [day for day, r in per_day.items() if not r.passed]
    overall = overall._replace(
        passed=overall.passed and not failing, metadata={**overall.metadata, **failing_days_metadata(failing)}
    )
    return DayResults(overall, per_day)


def failing_days_metadata(failing: Sequence[str]) -> dict[str, dg.MetadataValue]:
    """What a range's own record says of its failing days (every layer's checks say it the same way)."""
    return {
        "failing_days": dg.MetadataValue.text(_named_days(failing)),
        "failing_day_count": dg.MetadataValue.int(len(failing)),
    }


NAMED_DAYS = 10


def _named_days(days: Sequence[str]) -> str:
    more = len(days) - NAMED_DAYS
    return (", ".join(days[:NAMED_DAYS]) + (f" and {more} more" if more > 0 else "")) or "none"


@dataclasses.dataclass(frozen=True)
class TableCheck:
    """One check of a table step. `run` returns the check's result (asset key and name are set by the
    step), or `DayResults` to give each day of a range its own; when the table does not exist it is not
    called and the check fails with that reason, unless `requires_table` is False."""

    name: str
    description: str
    run: Callable[[TableScope], "dg.AssetCheckResult | DayResults"]
    blocking: bool = True
    additional_deps: Sequence[dg.AssetKey | dg.AssetsDefinition | str | Sequence[str]] = ()
    requires_table: bool = True


def contract(
    model: type[pa.DataFrameModel],
    *,
    name: str = "contract",
    blocking: bool = True,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
) -> TableCheck:
    """The pandera `model` as a check of the step's table, evaluated in DuckDB (`contract_result`).
    Compiled here: a rule without SQL translation fails the definitions, not a run. Named `contract`: the
    asset key says which table; an asset checking a second table names that table's contract."""
    compiled = compile_contract(model)

    def run(scope: TableScope) -> dg.AssetCheckResult | DayResults:
        where, params = scope.filter()
        if scope.one_verdict:
            return contract_result(scope.conn, compiled, scope.table, where, params, severity)
        overall, per_day = contract_results_by_day(
            scope.conn, compiled, scope.table, scope.day(), scope.partition_keys, where, params, severity
        )
        return with_failing_days(overall, per_day)

    return TableCheck(
        name=name,
        description=contract_description(model, "{table}"),
        run=run,
        blocking=blocking,
        requires_table=False,  # contract_result reports a missing table with the contract's severity
    )


def pan_scan(name: str = "no_clear_pan", blocking: bool = True) -> TableCheck:
    """The PAN-leak scan of the step's table (`find_pan_leaks`, lib/pan_leaks.py)."""

    def run(scope: TableScope) -> dg.AssetCheckResult | DayResults:
        if scope.one_verdict:
            return leak_result(find_pan_leaks(scope.conn, scope.table, *scope.filter()))
        by_day = find_pan_leaks_by_day(scope.conn, scope.table, scope.day(), *scope.filter())
        per_day = {day: leak_result(by_day.get(day, {})) for day in scope.partition_keys}
        total = sum((Counter(leaks) for leaks in by_day.values()), Counter())
        return with_failing_days(leak_result(dict(total)), per_day)

    return TableCheck(name=name, description=scan_description("{table}"), run=run, blocking=blocking)


def _step_name(key: dg.AssetKey, table: str) -> str:
    """Unique per (asset, table): two assets writing one table get a step each."""
    owner = key.to_python_identifier()
    return f"{owner}_checks" if ".".join(key.path) == table else f"{owner}_{table.replace('.', '_')}_checks"


def check_specs(
    key: dg.AssetKey,
    table: str,
    checks: Sequence[TableCheck],
    partitions_def: dg.PartitionsDefinition | None,
    *,
    with_deps: bool = True,
) -> list[dg.AssetCheckSpec]:
    """The specs of `checks` on `key`'s `table`. `with_deps=False` for checks an asset runs in its own
    step: an additional dep there would become an input of the asset itself (a new edge of the graph)."""
    if len({c.name for c in checks}) != len(checks):
        raise ValueError(f"duplicate check names on {table}: {[c.name for c in checks]}")
    return [
        dg.AssetCheckSpec(
            c.name,
            asset=key,
            description=c.description.replace("{table}", table),
            blocking=c.blocking,
            additional_deps=list(c.additional_deps) if with_deps else [],
            partitions_def=partitions_def,
        )
        for c in checks
    ]


def run_checks(
    context: dg.AssetCheckExecutionContext | dg.AssetExecutionContext,
    conn: duckdb.DuckDBPyConnection,
    key: dg.AssetKey,
    table: str,
    checks: Sequence[TableCheck],
    partitions_def: dg.PartitionsDefinition | None,
    partition_column: str = "business_date",
) -> Iterator[dg.AssetCheckResult]:
    """The result of every selected check of `checks` on the run's partitions of `table`, over `conn`:
    the body of a `table_checks` step, and what an asset with these `check_specs` yields after its
    materialisation to run them in its own step."""
    partitioned = partitions_def is not None and (
        context.has_partition_key or context.has_partition_key_range
    )
    keys = list(context.partition_keys) if partitioned else None
    selected = [c for c in checks if dg.AssetCheckKey(key, c.name) in context.selected_asset_check_keys]
    scope = TableScope(conn, table, keys, partition_column)
    exists = table_exists(conn, table)
    for check in selected:
        if exists or not check.requires_table:
            outcome = check.run(scope)
        else:
            outcome = dg.AssetCheckResult(passed=False, metadata={"error": f"table {table} does not exist"})
        result, days = outcome if isinstance(outcome, DayResults) else (outcome, None)
        result = result._replace(asset_key=key, check_name=check.name)
        if days is not None:
            days = {day: r._replace(asset_key=key, check_name=check.name) for day, r in days.items()}
        yield per_partition(context, result, days) if partitions_def is not None else result


def table_checks(
    asset: dg.AssetKey | dg.AssetsDefinition | str | Sequence[str],
    table: str,
    checks: Sequence[TableCheck],
    *,
    partitions_def: dg.PartitionsDefinition | None = None,
    partition_column: str = "business_date",
    name: str | None = None,
) -> dg.AssetChecksDefinition:
    """Every check of `checks` on `asset`'s `table`, as one step (see module docstring)."""
    key = _asset_key(asset)
    pdef = _partitions_def(asset, partitions_def)

    @dg.multi_asset_check(
        specs=check_specs(key, table, checks, pdef),
        name=name or _step_name(key, table),
        description=f"Checks of `{table}`, one step: {', '.join(c.name for c in checks)}.",
        can_subset=True,
        pool="duckdb",
    )
    def _table_checks(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource):
        with duckdb.get_connection() as conn:
            yield from run_checks(context, conn, key, table, checks, pdef, partition_column)

    return _table_checks
