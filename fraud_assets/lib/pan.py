r"""Card-number (PAN) handling. The clear PAN exists only inside ingestion, in memory.

A PAN becomes `card_token` (keyed HMAC-SHA256 of the normalised PAN), `pan_bin` (first 6 digits)
and `pan_last4`. `mask_pans` blanks every card number in free text, so a malformed line or an
offending value can be kept for investigators without keeping a card number.

What counts as a card number (the one definition; `fraud_assets.lib.pan_leaks` detects the same shape
by another code path): a *digit group* is a run of decimal digits of any script (Unicode Nd) in which
consecutive digits are at most 3 visible *light separators* apart - spaces of any width (Unicode Zs),
tab, dashes (Pd) and the minus sign, `.`, `/`, `+` and `|` (and their full-width forms) - with any
number of characters that show nothing between
them: format characters (Cf: soft hyphen, zero-width space...), combining marks (Mn, Me: a digit
carrying a mark still reads as that digit, and some marks show nothing, e.g. U+034F, U+FE0F), the Hangul
fillers and the braille blank, and control characters that break no line. Any 13-19 consecutive digits
of a group (separators skipped) that start with 1-9 and pass Luhn are a PAN: a PAN followed by an expiry,
or inside a longer digit run, is found. Line breaks, commas, colons, underscores and letters end a group:
with a colon every `2018-04-01 00:00:00` would be a 14-digit group, with an underscore a landing file's
business date and a numeric suffix (`acq_a_2018-04-01_000123.csv`). (No card number starts with 0,
ISO/IEC 7812's industry digit; a run of zeros passes Luhn.)

An escape of a digit or a separator counts as that character, escaped again any number of times too:
- a JSON escape (`\u0034`, a surrogate pair for a digit beyond the BMP; the acq_b feed is JSON, and a
  malformed line is kept as its text), a `\u{34}` code point (1-6 hex digits: JavaScript, Rust, Swift) and
  the `\x` bytes of one character in UTF-8 (`\x34`, `\xc2\xa0`: Python's bytes repr, C, JavaScript,
  Postgres `E''` strings); escaped again, its backslash doubled (`\\u0034`, `\\x34`) or percent-escaped
  (`%5Cu0034`, `%5Cx34`: a JSON body put in a URL);
- a URL percent-escape (`%20`, or the UTF-8 bytes of one character: `%C2%A0`), as in a logged URL or form
  body; escaped again, `%2534`, `%25C2%25A0`;
- an HTML character reference, read as an HTML5 parser reads it: numeric to its last digit, with or
  without its `;` (`&#52;`, `&#52&#53`, `&#x34`), named by a separator's case-sensitive name with its `;`
  (`&nbsp;`; `&NBSP;` is text) or by the legacy names HTML5 also reads without it (`&nbsp`, `&shy`); escaped
  again, its `&` written `&amp;` or `&AMP;` (`&amp;#52;`, `&AMP;#52;`).
Any other escape is text as written, and so are these, on purpose: a lone `\xa0` (a no-break space in
JavaScript, no character in a bytes repr: bytes are read as UTF-8 only, as percent-escapes are), a `\x`
with one hex digit (Postgres), `\u{...}` with its braces percent-escaped, and quoted-printable (`=34`,
`=C2=A0`, from MIME): `=3X` is also how `key=value` text writes a value starting with 3 (`pan=3782...`, every
American Express, JCB and Diners card: read as digits, every such value would decode), and no feed of
ours is MIME.

Every text is read both ways, and a card found either way is a card: as written (each escape as the text it
is) and decoded. Decoding alone would miss a card whose first digits are an escape's hex digits, written in
clear after it: `%378282246310005` decodes to `7` and the rest of the card, one digit short (`\u0037`,
`\x37` likewise; `\u0345` + `39...` is a combining mark, read as nothing, and `39...`).
"""

from __future__ import annotations

import decimal
import functools
import hashlib
import hmac
import html.entities
import math
import re
import sys
import unicodedata
from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

PAN_MIN_DIGITS, PAN_MAX_DIGITS = 13, 19
MAX_SEPARATORS = 3  # between two digits of one group ("4539  1488", "4539 - 1488")

