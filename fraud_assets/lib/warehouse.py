"""Writing to and describing DuckDB tables, the same way in every layer.

Every write happens inside one explicit transaction (DELETE the partition, INSERT the new rows, or
CREATE OR REPLACE for whole tables), so a crash at any point leaves the previous version intact:
DuckDB rolls back an uncommitted transaction when the file is next opened. The one exception is a
backfill written in batches (`replace_partition_batches`, raw's 31-day chunks): one transaction per
batch of whole days, so a crash leaves each day whole, old or new. Parquet exports follow each COMMIT;
a crash between the two leaves that day's export stale until the run is re-run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fraud_assets.lib.catalog_metadata import COLUMN_LINEAGE_KEY, COLUMN_SCHEMA_KEY, table_schema
from fraud_assets.lib.markdown import markdown_rows
from fraud_assets.lib.pan import mask_value
from fraud_assets.lib.partitions import dates_filter
from fraud_assets.lib.provenance import is_producer_column

PREVIEW_ROWS = 5
_PREVIEW_DAY = "_fraud_assets_preview_day"  # the day of each row read for `day_previews`


# DuckDB's exports are zstd (every reader: DuckDB, pyarrow, Spark): card tokens, 64 hex characters of an
# HMAC, are most of a table's bytes, which snappy cannot entropy-code. Raw and cleaned exports shrink to
# ~35 % for the same write time (1.78M rows: 149 -> 51 and 167 -> 62 MB). The feature layer's Arrow
# exports (_write_arrow_partitions) stay snappy: zstd there costs ~3 s of its ~5 s write path.
PARQUET = "(FORMAT parquet, COMPRESSION zstd)"


@contextlib.contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """One explicit transaction on `conn`: COMMIT when the block ends, ROLLBACK and re-raise when
    anything in it fails (a KeyboardInterrupt too), so no caller leaves a half-written change open."""
    conn.execute("BEGIN TRANSACTION")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        # A COMMIT that failed (disk full, a key taken by another writer) has already ended the
        # transaction: ROLLBACK would raise "no transaction is active" and hide the cause.
        with contextlib.suppress(duckdb.Error):
            conn.execute("ROLLBACK")
        raise


def ensure_schema(conn: duckdb.DuckDBPyConnection, table: str) -> None:
    schema = table.split(".")[0]
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")


def sql_string(value: object) -> str:
    """`value` as an SQL string literal: a path or key holding a quote stays one literal."""
    return "'" + str(value).replace("'", "''") + "'"


def _as_relation_sql(
    conn: duckdb.DuckDBPyConnection, source: str | pd.DataFrame | pa.Table, name: str
) -> str:
    if isinstance(source, pd.DataFrame | pa.Table):
        conn.register(name, source)
        return f"SELECT * FROM {name}"
    return source


def export_root(conn: duckdb.DuckDBPyConnection) -> Path | None:
    """`exports/` beside the warehouse file: Parquet snapshots that notebooks read without ever
    taking the warehouse lock (docs/notebooks.md). None for an in-memory database."""
    rows = conn.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchall()
    row = rows[0] if rows else None
    if not row or not row[0]:
        return None
    return Path(row[0]).resolve().parent / "exports"


def _export(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    where: str = "",
    params: list | None = None,
    name: str = "data.parquet",
    subdir: str = "",
) -> None:
    """Write a Parquet snapshot atomically (temp file + rename): a reader sees the old or the new file."""
    root = export_root(conn)
    if root is None:
        return
    schema, tbl = table.split(".")
    target_dir = root / schema / tbl / subdir
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / name
    tmp = target_dir / f".{name}.tmp"
    conn.execute(f"COPY (SELECT * FROM {table} {where}) TO {sql_string(tmp)} {PARQUET}", params or [])
    os.replace(tmp, target)


def _column_type(conn: duckdb.DuckDBPyConnection, table: str, column: str) -> str:
    return next(r[1] for r in conn.execute(f"DESCRIBE {table}").fetchall() if r[0] == column)


def _key_filter(conn: duckdb.DuckDBPyConnection, table: str, column: str, keys: Sequence[str]) -> str:
    """`column IN (<keys as literals of the column's type>)`: unlike a CAST of the column to text, a
    typed constant list lets DuckDB skip row groups by their min/max (zone maps) and compares without
    casting every row. Keys are quoted as SQL string literals, so they cannot inject SQL."""
    col_type = _column_type(conn, table, column)
    literals = ", ".join(f"CAST({sql_string(k)} AS {col_type})" for k in keys)
    return f"{column} IN ({literals})"


def _export_partitions(
    conn: duckdb.DuckDBPyConnection, table: str, partition_column: str, partition_keys: Sequence[str]
) -> None:
    """`<table>/<partition_column>=<key>/data.parquet` for every key, from ONE partitioned COPY (one scan
    of the table, however many keys), each file moved into place atomically (rename): a reader sees a
    partition's old or new file, never a half-written one. A key without rows gets an empty file with the
    table's schema, as a per-key COPY would write."""
    root = export_root(conn)
    if root is None or not partition_keys:
        return
    schema, tbl = table.split(".")
    table_dir = root / schema / tbl
    table_dir.mkdir(parents=True, exist_ok=True)
    # Hidden and not `*=*`, so readers globbing `<table>/*=*/data.parquet` never see the staging files.
    staging = table_dir / f".staging-{uuid.uuid4().hex}"
    keys = list(dict.fromkeys(str(k) for k in partition_keys))
    try:
        # Partitioned on a text copy of the key (dropped from the files), so directory names are the keys
        # as given and the partition column keeps its type inside each file, as before.
        conn.execute(
            f"COPY (SELECT *, CAST({partition_column} AS VARCHAR) AS _fraud_assets_key FROM {table} "
            f"WHERE {_key_filter(conn, table, partition_column, keys)}) TO {sql_string(staging)} "
            "(FORMAT parquet, COMPRESSION zstd, PARTITION_BY (_fraud_assets_key), FILENAME_PATTERN 'data')"
        )
        for key in keys:
            produced = sorted((staging / f"_fraud_assets_key={key}").glob("*.parquet"))
            target_dir = table_dir / f"{partition_column}={key}"
            target_dir.mkdir(parents=True, exist_ok=True)
            if produced:
                os.replace(produced[0], target_dir / "data.parquet")
            else:  # one empty file with the schema, copied for every key without rows
                empty = staging / "empty.parquet"
                if not empty.exists():
                    conn.execute(f"COPY (SELECT * FROM {table} LIMIT 0) TO {sql_string(empty)} {PARQUET}")
                tmp = target_dir / ".data.parquet.tmp"
                shutil.copyfile(empty, tmp)
                os.replace(tmp, target_dir / "data.parquet")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_arrow_partitions(rows: pa.Table, partition_column: str, staging: Path) -> dict[str, Path]:
    """One Parquet file per partition of `rows` (typed as the table) in `staging`, by key: the same files
    as `_export_partitions`, from rows the caller already holds, so no second scan of the table and a
    fraction of DuckDB's per-file cost (a partitioned COPY spends ~20 ms on each of a backfill's hundreds
    of files). Dictionary encoding only for text columns; no Arrow schema stored, so readers see the
    table's types. Touches no connection: it runs beside the transaction that writes the same rows."""
    import pyarrow.parquet as pq  # imported on use: only Arrow sources export through it

    n = len(rows)
    column = rows.column(partition_column)
    if n > 1 and not pc.all(pc.less_equal(column.slice(0, n - 1), column.slice(1))).as_py():
        rows = rows.take(pc.sort_indices(column))
        column = rows.column(partition_column)
    changes = pc.not_equal(column.slice(1), column.slice(0, n - 1)).to_numpy() if n > 1 else []
    starts = [0, *(np.flatnonzero(changes) + 1)] if n else []
    text = [f.name for f in rows.schema if pa.types.is_string(f.type) or pa.types.is_dictionary(f.type)]
    written = {}
    for first, end in zip(starts, [*starts[1:], n][: len(starts)], strict=True):
        key = str(column[int(first)].as_py())
        written[key] = staging / f"{key}.parquet"
        pq.write_table(rows.slice(first, end - first), written[key], use_dictionary=text, store_schema=False)
    return written


