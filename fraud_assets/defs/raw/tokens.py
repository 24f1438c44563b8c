"""Card numbers at the door, in the engine: the PAN column tokenised, stray PANs masked.

The clear PAN exists only in the staged rows of one ingestion (a DuckDB temp table of the writing
connection, never committed) and in memory. Each distinct PAN value is tokenised once in Python
(`Tokenizer`: a few thousand cards a day, whatever the row count) and joined back in SQL. A PAN typed
into another producer column, or inside a malformed line, is found by an RE2 pre-filter in SQL; only
the few distinct candidate values go through `mask_pans` in Python.
"""

from __future__ import annotations

import bisect
import itertools
import re
import unicodedata
from collections.abc import Sequence

import duckdb
import pandas as pd

from fraud_assets.lib.pan import (
    ASCII_CONTROLS,
    BACKSLASH_ESCAPE,
    HTML_ESCAPE,
    PERCENT_ESCAPE,
    Tokenizer,
    contains_pan,
    mask_pans,
    star_pan_digits,
    star_written_pans,
    unescape_digits,
)

TOKEN_COLUMNS = ("card_token", "pan_bin", "pan_last4", "pan_valid", "pan_masked")
# Necessary condition for `mask_pans` to change a value: 13 ASCII digits, each within 3 characters of
# the next that are neither letters, digits nor `:` (so timestamps are not candidates), or any
# non-ASCII character (digits of other scripts, unusual spaces), a backslash `\u` `\x`, URL `%` or HTML
# `&#` escape or the HTML name of a separator (it may be a digit or a separator: `unescape_digits`) or a
# control character (any number may sit between two digits), in a value of 13 characters or more.
PAN_PREFILTER = (
    rf"[0-9](?:[^0-9A-Za-z:]{{0,3}}[0-9]){{12}}"
    rf"|{BACKSLASH_ESCAPE}|{PERCENT_ESCAPE}|{HTML_ESCAPE}|{ASCII_CONTROLS}"
)
TOKENS_TABLE = "_pan_tokens"
MASKED_VALUES_TABLE = "_masked_values"
MASKED_LINES_TABLE = "_masked_lines"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def may_hold_pan(expr: str) -> str:
    """SQL predicate: text `expr` could hold a card number that `mask_pans` would mask."""
    return (
        f"(length({expr}) >= 13 AND (strlen({expr}) <> length({expr}) "
        f"OR regexp_matches({expr}, '{PAN_PREFILTER}')))"
    )


# A card number the producer masked itself, as PCI DSS lets it be shown: the first 6 and last 4 digits,
# 3 to 9 mask characters between them (13 to 19 in all), spaces or dashes between groups allowed.
_PRODUCER_MASKED = re.compile(r"(\d{6})([*xX#•]{3,9})(\d{4})")


def masked_invalid_pan(value: str) -> str | None:
    """A PAN that is not a valid one, as investigators see it: BIN and last 4 at most, never the middle
    digits, digits of any script shown as ASCII; a PAN the producer masked keeps the BIN and last 4 it
    shows (cleaned/labels matches a chargeback's card by them). None when nothing was sent. Escaped
    digits read as the digits they stand for, as `normalise_pan` reads them; a card only the text as
    written holds (its first digits an escape's hex digits) shows that card's BIN and last 4."""
    decoded = unescape_digits(value)
    if decoded != value and not contains_pan(decoded) and (written := _written_card(value)):
        return written
    text = decoded.strip()
    if not text:
        return None
    ascii_digits = "".join(str(d) if (d := unicodedata.decimal(ch, None)) is not None else ch for ch in text)
    if shown := _PRODUCER_MASKED.fullmatch(re.sub(r"[ -]", "", ascii_digits)):
        return f"{shown[1]}{'*' * len(shown[2])}{shown[3]}"
    digits = "".join(ch for ch in ascii_digits if ch.isascii() and ch.isdigit())
    if len(digits) >= 13:
        return f"{digits[:6]}{'*' * (len(digits) - 10)}{digits[-4:]}"
    return "*" * min(len(text), 32)


def _written_card(value: str) -> str | None:
    """BIN, stars and last 4 of the first card of `value` read as written (escapes as text), when that
    reading holds one: `\\u00378282000000016` is the card `378282000000016` so written,
    and decoded `78282000000016`, whose first 6 digits are not its BIN. Stars when its cards overlap."""
    starred = star_written_pans(value)
    if starred == value:
        return None
    digits = "".join(str(d) if (d := unicodedata.decimal(ch, None)) is not None else ch for ch in starred)
    shown = re.search(r"(\d{6})(\*+)(\d{4})", re.sub(r"[^0-9*]", "", digits))
    return f"{shown[1]}{shown[2]}{shown[3]}" if shown else "*" * min(len(value), 32)