# Light separators, listed (a test pins them to this Python's Unicode categories Zs, Pd and Cf).
_SPACES = "\u0020\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000\t"
_DASHES = (
    "\\-\u058a\u05be\u1400\u1806\u2010-\u2015\u2e17\u2e1a\u2e3a\u2e3b\u2e40\u2e5d\u301c\u3030\u30a0"
    "\ufe31\ufe32\ufe58\ufe63\uff0d\U00010ead\u2212"
)
_FORMAT = (
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U00013438"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
)
# Characters that show nothing: Hangul fillers (letters, Lo) and the braille blank (So); control
# characters that break no line (C0 but tab and line breaks, DEL, C1 but NEL), as regex escapes.
_FILLERS = "\u115f\u1160\u2800\u3164\uffa0"
_CONTROLS = r"\x00-\x08\x0e-\x1b\x1f\x7f-\x84\x86-\x9f"
_MARKS = ("Mn", "Me")
_SYMBOLS = "+|\uff0b\uff5c"  # plus (a space in a form body) and vertical bar, ASCII and full-width
_VISIBLE = f"[{_SPACES}{_DASHES}{_SYMBOLS}./]"
# The same for ASCII text: a few characters, not ~350 ranges Python's regex engine tests one by one.
# ASCII_CONTROLS and the escapes below are also what the engines' pre-filters (RE2) let through whatever the
# digits around them: any number of controls may sit in a gap, and an escape may be a digit.
ASCII_CONTROLS = r"[\x00-\x08\x0e-\x1b\x1f\x7f]"
# A backslash escape: JSON's `\uXXXX`, `\u{XXXX}` (JavaScript, Rust, Swift), `\xXX` (a byte: Python's bytes
# repr, C, JavaScript). Its backslash percent-escaped (`%5Cu0034`, a JSON body in a URL) is a PERCENT_ESCAPE.
BACKSLASH_ESCAPE = r"\\[uU](?:[0-9a-fA-F]{4}|\{[0-9a-fA-F])|\\[xX][0-9a-fA-F]{2}"
PERCENT_ESCAPE = r"%[0-9a-fA-F]{2}"
# The HTML named character references of light separators (a test pins them to Python's HTML5 table; none
# names a digit), and those of them HTML5 also reads without their `;` (legacy names: `&nbsp1234`).
HTML_SEPARATOR_NAMES = (
    "ApplyFunction DotDot DownBreve InvisibleComma InvisibleTimes MediumSpace NegativeMediumSpace "
    "NegativeThickSpace NegativeThinSpace NegativeVeryThinSpace NoBreak NonBreakingSpace Tab ThinSpace "
    "TripleDot VerticalLine VeryThinSpace ZeroWidthSpace af dash emsp13 emsp14 emsp ensp hairsp horbar "
    "hyphen ic it lrm mdash minus nbsp ndash numsp period plus puncsp rlm shy sol tdot thinsp verbar vert "
    "zwj zwnj"
).split()
HTML_LEGACY_SEPARATOR_NAMES = ("nbsp", "shy")
# An `&` as HTML writes it escaped again any number of times: `&amp;`, `&AMP;` (both names are HTML5's, and
# legacy: their `;` may be missing).
_HTML_AMPERSAND = "&(?:(?:amp|AMP);?)*"
# An HTML character reference that may be a digit or a separator: every numeric one (`&` `#` is rare in
# producer text; HTML5 reads it without its `;` too), the named ones of separators.
HTML_ESCAPE = (
    f"{_HTML_AMPERSAND}(?:#|{'|'.join(HTML_LEGACY_SEPARATOR_NAMES)}|(?:{'|'.join(HTML_SEPARATOR_NAMES)});)"
)
_ASCII_VISIBLE, _ASCII_INVISIBLE = "[ \t\\-./+|]", ASCII_CONTROLS


@functools.cache
def _invisible_class() -> str:
    """Characters that show nothing, as a regex class. The combining marks (~2,000 code points) come from
    this Python's Unicode tables on first use (~0.2 s), not at import."""
    marks, start = [], None
    for cp in range(sys.maxunicode + 2):
        is_mark = cp <= sys.maxunicode and unicodedata.category(chr(cp)) in _MARKS
        if is_mark and start is None:
            start = cp
        elif not is_mark and start is not None:
            marks.append(f"\\U{start:08x}-\\U{cp - 1:08x}")
            start = None
    return f"[{_FORMAT}{_FILLERS}{_CONTROLS}{''.join(marks)}]"


@functools.cache
def separator_class() -> str:
    """Every light separator, visible or not, as a regex class."""
    return f"(?:{_VISIBLE}|{_invisible_class()})"


