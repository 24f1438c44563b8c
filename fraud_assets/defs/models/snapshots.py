"""The data snapshot behind every model: the training set as trained on, archived and signed.

Features are rebuilt when late chargebacks arrive (the lookback sensor) and labels keep arriving, so the
warehouse of next month cannot always give back the training set of today. Each training run therefore
archives `models.training_set` as Parquet in the model store (content-addressed by its data hash, so the
candidates of one run share one file) and records, in a signed row of `models.data_snapshots`, what is
needed to rebuild it and to check the rebuild: the resolved fold windows, the labels known at training
time (count, latest report, hash of the set) and the file's SHA-256. `make reproduce` reads it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from fraud_assets.defs.models.common import LABELS_TABLE, TRAINING_SET_TABLE, data_hash
from fraud_assets.lib.model_io import sha256_file
from fraud_assets.lib.settings import warehouse_config
from fraud_assets.lib.signing import Signer
from fraud_assets.lib.warehouse import PARQUET, sql_string

SNAPSHOTS_TABLE = "models.data_snapshots"
SNAPSHOT_DIR = "snapshots"
_DDL = f"""
CREATE TABLE IF NOT EXISTS {SNAPSHOTS_TABLE} (
    data_hash VARCHAR PRIMARY KEY,
    created_at TIMESTAMP NOT NULL,
    run_id VARCHAR,
    training_config_json VARCHAR NOT NULL,
    labels_as_of TIMESTAMP,
    labels_count BIGINT NOT NULL,
    labels_sha256 VARCHAR NOT NULL,
    n_rows BIGINT NOT NULL,
    parquet_path VARCHAR NOT NULL,
    parquet_sha256 VARCHAR NOT NULL,
    key_id VARCHAR NOT NULL,
    signature VARCHAR NOT NULL
)
"""
SIGNED_COLUMNS = (
    "data_hash",
    "created_at",
    "run_id",
    "training_config_json",
    "labels_as_of",
    "labels_count",
    "labels_sha256",
    "n_rows",
    "parquet_path",
    "parquet_sha256",
    "key_id",
)
# The label set a training run saw: which transactions were fraud, reported when.
LABELS_FINGERPRINT_SQL = """
SELECT count(*), max(reported_at),
       coalesce(sha256(string_agg(transaction_id::VARCHAR || '@' || reported_at::VARCHAR, ','
                                  ORDER BY transaction_id, reported_at)), sha256(''))
