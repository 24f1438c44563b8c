"""How hard the local SQLite instance waits for the disk: `FRAUD_SQLITE_SYNCHRONOUS` (OFF, NORMAL, FULL).

Dagster's SQLite storage opens a connection per write and commits each event on its own, so every event
costs a few fsyncs; a 183-day backfill writes ~6,000 events (a materialisation and ~14 check evaluations
per day and asset), and on this machine's disk those fsyncs take longer than the data work. With
`synchronous=OFF` SQLite hands writes to the operating system without waiting: a crash of a process
loses nothing, a crash of the operating system or power loss can lose or corrupt the run history (not the
warehouse, which is DuckDB's own file). That is the trade of a local instance, hence the default OFF;
set FULL for SQLite's own durability. A shared deployment keeps its history in Postgres
(`DAGSTER_PG_HOST`, docs/environments.md), where this setting does nothing.

Dagster has no setting for SQLite pragmas; its storage connects through SQLAlchemy engines, so a
SQLAlchemy `connect` listener sets the pragma on every SQLite connection of the process.
fraud_assets_tests/test_sqlite_instance.py pins that Dagster's connections get it.
"""

from __future__ import annotations

import os
import sqlite3

from sqlalchemy import event
from sqlalchemy.engine import Engine

SYNCHRONOUS_ENV = "FRAUD_SQLITE_SYNCHRONOUS"
MODES = ("OFF", "NORMAL", "FULL")
DEFAULT_MODE = "OFF"


def synchronous_mode() -> str:
    mode = os.environ.get(SYNCHRONOUS_ENV, "").strip().upper() or DEFAULT_MODE
    if mode not in MODES:
        raise ValueError(f"{SYNCHRONOUS_ENV}={mode!r}: expected one of {', '.join(MODES)}")
    return mode


def _set_synchronous(dbapi_connection, _record) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA synchronous={synchronous_mode()}")
        finally:
            cursor.close()


def install() -> None:
    """Apply the setting to every SQLite connection this process opens from now on (idempotent)."""
    if not event.contains(Engine, "connect", _set_synchronous):
        event.listen(Engine, "connect", _set_synchronous)