@functools.cache
def _patterns(ascii_only: bool) -> tuple[re.Pattern, re.Pattern]:
    """A digit group (Python's `\\d` on str is Unicode Nd), and a group of at least 13 digits; for ASCII
    text or any text. Characters that show nothing do not count toward the gap."""
    visible, invisible = (_ASCII_VISIBLE, _ASCII_INVISIBLE) if ascii_only else (_VISIBLE, _invisible_class())
    gap = f"{invisible}*(?:{visible}{invisible}*){{0,{MAX_SEPARATORS}}}"
    return re.compile(rf"\d(?:{gap}\d)*"), re.compile(rf"\d(?:{gap}\d){{{PAN_MIN_DIGITS - 1}}}")


# A backslash, as written or percent-escaped (`%5C`: a JSON body put in a URL), the `%` itself escaped
# again any number of times (`%255C`); a run of them is the backslash escaped again (`\\u0034`).
_BACKSLASH = "(?:\\\\|%(?:25)*5c)"
# A run is tried from its first backslash only: from each, the search would be quadratic.
_RUN = rf"(?<!\\)(?<!%5c){_BACKSLASH}+"
_PERCENT_BYTE = "%(?:25)*"


def _utf8_bytes(prefix: str, first: str) -> str:
    """The escaped UTF-8 bytes of one character, each byte `prefix` + two hex digits (`first` before the
    first): longest first, so `%25C2%25A0` is one character escaped twice, not `%25` (a `%`) and text."""
    byte = f"{prefix}[89ab][0-9a-f]"
    return (
        f"{first}f[0-4](?:{byte}){{3}}|{first}e[0-9a-f](?:{byte}){{2}}|{first}[cd][0-9a-f]{byte}"
        f"|{first}[0-7][0-9a-f]"
    )


# A JSON \u escape (a surrogate pair, or one code unit), a `\u{...}` code point, the `\x`- or
# percent-escaped UTF-8 bytes of one character, or an HTML character reference; each escaped again any
# number of times (`\\u`, `%25`, `&amp;`).
_ESCAPE = re.compile(
    rf"{_RUN}u(?P<high>d[89ab][0-9a-f]{{2}}){_BACKSLASH}+u(?P<low>d[c-f][0-9a-f]{{2}})"
    rf"|{_RUN}u(?P<unit>[0-9a-f]{{4}})|{_RUN}u\{{(?P<point>[0-9a-f]{{1,6}})\}}"
    rf"|(?P<xbytes>{_utf8_bytes(f'{_BACKSLASH}+x', f'{_RUN}x')})"
    rf"|(?P<bytes>{_utf8_bytes(_PERCENT_BYTE, _PERCENT_BYTE)})"
    # HTML5 reads a numeric reference to its last digit, `;` or not (`&#52&#53`, `&#x34g`)
    rf"|(?-i:{_HTML_AMPERSAND})#(?:x(?P<hex>[0-9a-f]+)|(?P<decimal>[0-9]+));?"
    rf"|(?-i:{_HTML_AMPERSAND}(?:(?P<name>{'|'.join(HTML_SEPARATOR_NAMES)});"
    rf"|(?P<legacy>{'|'.join(HTML_LEGACY_SEPARATOR_NAMES)})))",
    re.IGNORECASE,
)


def _code_point(digits: str, base: int) -> str | None:
    digits = digits.lstrip("0") or "0"
    code = int(digits, base) if len(digits) <= 8 else sys.maxunicode + 1  # int() refuses ~4,300 digits
    return chr(code) if code <= sys.maxunicode else None


def _escaped_character(m: re.Match) -> str | None:
    if m["bytes"] or m["xbytes"]:
        # the last two hex digits after each `%` (`%25` is a `%` escaped again), the two after each `x`
        pieces = (
            [b[-2:] for b in m["bytes"].split("%")[1:]]
            if m["bytes"]
            else re.findall("x([0-9a-f]{2})", m["xbytes"], re.IGNORECASE)
        )
        try:
            return bytes.fromhex("".join(pieces)).decode("utf-8")
        except UnicodeDecodeError:  # an overlong form or a surrogate: not a character
            return None
    if m["name"] or m["legacy"]:
        return html.entities.html5[m["name"] + ";" if m["name"] else m["legacy"]]
    if m["hex"] or m["decimal"]:
        # The code point it names (a browser reads 0x80-0x9F as Windows-1252: `&#150;` is a dash there
        # and a control character here, which shows nothing; a separator either way).
        return _code_point(m["hex"], 16) if m["hex"] else _code_point(m["decimal"], 10)
    if m["point"]:
        return _code_point(m["point"], 16)
    if m["unit"]:
        return chr(int(m["unit"], 16))
    high, low = int(m["high"], 16), int(m["low"], 16)
    return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))


