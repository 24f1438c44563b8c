"""Finding card numbers that escaped: the leak detector behind the blocking `no_clear_pan` checks
(`table_checks.pan_scan`).

The detector looks for the PAN shape `fraud_assets.lib.pan` defines (13-19 Luhn-valid consecutive
digits of a digit group) by its own code path, so a blind spot of the masker is not also one of the
check that vouches for it: characters are classified with `str.isdecimal` / `unicodedata.category`
(the masker uses a regex and `unicodedata.decimal`), and every window is tested at once from prefix
sums (the masker walks each window).

`find_pan_leaks` scans every column of a DuckDB table whatever its type: text and nested values as
text, numbers by their integral part (a card number in an int64 or float64 column; a fraction is a
measurement). Types whose text can never hold 13 digits in a group are skipped (dates, timestamps,
intervals, booleans and integers up to 32 bits: `SHORT_TYPES`; a test proves it on their extremes), and
so are the platform's own digests (`LEAK_SCAN_EXEMPT_COLUMNS`).
"""

import html.entities
import sys
import unicodedata
from collections.abc import Iterable, Iterator, Sequence

import dagster as dg
import duckdb
import numpy as np

from fraud_assets.lib.provenance import LEAK_SCAN_EXEMPT_COLUMNS

# Separators that show (they count toward the gap) and characters that show nothing (they do not):
# format characters, combining marks, the Hangul fillers and braille blank, and control characters that
# break no line.
_VISIBLE_CATEGORIES = frozenset({"Zs", "Pd"})
_VISIBLE_CHARS = frozenset("\t./\u2212+|\uff0b\uff5c")
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Mn", "Me"})
_INVISIBLE_CHARS = frozenset("\u115f\u1160\u2800\u3164\uffa0")
_LINE_BREAKS = frozenset("\n\x0b\x0c\r\x1c\x1d\x1e\x85\u2028\u2029")
_MAX_GAP = 3
_HEX = frozenset("0123456789abcdefABCDEF")
_DECIMAL = frozenset("0123456789")
_MAX_REFERENCE = 32  # characters between an HTML reference's `&` (or its last `amp;`) and its `;`
_LENGTHS = range(13, 20)
# Doubled digit in Luhn: 2d, minus 9 when that has two digits.
_DOUBLED = np.array([0, 2, 4, 6, 8, 1, 3, 5, 7, 9])

# Column types whose text form never holds 13 digits in one group (their widest values: a 7-digit year,
# `294247-01-10 04` in a timestamp, 10-digit integers).
SHORT_TYPES = frozenset(
    {
        "BOOLEAN",
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "DATE",
        "TIME",
        "TIME WITH TIME ZONE",
        "TIMESTAMP",
        "TIMESTAMP_S",
        "TIMESTAMP_MS",
        "TIMESTAMP_NS",
        "TIMESTAMP WITH TIME ZONE",
        "INTERVAL",
    }
)
_NUMBER_TYPES = ("BIGINT", "UBIGINT", "HUGEINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL")
# DuckDB pre-filter: 13 digits, each at most 3 characters from the next, every character between them a
# separator, control character or math symbol (Unicode Z, Pd, Cf, Cc, Sm) or `.` `/`, or an escape:
# wider than the PAN shape on purpose; the exact test runs in Python on the few values it lets through.
# Values with any non-ASCII character go to Python too (`scan_expression`): marks and fillers are all
# non-ASCII, and RE2 with \p{M} in the class is ~30x slower on every value. (A negated class, "anything
# but letters and digits", is as wide but makes RE2 about 50 times slower.)
# An HTML reference: any numeric one; a named one only where a digit stands at most 3 characters before
# it (no name stands for a digit, so a group that has one has a digit before the first, with only visible
# separators between them in ASCII text without controls or other escapes): `M&amp;S` is no candidate.
_TEXT_PREFILTER = (
    r"\p{Nd}(?:[\p{Z}\p{Pd}\p{Cf}\p{Cc}\p{Sm}./]{0,3}\p{Nd}){12}"
    r"|\\[uU][0-9a-fA-F]{4}|\\[uU]\{[0-9a-fA-F]|\\[xX][0-9a-fA-F]{2}|%[0-9a-fA-F]{2}"  # backslash, URL
    r"|&(?:(?:amp|AMP);?)*#|\p{Nd}[^\p{L}\p{Nd}]{0,3}&[a-zA-Z]"  # an HTML reference
    r"|[\x00-\x08\x0e-\x1b\x1f\x7f]"  # a control (any number may sit in a gap)
)


