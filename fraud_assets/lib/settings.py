"""Where the platform keeps its files. One place resolves the environment so every layer agrees.

`FRAUD_DATA_DIR` (contract, default `./data`) holds the landing zone, `warehouse.duckdb` (contract
name), model artifacts and human-readable exports. Nothing here opens a file or a database.
"""

from __future__ import annotations

import os
from pathlib import Path

WAREHOUSE_FILE = "warehouse.duckdb"
REPORTING_CURRENCY = "EUR"


def data_dir() -> Path:
    return Path(os.environ.get("FRAUD_DATA_DIR", "./data")).resolve()


def landing_dir() -> Path:
    return data_dir() / "landing"


def warehouse_path() -> Path:
    return data_dir() / WAREHOUSE_FILE


def models_dir() -> Path:
    return data_dir() / "models"


def exports_dir() -> Path:
    """Parquet snapshots for notebooks: reading them never takes the warehouse lock."""
    return data_dir() / "exports"