def token_frame(pans: Sequence[str], tokenizer: Tokenizer) -> pd.DataFrame:
    """One row per distinct clear PAN value: `pan` and the token columns that replace it."""
    values = pd.Series(list(pans), dtype=object)
    tok = tokenizer.tokenise_series(values)
    valid = tok["pan_valid"].astype(bool).tolist()
    return pd.DataFrame(
        {
            "pan": values,
            "card_token": tok["card_token"].astype(object),
            "pan_bin": tok["pan_bin"].astype(object),
            "pan_last4": tok["pan_last4"].astype(object),
            "pan_valid": valid,
            "pan_masked": [
                None if ok else masked_invalid_pan(v) for v, ok in zip(values, valid, strict=True)
            ],
        }
    )


def frame_to_temp(cur: duckdb.DuckDBPyConnection, name: str, df: pd.DataFrame, types: dict[str, str]) -> None:
    """`df` as temp table `name` with the given column types (an empty frame gives an empty table)."""
    view = f"{name}_frame"
    cur.register(view, df)
    try:
        cols = ", ".join(f"CAST({ident(c)} AS {t}) AS {ident(c)}" for c, t in types.items())
        cur.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {cols} FROM {view}")
    finally:
        cur.unregister(view)


def stage_tokens(cur: duckdb.DuckDBPyConnection, rows: str, tokenizer: Tokenizer, pan: str = "pan") -> None:
    """Temp table `_pan_tokens`: every distinct non-null PAN value of `rows` with its token columns."""
    distinct = [
        r[0]
        for r in cur.execute(
            f"SELECT DISTINCT {ident(pan)} FROM {rows} WHERE {ident(pan)} IS NOT NULL"
        ).fetchall()
    ]
    types = dict.fromkeys(("pan", "card_token", "pan_bin", "pan_last4", "pan_masked"), "VARCHAR")
    frame_to_temp(cur, TOKENS_TABLE, token_frame(distinct, tokenizer), {**types, "pan_valid": "BOOLEAN"})


def stage_masked_values(cur: duckdb.DuckDBPyConnection, rows: str, columns: Sequence[str]) -> bool:
    """Temp table `_masked_values` (original -> masked) for the distinct values of text `columns` in
    which `mask_pans` finds a card number. False when there is none (nothing to join)."""
    candidates: set[str] = set()
    for c in columns:
        sql = f"SELECT DISTINCT {ident(c)} FROM {rows} WHERE {may_hold_pan(ident(c))}"
        candidates.update(r[0] for r in cur.execute(sql).fetchall())
    changed = {v: m for v in sorted(candidates) if (m := mask_pans(v)) != v}
    frame = pd.DataFrame({"original": list(changed), "masked": list(changed.values())}, dtype=object)
    frame_to_temp(cur, MASKED_VALUES_TABLE, frame, {"original": "VARCHAR", "masked": "VARCHAR"})
    return bool(changed)


def stage_masked_lines(cur: duckdb.DuckDBPyConnection, rows: str, across_lines: bool = False) -> None:
    """Temp table `_masked_lines` (raw_line -> raw_line_masked) for the malformed lines of `rows` that
    may hold a card number; the others are truncated in SQL (`kept_line_sql`). With `across_lines`
    (`rows` has file_index and row_number), a card cut by a line break is masked too (`_cut_cards`)."""
    from fraud_assets.defs.raw.parsers import mask_line

    sql = f"SELECT DISTINCT raw_line FROM {rows} WHERE raw_line IS NOT NULL AND {may_hold_pan('raw_line')}"
    cut = _cut_cards(cur, rows) if across_lines else {}
    lines = sorted({r[0] for r in cur.execute(sql).fetchall()} | set(cut))
    masked = [mask_line(cut.get(v, v)) for v in lines]
    frame = pd.DataFrame({"raw_line": lines, "raw_line_masked": masked}, dtype=object)
    frame_to_temp(cur, MASKED_LINES_TABLE, frame, {"raw_line": "VARCHAR", "raw_line_masked": "VARCHAR"})


