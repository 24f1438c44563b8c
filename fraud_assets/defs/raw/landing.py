"""Reading the landing zone (docs/landing-zone.md): names, hashes, decoding, and why a file is refused.

Pure functions over paths and bytes, no Dagster: the register asset and the tests both use them.
A file is either readable (`decode_text` returns its lines / `read_parquet` its frame) or refused
with one of the `REJECT_*` reasons below; nothing here raises on a bad file.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

SOURCES = ("authorizations", "chargebacks", "cardholders", "merchants", "fx_rates")
FEEDS = {
    "authorizations": ("acq_a", "acq_b"),
    "chargebacks": ("chargebacks",),
    "cardholders": ("cardholders",),
    "merchants": ("merchants",),
    "fx_rates": ("fx_rates",),
}
# Allowed extensions per feed; authorisation feeds may arrive uncompressed too.
EXTENSIONS = {
    "acq_a": (".csv.gz", ".csv"),
    "acq_b": (".jsonl.gz", ".jsonl"),
    "chargebacks": (".csv",),
    "cardholders": (".parquet",),
    "merchants": (".parquet",),
    "fx_rates": (".csv",),
}
# Columns a CSV feed's header must carry (order free, names exact).
REQUIRED_COLUMNS = {
    "acq_a": (
        "transaction_id",
        "tx_datetime",
        "pan",
        "terminal_id",
        "amount",
        "currency",
        "channel",
        "three_ds",
        "message_type",
        "original_transaction_id",
    ),
    "chargebacks": ("chargeback_id", "transaction_id", "pan", "tx_datetime", "reported_at", "reason_code"),
    "fx_rates": ("rate_date", "quote_currency", "rate"),
    "cardholders": ("customer_id", "pan"),
    "merchants": ("terminal_id", "merchant_id", "timezone"),
}

REJECT_NAME = "unrecognised_name"
REJECT_EMPTY = "empty_file"
REJECT_TRUNCATED = "truncated_gzip"
REJECT_NOT_GZIP = "not_gzip"
REJECT_ENCODING = "wrong_encoding"
REJECT_BINARY = "binary_content"
REJECT_HEADER_ONLY = "header_only"
REJECT_BAD_HEADER = "missing_columns"
REJECT_PARQUET = "unreadable_parquet"

_NAME = re.compile(
    r"^(?P<feed>[a-z_]+?)_(?P<date>\d{4}-\d{2}-\d{2})(?:_(?P<suffix>[^/]*?))?(?P<ext>\.[a-z.]+)$"
)


@dataclass(frozen=True)
class LandingFile:
    path: Path
    source_file: str  # relative to the landing root, forward slashes
    source: str | None
    feed: str | None
    landing_date: dt.date | None
    business_date: dt.date | None
    ext: str | None
    name_error: str | None  # None when the name follows the contract


def _parse_date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def is_ignored(path: Path) -> bool:
    """Files still being written (contract: atomic rename) are not there yet."""
    return path.name.startswith(".") or path.name.endswith((".tmp", ".part"))


def classify(root: Path, path: Path) -> LandingFile:
    rel = path.relative_to(root).as_posix()
    parts = rel.split("/")
    bad = LandingFile(
        path, rel, parts[0] if parts[0] in SOURCES else None, None, None, None, None, REJECT_NAME
    )
    if len(parts) != 3 or parts[0] not in SOURCES:
        return bad
    source, landing, name = parts
    landing_date = _parse_date(landing)
    m = _NAME.match(name)
    if landing_date is None or m is None:
        return bad
    feed, ext = m["feed"], m["ext"]
    business_date = _parse_date(m["date"])
    if feed not in FEEDS[source] or ext not in EXTENSIONS[feed] or business_date is None:
        return bad
    return LandingFile(path, rel, source, feed, landing_date, business_date, ext, None)


def discover(root: Path) -> list[LandingFile]:
    """Every landing file (not in-flight ones), in a stable order."""
    if not root.exists():
        return []
    files = [p for p in root.rglob("*") if p.is_file() and not is_ignored(p)]
    return [classify(root, p) for p in sorted(files)]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decompress(data: bytes, ext: str) -> tuple[bytes | None, str | None]:
    if not ext.endswith(".gz"):
        return data, None
    if data[:2] != b"\x1f\x8b":
        return None, REJECT_NOT_GZIP
    try:
        return gzip.decompress(data), None
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError):
        return None, REJECT_TRUNCATED


def decode_text(data: bytes, ext: str) -> tuple[list[str] | None, str | None]:
    """Lines of a text feed (blank lines dropped), or a rejection reason."""
    if not data:
        return None, REJECT_EMPTY
    raw, reason = decompress(data, ext)
    if raw is None:
        return None, reason
    if not raw.strip():
        return None, REJECT_EMPTY
    if b"\x00" in raw:
        return None, REJECT_BINARY
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, REJECT_ENCODING
    text = text.removeprefix("\ufeff")
    lines = [ln.rstrip("\r") for ln in text.split("\n")]
    return [ln for ln in lines if ln.strip()], None


def read_parquet(data: bytes) -> tuple[pd.DataFrame | None, str | None]:
    if not data:
        return None, REJECT_EMPTY
    try:
        return pq.read_table(io.BytesIO(data)).to_pandas(), None
    except Exception:  # noqa: BLE001 - any parse failure means the file is unreadable
        return None, REJECT_PARQUET


def csv_header(line: str) -> list[str]:
    import csv

    return [c.strip() for c in next(csv.reader([line]))]


def readable_rows(lf: LandingFile, data: bytes) -> tuple[int, str | None]:
    """(rows landed, rejection reason) for a file: the count the raw layer must reconcile to."""
    if lf.ext == ".parquet":
        df, reason = read_parquet(data)
        if df is None:
            return 0, reason
        missing = set(REQUIRED_COLUMNS.get(lf.feed or "", ())) - set(df.columns)
        if missing:
            return 0, REJECT_BAD_HEADER
        return len(df), None
    lines, reason = decode_text(data, lf.ext or "")
    if lines is None:
        return 0, reason
    if lf.ext and ".csv" in lf.ext:
        required = set(REQUIRED_COLUMNS.get(lf.feed or "", ()))
        if required - set(csv_header(lines[0])):
            return 0, REJECT_BAD_HEADER
        if len(lines) == 1:
            return 0, REJECT_HEADER_ONLY
        return len(lines) - 1, None
    return len(lines), None
