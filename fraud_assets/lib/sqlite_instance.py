"""The local SQLite instance: how hard it waits for the disk, and one SQLAlchemy engine per database.

Durability, `FRAUD_SQLITE_SYNCHRONOUS` (OFF, NORMAL, FULL). Dagster's SQLite storage commits each event
on its own, so every event costs a few fsyncs; a 183-day backfill writes ~6,000 events (a materialisation
and ~14 check evaluations per day and asset), and on this machine's disk those fsyncs take longer than the
data work. With `synchronous=OFF` SQLite hands writes to the operating system without waiting: a crash of a
process loses nothing, a crash of the operating system or power loss can lose or corrupt the run history
(not the warehouse, which is DuckDB's own file). That is the trade of a local instance, hence the default
OFF; set FULL for SQLite's own durability. Dagster has no setting for SQLite pragmas; its storage connects
through SQLAlchemy engines, so a SQLAlchemy `connect` listener sets the pragma on every SQLite connection.

Engines. Dagster's SQLite storages create a new SQLAlchemy engine for every connection, and SQLAlchemy
caches compiled statements per engine: every event's INSERTs were compiled again (a third of an event's
cost). `SqliteStorage` is Dagster's `DagsterSqliteStorage` (same files under the same base_dir) whose run
and event-log storages keep one engine per database file for the life of the process; connections are
still opened per use (NullPool) and closed after, as Dagster's are. cli/dagster_home.py names it in
dagster.yaml, so the webserver, the daemon, the code server and every run worker use it.
fraud_assets_tests/test_sqlite_instance.py pins both: a Dagster upgrade that renames what is overridden
here fails there first. A shared deployment keeps its history in Postgres (`DAGSTER_PG_HOST`,
docs/environments.md), where none of this applies.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from fraud_assets.lib.dagster_compat import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    DagsterSqliteStorage,
    SqliteEventLogStorage,
    SqliteRunStorage,
    create_engine,
)

SYNCHRONOUS_ENV = "FRAUD_SQLITE_SYNCHRONOUS"
MODES = ("OFF", "NORMAL", "FULL")
DEFAULT_MODE = "OFF"
# Engines kept per process: the index shard, the run storage and the shards of the runs in flight. An
# evicted engine is disposed (it holds no connection: NullPool).
MAX_ENGINES = 16


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


class _Engines:
    """SQLAlchemy engines by connection string, the least recently used disposed beyond MAX_ENGINES."""

    def __init__(self, **engine_args) -> None:
        self._args = engine_args
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, conn_string: str) -> Engine:
        with self._lock:
            engine = self._engines.pop(conn_string, None)
            if engine is None:
                engine = create_engine(conn_string, poolclass=NullPool, **self._args)
            self._engines[conn_string] = engine
            while len(self._engines) > MAX_ENGINES:
                self._engines.popitem(last=False)[1].dispose()
            return engine


class _EventLogStorage(SqliteEventLogStorage):
    """Dagster's run-sharded SQLite event log; `_connect` as Dagster's, with the shard's engine kept."""

    def __init__(self, base_dir: str, inst_data=None) -> None:
        self._engines = _Engines(connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
        super().__init__(base_dir, inst_data=inst_data)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engines.get(self.conn_string_for_shard(shard))
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn


class _RunStorage(SqliteRunStorage):
    """Dagster's SQLite run storage; `connect` as Dagster's, with its engine kept."""

    def __init__(self, conn_string: str, inst_data=None) -> None:
        self._engines = _Engines()
        super().__init__(conn_string, inst_data=inst_data)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self._engines.get(self._conn_string).connect() as conn, conn.begin():
            yield conn


class SqliteStorage(DagsterSqliteStorage):
    """`DagsterSqliteStorage` (same base_dir and files) with engine-keeping run and event-log storages.
    Named in dagster.yaml as `storage: custom:`; config `base_dir`."""

    def __init__(self, base_dir: str, inst_data=None) -> None:
        install()
        super().__init__(base_dir, inst_data=inst_data)
        run_storage, event_log = self._run_storage, self._event_log_storage
        self._run_storage = _RunStorage(run_storage._conn_string)  # noqa: SLF001
        self._event_log_storage = _EventLogStorage(event_log._base_dir)  # noqa: SLF001

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> SqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)
