"""Splitting landed text into rows, as received, and replacing the PAN by its token.

Raw keeps values as received (VARCHAR): typing, units, time zones and currency are the cleaned layer's
job. Here a line either splits into the feed's fields or is kept as a malformed row with its reason
and a masked copy of the line, so every landed line is one raw row (the reconciliation relies on it).
The clear PAN is replaced by `card_token`/`pan_bin`/`pan_last4`/`pan_valid` (+ `pan_masked` for
invalid ones) before the frame leaves this module; CVV/track data and unknown fields are dropped.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fraud_assets.lib.pan import PAN_PREFILTER_RE2, Tokenizer, mask_pans

# Canonical authorisation columns (acq_a names), in table order; `pan` never reaches a table.
AUTH_COLUMNS = (
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
)
# The declared column mapping of processor B's drifted schema (docs/landing-zone.md).
ACQ_B_MAPPING = {
    "txn_ref": "transaction_id",
    "local_time": "tx_datetime",
    "card_number": "pan",
    "term_id": "terminal_id",
    "amount_minor": "amount",
    "ccy": "currency",
    "chan": "channel",
    "tds": "three_ds",
    "msg": "message_type",
    "orig_ref": "original_transaction_id",
}
CHARGEBACK_COLUMNS = (
    "chargeback_id",
    "transaction_id",
    "pan",
    "tx_datetime",
    "reported_at",
    "reason_code",
    "amount",
    "currency",
)
FX_COLUMNS = ("rate_date", "base_currency", "quote_currency", "rate")
TOKEN_COLUMNS = ("card_token", "pan_bin", "pan_last4", "pan_valid", "pan_masked")
# A legitimate authorisation line is ~150 characters; anything this long is junk, and is not fed to
# the csv/json parsers (csv refuses fields over 128 KiB with an exception).
MAX_LINE_CHARS = 4096
RAW_LINE_KEEP = 256  # characters of a malformed line kept (after masking) for investigators

_PAN_RUN = PAN_PREFILTER_RE2  # RE2: a digit group of 13+ digits (fraud_assets.lib.pan)

MALFORMED_FIELD_COUNT = "wrong_field_count"
MALFORMED_JSON = "invalid_json"
MALFORMED_NOT_OBJECT = "not_a_json_object"
MALFORMED_TOO_LONG = "line_too_long"
MALFORMED_CSV = "unparseable_csv"


def mask_line(line: str) -> str:
    """Masked first, truncated second: truncating first could leave half a PAN unmasked."""
    masked = mask_pans(line)
    return masked if len(masked) <= RAW_LINE_KEEP else masked[:RAW_LINE_KEEP] + "...[truncated]"


def _frame(columns: tuple[str, ...], values: dict[str, list], malformed: list, masked: list) -> pd.DataFrame:
    df = pd.DataFrame({c: pd.Series(values[c], dtype=object) for c in columns})
    df.insert(0, "row_number", np.arange(1, len(df) + 1, dtype=np.int64))
    df["malformed_reason"] = pd.Series(malformed, dtype=object)
    df["raw_line_masked"] = pd.Series(masked, dtype=object)
    return df


def _split(lines: list[str], columns: tuple[str, ...], parse: Callable[[str], list | str]) -> pd.DataFrame:
    """One row per line: `parse(line)` gives the line's values in `columns` order, or the reason it is
    malformed; a malformed line keeps no values and a masked copy of its text."""
    values: dict[str, list] = {c: [] for c in columns}
    by_position = list(values.values())
    malformed: list[str | None] = []
    masked: list[str | None] = []
    for line in lines:
        row = MALFORMED_TOO_LONG if len(line) > MAX_LINE_CHARS else parse(line)
        if isinstance(row, str):
            for col in by_position:
                col.append(None)
            malformed.append(row)
            masked.append(mask_line(line))
            continue
        for col, v in zip(by_position, row, strict=True):
            col.append(v)
        malformed.append(None)
        masked.append(None)
    return _frame(columns, values, malformed, masked)


def split_csv(lines: list[str], columns: tuple[str, ...]) -> pd.DataFrame:
    """Rows of a CSV feed (first line = header, column order free). Row numbers count data rows from 1."""
    header = [c.strip() for c in next(csv.reader([lines[0]]))]
    pos = [header.index(c) if c in header else None for c in columns]
    width = len(header)

    def parse(line: str) -> list | str:
        try:
            row = next(csv.reader([line]))
        except csv.Error:
            return MALFORMED_CSV
        if len(row) != width:
            return MALFORMED_FIELD_COUNT
        return [row[i] if i is not None else None for i in pos]

    return _split(lines[1:], columns, parse)


def _as_text(v: object) -> str | None:
    if v is None:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, bool | dict | list):
        return json.dumps(v)
    return str(v)


def split_jsonl(lines: list[str], mapping: dict[str, str]) -> pd.DataFrame:
    """Rows of a JSON Lines feed, keys renamed to canonical columns by `mapping`."""

    def parse(line: str) -> list | str:
        try:
            obj = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            return MALFORMED_JSON
        if not isinstance(obj, dict):
            return MALFORMED_NOT_OBJECT
        return [_as_text(obj.get(key)) for key in mapping]

    return _split(lines, tuple(mapping.values()), parse)


def _mask_invalid(value: object) -> str | None:
    """An invalid PAN shown to investigators: BIN and last 4 at most, never the middle digits."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value)
    digits = "".join(ch for ch in text if ch.isdigit())
    if len(digits) >= 13:
        return f"{digits[:6]}{'*' * (len(digits) - 10)}{digits[-4:]}"
    return "*" * len(text)


