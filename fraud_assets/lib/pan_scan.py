"""Searching a whole deployment for card numbers, for operators after an incident and for the tests that
prove none escaped (issue 13's acceptance).

`scan_deployment` reads, with the independent detector of `fraud_assets.lib.pan_leaks`:
- every DuckDB database and Parquet file under the data directory: every table, every column, any type
  (numbers by their integral part);
- every other file there and under DAGSTER_HOME: SQLite databases (Dagster's runs, event log, sensor
  cursors and ticks when the instance uses SQLite) table by table, zip archives (model artifacts) member
  by member, anything else as text (compute logs, the alerts outbox, dagster.yaml);
- the Dagster instance through its API, whatever its storage (Postgres too): run tags and config, every
  run's event log, sensor and schedule cursors and their ticks.
`landing/` and `ground_truth/` hold PANs by design (the producers' files, the simulator's answers): they
are left out unless asked for.

Two modes. With `pans` (the input's card numbers, e.g. from `collect_pans` over the landing zone), a
value matches when one of them appears among its digits (separators dropped, any script's digits):
precise, what an acceptance test wants. Without, any Luhn-valid window matches, except in the
platform's own digest columns: thorough but noisy on Dagster's storage, whose clock readings
(`1764694441.123456`) pass Luhn now and then. Findings name where and how many, with a masked sample:
the scan itself never prints a card number.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sqlite3
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from fraud_assets.lib.pan import mask_pans
from fraud_assets.lib.pan_leaks import decoded_text, digit_groups, luhn_windows, pans_in, scan_expression
from fraud_assets.lib.provenance import LEAK_SCAN_EXEMPT_COLUMNS

EXCLUDED_BY_DEFAULT = ("landing", "ground_truth")
_CHUNK = 4 << 20
_OVERLAP = 256
_MAX_MEMBER_BYTES = 256 << 20
# Any number of characters that are neither letters (but the Hangul fillers, letters that show nothing),
# digits, `,;:` nor line breaks between 13+ digits: wider than the PAN shape, so the detector sees every
# candidate. Text is read with its escapes decoded (`decoded_text`), and as written (`_text_hits`).
_GAP = r"(?:[^\w,;:\n\r\v\f]|[\u115f\u1160\u3164\uffa0])"
_TEXT_CANDIDATE = re.compile(rf"\d(?:{_GAP}*\d){{12,}}")
_SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass(frozen=True)
class Finding:
    source: str  # duckdb, parquet, sqlite, zip, file, dagster
    location: str  # path and table.column, or run id and field
    count: int  # matching values (rows) found there
    sample: str  # the first matching value, card numbers masked, shortened

    def __str__(self) -> str:
        return f"{self.source} {self.location}: {self.count} value(s), e.g. {self.sample!r}"


Matcher = Callable[[str], bool]


def holds_any(text: str, pans: set[str]) -> bool:
    """True when one of `pans` appears among the digits of a digit group of `text` (separators dropped,
    any script's digits): how a given card number is looked for."""
    lengths = {len(p) for p in pans}
    for group in digit_groups(text):
        for n in lengths:
            if any(group[i : i + n] in pans for i in range(len(group) - n + 1)):
                return True
    return False


def _matcher(pans: Iterable[str] | None) -> Matcher:
    if pans is None:
        return lambda text: bool(pans_in(text))
    wanted = {p for p in pans if p}
    return lambda text: holds_any(text, wanted)


def _sample(text: str) -> str:
    masked = mask_pans(text)
    return masked if len(masked) <= 120 else masked[:117] + "..."


# Digits (and the gaps between them) where a hit's context window cuts the text: the rest of a
# neighbouring card, too short for `mask_pans` to recognise (its BIN and middle digits, say), starred.
_CUT_HEAD = re.compile(rf"^(?:{_GAP}*\d)+")
_CUT_TAIL = re.compile(rf"(?:\d{_GAP}*)+$")
_CONTEXT = 40


def _star_digits(m: re.Match) -> str:
    return re.sub(r"\d", "*", m.group(0))


def _text_hits(text: str, match: Matcher) -> Iterator[str]:
    """The hits of `text` read with its escapes decoded; when that reading has none, as written (an
    escape whose hex digits begin a card written after it takes the card's first digit away from the
    decoded reading). A hit comes with its context, cut digits starred."""
    decoded = decoded_text(text)
    found = False
    for hit in _hits(decoded, match):
        found = True
        yield hit
    if not found and decoded != text:
        yield from _hits(text, match)


def _hits(text: str, match: Matcher) -> Iterator[str]:
    for m in _TEXT_CANDIDATE.finditer(text):
        if match(m.group(0)):
            lo, hi = max(m.start() - _CONTEXT, 0), m.end() + _CONTEXT
            head, tail = text[lo : m.start()], text[m.end() : hi]
            if lo > 0:
                head = _CUT_HEAD.sub(_star_digits, head)
            if hi < len(text):
                tail = _CUT_TAIL.sub(_star_digits, tail)
            yield head + m.group(0) + tail


def _scan_values(values: Iterable[object], match: Matcher) -> tuple[int, str | None]:
    count, sample = 0, None
    for value in values:
        if value is None:
            continue
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        hit = next(_text_hits(text, match), None)
        if hit is not None:
            count += 1
            sample = sample or _sample(hit)
    return count, sample


def _scan_relation(
    conn: duckdb.DuckDBPyConnection, relation: str, label: str, source: str, match: Matcher, any_pan: bool
) -> list[Finding]:
    findings = []
    for name, column_type, *_ in conn.execute(f"DESCRIBE {relation}").fetchall():
        if any_pan and name in LEAK_SCAN_EXEMPT_COLUMNS:
            continue
        # scan_expression reads a number by its integral part only: the fraction digits of a coordinate
        # or a rate pass Luhn as often as any digits do, and no card number hides behind a decimal point.
        expression = scan_expression(name, column_type)
        if expression is None:
            continue
        expr = expression[0]
        rows = conn.execute(f"SELECT DISTINCT {expr} FROM {relation} WHERE length({expr}) >= 13").fetchall()
        count, sample = _scan_values((r[0] for r in rows), match)
        if count:
            findings.append(Finding(source, f"{label}.{name}", count, sample or ""))
    return findings


@contextlib.contextmanager
def _readable_duckdb(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection; on a copy when a writer holds the file."""
    try:
        conn = duckdb.connect(str(path), read_only=True)
    except duckdb.IOException:
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / path.name
            shutil.copy2(path, copy)
            wal = path.with_name(path.name + ".wal")
            if wal.exists():
                shutil.copy2(wal, copy.with_name(copy.name + ".wal"))
            conn = duckdb.connect(str(copy))
            try:
                yield conn
            finally:
                conn.close()
        return
    try:
        yield conn
    finally:
        conn.close()


def scan_duckdb(path: Path, match: Matcher, any_pan: bool) -> list[Finding]:
    findings = []
    with _readable_duckdb(path) as conn:
        tables = conn.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()
        for schema, table in tables:
            relation = f'"{schema}"."{table}"'
            findings += _scan_relation(conn, relation, f"{path}:{schema}.{table}", "duckdb", match, any_pan)
    return findings


def scan_parquet(path: Path, match: Matcher, any_pan: bool) -> list[Finding]:
    with duckdb.connect() as conn:
        literal = str(path).replace("'", "''")
        conn.execute(f"CREATE VIEW p AS SELECT * FROM read_parquet('{literal}')")
        return _scan_relation(conn, "p", str(path), "parquet", match, any_pan)


def scan_sqlite(path: Path, match: Matcher) -> list[Finding]:
    findings = []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            cols = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
            for col in cols:
                values = (r[0] for r in conn.execute(f'SELECT "{col}" FROM "{table}"'))
                count, sample = _scan_values(values, match)
                if count:
                    findings.append(Finding("sqlite", f"{path}:{table}.{col}", count, sample or ""))
    finally:
        conn.close()
    return findings


def _scan_stream(read: Callable[[int], bytes], label: str, source: str, match: Matcher) -> list[Finding]:
    count, sample, tail = 0, None, ""
    while chunk := read(_CHUNK):
        text = tail + chunk.decode("utf-8", "replace")
        for hit in _text_hits(text, match):
            count += 1
            sample = sample or _sample(hit)
        tail = text[-_OVERLAP:]
    return [Finding(source, label, count, sample or "")] if count else []


def _capped(read: Callable[[int], bytes]) -> Callable[[int], bytes]:
    """`read`, ending after `_MAX_MEMBER_BYTES`: a compressed member is scanned, never unpacked whole."""
    left = [_MAX_MEMBER_BYTES]

    def capped(n: int) -> bytes:
        data = read(min(n, left[0]))
        left[0] -= len(data)
        return data

    return capped


class _Gunzip:
    """A gzip file's content as far as it decodes, member after member. A truncated or corrupt file (the
    landing zone keeps the ones the raw register rejects) is read up to where it breaks: its readable part
    can hold card numbers too, and one broken file must not stop the whole scan."""

    def __init__(self, fh) -> None:
        self._fh = fh
        self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""  # compressed bytes not yet inflated
        self._ended = False

    def read(self, n: int) -> bytes:
        """Up to `n` bytes, fewer only at the end (as a file's read: a card number is cut only at `n`)."""
        parts: list[bytes] = []
        while n > 0 and (part := self._read_some(n)):
            parts.append(part)
            n -= len(part)
        return b"".join(parts)

    def _read_some(self, n: int) -> bytes:
        while not self._ended:
            if not self._pending:
                self._pending = self._fh.read(_CHUNK)
                if not self._pending:
                    self._ended = True
                    break
            try:
                out = self._inflate.decompress(self._pending, n)
            except zlib.error:
                self._ended = True
                break
            self._pending = self._inflate.unconsumed_tail
            if self._inflate.eof:  # a next member may follow
                self._pending = self._inflate.unused_data + self._pending
                self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
            if out:
                return out
        return b""


def scan_file(path: Path, match: Matcher, any_pan: bool) -> list[Finding]:
    """One file, read the way its format needs (see the module docstring)."""
    with path.open("rb") as fh:
        head = fh.read(16)
    if head[8:12] == b"DUCK":
        return scan_duckdb(path, match, any_pan)
    if head.startswith(_SQLITE_MAGIC):
        return scan_sqlite(path, match)
    if head.startswith(b"PAR1"):
        return scan_parquet(path, match, any_pan)
    if zipfile.is_zipfile(path):
        findings = []
        with zipfile.ZipFile(path) as zf:
            for member in zf.infolist():
                with zf.open(member) as fh:
                    findings += _scan_stream(_capped(fh.read), f"{path}!{member.filename}", "zip", match)
        return findings
    if head.startswith(b"\x1f\x8b"):
        with path.open("rb") as fh:
            return _scan_stream(_capped(_Gunzip(fh).read), str(path), "file", match)
    with path.open("rb") as fh:
        return _scan_stream(fh.read, str(path), "file", match)


def _files(root: Path, excluded: tuple[str, ...]) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).parts
        if rel and rel[0] in excluded:
            continue
        if path.is_file() and not path.is_symlink() and not path.name.endswith(".wal"):
            yield path


def scan_instance(instance, match: Matcher) -> list[Finding]:
    """Run tags and config, event logs, sensor/schedule cursors and ticks, through Dagster's API."""
    import dagster as dg  # on use: scanning files and warehouses does not need it

    findings: list[Finding] = []

    def check(location: str, values: Iterable[object]) -> None:
        count, sample = _scan_values(values, match)
        if count:
            findings.append(Finding("dagster", location, count, sample or ""))

    for record in instance.get_run_records():
        run = record.dagster_run
        check(f"run {run.run_id} tags", [f"{k}={v}" for k, v in run.tags.items()])
        check(f"run {run.run_id} config", [json.dumps(run.run_config, default=str)])
        check(f"run {run.run_id} event log", (dg.serialize_value(e) for e in instance.all_logs(run.run_id)))
    for state in instance.all_instigator_state():
        data = state.instigator_data
        check(f"{state.instigator_name} cursor", [getattr(data, "cursor", None)])
        ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=10_000)
        check(f"{state.instigator_name} ticks", (dg.serialize_value(t.tick_data) for t in ticks))
    return findings