def _separator_kind(ch: str) -> str | None:
    """`visible`, `invisible`, or None when `ch` ends a digit group."""
    if ch in _VISIBLE_CHARS:
        return "visible"
    if ch in _INVISIBLE_CHARS:
        return "invisible"
    category = unicodedata.category(ch)
    if category in _VISIBLE_CATEGORIES:
        return "visible"
    if category in _INVISIBLE_CATEGORIES or (category == "Cc" and ch not in _LINE_BREAKS):
        return "invisible"
    return None


# HTML5's legacy names, read without their `;` too, that stand for a separator (none stands for a digit).
_LEGACY_NAMES = sorted(
    (n for n, ch in html.entities.html5.items() if n[-1] != ";" and len(ch) == 1 and _separator_kind(ch)),
    key=len,
    reverse=True,
)


def _has_escape(text: str) -> bool:
    return "\\" in text or "%" in text or "&" in text


def _characters(text: str) -> Iterator[str]:
    """The characters of `text`, an escape of a digit or a separator read as that character (the forms
    `fraud_assets.lib.pan` lists, each also escaped again any number of times): a backslash escape
    (`\\u0034` or a surrogate pair, as JSON writes; `\\u{34}`; the `\\x` UTF-8 bytes of one character), its
    backslash doubled or percent-escaped (`%5Cu0034`: a JSON body in a URL); a URL percent-escape (`%34`,
    or the UTF-8 bytes of one character: a logged URL or form body; `%2534`); an HTML character reference
    as HTML5 reads it (`&#52;`, `&#52` and `&#x34` without `;`, `&nbsp;`, legacy `&nbsp`; `&amp;#52;`,
    `&AMP;#52;`). Any other escape is read as written, so its hex digits count as digits (`%4539...` may be
    a `%` and a card)."""
    if not _has_escape(text):
        yield from text
        return
    i, n = 0, len(text)
    while i < n:
        reader = _ESCAPE_READERS.get(text[i])
        escaped = reader(text, i) if reader else None
        if escaped and (escaped[0].isdecimal() or _separator_kind(escaped[0])):
            yield escaped[0]
            i = escaped[1]
        elif text[i] == "\\":  # a run of backslashes that escapes nothing is read once, not from each
            end = i + 1
            while text[end : end + 1] == "\\":
                end += 1
            yield from text[i:end]
            i = end
        else:
            yield text[i]
            i += 1


def _backslashes_end(text: str, i: int) -> int:
    """Index after the run of backslashes at `i` (`i` when there is none): each written `\\` or
    percent-escaped `%5C` (a JSON body put in a URL), its `%` itself escaped again any number of times."""
    while True:
        if text[i : i + 1] == "\\":
            i += 1
            continue
        if text[i : i + 1] != "%":
            return i
        j = i + 1
        while text.startswith("25", j):
            j += 2
        if text[j : j + 2] not in ("5c", "5C"):
            return i
        i = j + 2


def _backslash_escaped(text: str, i: int) -> tuple[str, int] | None:
    """(character, index after it) for a backslash escape at `i`, its backslash doubled any number of
    times: JSON's `\\uXXXX` (one code unit or a surrogate pair), `\\u{X...}` (a code point: JavaScript,
    Rust, Swift) or the `\\xXX` bytes of one character in UTF-8 (Python's bytes repr, C, JavaScript)."""
    j = _backslashes_end(text, i)
    if j == i:
        return None
    letter = text[j : j + 1]
    if letter in ("x", "X"):
        return _utf8_escaped(text, i, _hex_byte)
    if letter not in ("u", "U"):
        return None
    if text[j + 1 : j + 2] == "{":
        end = text.find("}", j + 2, j + 9)
        if end < 0 or not _is_hex(text[j + 2 : end], end - j - 2) or end == j + 2:
            return None
        code = int(text[j + 2 : end], 16)
        return (chr(code), end + 1) if code <= sys.maxunicode else None
    unit = _escaped_unit(text, i)
    if unit is None:
        return None
    low = _escaped_unit(text, unit[1]) if 0xD800 <= unit[0] < 0xDC00 else None
    if low is not None and 0xDC00 <= low[0] < 0xE000:
        return chr(0x10000 + (unit[0] - 0xD800) * 0x400 + (low[0] - 0xDC00)), low[1]
    return chr(unit[0]), unit[1]


