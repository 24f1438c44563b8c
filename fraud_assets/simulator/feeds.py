"""Rendering rows the way each feed delivers them (docs/landing-zone.md), vectorised with pyarrow.

Authorisation rows travel as `Rows` (a dict of equal-length numpy arrays, typed), are rendered to
one text line each (no newline), and joined into a file. Values never contain a separator or a
quote except the tolerated comma decimal, which is quoted.
"""

from __future__ import annotations

import gzip
import io

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

Rows = dict[str, np.ndarray]

ROW_FIELDS = (
    "transaction_id",  # int64
    "utc",  # datetime64[s]
    "local",  # datetime64[s], terminal local time
    "pan",  # object (str)
    "terminal_id",  # int64, -1 = missing
    "amount_minor",  # int64, signed, minor units of the currency
    "exponent",  # int64, 0 or 2
    "currency",  # object
    "channel",  # object: card_present | ecommerce
    "three_ds",  # object: Y N A U or ""
    "message_type",  # object: auth | reversal
    "original_transaction_id",  # int64, -1 = none
)

ACQ_A_HEADER = (
    "transaction_id,tx_datetime,pan,terminal_id,amount,currency,channel,three_ds,message_type,"
    "original_transaction_id"
)
CHARGEBACK_HEADER = "chargeback_id,transaction_id,pan,tx_datetime,reported_at,reason_code,amount,currency"
FX_HEADER = "rate_date,base_currency,quote_currency,rate"
GZIP_LEVEL = 3

ISO_UTC = "%Y-%m-%dT%H:%M:%SZ"
DDMM_LOCAL = "%d/%m/%Y %H:%M:%S"


def take(rows: Rows, idx: np.ndarray) -> Rows:
    return {k: v[idx] for k, v in rows.items()}


def concat(parts: list[Rows]) -> Rows:
    return {k: np.concatenate([p[k] for p in parts]) for k in ROW_FIELDS}


def _s(values: np.ndarray) -> pa.Array:
    if values.dtype == object:
        return pa.array(values, type=pa.string())
    return pc.cast(pa.array(values), pa.string())


def _timestamps(values: np.ndarray, fmt: str) -> pa.Array:
    return pc.strftime(pa.array(values.astype("datetime64[s]")), format=fmt)


def amount_text(minor: np.ndarray, exponent: np.ndarray, comma: np.ndarray | None = None) -> pa.Array:
    """Major units with '.' (or a quoted ',' where `comma`), no decimals for exponent 0."""
    magnitude = np.abs(minor)
    scale = 10**exponent
    major = _s(magnitude // scale)
    frac = pc.utf8_lpad(_s(magnitude % scale), 2, "0")
    sep = pa.array(np.where(comma, ",", ".") if comma is not None else np.full(len(minor), "."))
    text = pc.if_else(pa.array(exponent == 0), major, pc.binary_join_element_wise(major, sep, frac, ""))
    text = pc.if_else(pa.array(minor < 0), pc.binary_join_element_wise("-", text, ""), text)
    if comma is not None and comma.any():
        text = pc.if_else(pa.array(comma), pc.binary_join_element_wise('"', text, '"', ""), text)
    return text


def _optional_id(values: np.ndarray, missing: str, quote: bool = False) -> pa.Array:
    text = _s(values)
    if quote:
        text = pc.binary_join_element_wise('"', text, '"', "")
    return pc.if_else(pa.array(values < 0), pa.scalar(missing), text)


def render_acq_a(rows: Rows, comma: np.ndarray) -> np.ndarray:
    """CSV lines in ACQ_A_HEADER order."""
    line = pc.binary_join_element_wise(
        _s(rows["transaction_id"]),
        _timestamps(rows["utc"], ISO_UTC),
        _s(rows["pan"]),
        _optional_id(rows["terminal_id"], ""),
        amount_text(rows["amount_minor"], rows["exponent"], comma),
        _s(rows["currency"]),
        _s(rows["channel"]),
        _s(rows["three_ds"]),
        _s(rows["message_type"]),
        _optional_id(rows["original_transaction_id"], ""),
        ",",
    )
    return line.to_numpy(zero_copy_only=False)


def render_acq_b(rows: Rows) -> np.ndarray:
    """JSON Lines in processor B's drifted schema: local dd/mm time, minor units, codes."""
    chan = rows["channel"].copy()
    chan[chan == "card_present"] = "CP"
    chan[chan == "ecommerce"] = "ECOM"
    tds = rows["three_ds"]
    tds_json = pc.if_else(
        pa.array(tds == ""), pa.scalar("null"), pc.binary_join_element_wise('"', _s(tds), '"', "")
    )
    msg = np.where(rows["message_type"] == "reversal", "0400", "0100").astype(object)
    line = pc.binary_join_element_wise(
        '{"txn_ref":"',
        _s(rows["transaction_id"]),
        '","local_time":"',
        _timestamps(rows["local"], DDMM_LOCAL),
        '","card_number":"',
        _s(rows["pan"]),
        '","term_id":',
        _optional_id(rows["terminal_id"], "null"),
        ',"amount_minor":',
        _s(rows["amount_minor"]),
        ',"ccy":"',
        _s(rows["currency"]),
        '","chan":"',
        _s(chan),
        '","tds":',
        tds_json,
        ',"msg":"',
        _s(msg),
        '","orig_ref":',
        _optional_id(rows["original_transaction_id"], "null", quote=True),
        "}",
        "",
    )
    return line.to_numpy(zero_copy_only=False)


def text_file(lines: np.ndarray | list[str], header: str | None = None) -> bytes:
    body = "\n".join(lines)
    text = f"{header}\n{body}\n" if header is not None else f"{body}\n"
    return text.encode("utf-8")


def gzip_bytes(data: bytes) -> bytes:
    """Same input, same bytes: no file name, mtime 0."""
    return gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)


def render_chargebacks(
    chargeback_id: np.ndarray,
    transaction_id: np.ndarray,
    pan: np.ndarray,
    tx_datetime: np.ndarray,
    reported_at: np.ndarray,
    reason_code: np.ndarray,
    amount_minor: np.ndarray,
    exponent: np.ndarray,
    currency: np.ndarray,
) -> bytes:
    line = pc.binary_join_element_wise(
        _s(chargeback_id),
        _s(transaction_id),
        _s(pan),
        _timestamps(tx_datetime, ISO_UTC),
        _timestamps(reported_at, ISO_UTC),
        _s(reason_code),
        amount_text(amount_minor, exponent),
        _s(currency),
        ",",
    )
    return text_file(line.to_numpy(zero_copy_only=False), CHARGEBACK_HEADER)


def render_fx(rate_date: str, quotes: list[str], rates: list[float], decimals: int) -> bytes:
    lines = [f"{rate_date},EUR,{q},{r:.{decimals}f}" for q, r in zip(quotes, rates, strict=True)]
    return text_file(lines, FX_HEADER)


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()