def has_escape(text: str) -> bool:
    """False when `text` has no character an escape starts with: it reads the same decoded."""
    return "\\" in text or "%" in text or "&" in text


def _digit_or_separator(m: re.Match) -> str | None:
    """The digit or light separator an escape stands for; None for any other escape."""
    ch = _escaped_character(m)
    return ch if ch and (ch.isdecimal() or re.fullmatch(separator_class(), ch)) else None


def unescape_digits(text: str) -> str:
    """`text` with the escapes of digits and light separators replaced by those characters (other
    escapes stay as written)."""
    if not has_escape(text):
        return text
    return _ESCAPE.sub(lambda m: _digit_or_separator(m) or m.group(0), text)


def _decoded_spans(text: str) -> tuple[str, list[int]]:
    """`unescape_digits(text)` and where each of its characters starts in `text` (one more entry: the end),
    so a character read from an escape maps back to the whole escape."""
    pieces, starts, at = [], [], 0
    for m in _ESCAPE.finditer(text):
        if ch := _digit_or_separator(m):
            pieces += [text[at : m.start()], ch]
            starts += [*range(at, m.start()), m.start()]
            at = m.end()
    pieces.append(text[at:])
    starts += [*range(at, len(text)), len(text)]
    return "".join(pieces), starts


# The same candidate test for RE2 engines (pyarrow, DuckDB): a group with at least 13 digits, an escape
# (see `unescape_digits`), or any non-ASCII character (marks and fillers are; \p{M} in the class would
# make RE2 ~30x slower on every value).
PAN_PREFILTER_RE2 = (
    rf"[^\x00-\x7f]|{ASCII_CONTROLS}|{BACKSLASH_ESCAPE}|{PERCENT_ESCAPE}|{HTML_ESCAPE}"
    rf"|\p{{Nd}}(?:[\p{{Zs}}\p{{Pd}}\p{{Cf}}\t./+|\x{{2212}}]{{0,"
    + str(MAX_SEPARATORS)
    + r"}\p{Nd}){"
    + str(PAN_MIN_DIGITS - 1)
    + "}"
)
# Below this an integer cannot hold 13 digits.
_MIN_PAN_NUMBER = 10 ** (PAN_MIN_DIGITS - 1)


def luhn_valid(digits: str) -> bool:
    if not digits.isdigit() or not PAN_MIN_DIGITS <= len(digits) <= PAN_MAX_DIGITS:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def luhn_check_digit(partial: str) -> str:
    """The digit that makes `partial + digit` Luhn-valid."""
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = ord(ch) - 48
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def _ascii_digits(group: str) -> tuple[list[int], list[int]]:
    """Digit values (any script) of a group and the position of each in the group."""
    values, positions = [], []
    for i, ch in enumerate(group):
        d = unicodedata.decimal(ch, None)
        if d is not None:
            values.append(d)
            positions.append(i)
    return values, positions


def _luhn_windows(values: list[int]) -> list[tuple[int, int]]:
    """(start, end) of every 13-19 digit window of `values` that starts with 1-9 and passes Luhn."""
    found = []
    for end in range(PAN_MIN_DIGITS, len(values) + 1):
        total = 0
        for length, k in enumerate(range(end - 1, max(end - PAN_MAX_DIGITS, 0) - 1, -1), start=1):
            d = values[k]
            if length % 2 == 0:
                d = d * 2 - 9 if d > 4 else d * 2
            total += d
            if length >= PAN_MIN_DIGITS and total % 10 == 0 and values[k]:
                found.append((k, end))
    return found


def _clusters(windows: list[tuple[int, int]]) -> list[tuple[int, int, bool]]:
    """Windows merged where they share a digit: (start, end, nested). `nested` when one window of the
    cluster contains all the others: a card with shorter Luhn-valid runs inside it (a 16-digit PAN holds
    one in about 60 %), which its own mask covers. Otherwise the windows chain and which digits are the
    card is ambiguous."""
    merged: list[list] = []
    for start, end in sorted(windows, key=lambda w: (w[0], -w[1])):
        if merged and start < merged[-1][1]:
            last = merged[-1]
            last[2] = last[2] and end <= last[1]
            last[1] = max(last[1], end)
        else:
            merged.append([start, end, True])
    return [(s, e, nested) for s, e, nested in merged]