def _escaped_unit(text: str, i: int) -> tuple[int, int] | None:
    """(code unit, index after it) for `\\uXXXX` at `i`, its backslash doubled any number of times."""
    j = _backslashes_end(text, i)
    # ASCII hex digits only: int() would also read other scripts' digits.
    if j == i or text[j : j + 1] not in ("u", "U") or not _is_hex(text[j + 1 : j + 5], 4):
        return None
    return int(text[j + 1 : j + 5], 16), j + 5


def _hex_byte(text: str, i: int) -> tuple[int, int] | None:
    """(byte, index after it) for `\\xXX` at `i`, its backslash doubled any number of times."""
    j = _backslashes_end(text, i)
    if j == i or text[j : j + 1] not in ("x", "X") or not _is_hex(text[j + 1 : j + 3], 2):
        return None
    return int(text[j + 1 : j + 3], 16), j + 3


def _percent_byte(text: str, i: int) -> tuple[int, int] | None:
    """(byte, index after it) for `%XX` at `i`, its `%` escaped again any number of times (`%25`)."""
    if text[i : i + 1] != "%":
        return None
    j = i + 1
    while text[j : j + 2] == "25" and _is_hex(text[j + 2 : j + 4], 2):
        j += 2
    return (int(text[j : j + 2], 16), j + 2) if _is_hex(text[j : j + 2], 2) else None


def _utf8_escaped(text: str, i: int, byte_at) -> tuple[str, int] | None:
    """(character, index after it) for the escaped UTF-8 bytes of one character at `i`, each read by
    `byte_at`; the lead byte says how many there are."""
    data = bytearray()
    while (byte := byte_at(text, i)) is not None:
        data.append(byte[0])
        i = byte[1]
        size = 1 if data[0] < 0x80 else 2 if data[0] >> 5 == 6 else 3 if data[0] >> 4 == 14 else 4
        if len(data) == size:
            try:
                return data.decode("utf-8"), i
            except UnicodeDecodeError:
                return None
    return None


def _percent_escaped(text: str, i: int) -> tuple[str, int] | None:
    """(character, index after it) for a percent escape at `i`: a backslash escape whose backslash is
    percent-escaped, else the percent-escaped UTF-8 bytes of one character."""
    return _backslash_escaped(text, i) or _utf8_escaped(text, i, _percent_byte)


def _html_escaped(text: str, i: int) -> tuple[str, int] | None:
    """(character, index after it) for an HTML character reference at `i`: numeric, the code point it
    names, read to its last digit as HTML5 reads it, `;` or not; or named (HTML5's table, the legacy names
    also without their `;`); its `&` written `&amp;` or `&AMP;` (their `;` optional) any number of times."""
    j = i + 1
    while text.startswith(("amp", "AMP"), j):
        j += 4 if text[j + 3 : j + 4] == ";" else 3
    if text[j : j + 1] == "#":
        hexadecimal = text[j + 1 : j + 2] in ("x", "X")
        start = end = j + 1 + hexadecimal
        digits = _HEX if hexadecimal else _DECIMAL
        while end < len(text) and text[end] in digits:
            end += 1
        significant = text[start:end].lstrip("0") or "0"
        if end == start or len(significant) > 8:  # none, or beyond Unicode (int() refuses ~4,300 digits)
            return None
        code = int(significant, 16 if hexadecimal else 10)
        return (chr(code), end + (text[end : end + 1] == ";")) if code <= sys.maxunicode else None
    end = text.find(";", j, j + _MAX_REFERENCE + 1)
    named = html.entities.html5.get(text[j : end + 1]) if end >= 0 else None
    if named is not None and len(named) == 1:
        return named, end + 1
    legacy = next((name for name in _LEGACY_NAMES if text.startswith(name, j)), None)
    return (html.entities.html5[legacy], j + len(legacy)) if legacy else None


