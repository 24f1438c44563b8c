"""The warehouse resource takes DuckDB's memory ceiling from the environment (FRAUD_DUCKDB_MEMORY_LIMIT)."""

from pathlib import Path

import pytest

from fraud_assets.lib.alerting import Alert, AlertSink
from fraud_assets.lib.settings import DUCKDB_MEMORY_ENV
from fraud_assets.resources import build_resources
from fraud_assets_tests.conftest import TEST_PAN_KEY, TEST_REGISTRY_KEY


def _memory_limit(data_dir: Path) -> str:
    with build_resources(data_dir, TEST_PAN_KEY, TEST_REGISTRY_KEY)["duckdb"].get_connection() as conn:
        return conn.execute("SELECT current_setting('memory_limit')").fetchone()[0]


def test_the_memory_limit_setting_reaches_every_warehouse_connection(tmp_path, monkeypatch):
    monkeypatch.delenv(DUCKDB_MEMORY_ENV, raising=False)
    default = _memory_limit(tmp_path)
    monkeypatch.setenv(DUCKDB_MEMORY_ENV, "1GiB")
    assert _memory_limit(tmp_path) == "1.0 GiB" != default


def test_an_unreadable_memory_limit_fails_the_connection(tmp_path, monkeypatch):
    monkeypatch.setenv(DUCKDB_MEMORY_ENV, "lots")
    with pytest.raises(Exception, match="(?i)memory"):
        _memory_limit(tmp_path)


@pytest.mark.parametrize("limit", ["", "1GiB"])
def test_alerts_reach_the_warehouse_beside_an_open_resource_connection(tmp_path, monkeypatch, limit):
    # An alert raised inside a run, while the run holds a warehouse connection: the sink opens the file
    # with the same configuration, so its rows are loaded now, not left in the outbox as if it were busy.
    monkeypatch.setenv(DUCKDB_MEMORY_ENV, limit)
    resources = build_resources(tmp_path, TEST_PAN_KEY, TEST_REGISTRY_KEY)
    sink = AlertSink(data_dir=str(tmp_path))
    with resources["duckdb"].get_connection() as conn:
        sink.send([Alert(severity="ERROR", kind="test", subject="s", message="m")])  # loads the outbox
        assert conn.execute("SELECT count(*) FROM monitoring.alerts").fetchone()[0] == 1
