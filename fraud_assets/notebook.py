"""Notebook access: query any warehouse table while the daemon keeps materialising.

    from fraud_assets.notebook import connect
    con = connect()
    con.sql("SELECT business_date, count(*) FROM cleaned.transactions GROUP BY ALL").df()

`connect()` returns an in-memory DuckDB connection with one view per table under
`$FRAUD_DATA_DIR/exports/` — the Parquet files every warehouse write publishes atomically
(`fraud_assets.lib.warehouse`). It never opens `warehouse.duckdb`, so it cannot take (or wait for) the
writer's file lock: the platform and any number of notebooks run side by side.

The views read a *snapshot*: at `connect()` / `refresh()` every export file is hard-linked into a
private temporary directory (no data is copied). The platform replaces an export by renaming a new
file over the old name, which never changes the file a hard link points to. Reading the export paths
directly is not safe: DuckDB opens a Parquet path more than once per query (footer, then row groups),
and a rename in between fails the query with `TProtocolException: Invalid data`. The snapshot also
makes a notebook's results repeatable until it calls `refresh(con)`. Partitioned tables keep their
`business_date=YYYY-MM-DD/` folders and are read with hive partitioning, so a filter on the partition
column opens only those files. Why not open the warehouse itself: docs/notebooks.md.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from fraud_assets.lib import settings

EXPORT_FILE = "data.parquet"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Snapshot directory of each open notebook connection (by id), removed on refresh and at exit.
_SNAPSHOTS: dict[int, Path] = {}


@dataclass(frozen=True)
class ExportedTable:
    schema: str
    table: str
    path: Path
    partitioned: bool

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}"

    @property
    def files(self) -> list[Path]:
        pattern = f"*=*/{EXPORT_FILE}" if self.partitioned else EXPORT_FILE
        return sorted(self.path.glob(pattern))


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def exports_root(data_dir: str | Path | None = None) -> Path:
    return (Path(data_dir).resolve() / "exports") if data_dir else settings.exports_dir()


def exported_tables(data_dir: str | Path | None = None) -> list[ExportedTable]:
    """Every table with at least one exported file, sorted by name."""
    root = exports_root(data_dir)
    found = []
    for table_dir in sorted(p for p in root.glob("*/*") if p.is_dir()):
        schema, table = table_dir.parent.name, table_dir.name
        if not (_IDENTIFIER.match(schema) and _IDENTIFIER.match(table)):
            continue
        # A partition folder wins over a whole-table file: the table's current shape is partitioned.
        partitioned = any(table_dir.glob(f"*=*/{EXPORT_FILE}"))
        if partitioned or (table_dir / EXPORT_FILE).exists():
            found.append(ExportedTable(schema, table, table_dir, partitioned))
    return found


def _link_or_copy(src: Path, dst: Path) -> bool:
    """Hard-link `src` to `dst` (copy across file systems); False when the export vanished meanwhile."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except FileNotFoundError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EACCES, errno.EMLINK):
            raise
        # Copying is consistent too: the platform never modifies a published file in place.
        shutil.copyfile(src, dst)
    return True


def _snapshot_view_sql(table: ExportedTable, snapshot: Path) -> str | None:
    target = snapshot / table.schema / table.table
    linked = [_link_or_copy(f, target / f.relative_to(table.path)) for f in table.files]
    if not any(linked):
        return None
    if table.partitioned:
        # union_by_name: a partition written before a column was added still reads (NULL there).
        glob = _sql_str(str(target / "*=*" / EXPORT_FILE))
        return f"SELECT * FROM read_parquet({glob}, hive_partitioning = true, union_by_name = true)"
    return f"SELECT * FROM read_parquet({_sql_str(str(target / EXPORT_FILE))})"


def _remove_snapshot(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


@atexit.register
def _remove_all_snapshots() -> None:
    for path in list(_SNAPSHOTS.values()):
        _remove_snapshot(path)
    _SNAPSHOTS.clear()


def _new_snapshot_dir(exports: Path) -> Path:
    # Hard links need the same file system: the system temp dir when it shares the exports' device.
    base = Path(tempfile.gettempdir())
    with contextlib.suppress(OSError):  # no write access beside the exports: links fall back to copies
        if exports.exists() and base.stat().st_dev != exports.stat().st_dev:
            beside = exports.parent / ".notebook_snapshots"
            beside.mkdir(exist_ok=True)
            base = beside
    return Path(tempfile.mkdtemp(prefix="fraud_notebook_", dir=base))


def refresh(con: duckdb.DuckDBPyConnection, data_dir: str | Path | None = None) -> list[str]:
    """Take a new snapshot of every exported table and point the views at it; returns the view names.

    Instant (hard links, no data copied). Picks up partitions and tables written since the last one.
    """
    snapshot = _new_snapshot_dir(exports_root(data_dir))
    names = []
    for t in exported_tables(data_dir):
        view_sql = _snapshot_view_sql(t, snapshot)
        if view_sql is None:
            continue
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {t.schema}")
        con.execute(f"CREATE OR REPLACE VIEW {t.name} AS {view_sql}")
        names.append(t.name)
    _remove_snapshot(_SNAPSHOTS.pop(id(con), None))
    _SNAPSHOTS[id(con)] = snapshot
    return names


def connect(data_dir: str | Path | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with a view per exported warehouse table, as of now.

    `data_dir` defaults to `$FRAUD_DATA_DIR` (`./data`). The connection holds no lock on anything the
    platform writes; keep it open as long as you like and call `refresh(con)` for newer data.
    """
    con = duckdb.connect(":memory:")
    refresh(con, data_dir)
    return con


def close(con: duckdb.DuckDBPyConnection) -> None:
    """Close the connection and delete its snapshot (also done at interpreter exit)."""
    con.close()
    _remove_snapshot(_SNAPSHOTS.pop(id(con), None))


def tables(data_dir: str | Path | None = None) -> pd.DataFrame:
    """What a notebook can query: table, partitioned, number of files, last export time (UTC)."""
    rows = []
    for t in exported_tables(data_dir):
        files = t.files
        newest = max((f.stat().st_mtime for f in files), default=None)
        rows.append(
            {
                "table": t.name,
                "partitioned": t.partitioned,
                "files": len(files),
                "last_export_utc": (
                    dt.datetime.fromtimestamp(newest, dt.UTC).replace(tzinfo=None) if newest else None
                ),
            }
        )
    return pd.DataFrame(rows, columns=["table", "partitioned", "files", "last_export_utc"])


@contextlib.contextmanager
def warehouse_read_only(data_dir: str | Path | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """The alternative: a short-lived read-only connection to `warehouse.duckdb` itself.

    Sees the very latest commit, but while it is open no run can write (DuckDB allows one writer
    process and no other process beside it), and it cannot open while a run writes. Use it for a quick
    look, inside `with`, never held across notebook cells (docs/notebooks.md).
    """
    path = (Path(data_dir).resolve() / settings.WAREHOUSE_FILE) if data_dir else settings.warehouse_path()
    con = duckdb.connect(str(path), read_only=True)
    try:
        yield con
    finally:
        con.close()
