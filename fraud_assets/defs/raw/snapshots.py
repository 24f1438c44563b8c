"""Parquet snapshots (cardholders, merchants): the one SELECT that reads them, and the register's
check that it will succeed.

DuckDB streams a snapshot row group by row group. Each kept column must arrive in a type family that
converts without guessing (an id as an integer, a position as a number, a date as a date or
timestamp, text as text; the PAN in any of these); the register runs the very SELECT the asset will
run, over every value, so a value that does not convert (`T0` as terminal_id) or a card number in a
column other than `pan` refuses the file there, and raw/merchants and raw/cardholders keep the last
good snapshot instead of failing. So do a read column named twice, and a footer or a declared size over
its cap (checked before the data is read). A row a later layer could not take (ROW_RULES) is a row-level
matter: it is ingested with its `invalid_reason`. Unknown columns are never read.
"""

from __future__ import annotations

import os
import zoneinfo
from dataclasses import dataclass

import duckdb

from fraud_assets.defs.raw import reasons as r
from fraud_assets.defs.raw.limits import RATIO_SLACK_BYTES, ReaderLimits
from fraud_assets.defs.raw.parsers import MAX_LINE_CHARS, REQUIRED_COLUMNS
from fraud_assets.defs.raw.tokens import ident, may_hold_pan
from fraud_assets.lib.pan import mask_pans

INTEGER, NUMBER, TEXT, DATE, PAN = "integer", "number", "text", "date", "pan"
SNAPSHOT_COLUMNS: dict[str, dict[str, str]] = {
    "cardholders": {
        "customer_id": INTEGER,
        "pan": PAN,
        "home_x": NUMBER,
        "home_y": NUMBER,
        "home_country": TEXT,
        "issued_at": DATE,
    },
    "merchants": {
        "terminal_id": INTEGER,
        "merchant_id": INTEGER,
        "mcc": TEXT,
        "country": TEXT,
        "currency": TEXT,
        "timezone": TEXT,
        "x": NUMBER,
        "y": NUMBER,
    },
}
# Rows the layers behind raw cannot use, each with the first reason that applies (`invalid_reason`,
# kept in raw beside the row; cleaned quarantines it and leaves it out): a time zone, MCC or currency the
# blocking terminals contract refuses (`$zones`: the IANA names it knows); a position (grid or map
# coordinate; NaN reads as missing) that is infinite or absurd, whose infinite home-terminal distance the
# models' input validation refuses; and a row without the id, zone or card it is about, which the cleaned
# layer could not place. A bad row costs only itself: the snapshot's genuine rows are kept.
POSITION = "{c} IS NOT NULL AND NOT (isnan({c}) OR abs({c}) <= 1e9)"
MISSING = "{c} IS NULL"
ROW_RULES: dict[str, list[tuple[str, str, str]]] = {  # feed -> [(reason, column, SQL: the row is bad)]
    "merchants": [
        ("missing_terminal_id", "terminal_id", MISSING),
        ("missing_timezone", "timezone", MISSING),
        ("invalid_timezone", "timezone", "NOT list_contains($zones, {c})"),
        ("invalid_mcc", "mcc", "{c} IS NOT NULL AND NOT regexp_full_match({c}, '[0-9]{{4}}')"),
        (
            "invalid_currency",
            "currency",
            "{c} IS NOT NULL AND NOT regexp_full_match(upper({c}), '[A-Z]{{3}}')",
        ),
        ("invalid_position", "x", POSITION),
        ("invalid_position", "y", POSITION),
    ],
    "cardholders": [
        ("missing_customer_id", "customer_id", MISSING),
        ("missing_pan", "pan", "nullif(trim({c}), '') IS NULL"),
        ("invalid_position", "home_x", POSITION),
        ("invalid_position", "home_y", POSITION),
    ],
}
ROW_REASONS = {
    feed: list(dict.fromkeys(reason for reason, _, _ in rules)) for feed, rules in ROW_RULES.items()
}