class _ArrowExport:
    """The Parquet exports of an Arrow source, written on a thread while the transaction inserts the same
    rows (both release the GIL), and moved into place only once it committed: a reader never sees files
    of a write that rolled back."""

    def __init__(self, root: Path, table: str, rows: pa.Table, partition_column: str):
        schema, tbl = table.split(".")
        self.table, self.partition_column = table, partition_column
        self.table_dir = root / schema / tbl
        self.staging = self.table_dir / f".staging-{uuid.uuid4().hex}"
        self.staging.mkdir(parents=True, exist_ok=True)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet-export")
        self._files = self._pool.submit(_write_arrow_partitions, rows, partition_column, self.staging)

    def publish(self, conn: duckdb.DuckDBPyConnection, partition_keys: Sequence[str]) -> None:
        """Move each key's file into place (a key without rows gets an empty file with the schema)."""
        files = self._files.result()
        for key in dict.fromkeys(str(k) for k in partition_keys):
            target_dir = self.table_dir / f"{self.partition_column}={key}"
            target_dir.mkdir(parents=True, exist_ok=True)
            if key in files:
                os.replace(files[key], target_dir / "data.parquet")
            else:
                _export(conn, self.table, "LIMIT 0", subdir=f"{self.partition_column}={key}")

    def close(self) -> None:
        """Wait for the writer (also after a failed transaction) and remove what was not published."""
        self._pool.shutdown(wait=True)
        shutil.rmtree(self.staging, ignore_errors=True)


