"""Shared fixtures. Tests never touch ./data or ./.dagster_home: every test gets its own data dir,
DuckDB file and Dagster instance under pytest's tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The test world's business days, fixed before any module builds the partitions (lib/partitions.py reads
# them once, at import) and whatever `scripts/with-env` derived from ./data: the simulator's default
# world (183 days from 2018-04-01) fits in it.
os.environ["FRAUD_FIRST_BUSINESS_DATE"] = "2018-04-01"
os.environ["FRAUD_LAST_BUSINESS_DATE"] = "2018-12-31"

TEST_PAN_KEY = "test-key-0123456789abcdef-not-a-secret"
TEST_REGISTRY_KEY = "test-registry-key-0123456789abcdef-not-a-secret"


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FRAUD_PAN_KEY", TEST_PAN_KEY)
    monkeypatch.setenv("FRAUD_REGISTRY_KEY", TEST_REGISTRY_KEY)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    os.makedirs(tmp_path / "dagster_home", exist_ok=True)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir(exist_ok=True)
    return d


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """End-to-end modules first, then slow ones: `make test` runs modules on two workers (pytest-xdist,
    --dist loadfile), and the longest module started first runs beside all the others instead of last."""

    def cost(item: pytest.Item) -> int:
        return 0 if item.get_closest_marker("e2e") else 1 if item.get_closest_marker("slow") else 2

    items.sort(key=cost)  # stable: the collection order within each class
