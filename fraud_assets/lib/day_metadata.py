"""Each business day's own figures on its materialisation, also when one run covers many days.

A run over a range of days (a single-run backfill, the bootstrap, a lookback rebuild) records one
materialisation per day, each a copy of the run's metadata: without this, every day of the range would
carry the range's totals (or its latest day's values), and the UI's plots over partitions, what a data
scientist reads, would be flat lines at the range's figure. `spread_over_days` gives each day its own values
with Dagster's partition-scoped `add_asset_metadata`, and drops those keys from the shared copy, so a day
without rows shows no figure rather than the range's. A figure of the run rather than of a day (the table's
row count, the range's rows, compute time, the monitors' summaries over every stored day) has no value per
day: it rides on the range's last day only, the run's latest materialisation (the one the asset's overview
and the sensors read), and in the run's log. A one-day run's metadata is already the day's.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence

import dagster as dg
import duckdb
import numpy as np

from fraud_assets.lib.partitions import dates_filter, day_span
from fraud_assets.lib.warehouse import day_previews

DAY_ROW_COUNT = "dagster/partition_row_count"
TABLE_NAME, PREVIEW = "dagster/table_name", "preview"


def day_aggregates(
    conn: duckdb.DuckDBPyConnection, table: str, days: Iterable[str], aggregates: Mapping[str, str]
) -> dict[str, dict[str, object]]:
    """{day: {DAY_ROW_COUNT: rows, name: value of SQL aggregate}} for `table`'s rows of each of `days`, in one
    GROUP BY; a day without rows counts 0 and has no other value."""
    days = list(days)
    exprs = "".join(f", {sql}" for sql in aggregates.values())
    rows = conn.execute(
        f"SELECT CAST(business_date AS VARCHAR), count(*){exprs} FROM {table} "
        f"WHERE {dates_filter(days)} GROUP BY 1"
    ).fetchall()
    found = {r[0]: dict(zip([DAY_ROW_COUNT, *aggregates], r[1:], strict=True)) for r in rows}
    return {day: found.get(day, {DAY_ROW_COUNT: 0}) for day in days}


def spread_over_days(
    context: dg.AssetExecutionContext,
    metadata: Mapping[str, object],
    per_day: Mapping[str, Mapping[str, object]],
    keys: Iterable[str],
    asset_key: dg.AssetKey | None = None,
    conn: duckdb.DuckDBPyConnection | None = None,
    preview_columns: Sequence[str] | None = None,
    every_day: Iterable[str] = (),
) -> dict[str, object]:
    """The metadata every day's materialisation shares: `metadata` without `keys` when the run covers
    several days, each day then getting its own values of `keys` from `per_day` (missing or NaN values
    are left out). The other numbers of `metadata` are the run's, not a day's (a copy on each day would
    plot as a flat line at the range's figure): they go to the range's last day alone, and to the run's
    log; `every_day` names the numbers true of each day (a setting, a code constant), kept on every day.
    `asset_key` names the asset in a multi-asset. The range's preview is not shared (it would show one
    day's rows on every day): with `conn`, each day gets a preview of its own rows of the metadata's table
    (`preview_columns` as in `table_metadata`)."""
    days = list(context.partition_keys)
    if len(days) < 2:
        return dict(metadata)
    dropped = set(keys) | {DAY_ROW_COUNT, PREVIEW}
    shared = {k: v for k, v in metadata.items() if k not in dropped}
    constant = set(every_day)
    of_run = {k: v for k, v in shared.items() if k not in constant and _is_number(v)}
    # Partitions are materialised in their order: the last day's event is the run's latest.
    last = max(days)
    table = metadata.get(TABLE_NAME)
    previews = day_previews(conn, str(table), days, preview_columns) if conn is not None and table else {}
    for day in days:
        own = {
            k: _plain(v)
            for k, v in per_day.get(day, {}).items()
            if v is not None and not (isinstance(v, float) and math.isnan(v))
        }
        if day in previews:
            own[PREVIEW] = previews[day]
        if day == last:
            own.update(of_run)
        if own:
            context.add_asset_metadata(own, asset_key=asset_key, partition_key=day)
    if of_run:
        name = (asset_key or context.asset_key).to_user_string()
        figures = "; ".join(f"{k} {getattr(v, 'value', v)}" for k, v in of_run.items())
        context.log.info(f"{name}, run over {day_span(days)} (on {last}'s materialisation): {figures}")
    return {k: v for k, v in shared.items() if k not in of_run}


def spread_table_over_days(
    context: dg.AssetExecutionContext,
    conn: duckdb.DuckDBPyConnection,
    table: str,
    metadata: Mapping[str, object],
    aggregates: Mapping[str, str],
    asset_key: dg.AssetKey | None = None,
    preview_columns: Sequence[str] | None = None,
    every_day: Iterable[str] = (),
) -> dict[str, object]:
    """`spread_over_days` with each day's row count, `aggregates` (name: SQL over the day's rows of
    `table`, read in one query) and preview, when the run covers several days."""
    days = list(context.partition_keys)
    if len(days) < 2:
        return dict(metadata)
    per_day = day_aggregates(conn, table, days, aggregates)
    return spread_over_days(
        context,
        metadata,
        per_day,
        aggregates,
        asset_key=asset_key,
        conn=conn,
        preview_columns=preview_columns,
        every_day=every_day,
    )


def _is_number(value: object) -> bool:
    """A value the UI plots over partitions."""
    if isinstance(value, dg.MetadataValue):
        return isinstance(value, dg.IntMetadataValue | dg.FloatMetadataValue)
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _plain(value: object) -> object:
    """DuckDB hands back Decimal for a sum of integers; metadata plots numbers."""
    if isinstance(value, bool) or isinstance(value, (int, float, str, dg.MetadataValue)):
        return value
    if hasattr(value, "__float__"):
        number = float(value)  # type: ignore[arg-type]
        return int(number) if number.is_integer() else number
    return value
