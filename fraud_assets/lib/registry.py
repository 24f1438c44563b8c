"""The model registry: two append-only DuckDB tables.

- `models.model_versions`: one row per trained model version (never updated): family, params and their
  hash, feature columns, training/test windows, data hash, code version, metrics, artifact path and
  SHA-256.
- `models.alias_events`: one row per alias move (`champion`, `challenger`): from, to, when, why, run.
  The current holder of an alias is the `to_version` of its latest event; rollback is a new event, so
  the history of who was champion when is never lost.

This module only INSERTs and SELECTs; nothing in the platform updates or deletes registry rows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb

from fraud_assets.lib.model_io import load_model

CHAMPION = "champion"
CHALLENGER = "challenger"
ALIASES = (CHAMPION, CHALLENGER)

_VERSIONS_DDL = """
CREATE TABLE IF NOT EXISTS models.model_versions (
    model_version VARCHAR PRIMARY KEY,
    family VARCHAR NOT NULL,
    params_json VARCHAR NOT NULL,
    params_hash VARCHAR NOT NULL,
    feature_columns_json VARCHAR NOT NULL,
    train_start DATE,
    train_end DATE,
    delay_days INTEGER,
    test_start DATE,
    test_end DATE,
    n_folds INTEGER,
    data_hash VARCHAR NOT NULL,
    code_version VARCHAR NOT NULL,
    metrics_json VARCHAR NOT NULL,
    artifact_path VARCHAR NOT NULL,
    artifact_sha256 VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL,
    run_id VARCHAR
)
"""

_ALIAS_DDL = """
CREATE TABLE IF NOT EXISTS models.alias_events (
    event_id BIGINT NOT NULL,
    alias VARCHAR NOT NULL,
    from_version VARCHAR,
    to_version VARCHAR NOT NULL,
    event_at TIMESTAMP NOT NULL,
    reason VARCHAR NOT NULL,
    run_id VARCHAR
)
"""


def stable_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class ModelVersion:
    model_version: str
    family: str
    params: dict[str, Any]
    feature_columns: list[str]
    train_start: date | None
    train_end: date | None
    delay_days: int | None
    test_start: date | None
    test_end: date | None
    n_folds: int | None
    data_hash: str
    code_version: str
    metrics: dict[str, float]
    artifact_path: str
    artifact_sha256: str
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC).replace(tzinfo=None))
    run_id: str | None = None

    @property
    def params_hash(self) -> str:
        return stable_hash({"family": self.family, "params": self.params, "features": self.feature_columns})


def ensure_registry(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS models")
    conn.execute(_VERSIONS_DDL)
    conn.execute(_ALIAS_DDL)


def register_version(conn: duckdb.DuckDBPyConnection, mv: ModelVersion) -> None:
    ensure_registry(conn)
    conn.execute(
        "INSERT INTO models.model_versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            mv.model_version,
            mv.family,
            json.dumps(mv.params, sort_keys=True, default=str),
            mv.params_hash,
            json.dumps(mv.feature_columns),
            mv.train_start,
            mv.train_end,
            mv.delay_days,
            mv.test_start,
            mv.test_end,
            mv.n_folds,
            mv.data_hash,
            mv.code_version,
            json.dumps(mv.metrics, sort_keys=True),
            mv.artifact_path,
            mv.artifact_sha256,
            mv.created_at,
            mv.run_id,
        ],
    )


def _row_to_version(row: dict[str, Any]) -> ModelVersion:
    return ModelVersion(
        model_version=row["model_version"],
        family=row["family"],
        params=json.loads(row["params_json"]),
        feature_columns=json.loads(row["feature_columns_json"]),
        train_start=row["train_start"],
        train_end=row["train_end"],
        delay_days=row["delay_days"],
        test_start=row["test_start"],
        test_end=row["test_end"],
        n_folds=row["n_folds"],
        data_hash=row["data_hash"],
        code_version=row["code_version"],
        metrics=json.loads(row["metrics_json"]),
        artifact_path=row["artifact_path"],
        artifact_sha256=row["artifact_sha256"],
        created_at=row["created_at"],
        run_id=row["run_id"],
    )


def get_version(conn: duckdb.DuckDBPyConnection, model_version: str) -> ModelVersion:
    ensure_registry(conn)
    cur = conn.execute("SELECT * FROM models.model_versions WHERE model_version = ?", [model_version])
    cols = [d[0] for d in cur.description]
    row = cur.fetchone()
    if row is None:
        raise KeyError(f"model version {model_version!r} is not in models.model_versions")
    return _row_to_version(dict(zip(cols, row, strict=True)))


def versions_of_run(conn: duckdb.DuckDBPyConnection, run_id: str) -> list[ModelVersion]:
    ensure_registry(conn)
    cur = conn.execute("SELECT * FROM models.model_versions WHERE run_id = ? ORDER BY created_at", [run_id])
    cols = [d[0] for d in cur.description]
    return [_row_to_version(dict(zip(cols, r, strict=True))) for r in cur.fetchall()]


def latest_versions(conn: duckdb.DuckDBPyConnection, limit: int = 50) -> list[ModelVersion]:
    ensure_registry(conn)
    cur = conn.execute("SELECT * FROM models.model_versions ORDER BY created_at DESC LIMIT ?", [limit])
    cols = [d[0] for d in cur.description]
    return [_row_to_version(dict(zip(cols, r, strict=True))) for r in cur.fetchall()]


def current_alias(conn: duckdb.DuckDBPyConnection, alias: str) -> str | None:
    ensure_registry(conn)
    row = conn.execute(
        "SELECT to_version FROM models.alias_events WHERE alias = ? ORDER BY event_id DESC LIMIT 1", [alias]
    ).fetchone()
    return row[0] if row else None


def alias_history(conn: duckdb.DuckDBPyConnection, alias: str) -> list[dict[str, Any]]:
    ensure_registry(conn)
    cur = conn.execute("SELECT * FROM models.alias_events WHERE alias = ? ORDER BY event_id", [alias])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def move_alias(
    conn: duckdb.DuckDBPyConnection, alias: str, to_version: str, reason: str, run_id: str | None = None
) -> dict[str, Any]:
    """Point `alias` at `to_version` by appending an event; returns the event."""
    if alias not in ALIASES:
        raise ValueError(f"unknown alias {alias!r}; expected one of {ALIASES}")
    get_version(conn, to_version)  # refuses a version that was never registered
    conn.execute("BEGIN TRANSACTION")
    try:
        from_version = current_alias(conn, alias)
        event_id = conn.execute("SELECT coalesce(max(event_id), 0) + 1 FROM models.alias_events").fetchone()[
            0
        ]
        event = {
            "event_id": int(event_id),
            "alias": alias,
            "from_version": from_version,
            "to_version": to_version,
            "event_at": datetime.now(UTC).replace(tzinfo=None),
            "reason": reason,
            "run_id": run_id,
        }
        conn.execute("INSERT INTO models.alias_events VALUES (?, ?, ?, ?, ?, ?, ?)", list(event.values()))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return event


def previous_champion(conn: duckdb.DuckDBPyConnection) -> str | None:
    """The champion before the current one: the version the latest champion move replaced."""
    history = alias_history(conn, CHAMPION)
    return history[-1]["from_version"] if history else None


def load_version(
    conn: duckdb.DuckDBPyConnection, store_root: Path, model_version: str
) -> tuple[Any, ModelVersion]:
    """The model of a registered version, through the checked loader (SHA-256 + pinned trust list)."""
    mv = get_version(conn, model_version)
    return load_model(store_root, mv.artifact_path, mv.artifact_sha256), mv


def version_as_dict(mv: ModelVersion) -> dict[str, Any]:
    d = asdict(mv)
    d["params_hash"] = mv.params_hash
    return d