# A malformed line ending (starting) with a digit, then anything but letters, digits, commas and colons,
# which end a card number: the next (previous) line may hold the rest of a card.
_DIGIT_END = r"\p{Nd}[^\p{L}\p{Nd},:]*$"
_DIGIT_START = r"^[^\p{L}\p{Nd},:]*\p{Nd}"


def _cut_cards(cur: duckdb.DuckDBPyConnection, rows: str) -> dict[str, str]:
    """Malformed lines holding a piece of a card cut by a line break (a quoted CSV field, or a broken
    JSON string, spanning lines: each piece is a line of its own and neither alone is a card) -> the
    line with those digits starred. Consecutive malformed lines whose facing ends are digits are read
    as one text, joined without a gap; only the PAN_SPAN_CHARS at each end of a line can belong to a
    card that crosses it, so a long line costs no more than a short one."""
    from fraud_assets.defs.raw.parsers import PAN_SPAN_CHARS

    pairs = cur.execute(
        f"""
        WITH m AS (
            SELECT file_index, row_number, raw_line, regexp_matches(raw_line, '{_DIGIT_END}') AS digit_end,
                   regexp_matches(raw_line, '{_DIGIT_START}') AS digit_start
            FROM {rows} WHERE raw_line IS NOT NULL
        ), n AS (
            SELECT *, coalesce(lag(row_number) OVER w = row_number - 1 AND lag(digit_end) OVER w
                               AND digit_start, false) AS joins_prev,
                      coalesce(lead(row_number) OVER w = row_number + 1 AND lead(digit_start) OVER w
                               AND digit_end, false) AS joins_next
            FROM m WINDOW w AS (PARTITION BY file_index ORDER BY row_number)
        )
        SELECT raw_line, joins_prev FROM n WHERE joins_prev OR joins_next ORDER BY file_index, row_number
        """
    ).fetchall()
    chains: list[list[str]] = []
    for line, joins_prev in pairs:
        if joins_prev:
            chains[-1].append(line)
        else:
            chains.append([line])
    starred: dict[str, str] = {}
    for chain in chains:
        stars = _stars_across(chain, PAN_SPAN_CHARS)
        for line, at in zip(chain, stars, strict=True):
            if at:
                new = "".join("*" if i in at else ch for i, ch in enumerate(line))
                starred[line] = _star_union(starred.get(line, line), new)
    return starred


def _stars_across(chain: list[str], span: int) -> list[set[int]]:
    """For each line of `chain` (lines read as one text), the positions of the digits a card crossing a
    line boundary puts under stars. Each boundary is judged on the `span` characters either side of it
    (a card crossing it lies within them; a long line's middle is left out behind a line break, which
    ends any card), and equal windows once: a chain of a million one-digit lines costs a million
    string slices, not a million-digit group."""
    pieces, origin = [], []  # the text read, and for each of its pieces (line, position in the line)
    for k, line in enumerate(chain):
        if len(line) <= 2 * span:
            pieces.append(line)
            origin.append((k, 0))
        else:
            pieces += [line[:span], "\n", line[-span:]]
            origin += [(k, 0), (-1, 0), (k, len(line) - span)]
    text = "".join(pieces)
    starts = list(itertools.accumulate((len(p) for p in pieces), initial=0))
    boundaries = [starts[i] for i, (k, at) in enumerate(origin) if k > 0 and at == 0]
    stars: list[set[int]] = [set() for _ in chain]
    starred_at: dict[str, list[int]] = {}  # window -> offsets of the digits it puts under stars
    for b in boundaries:
        lo = max(0, b - span)
        window = text[lo : b + span]
        if window not in starred_at:
            after = star_pan_digits(window)
            starred_at[window] = [i for i, (x, y) in enumerate(zip(window, after, strict=True)) if x != y]
        for offset in starred_at[window]:
            piece = bisect.bisect_right(starts, lo + offset) - 1
            k, at = origin[piece]
            stars[k].add(at + lo + offset - starts[piece])
    return stars


def _star_union(a: str, b: str) -> str:
    """Two starred copies of one line, each star kept."""
    return "".join("*" if "*" in (x, y) and x != y else x for x, y in zip(a, b, strict=True))


def kept_line_sql(line: str, masked: str) -> str:
    """SQL for the kept copy of a malformed line: its masked copy when it was a candidate, else the
    line truncated as `parsers.mask_line` truncates."""
    from fraud_assets.defs.raw.parsers import RAW_LINE_KEEP, TRUNCATED

    return (
        f"CASE WHEN {line} IS NULL THEN NULL WHEN {masked} IS NOT NULL THEN {masked} "
        f"WHEN length({line}) <= {RAW_LINE_KEEP} THEN {line} "
        f"ELSE left({line}, {RAW_LINE_KEEP}) || '{TRUNCATED}' END"
    )


