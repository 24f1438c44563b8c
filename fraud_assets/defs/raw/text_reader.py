"""CSV and JSON Lines landing files into raw rows, in DuckDB: one landed line, one row.

DuckDB's CSV reader streams the files (gzip included) as lines, with quoting switched off and a NUL
delimiter the register has ruled out (`binary_content`), so a line is never merged with the next or
split: a reader that honours quotes turns an unclosed quote into one row for many lines, and the
count would no longer reconcile. `WITH ORDINALITY` keeps each line's place in its file; blank lines
(only spaces, tabs, CR, VT, FF) are not rows, and row numbers count data lines from 1 (a CSV header is
not a row). Fields are then split in SQL, in the same statement: CSV by RFC 4180 (`string_split` when
a line has no quote, a regular expression when it has), JSON Lines by DuckDB's JSON functions. A line
that does not split keeps `malformed_reason` and, for tokens.py to mask, its text (`raw_line`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pandas as pd

from fraud_assets.defs.raw import json_written
from fraud_assets.defs.raw import reasons as r
from fraud_assets.defs.raw.parsers import JSON_KEYS, MAX_LINE_CHARS, TEXT_COLUMNS
from fraud_assets.defs.raw.text_scan import CSV_FIELD, csv_fields
from fraud_assets.defs.raw.tokens import frame_to_temp, ident

ROWS_TABLE = "_raw_rows"
FILES_TABLE = "_landed_files"
LAYOUT_TABLE = "_file_layout"
ESCAPED_LINE = "escaped_line"  # a valid JSON line a `\\u` escape may hide a card in, for json_written.py
NOT_BLANK = r"regexp_matches(line, '[^ \t\r\v\f]')"
NO_LINES = "SELECT NULL::INTEGER AS file_index, NULL::BIGINT AS ord, NULL::VARCHAR AS line LIMIT 0"


def csv_split_sql(line: str) -> str:
    """SQL: the RFC 4180 fields of CSV `line` (quotes removed, doubled quotes undone), NULL when its
    quoting is broken. `string_split` for the usual line without a quote."""
    return (
        f"CASE WHEN NOT contains({line}, '\"') THEN string_split({line}, ',') "
        f"WHEN regexp_full_match({line}, '(?:{CSV_FIELD})(?:,(?:{CSV_FIELD}))*') THEN list_transform("
        f"regexp_extract_all(',' || {line}, ',({CSV_FIELD})', 1), "
        "lambda x: CASE WHEN starts_with(x, '\"') THEN replace(x[2:-2], '\"\"', '\"') ELSE x END) END"
    )


class LandingChanged(Exception):
    """A registered file no longer reads as the register saw it (a bug or a file replaced in place)."""


@dataclass(frozen=True)
class LineSource:
    """Files to read with one compression: engine paths (pinned `/dev/fd/N`) and their file indexes."""

    paths: list[str]
    indexes: list[int]
    gzip: bool


@dataclass(frozen=True)
class Layout:
    """How one file's lines become the table's columns: JSON, or CSV with a header whose width and
    1-based column positions (None: column absent) come from its header line."""

    json: bool
    width: int = 0
    positions: tuple[int | None, ...] = ()


def layout_for(feed: str, header: str | None, columns: Sequence[str]) -> Layout:
    if feed in JSON_KEYS:
        return Layout(json=True)
    fields = csv_fields(header) if header is not None else None
    if fields is None:
        raise LandingChanged("a registered CSV file no longer has a readable header")
    names = [f.strip() for f in fields]
    return Layout(False, len(names), tuple(names.index(c) + 1 if c in names else None for c in columns))


def _lines_sql(src: LineSource, max_line_bytes: int) -> str:
    """The lines of one source, with their file index and position in the file."""
    paths = "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in src.paths) + "]"
    indexes = "[" + ", ".join(map(str, src.indexes)) + "]"
    return (
        f"SELECT {indexes}[CAST(file_index AS BIGINT) + 1] AS file_index, ordinality AS ord, line "
        f"FROM read_csv({paths}, columns={{'line': 'VARCHAR'}}, header=false, delim=chr(0), quote='', "
        "escape='', comment='', auto_detect=false, strict_mode=false, null_padding=false, "
        f"compression='{'gzip' if src.gzip else 'none'}', encoding='utf-8', "
        f"max_line_size={max_line_bytes + 16}, buffer_size={2 * (max_line_bytes + 16)}) WITH ORDINALITY"
    )


def _json_paths(columns: Sequence[str]) -> tuple[str, list[int | None]]:
    """SQL list of the JSON paths read, and for each column its 1-based index in it (or None)."""
    keys = {canonical: key for feed_keys in JSON_KEYS.values() for key, canonical in feed_keys.items()}
    read = [keys[c] for c in columns if c in keys]
    paths = "[" + ", ".join("'$.\"" + k.replace("'", "''").replace('"', '\\"') + "\"'" for k in read) + "]"
    return paths, [read.index(keys[c]) + 1 if c in keys else None for c in columns]


def rows_sql(lines: str, columns: Sequence[str]) -> str:
    """`_raw_rows` from numbered non-blank `lines` (file_index, n, line) joined to `_file_layout`:
    file_index, row_number, the `columns` (text, NULL where the file lacks them), malformed_reason,
    raw_line (the clear text of malformed lines only), escaped_line (a valid JSON line in which a `\\u`
    escape may hide a card: json_written.py)."""
    paths, json_pos = _json_paths(columns)
    # A byte-order mark opens the file (DuckDB drops that one) or, in concatenated gzip members written
    # by a BOM-writing encoder, a member's first line: it is never data.
    lines = (
        "SELECT file_index, n, CASE WHEN starts_with(line, chr(65279)) THEN substr(line, 2) ELSE line END "
        f"AS line FROM ({lines})"
    )
    split = (
        f"SELECT l.file_index, l.n - y.header_lines AS row_number, l.line, y.json, y.width, y.positions, "
        f"CASE WHEN NOT y.json AND length(l.line) <= {MAX_LINE_CHARS} THEN {csv_split_sql('l.line')} "
        f"END AS fields FROM ({lines}) l JOIN {LAYOUT_TABLE} y ON y.file_index = l.file_index "
        "WHERE l.n > y.header_lines"
    )
    reason = (
        f"CASE WHEN length(line) > {MAX_LINE_CHARS} THEN '{r.LINE_TOO_LONG}' "
        f"WHEN json AND NOT json_valid(line) THEN '{r.INVALID_JSON}' "
        f"WHEN json AND json_type(line) <> 'OBJECT' THEN '{r.NOT_A_JSON_OBJECT}' "
        f"WHEN NOT json AND fields IS NULL THEN '{r.UNPARSEABLE_CSV}' "
        f"WHEN NOT json AND len(fields) <> width THEN '{r.WRONG_FIELD_COUNT}' END"
    )
    checked = f"SELECT *, {reason} AS malformed_reason FROM ({split})"
    extracted = (
        f"SELECT *, CASE WHEN json AND malformed_reason IS NULL THEN json_extract_string(line, {paths}) "
        f"END AS vals FROM ({checked})"
    )
    values = []
    for k, c in enumerate(columns):
        from_json = f"vals[{json_pos[k]}]" if json_pos[k] else "NULL"
        values.append(
            f"CASE WHEN malformed_reason IS NOT NULL THEN NULL WHEN json THEN {from_json} "
            f"ELSE fields[positions[{k + 1}]] END AS {ident(c)}"
        )
    return (
        f"SELECT file_index, row_number, {', '.join(values)}, malformed_reason, "
        f"CASE WHEN malformed_reason IS NOT NULL THEN line END AS raw_line, "
        f"CASE WHEN json AND malformed_reason IS NULL AND contains(line, '\\u') "
        f"AND regexp_matches(line, '{json_written.WRITTEN_PREFILTER}') THEN line END "
        f"AS {ESCAPED_LINE} FROM ({extracted})"
    )


def read_as_written(cur: duckdb.DuckDBPyConnection, columns: Sequence[str]) -> None:
    """The staged values of JSON lines holding `\\u` read as written too (json_written.py)."""
    keys = {key: c for feed_keys in JSON_KEYS.values() for key, c in feed_keys.items() if c in columns}
    json_written.stage_written(cur, ROWS_TABLE, keys, ESCAPED_LINE)


def _numbered(lines: str) -> str:
    return (
        f"SELECT file_index, row_number() OVER (PARTITION BY file_index ORDER BY ord) AS n, line "
        f"FROM ({lines}) WHERE line IS NOT NULL AND {NOT_BLANK}"
    )


def stage_layouts(cur: duckdb.DuckDBPyConnection, layouts: dict[int, Layout], columns: Sequence[str]) -> None:
    frame = pd.DataFrame(
        {
            "file_index": list(layouts),
            "json": [y.json for y in layouts.values()],
            "header_lines": [0 if y.json else 1 for y in layouts.values()],
            "width": [y.width for y in layouts.values()],
            "positions": [
                list(y.positions) if not y.json else [None] * len(columns) for y in layouts.values()
            ],
        }
    )
    types = {"file_index": "INTEGER", "json": "BOOLEAN", "header_lines": "INTEGER", "width": "INTEGER"}
    frame_to_temp(cur, LAYOUT_TABLE, frame, {**types, "positions": "INTEGER[]"})


def stage_rows(
    cur: duckdb.DuckDBPyConnection,
    sources: Sequence[LineSource],
    layouts: dict[int, Layout],
    columns: Sequence[str],
    max_line_bytes: int,
) -> None:
    """Temp table `_raw_rows` from the files of `sources`, in one statement (read, number, split)."""
    stage_layouts(cur, layouts, columns)
    reads = [_lines_sql(src, max_line_bytes) for src in sources if src.paths]
    lines = " UNION ALL ".join(reads) if reads else NO_LINES
    cur.execute(f"CREATE OR REPLACE TEMP TABLE {ROWS_TABLE} AS {rows_sql(_numbered(lines), columns)}")
    read_as_written(cur, columns)


def split_in_memory(conn: duckdb.DuckDBPyConnection, lines: Sequence[str], feed: str) -> pd.DataFrame:
    """The rows of one file given as its lines (CSV: header first), by the same SQL as files:
    row_number, the feed's columns (`pan` clear), malformed_reason, raw_line (clear)."""
    columns = TEXT_COLUMNS[feed]
    header = next((ln for ln in lines if ln is not None and ln.strip(" \t\r\v\f")), None)
    stage_layouts(conn, {0: layout_for(feed, header, columns)}, columns)
    frame = pd.DataFrame(
        {"file_index": 0, "ord": range(1, len(lines) + 1), "line": pd.Series(list(lines), dtype=object)}
    )
    conn.register("_lines_in", frame)
    try:
        lines_sql = "SELECT CAST(file_index AS INTEGER) AS file_index, ord, CAST(line AS VARCHAR) AS line"
        numbered = _numbered(lines_sql + " FROM _lines_in")
        conn.execute(f"CREATE OR REPLACE TEMP TABLE {ROWS_TABLE} AS {rows_sql(numbered, columns)}")
        read_as_written(conn, columns)
    finally:
        conn.unregister("_lines_in")
    return conn.execute(
        f"SELECT row_number, {', '.join(map(ident, columns))}, malformed_reason, raw_line FROM {ROWS_TABLE} "
        "ORDER BY row_number"
    ).df()
