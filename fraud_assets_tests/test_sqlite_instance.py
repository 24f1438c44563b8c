"""The local SQLite instance (lib/sqlite_instance.py), pinned on a real Dagster instance and run: every
SQLite connection Dagster's storage opens gets the pragma the durability setting names, and the generated
dagster.yaml's storage keeps one engine per database file while writing Dagster's own files."""

from __future__ import annotations

import sqlite3

import dagster as dg
import pytest
from dagster._core.storage.event_log import SqliteEventLogStorage
from sqlalchemy import event
from sqlalchemy.engine import Engine

from fraud_assets.cli.dagster_home import write_dagster_yaml
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


def _engines_of_a_run(home) -> tuple[list[Engine], str]:
    """The SQLAlchemy engine of every connection opened while a job ran on the instance of `home`'s
    generated dagster.yaml, and the run's id."""
    engines: list[Engine] = []

    def spy(conn):
        engines.append(conn.engine)

    defs = dg.Definitions(
        assets=[one_asset],
        asset_checks=[one_check],
        jobs=[dg.define_asset_job("one_job", selection=[one_asset])],
    )
    with dg.DagsterInstance.from_config(str(write_dagster_yaml(home).parent)) as instance:
        event.listen(Engine, "engine_connect", spy)
        try:
            run_id = defs.resolve_job_def("one_job").execute_in_process(instance=instance).run_id
        finally:
            event.remove(Engine, "engine_connect", spy)
    return engines, run_id


def test_the_generated_instance_keeps_one_engine_per_database(tmp_path, monkeypatch):
    # A run writes ~20 events and reads the run storage several times: with Dagster's own SQLite storage
    # each of those connections came from a new engine (statements compiled again every time).
    monkeypatch.delenv("DAGSTER_PG_HOST", raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    engines, _ = _engines_of_a_run(tmp_path / "home")
    per_database = {str(e.url): {id(x) for x in engines if x.url == e.url} for e in engines}
    assert len(engines) > 20
    # runs.db and the run's shard: one engine each; the index shard: its own, and Dagster's `has_table`
    # checks (which open an engine of their own) on it.
    assert len(per_database) == 3
    assert [len(ids) for url, ids in per_database.items() if not url.endswith("index.db")] == [1, 1]


def test_the_generated_instance_reads_and_writes_dagsters_own_sqlite_files(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_PG_HOST", raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    _, run_id = _engines_of_a_run(home)
    # Dagster's default SQLite storage on the same folder sees the run and its events.
    (tmp_path / "plain_home").mkdir()
    (tmp_path / "plain_home" / "dagster.yaml").write_text(f"storage:\n  sqlite:\n    base_dir: {home}\n")
    with dg.DagsterInstance.from_config(str(tmp_path / "plain_home")) as plain:
        assert type(plain.event_log_storage) is SqliteEventLogStorage
        assert plain.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS
        assert plain.get_latest_materialization_event(one_asset.key).run_id == run_id
    assert (home / "history" / "runs.db").exists()
    assert (home / "history" / "runs" / "index.db").exists()
