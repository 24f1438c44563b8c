r"""JSON Lines values read as written: a card the JSON escapes of a value hide from its decoded text.

DuckDB's JSON functions decode a string value before the door masks it. A `\u` escape holds hex digits,
so a card may be written across one: `"\u00378282000000016"` holds the card `378282000000016` as
written, and decodes to `7` and the rest of it, 14 digits and no card, which the door would store in
clear. So each value of a valid line holding `\u` is also read as written: its JSON escapes decoded but
`\uXXXX`, kept as the text it is (an escaped tab or slash, a separator, still joins digits as it does
decoded). Where that reading holds a card, the digits of the decoded value that came from the card's
digits are starred (its BIN and last 4 shown, as the door masks a card), and the PAN field is handed to
tokenisation as written: an invalid PAN whose `pan_masked` shows the written card's BIN and last 4 (or
the card itself when its escapes spell one). Only the lines `WRITTEN_PREFILTER` passes come here (the
text reader keeps them in `escaped_line`); an ordinary line has no backslash and costs a substring test.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

import duckdb
import pandas as pd

from fraud_assets.defs.raw.tokens import frame_to_temp, ident
from fraud_assets.lib.pan import star_written_pans

WRITTEN_TABLE = "_written_values"
# Necessary for the reading as written to find a card the decoded reading does not (RE2, on the line): a
# card's digits are then partly a `\u` escape's hex digits. Its `\` and `u` end a digit group, so the card
# starts among them and runs on past the last, a decimal digit, to another digit across light separators
# (DEL or any non-ASCII character may be one; `\t`, `\b` and `\/` decode to one). Elsewhere both readings
# hold the same digit groups.
WRITTEN_PREFILTER = r"\\u[0-9a-fA-F]{3}[0-9](?:[ ./+|-]|[^\x00-\x7e]|\\[tb/])*[0-9]"
_MAY_HIDE_CARD = re.compile(WRITTEN_PREFILTER)
# A piece of a JSON string's text: a surrogate pair, one `\u` escape, another escape, one character.
_PIECE = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}|\\.|[^\\]", re.S
)
# The tokens of a valid JSON text: strings, structure, and runs of anything else (numbers, literals, space).
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^{}\[\]:,"]+', re.S)


def members(line: str) -> list[tuple[str, str]]:
    """(key, value as written) of each member of the valid JSON object `line`, in order."""
    try:
        return _members_decoded(line)
    except (ValueError, IndexError):  # what the engine accepts beyond JSON (a trailing comma, `inf`)
        return _members_scanned(line)


_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def _members_decoded(line: str) -> list[tuple[str, str]]:
    """`members` by Python's JSON decoder (in C), value by value."""
    out, at = [], _SPACE.match(line, line.index("{") + 1).end()
    while line[at] != "}":
        if line[at] != '"':
            raise ValueError(at)
        key, at = json.decoder.scanstring(line, at + 1)
        at = _SPACE.match(line, at).end()
        if line[at] != ":":
            raise ValueError(at)
        start = _SPACE.match(line, at + 1).end()
        at = _DECODER.raw_decode(line, start)[1]
        out.append((key, line[start:at]))
        at = _SPACE.match(line, at).end()
        if line[at] == ",":
            at = _SPACE.match(line, at + 1).end()
        elif line[at] != "}":
            raise ValueError(at)
    return out


def _members_scanned(line: str) -> list[tuple[str, str]]:
    """`members` by its tokens, for any text the engine reads as a JSON object."""
    out, depth, key, start = [], 0, None, None
    for m in _TOKEN.finditer(line):
        tok = m.group(0)
        if tok in ("{", "["):
            depth += 1
        elif tok in ("}", "]"):
            depth -= 1
        if depth == 1 and tok.startswith('"') and key is None and start is None:
            key = json.loads(tok)
        elif depth == 1 and tok == ":" and start is None:
            start = m.end()
        elif start is not None and ((depth == 1 and tok == ",") or depth == 0):
            out.append((key, line[start : m.start()].strip()))
            key = start = None
    return out


def _read_as_written(text: str) -> tuple[str, list[tuple[int, int, str]]]:
    """JSON text (a string's, between its quotes, or a whole object's) with its escapes decoded but
    `\\uXXXX`, and for each character of its decoded text the span of that reading it came from."""
    written, spans = [], []
    at = 0
    for m in _PIECE.finditer(text):
        piece = m.group(0)
        ch = json.loads(f'"{piece}"') if piece.startswith("\\") else piece
        shown = piece if piece.startswith("\\u") else ch
        written.append(shown)
        spans.append((at, at + len(shown), ch))
        at += len(shown)
    return "".join(written), spans


def _star_digits(value: str) -> str:
    return re.sub(r"\d", "*", value)


def written_value(raw: str, decoded: str | None, pan: bool) -> str | None:
    """What the door reads for one value whose JSON text as written is `raw` and decoded `decoded`; None
    when the reading as written holds no card (keep the decoded value)."""
    if decoded is None or not _MAY_HIDE_CARD.search(raw):
        return None
    string = raw.startswith('"')
    try:
        written, spans = _read_as_written(raw[1:-1] if string else raw)
    except ValueError:  # an escape Python's JSON decoder refuses (the engine accepted it): read no digit
        return _star_digits(decoded)
    starred = star_written_pans(written)
    if starred == written:
        return None
    if not string:  # an object or array, read whole: the engine's text of it is not ours to map back
        return _star_digits(decoded)
    if "".join(ch for _, _, ch in spans) != decoded:  # not the value DuckDB read (a duplicate key)
        return _star_digits(decoded)
    if pan:
        return written
    return "".join("*" if "*" in starred[a:b] and ch.isdecimal() else ch for a, b, ch in spans)


def written_values(line: str, values: Mapping[str, str | None], keys: Mapping[str, str]) -> dict[str, str]:
    """For the columns (`keys`: JSON key -> column) of one line whose values (`values`, decoded) the
    reading as written changes: the value the door reads instead. The PAN column is `pan`."""
    out: dict[str, str] = {}
    for key, raw in members(line):
        column = keys.get(key)
        if column is not None and column not in out:
            new = written_value(raw, values[column], pan=column == "pan")
            if new is not None:
                out[column] = new
    return out


def stage_written(cur: duckdb.DuckDBPyConnection, rows: str, keys: Mapping[str, str], line: str) -> None:
    """Replace, in staged `rows`, the values of the lines in column `line` (valid JSON lines the pre-filter
    passed) that their reading as written changes (`written_values`)."""
    columns: Sequence[str] = list(keys.values())
    cols = ", ".join(map(ident, [line, *columns]))
    found = cur.execute(f"SELECT DISTINCT {cols} FROM {rows} WHERE {ident(line)} IS NOT NULL").fetchall()
    changes = [
        (text, column, new)
        for text, *values in found
        for column, new in written_values(text, dict(zip(columns, values, strict=True)), keys).items()
    ]
    if not changes:
        return
    frame = pd.DataFrame(changes, columns=["line", "column_name", "value"], dtype=object)
    frame_to_temp(cur, WRITTEN_TABLE, frame, dict.fromkeys(frame.columns, "VARCHAR"))
    for column in sorted({c for _, c, _ in changes}):
        cur.execute(
            f"UPDATE {rows} r SET {ident(column)} = w.value FROM {WRITTEN_TABLE} w "
            f"WHERE w.line = r.{ident(line)} AND w.column_name = ?",
            [column],
        )