def replace_partition(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    source: str | pd.DataFrame | pa.Table,
    partition_column: str,
    partition_keys: Sequence[str],
) -> int:
    """Atomically replace the rows of `partition_keys` in `table` with `source` (SQL, DataFrame or Arrow
    table; an Arrow table typed as the table is also the source of the Parquet exports).

    Creates the table from the source's shape on first write. Returns the number of rows written.
    """
    return replace_partitions(conn, {table: source}, partition_column, partition_keys)[table]


def replace_partitions(
    conn: duckdb.DuckDBPyConnection,
    sources: Mapping[str, str | pd.DataFrame | pa.Table],
    partition_column: str,
    partition_keys: Sequence[str],
) -> dict[str, int]:
    """`replace_partition` for several tables in ONE transaction: tables that describe the same rows
    (cleaned transactions, their quarantine and reconciliation) are never seen, or left by a crash,
    out of step. Returns the rows written per table."""
    selects = {}
    for i, (table, source) in enumerate(sources.items()):
        ensure_schema(conn, table)
        selects[table] = _as_relation_sql(conn, source, f"_fraud_assets_partition_source_{i}")
    root = export_root(conn)
    arrow: dict[str, _ArrowExport] = {}
    written = {}
    try:
        for table, source in sources.items():
            if isinstance(source, pa.Table) and root is not None and partition_keys:
                arrow[table] = _ArrowExport(root, table, source, partition_column)
        with transaction(conn):
            for table, select_sql in selects.items():
                # A subquery: the source may end in its own LIMIT (an empty day's `... LIMIT 0`).
                conn.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM ({select_sql}) LIMIT 0")
                in_keys = _key_filter(conn, table, partition_column, partition_keys)
                conn.execute(f"DELETE FROM {table} WHERE {in_keys}")
                conn.execute(f"INSERT INTO {table} BY NAME {select_sql}")
                count = conn.execute(f"SELECT count(*) FROM {table} WHERE {in_keys}").fetchall()[0][0]
                written[table] = int(count)
        for table in sources:
            if table in arrow:
                arrow[table].publish(conn, partition_keys)
            else:
                _export_partitions(conn, table, partition_column, partition_keys)
    finally:
        for export in arrow.values():
            export.close()
    return written


