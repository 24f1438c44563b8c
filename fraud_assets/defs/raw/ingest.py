"""Registered files into raw rows: staged in a private in-memory DuckDB, handed back as Arrow rows
the asset writes.

A source asset reads exactly the register's `ingested` files. Their lines (or snapshot rows) are
staged in tables of a `staging()` database, PANs tokenised and masked there (tokens.py); the SELECT
returned (lineage joined, documented column types) is fetched as Arrow, which holds tokens and masked
text only, and `replace_partition` / `replace_table` write that to the warehouse in one transaction.
The staging database lives in memory and may not spill (`temp_directory` empty): the warehouse's own
spill files (`warehouse.duckdb.tmp/`, used once a memory limit is reached) would otherwise hold the
clear staged rows on disk, and a killed run would leave them there. A chunk that does not fit fails
with DuckDB's out-of-memory error instead: callers bound chunks by rows (`STAGE_MAX_ROWS`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from fraud_assets.defs.raw import snapshots, text_reader
from fraud_assets.defs.raw.files import pinned
from fraud_assets.defs.raw.limits import ReaderLimits
from fraud_assets.defs.raw.parsers import JSON_KEYS
from fraud_assets.defs.raw.schemas import COLUMNS, INVALID_REASON, LINEAGE, MALFORMED, TOKENS, select_sql
from fraud_assets.defs.raw.text_reader import FILES_TABLE, ROWS_TABLE, LineSource
from fraud_assets.defs.raw.text_scan import first_line
from fraud_assets.defs.raw.tokens import (
    door_select,
    ident,
    stage_masked_lines,
    stage_masked_values,
    stage_tokens,
)
from fraud_assets.lib.pan import Tokenizer
from fraud_assets.lib.settings import warehouse_config

# Landed lines staged at once (a 31-day backfill chunk holds fewer days when they hold more rows): a
# staged line takes ~0.5 KB in memory (its text, split fields, tokens), so ~1 GB at this bound.
STAGE_MAX_ROWS = int(os.environ.get("FRAUD_RAW_STAGE_MAX_ROWS", "2000000"))

# The longest line any register configuration accepts: the reader is never the stricter of the two.
READER_MAX_LINE_BYTES = next(
    m.le for m in ReaderLimits.model_fields["max_line_bytes"].metadata if hasattr(m, "le")
)
READER_MAX_HEADER_BYTES = READER_MAX_LINE_BYTES
_LINEAGE = [c for c, _ in LINEAGE]
_OURS = {*_LINEAGE, *(c for c, _ in TOKENS), *(c for c, _ in MALFORMED), INVALID_REASON}


@contextlib.contextmanager
def staging() -> Iterator[duckdb.DuckDBPyConnection]:
    """A private in-memory DuckDB for one chunk's clear rows: never spills to disk (temp_directory
    empty), under the warehouse's memory limit when one is set; closed (and its memory freed) after."""
    limit = warehouse_config().get("memory_limit")
    conn = duckdb.connect(config={"temp_directory": "", **({"memory_limit": limit} if limit else {})})
    try:
        yield conn
    except duckdb.OutOfMemoryException as exc:
        raise MemoryError(
            "a staged chunk did not fit in memory (clear card numbers may not spill to disk): lower "
            f"FRAUD_RAW_STAGE_MAX_ROWS ({STAGE_MAX_ROWS}) or raise FRAUD_DUCKDB_MEMORY_LIMIT"
        ) from exc
    finally:
        conn.close()


def fetch_rows(stage: duckdb.DuckDBPyConnection, select: str) -> pa.Table:
    """The raw rows of a staged chunk (tokens and masked text only) as Arrow, for the warehouse."""
    return stage.sql(select).to_arrow_table()


def producer_columns(table: str) -> list[str]:
    """The table's columns that carry producer values (not lineage, tokens or malformed-line text)."""
    return [c for c, _ in COLUMNS[table] if c not in _OURS]


def _has(table: str, column: str) -> bool:
    return any(c == column for c, _ in COLUMNS[table])


def stage_lineage(cur: duckdb.DuckDBPyConnection, files: pd.DataFrame) -> None:
    """Temp table `_landed_files`: the lineage of each staged file, by file index (= row position)."""
    frame = pd.DataFrame(
        {
            "file_index": range(len(files)),
            "feed": files["feed"].to_numpy(),
            "source_file": files["source_file"].to_numpy(),
            "file_sha256": files["file_sha256"].to_numpy(),
            "landing_date": files["landing_date"].to_numpy(),
            "ingested_at": files["registered_at"].to_numpy(),
            "business_date": files["business_date"].to_numpy(),
        }
    )
    types = {"file_index": "INTEGER", "feed": "VARCHAR", "source_file": "VARCHAR", "file_sha256": "VARCHAR"}
    types |= {"landing_date": "DATE", "ingested_at": "TIMESTAMP", "business_date": "DATE"}
    cur.register("_lineage_in", frame)
    try:
        cols = ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in types.items())
        cur.execute(f"CREATE OR REPLACE TEMP TABLE {FILES_TABLE} AS SELECT {cols} FROM _lineage_in")
    finally:
        cur.unregister("_lineage_in")


