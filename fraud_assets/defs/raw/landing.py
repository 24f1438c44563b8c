"""Reading landing files (docs/landing-zone.md): decoding, and why a file's content is refused.

Pure functions over bytes, no Dagster: the register asset and the tests both use them. A file is
either readable (`decode_text` returns its lines / `read_parquet` its frame) or refused with one of
the `REJECT_*` reasons below; nothing here raises on a bad file. Names, paths and hashes are
`fraud_assets.lib.landing` (re-exported here for the raw layer's callers).
"""

from __future__ import annotations

import gzip
import io
import zlib

import pandas as pd
import pyarrow.parquet as pq

from fraud_assets.defs.raw.parsers import AUTH_COLUMNS
from fraud_assets.lib.landing import (  # noqa: F401 - the raw layer's view of the naming rules
    EXTENSIONS,
    FEEDS,
    REJECT_NAME,
    SOURCES,
    LandingFile,
    classify,
    discover,
    is_ignored,
)
from fraud_assets.lib.landing import sha256_bytes as sha256  # noqa: F401

# Columns a CSV feed's header must carry (order free, names exact); acq_a carries the whole canonical
# schema the parser reads.
REQUIRED_COLUMNS = {
    "acq_a": AUTH_COLUMNS,
    "chargebacks": ("chargeback_id", "transaction_id", "pan", "tx_datetime", "reported_at", "reason_code"),
    "fx_rates": ("rate_date", "quote_currency", "rate"),
    "cardholders": ("customer_id", "pan"),
    "merchants": ("terminal_id", "merchant_id", "timezone"),
}

REJECT_EMPTY = "empty_file"
REJECT_TRUNCATED = "truncated_gzip"
REJECT_NOT_GZIP = "not_gzip"
REJECT_ENCODING = "wrong_encoding"
REJECT_BINARY = "binary_content"
REJECT_HEADER_ONLY = "header_only"
REJECT_BAD_HEADER = "missing_columns"
REJECT_PARQUET = "unreadable_parquet"


def decompress(data: bytes, ext: str) -> tuple[bytes | None, str | None]:
    if not ext.endswith("gz"):
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
    if lf.ext == "parquet":
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
    if lf.ext and lf.ext.startswith("csv"):
        required = set(REQUIRED_COLUMNS.get(lf.feed or "", ()))
        if required - set(csv_header(lines[0])):
            return 0, REJECT_BAD_HEADER
        if len(lines) == 1:
            return 0, REJECT_HEADER_ONLY
        return len(lines) - 1, None
    return len(lines), None