def replace_partition_batches(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    columns: Sequence[tuple[str, str]],
    batches: Iterable[pd.DataFrame | pa.Table],
    partition_column: str,
    partition_keys: Sequence[str],
) -> int:
    """`replace_partition` for rows produced in batches of whole partitions (a backfill's scores, a
    batch of days at a time): each batch replaces the partitions it holds in its own transaction as it
    arrives, so memory holds one batch and the disk one copy of the rows, however long the range. A
    failure part-way leaves every partition with either its previous rows or its new ones, never a mix
    (raw writes a backfill in 31-day transactions the same way); the run fails and is re-run. Keys no
    batch held are emptied at the end. (One transaction over all batches would not do: DuckDB keeps every
    DataFrame registered in an open transaction until COMMIT, ~200 bytes a row, 20 GB for a 100M-row
    backfill; and a staging table doubles the disk a backfill needs.) `columns` (name, SQL type) create
    the table on first write, also when no batch comes. The partition column is a DATE (business dates);
    a partition split over two batches is refused, since its first part would be committed alone. The
    batches may read from `conn`; writers of the table take turns (the assets' `pool="duckdb"`). Returns
    the rows written."""
    ensure_schema(conn, table)
    conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(f'{c} {t}' for c, t in columns)})")
    registered = "_fraud_assets_partition_batch"
    key_type = _column_type(conn, table, partition_column)
    if key_type != "DATE":
        raise ValueError(f"{table}.{partition_column} is {key_type}: batches replace DATE partitions")
    wanted = [str(k) for k in partition_keys]
    written_keys: set[str] = set()
    written = 0
    for batch in batches:
        conn.register(registered, batch)
        try:
            # The keys as the table will hold them (a pandas datetime is inserted as the DATE it is).
            held = conn.execute(
                f"SELECT DISTINCT CAST(CAST({partition_column} AS {key_type}) AS VARCHAR) FROM {registered}"
            ).fetchall()
            keys = [k for (k,) in held]
            stray = sorted(set(keys) - set(wanted))
            if stray:
                raise ValueError(f"a batch for {table} holds partitions outside the run: {stray[:3]}")
            split = sorted(set(keys) & written_keys)
            if split:
                raise ValueError(f"a batch for {table} holds partitions an earlier batch wrote: {split[:3]}")
            with transaction(conn):
                if keys:
                    conn.execute(
                        f"DELETE FROM {table} WHERE {_key_filter(conn, table, partition_column, keys)}"
                    )
                conn.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {registered}")
            written += len(batch)
        finally:
            conn.unregister(registered)
        written_keys.update(keys)
        _export_partitions(conn, table, partition_column, keys)
    empty = [k for k in dict.fromkeys(wanted) if k not in written_keys]
    if empty:
        with transaction(conn):
            conn.execute(f"DELETE FROM {table} WHERE {_key_filter(conn, table, partition_column, empty)}")
        _export_partitions(conn, table, partition_column, empty)
    return written


def replace_table(conn: duckdb.DuckDBPyConnection, table: str, source: str | pd.DataFrame) -> int:
    """Atomically replace a whole table with `source` (SQL or DataFrame)."""
    ensure_schema(conn, table)
    select_sql = _as_relation_sql(conn, source, "_fraud_assets_table_source")
    with transaction(conn):
        conn.execute(f"CREATE OR REPLACE TABLE {table} AS {select_sql}")
        written = conn.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    _export(conn, table)
    return int(written)


def table_exists(conn: duckdb.DuckDBPyConnection, table: str) -> bool:
    schema, name = table.split(".")
    return bool(
        conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [schema, name],
        ).fetchall()[0][0]
    )


def column_schema(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    descriptions: Mapping[str, str] | None = None,
    contract: object | None = None,
) -> dg.TableSchema:
    """The table's columns as stored (DuckDB types), described, with its pandera `contract`'s constraints."""
    rows = [(r[0], str(r[1])) for r in conn.execute(f"DESCRIBE {table}").fetchall()]
    return table_schema(rows, descriptions, contract)


def masked_preview(df: pd.DataFrame, rows: int = PREVIEW_ROWS, table: str | None = None) -> dg.MetadataValue:
    """A markdown preview in which every producer value that holds a card number is masked (text by
    `mask_pans`, numbers by their integral part). Columns the platform computes (`lib/provenance.py`;
    for `table`, or none when it is not given) are shown as they are. Every cell is escaped
    (`lib/markdown.py`): a value shows as text, never as a link, an image or markup."""
    head = df.head(rows).astype(object)
    if not len(head):
        return dg.MetadataValue.md("_no rows_")
    producer = [is_producer_column(table, str(col)) for col in head.columns]
    shown = (
        [mask_value(v) if masked else v for v, masked in zip(row, producer, strict=True)]
        for row in head.itertuples(index=False, name=None)
    )
    return dg.MetadataValue.md(markdown_rows(head.columns, shown))