def _is_hex(chunk: str, size: int) -> bool:
    return len(chunk) == size and _HEX.issuperset(chunk)


_ESCAPE_READERS = {"\\": _backslash_escaped, "%": _percent_escaped, "&": _html_escaped}


def decoded_text(text: str) -> str:
    """`text` with its escapes of digits and separators read as the characters they stand for."""
    return "".join(_characters(text)) if _has_escape(text) else text


def digit_groups(text: str) -> Iterator[str]:
    """Each digit group of `text` as ASCII digits (separators dropped, any script's digits read), read
    with its escapes decoded, then, when it has any, as written: an escape whose hex digits begin a card
    written in clear after it (`%378282246310005`) takes the card's first digit away from the decoded
    reading. A group found both ways comes twice."""
    escaped = _has_escape(text)
    yield from _groups(_characters(text) if escaped else text)
    if escaped:
        yield from _groups(text)


def _groups(characters: Iterable[str]) -> Iterator[str]:
    digits: list[str] = []
    gap = 0
    for ch in characters:
        if ch.isdecimal():
            if gap > _MAX_GAP:
                if digits:
                    yield "".join(digits)
                digits = []
            digits.append(str(int(ch)))
            gap = 0
        elif digits and (kind := _separator_kind(ch)):
            gap += kind == "visible"
        else:
            if digits:
                yield "".join(digits)
            digits, gap = [], 0
    if digits:
        yield "".join(digits)


def _luhn_spans(digits: str) -> list[tuple[int, int]]:
    """(start, end) of every 13-19 digit window of `digits` that starts with 1-9 and passes Luhn.

    A window's Luhn sum is its digits counted from its right end, every second one doubled: with prefix
    sums of the digits doubled at even and at odd positions, each window's sum is one subtraction."""
    n = len(digits)
    if n < _LENGTHS.start:
        return []
    d = np.frombuffer(digits.encode(), dtype=np.uint8).astype(np.int64) - 48
    even = np.arange(n) % 2 == 0
    # plain[p][k]: digit k as counted in a window whose last digit has parity p.
    plain = {p: np.where(even == (p == 0), d, _DOUBLED[d]) for p in (0, 1)}
    prefix = {p: np.concatenate(([0], np.cumsum(v))) for p, v in plain.items()}
    found = []
    for length in _LENGTHS:
        if length > n:
            break
        starts = np.arange(0, n - length + 1)
        ends = starts + length
        last_parity = (ends - 1) % 2
        sums = np.where(
            last_parity == 0, prefix[0][ends] - prefix[0][starts], prefix[1][ends] - prefix[1][starts]
        )
        found.extend((int(s), int(s) + length) for s in starts[(sums % 10 == 0) & (d[starts] != 0)])
    return found


def luhn_windows(digits: str) -> set[str]:
    """Every 13-19 digit window of `digits` that starts with 1-9 and passes Luhn, the shorter runs inside
    a card included (a 16-digit card holds one in about 60 %)."""
    return {digits[s:e] for s, e in _luhn_spans(digits)}


def card_windows(digits: str) -> set[str]:
    """The Luhn-valid windows of `digits` that no longer Luhn-valid window contains: each card once, not
    again as the shorter valid runs inside it. Where windows overlap without one containing the other,
    which digits are the card is ambiguous and each is reported."""
    spans = set(_luhn_spans(digits))
    # A window that contains another starts at most 6 digits before it and ends at most 6 after (19 - 13).
    reach = _LENGTHS.stop - 1 - _LENGTHS.start
    return {
        digits[s:e]
        for s, e in spans
        if not any(
            (o_s, o_e) in spans and (o_s, o_e) != (s, e) and o_e - o_s < _LENGTHS.stop
            for o_s in range(s - reach, s + 1)
            for o_e in range(e, e + reach + 1)
        )
    }