def _mask_group(group: str) -> str:
    values, positions = _ascii_digits(group)
    windows = _luhn_windows(values)
    if not windows:
        return group
    chars = list(group)
    for start, end, nested in _clusters(windows):
        span = range(positions[start], positions[end - 1] + 1)
        if nested:  # BIN + stars + last 4 of the outer window shows no more of any window inside it
            digits = "".join(map(str, values[start:end]))
            chars[span.start] = f"{digits[:6]}{'*' * (len(digits) - 10)}{digits[-4:]}"
            for i in span[1:]:
                chars[i] = ""
        else:  # overlapping windows: which digits are the card is ambiguous, so none stays readable
            for i in span:
                if unicodedata.decimal(chars[i], None) is not None:
                    chars[i] = "*"
    return "".join(chars)


def _mask_once(text: str) -> str:
    return _patterns(text.isascii())[0].sub(lambda m: _mask_group(m.group(0)), text)


def _mask_as_written(text: str) -> str:
    """`text` with every PAN of the text as written masked (see `mask_pans`)."""
    if _patterns(text.isascii())[1].search(text) is None:
        return text
    masked = text
    while (again := _mask_once(masked)) != masked:
        masked = again
    return masked


def mask_pans(text: str) -> str:
    """`text` with every PAN (module docstring) masked: BIN + stars + last 4 for a card on its own, every
    digit starred where Luhn-valid windows overlap. The text is read as written first (escapes as text:
    a card is masked where it stands before decoding can take its first digits into an escape), then
    decoded, the cards of that reading masked in it. Masking repeats until nothing PAN-shaped is left, so
    the digits a mask keeps can never form a card number with their neighbours. Text whose escapes hide
    a card comes back unescaped and masked; any other text keeps its escapes, and comes back as it was
    when neither reading holds a card."""
    written = _mask_as_written(text)
    if not has_escape(written):
        return written
    plain = unescape_digits(written)
    masked = _mask_as_written(plain)
    return written if masked == plain else masked


def _stars(text: str) -> set[int]:
    """Positions of the digits of `text` (as written) that `star_pan_digits` stars."""
    stars = set()
    for m in _patterns(text.isascii())[0].finditer(text):
        values, positions = _ascii_digits(m.group(0))
        for start, end, nested in _clusters(_luhn_windows(values)):
            shown = {*range(start, start + 6), *range(end - 4, end)} if nested else set()
            stars.update(m.start() + positions[k] for k in set(range(start, end)) - shown)
    return stars


def star_pan_digits(text: str) -> str:
    """`text` with the digits of every card number (as `mask_pans` finds them, read as written and
    decoded) starred in place, but for a lone card's BIN and last 4: the text keeps its length, so the
    pieces of a card cut in two (by a line break) can be masked piece by piece. A digit read from an
    escape is starred by starring each character of the escape. Repeats like `mask_pans`."""
    chars = list(text)
    while True:
        current = "".join(chars)
        stars = _stars(current)
        if not stars and has_escape(current):
            plain, starts = _decoded_spans(current)
            stars = {i for k in _stars(plain) for i in range(starts[k], starts[k + 1])}
        if not stars:
            return current
        for i in stars:
            chars[i] = "*"


def star_written_pans(text: str) -> str:
    """`text` with the digits of every card number of its reading as written (escapes as the text they
    are, never decoded) starred in place, but for a lone card's BIN and last 4; repeats like
    `star_pan_digits`. `text` itself when that reading holds no card."""
    if _patterns(text.isascii())[1].search(text) is None:
        return text
    chars = list(text)
    while stars := _stars("".join(chars)):
        for i in stars:
            chars[i] = "*"
    return "".join(chars)


def _holds_pan(text: str) -> bool:
    group, candidate = _patterns(text.isascii())
    if candidate.search(text) is None:
        return False
    return any(_luhn_windows(_ascii_digits(m.group(0))[0]) for m in group.finditer(text))


def contains_pan(text: str) -> bool:
    """True when `mask_pans` would change `text`: it holds a card as written or decoded."""
    return _holds_pan(text) or (has_escape(text) and _holds_pan(unescape_digits(text)))