# Hex digests: about 1 in 200 SHA-256 hex strings holds a Luhn-valid 13-digit run by chance.
HASH_COLUMNS = ("file_sha256",)


def scrub(
    df: pd.DataFrame, skip: tuple[str, ...] = ("pan", *TOKEN_COLUMNS, *HASH_COLUMNS, "raw_line_masked")
) -> pd.DataFrame:
    """Mask any PAN-shaped value that arrived in a non-PAN field (a producer's column mix-up).

    Token and hash columns are ours, not the producer's: masking them would corrupt lineage.

    A vectorised RE2 pre-filter (pyarrow) finds the few values with 13+ digits in a row; only those
    go through the Luhn-aware `mask_pans`."""
    for col in df.columns:
        if (
            col in skip
            or df[col].dtype != object
            or pd.api.types.infer_dtype(df[col]) not in ("string", "empty")
        ):
            continue
        arr = pa.array(df[col].to_numpy(dtype=object), type=pa.string(), from_pandas=True)
        hit = pc.fill_null(pc.match_substring_regex(arr, _PAN_RUN), False).to_numpy(zero_copy_only=False)
        if hit.any():
            df.loc[hit, col] = [mask_pans(v) for v in df.loc[hit, col]]
    return df


def tokenise(df: pd.DataFrame, tokenizer: Tokenizer, pan_column: str = "pan") -> pd.DataFrame:
    """Replace the clear PAN column by token columns; the returned frame holds no PAN."""
    pans = df[pan_column].astype(object)
    tok = tokenizer.tokenise_series(pans)
    invalid = ~tok["pan_valid"] & pans.notna()
    masked = pd.Series(None, index=df.index, dtype=object)
    if invalid.any():
        masked[invalid] = [_mask_invalid(v) for v in pans[invalid]]
    out = scrub(df.drop(columns=[pan_column]))
    pos = list(df.columns).index(pan_column)
    for i, col in enumerate(TOKEN_COLUMNS):
        out.insert(pos + i, col, tok[col] if col != "pan_masked" else masked)
    return out


def parse_authorizations(lines: list[str], feed: str) -> pd.DataFrame:
    """Canonical rows (with `pan`, still clear: call `tokenise` next) of one authorisation file."""
    if feed == "acq_b":
        df = split_jsonl(lines, ACQ_B_MAPPING)
    else:
        df = split_csv(lines, AUTH_COLUMNS)
    return df[["row_number", *AUTH_COLUMNS, "malformed_reason", "raw_line_masked"]]