def _door(cur: duckdb.DuckDBPyConnection, table: str, tokenizer: Tokenizer) -> str:
    """Tokens and masks for the staged rows of `table`; the SELECT of its raw rows (documented types)."""
    columns = producer_columns(table)
    text = [c for c in columns if dict(COLUMNS[table])[c] == "VARCHAR"]
    tokens, lines = _has(table, "card_token"), _has(table, "raw_line_masked")
    if tokens:
        stage_tokens(cur, ROWS_TABLE, tokenizer)
    masked = stage_masked_values(cur, ROWS_TABLE, text)
    if lines:
        stage_masked_lines(cur, ROWS_TABLE, across_lines=True)
    extra = [f"f.{ident(c)}" for c in _LINEAGE if c != "row_number"] + ["r.row_number"]
    for own in ("malformed_reason", INVALID_REASON):
        if _has(table, own):
            extra.append(f"r.{own}")
    door = door_select(
        ROWS_TABLE,
        [*columns, *(["pan"] if tokens else []), *(["raw_line"] if lines else [])],
        pan="pan" if tokens else None,
        masked=masked,
        extra=extra,
        joins=[f"JOIN {FILES_TABLE} f ON f.file_index = r.file_index"],
    )
    return select_sql(table, f"({door})")


def stage_text_files(
    cur: duckdb.DuckDBPyConnection, root: Path, files: pd.DataFrame, table: str, tokenizer: Tokenizer
) -> str:
    """Stage the registered CSV / JSON Lines `files` of `table`; the SELECT of its raw rows."""
    files = files.reset_index(drop=True)
    stage_lineage(cur, files)
    columns = producer_columns(table) + (["pan"] if _has(table, "card_token") else [])
    gz = [i for i, name in enumerate(files["source_file"]) if name.endswith(".gz")]
    plain = sorted(set(range(len(files))) - set(gz))
    with pinned(root, list(files.itertuples(index=False))) as paths:
        layouts = {i: _layout(paths[i], feed, i in gz, columns) for i, feed in enumerate(files["feed"])}
        sources = [
            LineSource([paths[i] for i in gz], gz, gzip=True),
            LineSource([paths[i] for i in plain], plain, gzip=False),
        ]
        text_reader.stage_rows(cur, sources, layouts, columns, READER_MAX_LINE_BYTES)
    return _door(cur, table, tokenizer)


def _layout(path: str, feed: str, gz: bool, columns: list[str]) -> text_reader.Layout:
    if feed in JSON_KEYS:
        return text_reader.Layout(json=True)
    with open(path, "rb") as fh:
        header = first_line(fh, gz=gz, max_bytes=READER_MAX_HEADER_BYTES)
    return text_reader.layout_for(feed, header, columns)


def stage_snapshot_files(
    cur: duckdb.DuckDBPyConnection, root: Path, files: pd.DataFrame, table: str, tokenizer: Tokenizer
) -> str:
    """Stage the registered Parquet `files` of `table`; the SELECT of its raw rows."""
    files = files.reset_index(drop=True)
    feed = table.split(".")[1]
    stage_lineage(cur, files)
    kinds = snapshots.SNAPSHOT_COLUMNS[feed]
    cols = ", ".join(f"{ident(c)} {snapshots.TARGET[k]}" for c, k in kinds.items())
    cur.execute(
        f"CREATE OR REPLACE TEMP TABLE {ROWS_TABLE} (file_index INTEGER, row_number BIGINT, {cols}, "
        f"{INVALID_REASON} VARCHAR)"
    )
    reason = snapshots.row_reason_sql(feed)
    for i, row in enumerate(files.itertuples(index=False)):
        with pinned(root, [row]) as (path,):
            try:
                select = snapshots.snapshot_select(cur, path, feed)
            except (snapshots.WrongTypes, snapshots.MissingColumns, snapshots.DuplicateColumns) as exc:
                raise text_reader.LandingChanged(f"{row.source_file} no longer reads as registered") from exc
            params = {**select.params, **snapshots.row_reason_params(feed)}
            cur.execute(f"INSERT INTO {ROWS_TABLE} SELECT {i}, *, {reason} FROM ({select.sql})", params)
    return _door(cur, table, tokenizer)