def table_preview(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    where: str | None = None,
    params: Iterable[object] | None = None,
    columns: Sequence[str] | None = None,
) -> dg.MetadataValue:
    """The first rows of `table` (matching `where`) as a masked markdown preview."""
    filt = f" WHERE {where}" if where else ""
    cols = ", ".join(columns) if columns else "*"
    cursor = conn.execute(f"SELECT {cols} FROM {table}{filt} LIMIT {PREVIEW_ROWS}", list(params or []))
    return masked_preview(_as_stored(cursor), table=table)


def day_previews(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    days: Sequence[str],
    columns: Sequence[str] | None = None,
) -> dict[str, dg.MetadataValue]:
    """Each of `days`' preview, as `table_preview` shows the day's rows (its first rows in the table's
    order), from one query for all the days: a range run previews every day."""
    cols = ", ".join(columns) if columns else "*"
    # Each day's first rows by row id (what a day's LIMIT returns), windowed over the two narrow columns
    # only, then those rows read whole: windowing every column of a 1.8M-row range costs ~8x more.
    cursor = conn.execute(
        f"SELECT {cols}, CAST(business_date AS VARCHAR) AS {_PREVIEW_DAY} FROM {table} WHERE rowid IN ("
        f"SELECT rowid FROM {table} WHERE {dates_filter(days)} "
        f"QUALIFY row_number() OVER (PARTITION BY business_date ORDER BY rowid) <= {PREVIEW_ROWS}"
        ") ORDER BY rowid"
    )
    rows = _as_stored(cursor)
    # A day's rows keep the frame's column types, which only differ from a day's own read where another day
    # has a NULL (pandas' nullable dtypes): each cell is shown as the same text.
    by_day = {
        str(day): part.drop(columns=_PREVIEW_DAY) for day, part in rows.groupby(_PREVIEW_DAY, sort=False)
    }
    none = rows.iloc[0:0].drop(columns=_PREVIEW_DAY)
    return {day: masked_preview(by_day.get(day, none), table=table) for day in days}


def _as_stored(cursor: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The cursor's rows as a frame whose DATE columns hold dates: pandas reads a DATE as a midnight
    timestamp, which is not what the table holds."""
    dates = [name for name, type_, *_ in cursor.description if str(type_) == "DATE"]
    frame = cursor.df()
    for name in dates:
        frame[name] = frame[name].dt.date
    return frame


def table_metadata(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    *,
    descriptions: Mapping[str, str] | None = None,
    where: str | None = None,
    params: Iterable[object] | None = None,
    preview_columns: Sequence[str] | None = None,
    extra: Mapping[str, object] | None = None,
    partitions: int = 1,
    contract: object | None = None,
) -> dict[str, object]:
    """Standard metadata for a table: column schema (with the constraints of its pandera `contract`), row
    count, table name, a masked preview.

    With `where` (a partition filter), also the partition's row count, and the preview comes from the
    partition. `extra` numeric values are plotted over time by the UI. A run of several `partitions`
    records one materialisation per partition, each a copy of this metadata: the copies leave out the
    column schema and lineage, which every partitioned asset declares on its definition (a 183-day
    backfill would otherwise write and read them 183 times), and the preview, and count the range's rows
    as `range_row_count` (each day's own count, figures and preview, and the run's figures on its last day
    only: `lib/day_metadata.py`). Dagster+'s
    column-lineage view reads the latest materialisation only: after a range run it shows lineage again
    from the next single-day run."""
    filt = f" WHERE {where}" if where else ""
    args = list(params or [])
    total = conn.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    part = conn.execute(f"SELECT count(*) FROM {table}{filt}", args).fetchall()[0][0] if where else None
    # Dagster's standard table metadata keys (its TableMetadataSet, which 1.13 does not export).
    md: dict[str, object] = {
        "dagster/row_count": int(total),
        "dagster/table_name": table,
        "dagster/storage_kind": "duckdb",
    }
    if partitions == 1:
        md[COLUMN_SCHEMA_KEY] = column_schema(conn, table, descriptions, contract)
    if part is not None:
        # A range's copies would otherwise each claim the whole range's rows as their partition's.
        md["dagster/partition_row_count" if partitions == 1 else "range_row_count"] = int(part)
    if partitions == 1:  # a range's days each get their own (`lib/day_metadata.py`)
        md["preview"] = table_preview(conn, table, where, args, preview_columns)
    md.update(extra or {})
    if partitions > 1:
        md.pop(COLUMN_LINEAGE_KEY, None)
    return md