def integral_digits(value: object) -> str | None:
    """The integral part of a number as digits, None when it is not a number or too small to hold a
    PAN. A number's fraction is a measurement (a PSI of 0.4539148803436467 is not a card), its integral
    part can be one (a card number in an int64 or float64 column)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | decimal.Decimal | np.number):
        return None
    if isinstance(value, float | np.floating | decimal.Decimal) and not math.isfinite(value):
        return None
    whole = abs(int(value))
    return str(whole) if whole >= _MIN_PAN_NUMBER else None


def mask_number(value: object) -> str | None:
    """The masked integral part of a number holding a PAN; None when the number is not one (keep it)."""
    digits = integral_digits(value)
    if digits is None or not contains_pan(digits):
        return None
    return mask_pans(digits)


def mask_value(value: object) -> object:
    """A cell of producer data made safe to show: numbers by their integral part, anything else as text."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return value
    if isinstance(value, int | float | decimal.Decimal | np.number | np.bool_):
        masked = mask_number(value)
        return value if masked is None else masked
    return mask_pans(value if isinstance(value, str) else str(value))


def mask_texts(values: Iterable[object]) -> list[object]:
    """`mask_pans` over many values: a vectorised RE2 pre-filter finds the few candidates, only those go
    through Python. None stays None; non-text values are masked as text."""
    items = list(values)
    texts = [None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in items]
    if not texts:
        return []
    hits = pc.fill_null(pc.match_substring_regex(pa.array(texts, type=pa.string()), PAN_PREFILTER_RE2), False)
    out: list[object] = list(items)
    for i in np.flatnonzero(hits.to_numpy(zero_copy_only=False)):
        out[i] = mask_pans(texts[i])
    return out


def normalise_pan(value: object) -> str | None:
    """ASCII digits, or None when the value cannot be a PAN (wrong length, letters, leading 0, bad Luhn).

    Light separators are dropped and digits of any script read as their value; an integral number (a
    PAN column typed int64 or float64 by a producer) is read as its digits."""
    if value is None or value is pd.NA or isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | float | decimal.Decimal | np.number):
        if isinstance(value, float | np.floating | decimal.Decimal) and (
            not math.isfinite(value) or value != int(value)
        ):
            return None
        digits = str(abs(int(value)))
    elif (text := str(value).strip()).isascii() and text.isdigit():
        digits = text  # the usual PAN; the general path below costs ~0.1 ms a value
    else:
        text = unescape_digits(text)
        values, _ = _ascii_digits(text)
        digits = "".join(map(str, values))
        rest = re.sub(separator_class(), "", re.sub(r"\d", "", text))
        if rest:
            return None
    return digits if luhn_valid(digits) and digits[0] != "0" else None


# What the key fingerprint is a keyed hash of: a constant, so it identifies a key without revealing it.
_FINGERPRINT_MESSAGE = b"fraud_assets/pan-key-fingerprint/v1"


class Tokenizer:
    """Keyed tokenisation. Tokens are stable for a key; rotating the key changes every token
    (docs/runbooks.md: rotate the PAN key)."""

    def __init__(self, key: str):
        if not key or len(key) < 16:
            raise ValueError(
                "FRAUD_PAN_KEY must be set to a secret of at least 16 characters "
                "(scripts/with-env generates a local demo key outside $FRAUD_DATA_DIR: docs/runbooks.md)."
            )
        self._key = key.encode()

    @property
    def fingerprint(self) -> str:
        """Identifies the key (HMAC of a constant), never reveals it: recorded beside the tokens it made."""
        return hmac.new(self._key, _FINGERPRINT_MESSAGE, hashlib.sha256).hexdigest()[:32]

    def token(self, normalised_pan: str) -> str:
        return hmac.new(self._key, normalised_pan.encode(), hashlib.sha256).hexdigest()

    def tokenise_series(self, pans: pd.Series) -> pd.DataFrame:
        """card_token, pan_bin, pan_last4, pan_valid for a column of raw PAN values (text or numbers).

        Tokenises each distinct value once: a day has millions of rows but few distinct cards.
        Invalid PANs get no token (None) and pan_valid False; their digits are never returned.
        """
        codes, uniques = pd.factorize(pans, use_na_sentinel=True)
        norm = [normalise_pan(u) for u in uniques]
        tok = np.array([self.token(n) if n else None for n in norm] + [None], dtype=object)
        bins = np.array([n[:6] if n else None for n in norm] + [None], dtype=object)
        last4 = np.array([n[-4:] if n else None for n in norm] + [None], dtype=object)
        idx = np.where(codes < 0, len(norm), codes)
        return pd.DataFrame(
            {"card_token": tok[idx], "pan_bin": bins[idx], "pan_last4": last4[idx]},
            index=pans.index,
        ).assign(pan_valid=lambda d: d["card_token"].notna())