def pans_in(text: str) -> set[str]:
    """The card numbers `text` holds (as ASCII digits), read decoded and as written (`digit_groups`):
    each card once (`card_windows`). Empty exactly when `has_pan` is False."""
    return {w for group in digit_groups(text) for w in card_windows(group)}


def has_pan(text: str) -> bool:
    return any(luhn_windows(group) for group in digit_groups(text))


def _base_type(column_type: str) -> str:
    return column_type.split("(")[0].strip().upper()


def scan_expression(column: str, column_type: str) -> tuple[str, str] | None:
    """(text the detector reads, DuckDB pre-filter) for a column; None when its type cannot hold a PAN."""
    base = _base_type(column_type)
    if base in SHORT_TYPES:
        return None
    col = f'"{column}"'
    if base in _NUMBER_TYPES:
        whole = f"coalesce(CAST(TRY_CAST(trunc({col}) AS HUGEINT) AS VARCHAR), CAST({col} AS VARCHAR))"
        return whole, f"({col} >= 1e12 OR {col} <= -1e12)"
    text = f"CAST({col} AS VARCHAR)"
    return text, (
        f"(length({text}) >= 13 AND (strlen({text}) <> length({text}) "
        f"OR regexp_matches({text}, '{_TEXT_PREFILTER}')))"
    )


def find_pan_leaks(
    conn: duckdb.DuckDBPyConnection, table: str, where: str = "", params: list[object] | None = None
) -> dict[str, int]:
    """Rows per column of `table` holding a card number. {} when clean."""
    return find_pan_leaks_by_day(conn, table, "'all'", where, params).get("all", {})


def find_pan_leaks_by_day(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    day: str,
    where: str = "",
    params: list[object] | None = None,
) -> dict[str, dict[str, int]]:
    """Rows per column of `table` holding a card number, per value of the SQL expression `day` (a business
    date, as text): only the days with a leak appear.

    Per column, a cheap DuckDB pre-filter keeps the candidate values (one query per column reads that
    column only; one query for all columns evaluates every filter on every row and is slower); only the
    distinct candidates reach the Python detector, each judged once however many days hold it."""
    filt = f" AND ({where})" if where else ""
    leaks: dict[str, dict[str, int]] = {}
    for name, column_type, *_ in conn.execute(f"DESCRIBE {table}").fetchall():
        expr = None if name in LEAK_SCAN_EXEMPT_COLUMNS else scan_expression(name, column_type)
        if expr is None:
            continue
        text, prefilter = expr
        rows = conn.execute(
            f"SELECT CAST({day} AS VARCHAR), {text}, count(*) FROM {table} WHERE {prefilter}{filt} "
            "GROUP BY 1, 2",
            params or [],
        ).fetchall()
        verdicts: dict[str, bool] = {}
        for group, value, count in rows:
            if value is None:
                continue
            if value not in verdicts:
                verdicts[value] = has_pan(value)
            if verdicts[value]:
                by_column = leaks.setdefault(str(group)[:10], {})
                by_column[name] = by_column.get(name, 0) + count
    return leaks


def _asset_key(asset: dg.AssetKey | dg.AssetsDefinition | str | Sequence[str]) -> dg.AssetKey:
    return asset.key if isinstance(asset, dg.AssetsDefinition) else dg.AssetKey.from_coercible(asset)


def scan_description(table: str) -> str:
    return (
        f"PAN-leak scan of `{table}`: no column of any type holds 13-19 consecutive Luhn-valid digits "
        "(text with any light separators and digits of any script; numbers by their integral part; "
        "the platform's own digests excepted). Metadata gives the number of offending rows per "
        "column, never the values. Blocking: a leaked card number must not flow downstream."
    )


def leak_result(leaks: dict[str, int]) -> dg.AssetCheckResult:
    """The scan's verdict from `find_pan_leaks`: counts per column, never the values."""
    return dg.AssetCheckResult(
        passed=not leaks,
        metadata={
            "leaking_rows": dg.MetadataValue.int(sum(leaks.values())),
            "leaking_columns": dg.MetadataValue.text(", ".join(sorted(leaks)) or "none"),
            "leaking_rows_by_column": dg.MetadataValue.json(dict(sorted(leaks.items()))),
        },
    )
