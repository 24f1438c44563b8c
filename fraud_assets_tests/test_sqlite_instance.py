"""The local SQLite instance's durability setting (lib/sqlite_instance.py), pinned on a real Dagster
instance and run: every SQLite connection Dagster's storage opens gets the pragma the setting names."""

from __future__ import annotations

import sqlite3

import dagster as dg
import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from fraud_assets.lib import sqlite_instance

# PRAGMA synchronous reads back as a number.
LEVEL = {"OFF": 0, "NORMAL": 1, "FULL": 2}


@dg.asset
def one_asset() -> int:
    return 1


@dg.asset_check(asset=one_asset)
def one_check() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


def _levels_seen_during_a_run(tmp_path) -> list[int]:
    """PRAGMA synchronous of every SQLite connection the instance opened while a job ran and logged
    its events (the spy listens after the platform's listener, as a connection's user would see it)."""
    seen: list[int] = []

    def spy(dbapi_connection, _record):
        if isinstance(dbapi_connection, sqlite3.Connection):
            seen.append(dbapi_connection.execute("PRAGMA synchronous").fetchone()[0])

    sqlite_instance.install()
    event.listen(Engine, "connect", spy)
    try:
        with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
            defs = dg.Definitions(
                assets=[one_asset],
                asset_checks=[one_check],
                jobs=[dg.define_asset_job("one_job", selection=[one_asset])],
            )
            assert defs.resolve_job_def("one_job").execute_in_process(instance=instance).success
    finally:
        event.remove(Engine, "connect", spy)
    return seen


@pytest.mark.parametrize("mode", ["OFF", "FULL"])
def test_every_sqlite_connection_of_the_instance_gets_the_configured_synchronous_mode(
    tmp_path, monkeypatch, mode
):
    monkeypatch.setenv(sqlite_instance.SYNCHRONOUS_ENV, mode)
    levels = _levels_seen_during_a_run(tmp_path)
    assert levels, "Dagster's SQLite storage opened no connection through SQLAlchemy"
    assert set(levels) == {LEVEL[mode]}


def test_the_default_is_off(monkeypatch):
    monkeypatch.delenv(sqlite_instance.SYNCHRONOUS_ENV, raising=False)
    assert sqlite_instance.synchronous_mode() == "OFF"


def test_an_unknown_mode_is_refused_by_name(monkeypatch):
    monkeypatch.setenv(sqlite_instance.SYNCHRONOUS_ENV, "sometimes")
    with pytest.raises(ValueError, match="FRAUD_SQLITE_SYNCHRONOUS"):
        sqlite_instance.synchronous_mode()


def test_installing_twice_listens_once():
    sqlite_instance.install()
    sqlite_instance.install()
    assert event.contains(Engine, "connect", sqlite_instance._set_synchronous)
