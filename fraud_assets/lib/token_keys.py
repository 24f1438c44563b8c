"""Which key made the card tokens in a warehouse, and refusing to mix tokens of two keys.

A card tokenised with two keys becomes two unrelated cards: card windows, alerts and models silently
split it. So every table whose tokens are minted at ingestion has its key's fingerprint (an HMAC of a
constant, `Tokenizer.fingerprint`: it identifies the key, never reveals it) in `platform.token_keys`,
and `ensure_token_key` - called by each tokenising asset before it writes - refuses a key whose
fingerprint differs from any recorded one. Every later token column is copied from those tables, so the
fingerprints recorded for them are those of every token column in the warehouse.

Changing the key is a deliberate re-tokenisation (`rotate`, docs/runbooks.md "Rotate the PAN key"):
tokens are one-way, so every table holding tokens is dropped with its Parquet export and rebuilt from
the landing zone, the only place that holds PANs. `platform.token_key_rotations` keeps the history.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from pathlib import Path

import dagster as dg
import duckdb

from fraud_assets.lib.pan import Tokenizer
from fraud_assets.lib.warehouse import transaction

TOKEN_KEYS_TABLE = "platform.token_keys"  # noqa: S105 - a table name
ROTATIONS_TABLE = "platform.token_key_rotations"
TOKEN_COLUMN = "card_token"  # noqa: S105 - a column name
RUNBOOK = "docs/runbooks.md, section 'Rotate the PAN key'"

_log = logging.getLogger("fraud_assets.token_keys")


class TokenKeyMismatch(dg.Failure):
    """FRAUD_PAN_KEY is not the key of the tokens already in the warehouse."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _create(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS platform")
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {TOKEN_KEYS_TABLE} "
        "(table_name VARCHAR PRIMARY KEY, key_fingerprint VARCHAR NOT NULL, recorded_at TIMESTAMP NOT NULL)"
    )
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {ROTATIONS_TABLE} (rotated_at TIMESTAMP NOT NULL, "
        "from_fingerprint VARCHAR, to_fingerprint VARCHAR NOT NULL, tables_dropped VARCHAR[] NOT NULL)"
    )


def _platform_table_exists(conn: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(
        conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            table.split("."),
        ).fetchone()[0]
    )


def recorded_fingerprints(conn: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """table -> key fingerprint of its tokens; {} for a warehouse with no record (new, or older). Right
    after a rotation, before any table is rebuilt, the rotation's new key is recorded as `(rotation)`."""
    if not _platform_table_exists(conn, TOKEN_KEYS_TABLE):
        return {}
    recorded = dict(conn.execute(f"SELECT table_name, key_fingerprint FROM {TOKEN_KEYS_TABLE}").fetchall())
    if not recorded and _platform_table_exists(conn, ROTATIONS_TABLE):
        latest = conn.execute(
            f"SELECT to_fingerprint FROM {ROTATIONS_TABLE} ORDER BY rotated_at DESC LIMIT 1"
        ).fetchall()
        if latest:
            recorded = {"(rotation)": latest[0][0]}
    return recorded


def token_tables(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """Every table (any schema) with a token column: what a rotation rebuilds."""
    rows = conn.execute(
        "SELECT DISTINCT c.table_schema, c.table_name FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_catalog, table_schema, table_name) "
        "WHERE c.column_name = ? AND t.table_type = 'BASE TABLE' AND c.table_catalog = current_database() "
        "ORDER BY 1, 2",
        [TOKEN_COLUMN],
    ).fetchall()
    return [f"{schema}.{name}" for schema, name in rows]


def mismatch_message(fingerprint: str, recorded: dict[str, str]) -> str:
    others = ", ".join(f"{t} ({fp})" for t, fp in sorted(recorded.items()) if fp != fingerprint)
    return (
        f"FRAUD_PAN_KEY (key fingerprint {fingerprint}) is not the key of the card tokens already in this "
        f"warehouse: {others}. Writing would give every card a second, unrelated token. If the key is "
        "wrong, set FRAUD_PAN_KEY to the key the warehouse was built with (`python -m "
        "fraud_assets.cli.pan_key status` compares fingerprints). To change keys, re-tokenise "
        f"deliberately: {RUNBOOK} (`python -m fraud_assets.cli.pan_key rotate`)."
    )


def ensure_token_key(conn: duckdb.DuckDBPyConnection, tokenizer: Tokenizer, table: str) -> None:
    """Call before writing tokens made by `tokenizer` into `table`: raises `TokenKeyMismatch` when the
    warehouse holds tokens of another key, else records the key's fingerprint for `table`.

    A warehouse that holds tokens but no record (built before fingerprints were kept) adopts the current
    key, with a warning: its tokens cannot be checked without the PANs."""
    fingerprint = tokenizer.fingerprint
    recorded = recorded_fingerprints(conn)
    if any(fp != fingerprint for fp in recorded.values()):
        raise TokenKeyMismatch(
            description=mismatch_message(fingerprint, recorded),
            metadata={"key_fingerprint": fingerprint, "recorded": dg.MetadataValue.json(recorded)},
        )
    if not recorded:
        legacy = [t for t in token_tables(conn) if conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]]
        if legacy:
            _log.warning(
                "no key fingerprint recorded for the tokens in %s: recording FRAUD_PAN_KEY's (%s) as theirs",
                ", ".join(legacy),
                fingerprint,
            )
    if recorded.get(table) == fingerprint:
        return
    _create(conn)
    conn.execute(f"INSERT OR REPLACE INTO {TOKEN_KEYS_TABLE} VALUES (?, ?, ?)", [table, fingerprint, _now()])


def rotate(conn: duckdb.DuckDBPyConnection, tokenizer: Tokenizer, exports: Path | None) -> list[str]:
    """Start a re-tokenisation with `tokenizer`'s key: drop every table holding tokens (and its export),
    record the rotation, and let the next writes record the new key. Returns the tables dropped; the
    landing zone rebuilds them (`make pipeline`)."""
    previous = sorted(set(recorded_fingerprints(conn).values()))
    if previous == [tokenizer.fingerprint]:
        raise ValueError(f"the warehouse's tokens are already made with this key ({tokenizer.fingerprint})")
    tables = token_tables(conn)
    _create(conn)
    with transaction(conn):
        for table in tables:
            conn.execute(f"DROP TABLE {table}")
        conn.execute(f"DELETE FROM {TOKEN_KEYS_TABLE}")
        conn.execute(
            f"INSERT INTO {ROTATIONS_TABLE} VALUES (?, ?, ?, ?)",
            [_now(), ",".join(previous) or None, tokenizer.fingerprint, tables],
        )
    for table in tables:
        if exports is not None:
            shutil.rmtree(exports.joinpath(*table.split(".")), ignore_errors=True)
    return tables