FROM {labels}
"""
# One order for the hash and the archived Parquet the candidates train on (the table's own is the engine's).
READ_SQL = f"SELECT * FROM {TRAINING_SET_TABLE} ORDER BY fold, split, transaction_id"


class SnapshotError(RuntimeError):
    """A data snapshot is missing, altered, or does not verify."""


def labels_fingerprint(conn: duckdb.DuckDBPyConnection, labels: str = LABELS_TABLE) -> tuple[int, Any, str]:
    """(count, latest reported_at, SHA-256 of the (transaction_id, reported_at) set) of a labels table."""
    n, as_of, digest = conn.execute(LABELS_FINGERPRINT_SQL.format(labels=labels)).fetchall()[0]
    return int(n), as_of, digest


def training_set_hash(conn: duckdb.DuckDBPyConnection, table: str = TRAINING_SET_TABLE) -> str:
    return data_hash(conn, READ_SQL.replace(TRAINING_SET_TABLE, table))


# A training set up to this many rows keeps the parts it has read (a search reads each part once per
# configuration); a larger one reads them again on each use, so memory stays bounded.
CACHED_ROWS = 3_000_000


class TrainingSet:
    """A training set as archived in Parquet, read one (fold, split) at a time through a private in-memory
    DuckDB, in READ_SQL's order: a candidate holds every fold's training rows but only the test windows it
    is scoring (at a network's volume each is millions of rows), and never the warehouse's lock. Thread
    safe: each read uses its own cursor. The private DuckDB takes the warehouse's memory cap (the two are
    not open at once during a fit) and spills into a folder of its own beside the archive, on the data's
    volume (a system temp folder may be RAM or a container's small scratch); `with` closes it and removes
    the folder."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._spill = Path(tempfile.mkdtemp(prefix=".spill-", dir=self.path.parent))
        try:
            self._db = duckdb.connect(config={**warehouse_config(), "temp_directory": str(self._spill)})
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        self._scan = f"read_parquet({sql_string(self.path)})"
        self.columns: list[str] = [
            d[0] for d in self._db.execute(f"DESCRIBE SELECT * FROM {self._scan}").fetchall()
        ]
        self.rows: dict[tuple[int, str], int] = {
            (int(fold), split): int(n)
            for fold, split, n in self._db.execute(
                f"SELECT fold, split, count(*) FROM {self._scan} GROUP BY ALL ORDER BY ALL"
            ).fetchall()
        }
        self.folds: list[int] = sorted({fold for fold, _ in self.rows})
        self._cache: dict[tuple[int, str], pd.DataFrame] | None = (
            {} if sum(self.rows.values()) <= CACHED_ROWS else None
        )

    def __enter__(self) -> TrainingSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if hasattr(self, "_db"):
            self._db.close()
        shutil.rmtree(self._spill, ignore_errors=True)

    def part(self, fold: int, split: str, columns: list[str] | None = None) -> pd.DataFrame:
        """The rows of one fold's split (all columns, or `columns`); not to be modified in place."""
        if self._cache is None:
            return self._read(fold, split, columns)
        if (fold, split) not in self._cache:
            self._cache[(fold, split)] = self._read(fold, split, None)
        whole = self._cache[(fold, split)]
        return whole[columns] if columns else whole

    def _read(self, fold: int, split: str, columns: list[str] | None) -> pd.DataFrame:
        select = ", ".join(f'"{c}"' for c in columns) if columns else "*"
        return (
            self._db.cursor()
            .execute(
                f"SELECT {select} FROM {self._scan} WHERE fold = ? AND split = ? ORDER BY transaction_id",
                [fold, split],
            )
            .df()
        )

    def dates(self, fold: int, split: str) -> tuple[Any, Any]:
        """First and last business date of a fold's split."""
        return (
            self._db.cursor()
            .execute(
                "SELECT CAST(min(business_date) AS DATE), CAST(max(business_date) AS DATE) "
                f"FROM {self._scan} WHERE fold = ? AND split = ?",
                [fold, split],
            )
            .fetchall()[0]
        )

    @classmethod
    def of_table(
        cls, conn: duckdb.DuckDBPyConnection, path: Path, table: str = TRAINING_SET_TABLE
    ) -> TrainingSet:
        """`table` written to `path` as a training run archives it, and read back."""
        export_training_set(conn, path, table)
        return cls(path)


def export_training_set(conn: duckdb.DuckDBPyConnection, path: Path, table: str = TRAINING_SET_TABLE) -> None:
    conn.execute(f"COPY ({READ_SQL.replace(TRAINING_SET_TABLE, table)}) TO {sql_string(path)} {PARQUET}")


# The table carries the hash of its content as a comment: a rewrite of the table drops it (CREATE OR
# REPLACE), so a comment found always names the current content, and readers skip hashing 100M rows again.
_DIGEST_PREFIX = "data_hash:"


def _mark_digest(conn: duckdb.DuckDBPyConnection, digest: str) -> None:
    conn.execute(f"COMMENT ON TABLE {TRAINING_SET_TABLE} IS {sql_string(_DIGEST_PREFIX + digest)}")


def current_digest(conn: duckdb.DuckDBPyConnection) -> str:
    """The data hash of models.training_set as archived (its snapshot's name); hashed again when the table
    was rewritten since (no comment)."""
    schema, table = TRAINING_SET_TABLE.split(".")
    rows = conn.execute(
        "SELECT comment FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?", [schema, table]
    ).fetchall()
    comment = rows[0][0] if rows else None
    if comment and comment.startswith(_DIGEST_PREFIX):
        return comment.removeprefix(_DIGEST_PREFIX)
    return training_set_hash(conn)


def archive_training_set(
    conn: duckdb.DuckDBPyConnection,
    store_root: Path,
    signer: Signer,
    training_config: dict[str, Any],
    run_id: str | None,
) -> dict[str, Any]:
    """Archive models.training_set (once per content) and record its signed snapshot row; returns it."""
    conn.execute("CREATE SCHEMA IF NOT EXISTS models")
    conn.execute(_DDL)
    digest = training_set_hash(conn)
    _mark_digest(conn, digest)
    existing = snapshot_row(conn, digest)
    if existing is not None:
        return existing
    rel = f"{SNAPSHOT_DIR}/training_set-{digest}.parquet"
    target = Path(store_root) / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    export_training_set(conn, tmp)
    os.replace(tmp, target)
    n_labels, as_of, labels_sha = labels_fingerprint(conn)
    record = {
        "data_hash": digest,
        "created_at": datetime.now(UTC).replace(tzinfo=None),
        "run_id": run_id,
        "training_config_json": json.dumps(training_config, sort_keys=True, default=str),
        "labels_as_of": as_of,
        "labels_count": n_labels,
        "labels_sha256": labels_sha,
        "n_rows": int(conn.execute(f"SELECT count(*) FROM {TRAINING_SET_TABLE}").fetchall()[0][0]),
        "parquet_path": rel,
        "parquet_sha256": sha256_file(target),
        "key_id": signer.key_id,
    }
    row = {**record, "signature": signer.sign("data_snapshot", record)}
    conn.execute(
        f"INSERT INTO {SNAPSHOTS_TABLE} ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
        list(row.values()),
    )
    return row


def snapshot_row(conn: duckdb.DuckDBPyConnection, digest: str) -> dict[str, Any] | None:
    exists = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'models' "
        "AND table_name = 'data_snapshots'"
    ).fetchall()[0][0]
    if not exists:
        return None
    cur = conn.execute(f"SELECT * FROM {SNAPSHOTS_TABLE} WHERE data_hash = ?", [digest])
    cols = [d[0] for d in cur.description]
    rows = cur.fetchall()
    return dict(zip(cols, rows[0], strict=True)) if rows else None


def verified_snapshot(conn: duckdb.DuckDBPyConnection, store_root: Path, signer: Signer, digest: str) -> dict:
    """The snapshot row of a data hash, its signature and its Parquet file's SHA-256 checked."""
    row = snapshot_row(conn, digest)
    if row is None:
        raise SnapshotError(f"no data snapshot recorded for data hash {digest[:16]}… ({SNAPSHOTS_TABLE})")
    if not signer.verify("data_snapshot", {c: row[c] for c in SIGNED_COLUMNS}, row["signature"]):
        raise SnapshotError(f"{SNAPSHOTS_TABLE} row {digest[:16]}… does not verify: refusing to use it")
    path = (Path(store_root) / row["parquet_path"]).resolve()
    if not path.is_relative_to(Path(store_root).resolve()) or not path.is_file():
        raise SnapshotError(f"snapshot file {row['parquet_path']} is missing from the model store")
    if sha256_file(path) != row["parquet_sha256"]:
        raise SnapshotError(f"snapshot file {row['parquet_path']} was modified after training")
    return {**row, "file": path}
