"""CSV and JSON Lines landing files into raw rows, in DuckDB: one landed line, one row.

DuckDB's CSV reader streams the files (gzip included) as lines, with quoting switched off and a NUL
delimiter the register has ruled out (`binary_content`), so a line is never merged with the next or
split: a reader that honours quotes turns an unclosed quote into one row for many lines, and the
count would no longer reconcile. `WITH ORDINALITY` keeps each line's place in its file; blank lines
(only spaces, tabs, CR, VT, FF) are not rows, and row numbers count data lines from 1 (a CSV header is
not a row). Fields are then split in SQL: CSV by RFC 4180 (`string_split` when a line has no quote, a
regular expression when it has), JSON Lines by DuckDB's JSON functions. A line that does not split
keeps `malformed_reason` and, for tokens.py to mask, its text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pandas as pd

from fraud_assets.defs.raw import reasons as r
from fraud_assets.defs.raw.parsers import JSON_KEYS, MAX_LINE_CHARS, TEXT_COLUMNS
from fraud_assets.defs.raw.text_scan import CSV_FIELD, csv_fields
from fraud_assets.defs.raw.tokens import ident

LINES_TABLE = "_raw_lines"
ROWS_TABLE = "_raw_rows"
FILES_TABLE = "_landed_files"
NOT_BLANK = r"regexp_matches(line, '[^ \t\r\v\f]')"
_CSV_SPLIT = (
    f"CASE WHEN strpos(line, '\"') = 0 THEN string_split(line, ',') "
    f"WHEN regexp_full_match(line, '(?:{CSV_FIELD})(?:,(?:{CSV_FIELD}))*') THEN list_transform("
    f"regexp_extract_all(',' || line, ',({CSV_FIELD})', 1), "
    "lambda x: CASE WHEN starts_with(x, '\"') THEN replace(x[2:-2], '\"\"', '\"') ELSE x END) END"
)


class LandingChanged(Exception):
    """A registered file no longer reads as the register saw it (a bug or a file replaced in place)."""


@dataclass(frozen=True)
class LineSource:
    """Files to stage: engine paths (pinned `/dev/fd/N`), one compression for all, file indexes."""

    paths: list[str]
    indexes: list[int]
    gzip: bool


def line_reader_sql(max_line_bytes: int) -> str:
    """The lines of `$paths` (one compression, `$compression`) with file index and position."""
    return (
        "SELECT file_index, ordinality AS ord, line FROM read_csv($paths, columns={'line': 'VARCHAR'}, "
        "header=false, delim=$delim, quote='', escape='', comment='', auto_detect=false, "
        "strict_mode=false, null_padding=false, compression=$compression, encoding='utf-8', "
        f"max_line_size={max_line_bytes + 16}) WITH ORDINALITY"
    )


def stage_lines(cur: duckdb.DuckDBPyConnection, sources: Sequence[LineSource], max_line_bytes: int) -> None:
    """Temp table `_raw_lines(file_index, n, line)`: the non-blank lines of every file, numbered from
    1 within their file (a CSV header is n = 1)."""
    cur.execute(f"CREATE OR REPLACE TEMP TABLE {LINES_TABLE} (file_index INTEGER, n BIGINT, line VARCHAR)")
    for src in sources:
        if not src.paths:
            continue
        cur.execute(
            f"INSERT INTO {LINES_TABLE} SELECT CAST($indexes AS INTEGER[])[CAST(file_index AS BIGINT) + 1], "
            f"row_number() OVER (PARTITION BY file_index ORDER BY ord), line "
            f"FROM ({line_reader_sql(max_line_bytes)}) WHERE line IS NOT NULL AND {NOT_BLANK}",
            {
                "paths": src.paths,
                "indexes": src.indexes,
                "delim": "\x00",
                "compression": "gzip" if src.gzip else "none",
            },
        )


def csv_positions(header_line: str, columns: Sequence[str]) -> tuple[int, list[int | None]]:
    """(width, 1-based position of each of `columns` or None) from a CSV header line."""
    fields = csv_fields(header_line)
    if fields is None:
        raise LandingChanged("the CSV header no longer parses")
    names = [f.strip() for f in fields]
    return len(names), [names.index(c) + 1 if c in names else None for c in columns]


def _csv_rows_sql(feed: str, file_indexes: Sequence[int], widths: dict[int, tuple[int, list]]) -> str:
    columns = TEXT_COLUMNS[feed]
    width = "CASE file_index " + " ".join(f"WHEN {i} THEN {widths[i][0]}" for i in file_indexes) + " END"

    def pos(k: int) -> str:
        whens = " ".join(f"WHEN {i} THEN {widths[i][1][k]}" for i in file_indexes if widths[i][1][k] is not None)
        return f"CASE file_index {whens} END" if whens else "NULL"

    split = f"SELECT file_index, n - 1 AS row_number, line, CASE WHEN length(line) <= {MAX_LINE_CHARS} THEN {_CSV_SPLIT} END AS fields, {width} AS width FROM {LINES_TABLE} WHERE n > 1 AND file_index IN ({', '.join(map(str, file_indexes))})"
    reason = (
        f"CASE WHEN length(line) > {MAX_LINE_CHARS} THEN '{r.LINE_TOO_LONG}' "
        f"WHEN fields IS NULL THEN '{r.UNPARSEABLE_CSV}' "
        f"WHEN len(fields) <> width THEN '{r.WRONG_FIELD_COUNT}' END"
    )
    checked = f"SELECT *, {reason} AS malformed_reason FROM ({split})"
    values = [f"CASE WHEN malformed_reason IS NULL THEN fields[{pos(k)}] END AS {ident(c)}" for k, c in enumerate(columns)]
    return (
        f"SELECT file_index, row_number, {', '.join(values)}, malformed_reason, "
        f"CASE WHEN malformed_reason IS NOT NULL THEN line END AS raw_line FROM ({checked})"
    )


def _jsonl_rows_sql(feed: str, file_indexes: Sequence[int]) -> str:
    keys = JSON_KEYS[feed]
    paths = "[" + ", ".join("'$.\"" + k.replace("'", "''") + "\"'" for k in keys) + "]"
    reason = (
        f"CASE WHEN length(line) > {MAX_LINE_CHARS} THEN '{r.LINE_TOO_LONG}' "
        f"WHEN NOT json_valid(line) THEN '{r.INVALID_JSON}' "
        f"WHEN json_type(line) <> 'OBJECT' THEN '{r.NOT_A_JSON_OBJECT}' END"
    )
    checked = f"SELECT file_index, n AS row_number, line, {reason} AS malformed_reason FROM {LINES_TABLE} WHERE file_index IN ({', '.join(map(str, file_indexes))})"
    extracted = f"SELECT *, CASE WHEN malformed_reason IS NULL THEN json_extract_string(line, {paths}) END AS vals FROM ({checked})"
    values = [f"vals[{k + 1}] AS {ident(c)}" for k, c in enumerate(keys.values())]
    return (
        f"SELECT file_index, row_number, {', '.join(values)}, malformed_reason, "
        f"CASE WHEN malformed_reason IS NOT NULL THEN line END AS raw_line FROM ({extracted})"
    )


def stage_rows(cur: duckdb.DuckDBPyConnection, feeds: dict[int, str], columns: Sequence[str]) -> None:
    """Temp table `_raw_rows(file_index, row_number, <columns>, malformed_reason, raw_line)` from the
    staged lines; `feeds` maps each file index to its feed, `columns` is the table's column set
    (every feed's columns are a subset: a feed's missing ones are NULL)."""
    by_feed: dict[str, list[int]] = {}
    for i, feed in feeds.items():
        by_feed.setdefault(feed, []).append(i)
    headers = {}
    csv_indexes = [i for feed, idx in by_feed.items() if feed not in JSON_KEYS for i in idx]
    if csv_indexes:
        rows = cur.execute(
            f"SELECT file_index, line FROM {LINES_TABLE} WHERE n = 1 AND list_contains($idx, file_index)",
            {"idx": csv_indexes},
        ).fetchall()
        headers = {i: csv_positions(line, TEXT_COLUMNS[feeds[i]]) for i, line in rows}
    parts = []
    for feed, idx in sorted(by_feed.items()):
        if feed in JSON_KEYS:
            sql = _jsonl_rows_sql(feed, idx)
        else:
            missing = [i for i in idx if i not in headers]
            if missing:
                raise LandingChanged("a registered CSV file has no header line")
            sql = _csv_rows_sql(feed, idx, headers)
        have = set(TEXT_COLUMNS[feed])
        cols = [ident(c) if c in have else f"CAST(NULL AS VARCHAR) AS {ident(c)}" for c in columns]
        parts.append(f"SELECT file_index, row_number, {', '.join(cols)}, malformed_reason, raw_line FROM ({sql})")
    body = " UNION ALL ".join(parts) if parts else (
        "SELECT CAST(NULL AS INTEGER) AS file_index, CAST(NULL AS BIGINT) AS row_number, "
        + ", ".join(f"CAST(NULL AS VARCHAR) AS {ident(c)}" for c in columns)
        + ", CAST(NULL AS VARCHAR) AS malformed_reason, CAST(NULL AS VARCHAR) AS raw_line LIMIT 0"
    )
    cur.execute(f"CREATE OR REPLACE TEMP TABLE {ROWS_TABLE} AS {body}")


def split_in_memory(conn: duckdb.DuckDBPyConnection, lines: Sequence[str], feed: str) -> pd.DataFrame:
    """The rows of one file given as lines (CSV: header first), by the same SQL as files: row_number,
    the feed's columns (`pan` clear), malformed_reason, raw_line (clear)."""
    frame = pd.DataFrame({"file_index": 0, "ord": range(1, len(lines) + 1), "line": list(lines)})
    conn.register("_lines_in", frame)
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE {LINES_TABLE} AS SELECT CAST(file_index AS INTEGER) AS file_index, "
        f"row_number() OVER (ORDER BY ord) AS n, CAST(line AS VARCHAR) AS line FROM _lines_in "
        f"WHERE line IS NOT NULL AND {NOT_BLANK}"
    )
    conn.unregister("_lines_in")
    columns = TEXT_COLUMNS[feed]
    stage_rows(conn, {0: feed}, columns)
    return conn.execute(
        f"SELECT row_number, {', '.join(map(ident, columns))}, malformed_reason, raw_line FROM {ROWS_TABLE} "
        "ORDER BY row_number"
    ).df()