def door_select(
    rows: str,
    columns: Sequence[str],
    *,
    pan: str | None,
    masked: bool,
    extra: Sequence[str] = (),
    joins: Sequence[str] = (),
) -> str:
    """SELECT over staged `rows` (alias r) that lets nothing clear through: each producer text column
    in `columns` with stray PANs masked (when `masked`), the `pan` column replaced by the token
    columns, a malformed `raw_line` by its kept copy. `extra` select items and `joins` are appended
    (lineage)."""
    items, tables = [], []
    for i, c in enumerate(columns):
        if c == pan:
            items += [f"t.{t}" for t in TOKEN_COLUMNS if t != "pan_valid"]
            items.append("coalesce(t.pan_valid, false) AS pan_valid")
            tables.append(f"LEFT JOIN {TOKENS_TABLE} t ON t.pan = r.{ident(pan)}")
        elif c == "raw_line":
            items.append(f"{kept_line_sql('r.raw_line', 'ml.raw_line_masked')} AS raw_line_masked")
            tables.append(f"LEFT JOIN {MASKED_LINES_TABLE} ml ON ml.raw_line = r.raw_line")
        elif masked:
            items.append(f"coalesce(m{i}.masked, r.{ident(c)}) AS {ident(c)}")
            tables.append(f"LEFT JOIN {MASKED_VALUES_TABLE} m{i} ON m{i}.original = r.{ident(c)}")
        else:
            items.append(f"r.{ident(c)}")
    return f"SELECT {', '.join([*items, *extra])} FROM {rows} r {' '.join([*tables, *joins])}"


def _stage_frame(conn: duckdb.DuckDBPyConnection, df: pd.DataFrame) -> tuple[str, list[str]]:
    """`df` as temp table `_frame_rows` with a `_pos` column keeping its row order; its text columns."""
    conn.register("_frame_in", df.reset_index(drop=True))
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE _frame_rows AS SELECT *, row_number() OVER () AS _pos FROM _frame_in"
    )
    conn.unregister("_frame_in")
    text = [r[0] for r in conn.execute("DESCRIBE _frame_rows").fetchall() if r[1] == "VARCHAR"]
    return "_frame_rows", text


def tokenise_frame(
    conn: duckdb.DuckDBPyConnection, df: pd.DataFrame, tokenizer: Tokenizer, pan_column: str = "pan"
) -> pd.DataFrame:
    """`df` with `pan_column` replaced by the token columns (in its place) and stray PANs masked in
    its other text columns (a `raw_line` column becomes `raw_line_masked`)."""
    frame = df.astype({pan_column: object}).assign(**{pan_column: df[pan_column].map(_as_text)})
    rows, text = _stage_frame(conn, frame)
    stage_tokens(conn, rows, tokenizer, pan_column)
    producer = [c for c in text if c not in (pan_column, "raw_line", "raw_line_masked")]
    masked = stage_masked_values(conn, rows, producer)
    if "raw_line" in df.columns:
        stage_masked_lines(conn, rows)
    cols = [c for c in df.columns if c in text or c == pan_column]
    others = [f"r.{ident(c)}" for c in df.columns if c not in cols]
    sql = door_select(rows, cols, pan=pan_column, masked=masked, extra=others) + " ORDER BY r._pos"
    out = conn.execute(sql).df()
    order = []
    for c in df.columns:
        order += list(TOKEN_COLUMNS) if c == pan_column else ["raw_line_masked" if c == "raw_line" else c]
    return out[order]


def scrub_frame(
    conn: duckdb.DuckDBPyConnection, df: pd.DataFrame, own: Sequence[str] = ("file_sha256",)
) -> pd.DataFrame:
    """`df` with card numbers masked in its producer text columns (`own` columns left as they are)."""
    rows, text = _stage_frame(conn, df)
    producer = [c for c in text if c not in own]
    masked = stage_masked_values(conn, rows, producer)
    others = [f"r.{ident(c)}" for c in df.columns if c not in producer]
    sql = door_select(rows, producer, pan=None, masked=masked, extra=others) + " ORDER BY r._pos"
    return conn.execute(sql).df()[list(df.columns)]


def _as_text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    return value if isinstance(value, str) else str(value)
