"""Writing to and describing DuckDB tables, the same way in every layer.

Every write happens inside one explicit transaction (DELETE the partition, INSERT the new rows, or
CREATE OR REPLACE for whole tables), so a crash at any point leaves the previous version intact:
DuckDB rolls back an uncommitted transaction when the file is next opened.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import dagster as dg
import duckdb
import pandas as pd

from fraud_assets.lib.pan import mask_pans

PREVIEW_ROWS = 5


def ensure_schema(conn: duckdb.DuckDBPyConnection, table: str) -> None:
    schema = table.split(".")[0]
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")


def _as_relation_sql(conn: duckdb.DuckDBPyConnection, source: str | pd.DataFrame, name: str) -> str:
    if isinstance(source, pd.DataFrame):
        conn.register(name, source)
        return f"SELECT * FROM {name}"
    return source


def replace_partition(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    source: str | pd.DataFrame,
    partition_column: str,
    partition_keys: Sequence[str],
) -> int:
    """Atomically replace the rows of `partition_keys` in `table` with `source` (SQL or DataFrame).

    Creates the table from the source's shape on first write. Returns the number of rows written.
    """
    ensure_schema(conn, table)
    select_sql = _as_relation_sql(conn, source, "_fraud_assets_partition_source")
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {table} AS {select_sql} LIMIT 0")
        conn.execute(
            f"DELETE FROM {table} WHERE CAST({partition_column} AS VARCHAR) IN (SELECT unnest(?::VARCHAR[]))",
            [list(partition_keys)],
        )
        conn.execute(f"INSERT INTO {table} BY NAME {select_sql}")
        written = conn.execute(
            f"SELECT count(*) FROM {table} WHERE CAST({partition_column} AS VARCHAR) IN "
            f"(SELECT unnest(?::VARCHAR[]))",
            [list(partition_keys)],
        ).fetchone()[0]
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return int(written)


def replace_table(conn: duckdb.DuckDBPyConnection, table: str, source: str | pd.DataFrame) -> int:
    """Atomically replace a whole table with `source` (SQL or DataFrame)."""
    ensure_schema(conn, table)
    select_sql = _as_relation_sql(conn, source, "_fraud_assets_table_source")
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(f"CREATE OR REPLACE TABLE {table} AS {select_sql}")
        written = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return int(written)


def table_exists(conn: duckdb.DuckDBPyConnection, table: str) -> bool:
    schema, name = table.split(".")
    return bool(
        conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [schema, name],
        ).fetchone()[0]
    )


def column_schema(
    conn: duckdb.DuckDBPyConnection, table: str, descriptions: Mapping[str, str] | None = None
) -> dg.TableSchema:
    descriptions = descriptions or {}
    rows = conn.execute(f"DESCRIBE {table}").fetchall()
    return dg.TableSchema(
        columns=[dg.TableColumn(name=r[0], type=str(r[1]), description=descriptions.get(r[0])) for r in rows]
    )


def masked_preview(df: pd.DataFrame, rows: int = PREVIEW_ROWS) -> dg.MetadataValue:
    """A markdown preview with every PAN-like digit run masked, whatever column it hides in."""
    head = df.head(rows).astype(str).map(mask_pans)
    return dg.MetadataValue.md(head.to_markdown(index=False) if len(head) else "_no rows_")


def table_metadata(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    *,
    descriptions: Mapping[str, str] | None = None,
    where: str | None = None,
    params: Iterable[object] | None = None,
    preview_columns: Sequence[str] | None = None,
    extra: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """Standard metadata for a table (or the part of it matching `where`): column schema, row count,
    table name, a masked preview. `extra` numeric values are plotted over time by the UI."""
    filt = f" WHERE {where}" if where else ""
    args = list(params or [])
    count = conn.execute(f"SELECT count(*) FROM {table}{filt}", args).fetchone()[0]
    cols = ", ".join(preview_columns) if preview_columns else "*"
    preview = conn.execute(f"SELECT {cols} FROM {table}{filt} LIMIT {PREVIEW_ROWS}", args).df()
    md = dict(
        dg.TableMetadataSet(
            column_schema=column_schema(conn, table, descriptions),
            row_count=int(count),
            table_name=table,
        )
    )
    md["preview"] = masked_preview(preview)
    md.update(extra or {})
    return md
