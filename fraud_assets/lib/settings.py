"""Where the platform keeps its files and which business days it covers. One place reads the environment
so every layer, the simulator and the CLIs agree.

`FRAUD_DATA_DIR` (contract, default `./data`) holds the landing zone, `warehouse.duckdb` (contract
name), model artifacts and human-readable exports. Nothing here opens a file or a database.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

WAREHOUSE_FILE = "warehouse.duckdb"
REPORTING_CURRENCY = "EUR"

FIRST_BUSINESS_DATE_ENV = "FRAUD_FIRST_BUSINESS_DATE"
LAST_BUSINESS_DATE_ENV = "FRAUD_LAST_BUSINESS_DATE"
# The simulator's default world (the Fraud Detection Handbook's) starts here; a deployment sets its own.
DEFAULT_FIRST_BUSINESS_DATE = dt.date(2018, 4, 1)
DEADLINE_ENV = "FRAUD_AUTHORIZATIONS_DEADLINE_HOURS"
# Processors deliver a day's file shortly after midnight UTC: a day with none by 06:00 the next day is late.
DEFAULT_DEADLINE_HOURS = 6


def data_dir() -> Path:
    return Path(os.environ.get("FRAUD_DATA_DIR", "./data")).resolve()


def landing_dir() -> Path:
    return data_dir() / "landing"


DUCKDB_MEMORY_ENV = "FRAUD_DUCKDB_MEMORY_LIMIT"


def warehouse_config() -> dict[str, str]:
    """DuckDB settings of every read-write connection to the warehouse, the Dagster resource's and the
    alert sink's alike: DuckDB refuses a second, different configuration of a file open in the same
    process (the user agent included, which dagster-duckdb sets to its own unless given one), and an
    alert raised inside a run would wait in the outbox as if the warehouse were busy.
    `FRAUD_DUCKDB_MEMORY_LIMIT` (e.g. `12GB`) caps what DuckDB holds in memory, beyond which it spills to
    disk beside the database; unset, DuckDB takes up to 80 % of the machine's RAM, which a box shared
    with model fits does not have."""
    limit = os.environ.get(DUCKDB_MEMORY_ENV, "").strip()
    return {"custom_user_agent": "fraud_assets", **({"memory_limit": limit} if limit else {})}


def warehouse_path() -> Path:
    return data_dir() / WAREHOUSE_FILE


def exports_dir() -> Path:
    """Parquet snapshots for notebooks: reading them never takes the warehouse lock."""
    return data_dir() / "exports"


def _date_setting(name: str) -> dt.date | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{name}={text!r} is not a date (YYYY-MM-DD)") from exc


def first_business_date() -> dt.date:
    """The first business day the platform covers (`FRAUD_FIRST_BUSINESS_DATE`)."""
    return _date_setting(FIRST_BUSINESS_DATE_ENV) or DEFAULT_FIRST_BUSINESS_DATE


def last_business_date() -> dt.date | None:
    """The last business day of a replayed world in the past (`FRAUD_LAST_BUSINESS_DATE`); None for a live
    platform, whose days run up to yesterday."""
    last = _date_setting(LAST_BUSINESS_DATE_ENV)
    if last is not None and last < first_business_date():
        raise ValueError(f"{LAST_BUSINESS_DATE_ENV}={last} is before {FIRST_BUSINESS_DATE_ENV}")
    return last


def authorizations_deadline() -> dt.timedelta:
    """How long after the end of a business day its authorisation files may still arrive on time."""
    hours = os.environ.get(DEADLINE_ENV, "").strip()
    return dt.timedelta(hours=float(hours) if hours else DEFAULT_DEADLINE_HOURS)


GIT_URL_ENV = "FRAUD_GIT_URL"
GIT_BRANCH_ENV = "FRAUD_GIT_BRANCH"
DEFAULT_GIT_BRANCH = "main"


def git_url() -> str | None:
    """The repository's web address (`FRAUD_GIT_URL`, e.g. https://github.com/<org>/fraud_assets): asset
    code references link there. Unset: they stay local file paths, which `dg dev` opens in an editor."""
    return os.environ.get(GIT_URL_ENV, "").strip().rstrip("/") or None


def git_branch() -> str:
    """The branch code references link to (`FRAUD_GIT_BRANCH`, default `main`)."""
    return os.environ.get(GIT_BRANCH_ENV, "").strip() or DEFAULT_GIT_BRANCH