def scan_deployment(
    data_dir: Path,
    dagster_home: Path | None = None,
    instance=None,
    pans: Iterable[str] | None = None,
    include: tuple[str, ...] = (),
) -> list[Finding]:
    """Every place of a deployment that holds `pans` (or, without them, any card number).

    `include` adds folders of the data directory left out by default (`landing`, `ground_truth`)."""
    match = _matcher(pans)
    any_pan = pans is None
    excluded = tuple(d for d in EXCLUDED_BY_DEFAULT if d not in include)
    findings: list[Finding] = []
    roots = [(Path(data_dir), excluded)]
    if dagster_home is not None:
        roots.append((Path(dagster_home), ()))
    for root, skip in roots:
        if root.exists():
            for path in _files(root, skip):
                findings += scan_file(path, match, any_pan)
    if instance is not None:
        findings += scan_instance(instance, match)
    return findings


def collect_pans(paths: Iterable[Path]) -> set[str]:
    """The card numbers (clear, in memory only) the given files hold, read as `scan_deployment` reads
    them: for a test, the PANs a landing zone delivered. With the Luhn-valid runs inside each card
    (`luhn_windows`, not `pans_in`'s one per card): a copy cut to such a run elsewhere still matches."""
    found: set[str] = set()

    def record(text: str) -> bool:
        found.update(w for group in digit_groups(text) for w in luhn_windows(group))
        return False

    for path in paths:
        if path.is_file() and not path.is_symlink():
            scan_file(path, record, any_pan=False)
    return found
