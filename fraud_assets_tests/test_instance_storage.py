"""The instance's storage is chosen by one setting: SQLite under DAGSTER_HOME by default, Postgres (a real
private server from the machine's binaries) when DAGSTER_PG_HOST is set, the password never in the yaml."""

from __future__ import annotations

import dagster as dg
import pytest
import yaml
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.runs import SqliteRunStorage
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from fraud_assets.cli.dagster_home import InstanceConfigError, write_dagster_yaml
from fraud_assets.lib.dagster_compat import ComputeIOType
from fraud_assets_tests.postgres import PostgresServer


@pytest.fixture(scope="module")
def postgres():
    with PostgresServer() as pg:
        yield pg


@pytest.fixture
def pg_env(postgres, monkeypatch):
    for name, value in postgres.env().items():
        monkeypatch.setenv(name, value)
    return postgres.env()


@dg.asset
def probe() -> None:
    """A trivial asset: materialising it records a run and its events in the instance."""


def test_without_dagster_pg_host_the_instance_stays_on_sqlite(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_PG_HOST", raising=False)
    path = write_dagster_yaml(tmp_path / "home")
    assert "postgres" not in yaml.safe_load(path.read_text())["storage"]
    with dg.DagsterInstance.from_config(str(path.parent)) as instance:
        assert isinstance(instance.run_storage, SqliteRunStorage)
        assert isinstance(instance.event_log_storage, SqliteEventLogStorage)


def test_dagster_pg_host_puts_runs_event_log_and_schedules_in_postgres(tmp_path, pg_env):
    path = write_dagster_yaml(tmp_path / "home")
    with dg.DagsterInstance.from_config(str(path.parent)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)


def test_processes_with_their_own_dagster_home_share_runs_through_postgres(tmp_path, pg_env):
    written = write_dagster_yaml(tmp_path / "code_server_home")
    read = write_dagster_yaml(tmp_path / "webserver_home")
    with dg.DagsterInstance.from_config(str(written.parent)) as instance:
        run_id = dg.materialize([probe], instance=instance).run_id
    with dg.DagsterInstance.from_config(str(read.parent)) as other:
        assert other.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS
        assert other.get_latest_materialization_event(probe.key).run_id == run_id


def test_the_password_is_a_reference_never_written_into_the_yaml(tmp_path, pg_env):
    text = write_dagster_yaml(tmp_path / "home").read_text()
    assert pg_env["DAGSTER_PG_PASSWORD"] not in text
    db = yaml.safe_load(text)["storage"]["postgres"]["postgres_db"]
    assert db["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    assert (db["hostname"], db["port"]) == (pg_env["DAGSTER_PG_HOST"], int(pg_env["DAGSTER_PG_PORT"]))


def test_a_run_worker_writes_step_logs_on_its_own_data_volume_not_the_launchers(
    tmp_path, pg_env, monkeypatch
):
    # The daemon launches; the run worker (in the code server) rebuilds the instance from the daemon's ref.
    monkeypatch.setenv("FRAUD_DATA_DIR", str(tmp_path / "daemon_filesystem"))
    with dg.DagsterInstance.from_config(str(write_dagster_yaml(tmp_path / "daemon_home").parent)) as daemon:
        ref = daemon.get_ref()
    monkeypatch.setenv("FRAUD_DATA_DIR", str(tmp_path / "volume"))
    with dg.DagsterInstance.from_ref(ref) as worker:
        # Through the manager's own stream, not `capture_logs`: that mirrors output through `tail -F`
        # subprocesses stopped by SIGTERM, which late in a `make test` session three times outlived Dagster's
        # 30 s wait (also from a fresh child process; cause not found). The path resolution is the same.
        with worker.compute_log_manager.open_log_stream(
            ["run", "compute_logs", "step"], ComputeIOType.STDOUT
        ) as f:
            f.write("step output\n")
    [log] = (tmp_path / "volume" / "compute_logs").rglob("step.out")
    assert "step output" in log.read_text()
    assert not (tmp_path / "daemon_filesystem").exists()


def test_postgres_without_a_password_is_refused_and_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_PG_HOST", "127.0.0.1")
    monkeypatch.delenv("DAGSTER_PG_PASSWORD", raising=False)
    with pytest.raises(InstanceConfigError, match="DAGSTER_PG_PASSWORD"):
        write_dagster_yaml(tmp_path / "home")
    assert not (tmp_path / "home").exists()