def row_reason_sql(feed: str) -> str:
    """SQL over a snapshot's converted columns: the first ROW_RULES reason of the row, NULL when usable.
    Needs the parameter `$zones` (`row_reason_params`) for merchants."""
    whens = " ".join(f"WHEN {rule.format(c=ident(c))} THEN '{reason}'" for reason, c, rule in ROW_RULES[feed])
    return f"CASE {whens} END"


def row_reason_params(feed: str) -> dict[str, object]:
    zones = any("$zones" in rule for _, _, rule in ROW_RULES[feed])
    return {"zones": sorted(zoneinfo.available_timezones())} if zones else {}


TARGET = {INTEGER: "BIGINT", NUMBER: "DOUBLE", TEXT: "VARCHAR", DATE: "DATE", PAN: "VARCHAR"}
_INTEGERS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER"}
_INTEGERS |= {"UBIGINT", "UHUGEINT"}
_FLOATS = {"FLOAT", "DOUBLE"}
_TIMESTAMPS = {"TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "TIMESTAMP WITH TIME ZONE"}
NULL_TYPE = '"NULL"'
PARQUET_MAGIC = b"PAR1"
ROW_BYTES_AT_LEAST = 8
# A number can only be a card number with 13 to 19 digits.
PAN_MAGNITUDE = 10**12
# The days pandas' datetime64[ns] holds, which the raw contracts coerce dates to.
DATE_RANGE = ("1677-09-22", "2262-04-11")
# The longest text value a snapshot may hold: a landed line's own cap. Values are searched for card
# numbers in Python, whose cost grows with their length.
MAX_VALUE_CHARS = MAX_LINE_CHARS


class WrongTypes(Exception):
    pass


class MissingColumns(Exception):
    pass


class DuplicateColumns(Exception):
    pass


def _top_level_names(conn: duckdb.DuckDBPyConnection, path: str) -> list[str]:
    """The column names of the snapshot's schema as written (the engine renames a repeated one, `Pan`
    beside `pan` becoming `Pan_1`), nested fields left out. Walks the flattened schema without
    recursion: a hostile file may nest deeply."""
    rows = conn.execute("SELECT name, num_children FROM parquet_schema($path)", {"path": path}).fetchall()
    if not rows:
        return []
    names, open_children = [], [rows[0][1] or 0]
    for name, children in rows[1:]:
        if len(open_children) == 1:
            names.append(name)
        open_children[-1] -= 1
        if children:
            open_children.append(children)
        while len(open_children) > 1 and open_children[-1] <= 0:
            open_children.pop()
    return names


def _family(duck_type: str) -> str:
    if duck_type in _INTEGERS:
        return INTEGER
    if duck_type in _FLOATS or duck_type.startswith("DECIMAL"):
        return NUMBER
    if duck_type == "VARCHAR":
        return TEXT
    if duck_type == "DATE" or duck_type in _TIMESTAMPS:
        return DATE
    return duck_type


def column_sql(name: str, kind: str, duck_type: str | None) -> str:
    """SQL converting snapshot column `name` (DuckDB type `duck_type`, None when absent) to its raw
    type, or raising WrongTypes when its type family does not convert without guessing."""
    col, target = ident(name), TARGET[kind]
    if duck_type is None or duck_type == NULL_TYPE:
        return f"CAST(NULL AS {target})"
    family = _family(duck_type)
    if kind == PAN:
        if family in (TEXT, INTEGER):
            return f"CAST({col} AS VARCHAR)"
        if family == NUMBER:
            # 4539148803436467.0 arrives as a double; its digits are the card number.
            return (
                f"CASE WHEN isfinite(CAST({col} AS DOUBLE)) AND {col} = trunc({col}) AND abs({col}) < 1e19 "
                f"THEN CAST(CAST({col} AS HUGEINT) AS VARCHAR) ELSE CAST({col} AS VARCHAR) END"
            )
        raise WrongTypes(name)
    accepted = {INTEGER: {INTEGER}, NUMBER: {INTEGER, NUMBER}, TEXT: {TEXT}, DATE: {DATE}}[kind]
    if family not in accepted:
        raise WrongTypes(name)
    if kind == DATE:
        day = f"CAST(timezone('UTC', {col}) AS DATE)" if duck_type == "TIMESTAMP WITH TIME ZONE" else None
        day = day or f"CAST({col} AS DATE)"
        # A day pandas cannot hold (the engine's `infinity`, a Parquet date32 at its extremes, year 9999)
        # fails the raw contract or the asset's table preview; raw rebuilds from every snapshot, so it
        # would stay broken: a conversion error, and the file is refused `wrong_types`.
        lo, hi = DATE_RANGE
        return (
            f"CAST(CASE WHEN {day} BETWEEN DATE '{lo}' AND DATE '{hi}' THEN CAST({day} AS VARCHAR) "
            f"WHEN {day} IS NOT NULL THEN 'out of range' END AS DATE)"
        )
    return f"CAST({col} AS {target})"


@dataclass(frozen=True)
class SnapshotSelect:
    sql: str  # SELECT row_number, <every column of the feed> FROM read_parquet($path)
    path: str
    types: dict[str, str]  # DuckDB type of each kept column present in the file

    @property
    def params(self) -> dict[str, str]:
        return {"path": self.path}


def snapshot_select(conn: duckdb.DuckDBPyConnection, path: str, feed: str) -> SnapshotSelect:
    """The SELECT that reads snapshot `path` as raw rows (row_number from 1, the feed's columns in raw
    types, the PAN as text), or WrongTypes / MissingColumns / DuplicateColumns."""
    # Two columns whose names differ only by case (or not at all) leave which one is, say, the PAN to
    # a guess: the engine binds names case-insensitively and reads the first.
    read = [n.lower() for n in _top_level_names(conn, path) if n.lower() in SNAPSHOT_COLUMNS[feed]]
    if len(read) != len(set(read)):
        raise DuplicateColumns(feed)
    described = conn.execute("DESCRIBE SELECT * FROM read_parquet($path)", {"path": path}).fetchall()
    types = {row[0]: row[1] for row in described if row[0] in SNAPSHOT_COLUMNS[feed]}
    if set(REQUIRED_COLUMNS[feed]) - set(types):
        raise MissingColumns(feed)
    cols = [f"{column_sql(c, k, types.get(c))} AS {ident(c)}" for c, k in SNAPSHOT_COLUMNS[feed].items()]
    sql = (
        f"SELECT file_row_number + 1 AS row_number, {', '.join(cols)} "
        "FROM read_parquet($path, file_row_number=true)"
    )
    return SnapshotSelect(sql, path, types)


@dataclass(frozen=True)
class SnapshotScan:
    reason: str | None
    rows: int


def _footer_reason(path: str, limits: ReaderLimits) -> str | None:
    """The reason to refuse a snapshot from its last 8 bytes (footer length, magic), before any engine
    parses the footer: a footer is read and decoded whole, so a huge one (a million column chunks)
    would cost gigabytes before the caps on rows and row groups, which it declares, are looked at."""
    with open(path, "rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size < len(PARQUET_MAGIC) * 2 + 4:
            return r.UNREADABLE_PARQUET
        fh.seek(size - 8)
        tail = fh.read(8)
    if tail[4:] != PARQUET_MAGIC:  # an encrypted footer (`PARE`) or not Parquet at all
        return r.UNREADABLE_PARQUET
    footer = int.from_bytes(tail[:4], "little")
    if footer > limits.max_footer_bytes:
        return r.TOO_LARGE
    return None


def _over_caps(conn: duckdb.DuckDBPyConnection, path: str, limits: ReaderLimits) -> str | None:
    footer = _footer_reason(path, limits)
    if footer:
        return footer
    meta = conn.execute("SELECT sum(num_rows) FROM parquet_file_metadata($path)", {"path": path}).fetchone()
    if meta[0] is not None and meta[0] > limits.max_rows:
        return r.TOO_MANY_ROWS
    groups = conn.execute(
        "SELECT row_group_id, sum(total_uncompressed_size) FROM parquet_metadata($path) GROUP BY ALL",
        {"path": path},
    ).fetchall()
    sizes = [int(size or 0) for _, size in groups]
    if sum(sizes) > limits.max_decompressed_bytes or any(s > limits.max_row_group_bytes for s in sizes):
        return r.TOO_LARGE
    # Sizes after encoding (dictionary, run lengths), before compression: real snapshots compress a few
    # times; a page of one repeated value compresses thousands of times and costs the read as much. Run
    # lengths make the declared size of a million equal rows a few bytes, so each row counts at least
    # the 8-byte row number raw stores with it: 25 KB of Parquet must not become 3 million raw rows.
    decoded = max(sum(sizes), int(meta[0] or 0) * ROW_BYTES_AT_LEAST)
    if decoded > limits.max_compression_ratio * os.stat(path).st_size + RATIO_SLACK_BYTES:
        return r.COMPRESSION_RATIO
    return None


def _pan_outside_pan_column(conn: duckdb.DuckDBPyConnection, select: SnapshotSelect, feed: str) -> bool:
    """Any Luhn-valid card number (as `mask_pans` finds it) in a kept column other than `pan`."""
    candidates: set[str] = set()
    for name, kind in SNAPSHOT_COLUMNS[feed].items():
        if kind in (PAN, DATE) or name not in select.types:
            continue
        col = ident(name)
        if kind == TEXT:
            where = may_hold_pan(col)
            value = col
        else:
            # The integral part, as the leak check reads numbers: `4222222222222.5` holds a card.
            where = f"isfinite({col}) AND abs({col}) >= {PAN_MAGNITUDE}"
            value = f"CAST(CAST(trunc({col}) AS HUGEINT) AS VARCHAR)"
        sql = f"SELECT DISTINCT {value} FROM ({select.sql}) WHERE {where}"
        candidates.update(row[0] for row in conn.execute(sql, select.params).fetchall())
    return any(mask_pans(v) != v for v in candidates)


def scan_snapshot(path: str, feed: str, limits: ReaderLimits) -> SnapshotScan:
    """The register's verdict on one snapshot: a reason, or the row count the raw table will hold.
    Runs the asset's own SELECT over every value in a private in-memory DuckDB."""
    # No temp directory: the snapshot's PANs never spill to disk; over the memory limit it is unreadable.
    with duckdb.connect(config={"memory_limit": "1GB", "threads": 1, "temp_directory": ""}) as conn:
        try:
            over = _over_caps(conn, path, limits)
            if over:
                return SnapshotScan(over, 0)
            select = snapshot_select(conn, path, feed)
            checks = ", ".join(f"max(length(CAST({ident(c)} AS VARCHAR)))" for c in SNAPSHOT_COLUMNS[feed])
            # Every value converted, as the asset will: a value that does not fit fails here.
            rows, *lengths = conn.execute(
                f"SELECT count(*), {checks} FROM ({select.sql})", select.params
            ).fetchone()
            if max((n or 0 for n in lengths), default=0) > MAX_VALUE_CHARS:
                return SnapshotScan(r.VALUE_TOO_LONG, 0)
            if _pan_outside_pan_column(conn, select, feed):
                return SnapshotScan(r.PAN_OUTSIDE_PAN_COLUMN, 0)
        except MissingColumns:
            return SnapshotScan(r.MISSING_COLUMNS, 0)
        except DuplicateColumns:
            return SnapshotScan(r.DUPLICATE_COLUMNS, 0)
        except (WrongTypes, duckdb.ConversionException, duckdb.OutOfRangeException):
            return SnapshotScan(r.WRONG_TYPES, 0)
        except duckdb.Error:
            return SnapshotScan(r.UNREADABLE_PARQUET, 0)
    return SnapshotScan(None, int(rows))
