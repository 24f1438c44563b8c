"""Cleaning authorisations: raw rows as received -> typed EUR/UTC transactions + quarantine.

Pure pandas, vectorised per column (no per-row Python): the asset feeds it a chunk of business dates.

Rules, in the order they are applied (a row gets the FIRST reason that applies):
  malformed_line, invalid_transaction_id, invalid_pan, missing_terminal_id, unknown_terminal,
  invalid_amount, non_positive_amount, unknown_currency, invalid_timestamp, future_timestamp,
  outside_business_date, invalid_channel, invalid_three_ds, invalid_message_type,
  missing_original_transaction_id.
Then among the valid rows, per `transaction_id` the most recently landed version is kept (latest
landing date, file, row): copies identical to it in every parsed field are exact retransmissions
(`duplicates_removed`); copies that differ are older versions a corrected file replaced (quarantined
`superseded_by_correction`).
Reversal rule: a valid reversal whose `original_transaction_id` is a kept authorisation of the same
business date removes both rows (`reversal_rows` counts the two); a reversal without its authorisation
in the partition is quarantined `orphan_reversal`.
Hence per partition: raw rows = cleaned + quarantined + duplicates_removed + reversal_rows.

Timestamps: acq_a is ISO UTC; acq_b is `DD/MM/YYYY HH:MM:SS` in the terminal's local time, localised
through its IANA zone (an ambiguous autumn hour is read as the first, summer-time, occurrence;
a non-existent spring hour is shifted forward). Amounts: acq_b is in minor units (ISO 4217 exponent);
acq_a tolerates a comma decimal. EUR amount = amount / rate of the business date (EUR: rate 1).
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fraud_assets.lib.pan import mask_pans
from fraud_assets.lib.settings import REPORTING_CURRENCY

REASONS = (
    "malformed_line",
    "invalid_transaction_id",
    "invalid_pan",
    "missing_terminal_id",
    "unknown_terminal",
    "invalid_amount",
    "non_positive_amount",
    "unknown_currency",
    "invalid_timestamp",
    "future_timestamp",
    "outside_business_date",
    "invalid_channel",
    "invalid_three_ds",
    "invalid_message_type",
    "missing_original_transaction_id",
    "superseded_by_correction",
    "orphan_reversal",
)
# ISO 4217 minor-unit exponents that are not 2 (contract: "exponent 2; JPY 0").
EXPONENTS = {
    **dict.fromkeys(["JPY", "KRW", "ISK", "CLP", "VND", "XOF", "XAF", "PYG", "UGX"], 0),
    **dict.fromkeys(["BHD", "KWD", "JOD", "OMR", "TND", "IQD", "LYD"], 3),
}
CHANNELS = {
    "card_present": "card_present",
    "ecommerce": "ecommerce",
    "CP": "card_present",
    "ECOM": "ecommerce",
}
MESSAGE_TYPES = {"auth": "auth", "reversal": "reversal", "0100": "auth", "0400": "reversal"}
THREE_DS = {"Y", "N", "A", "U"}
ZONES = frozenset(zoneinfo.available_timezones())

TRANSACTION_COLUMNS = [
    ("transaction_id", "BIGINT"),
    ("business_date", "DATE"),
    ("tx_datetime", "TIMESTAMP"),
    ("tx_datetime_local", "TIMESTAMP"),
    ("card_token", "VARCHAR"),
    ("pan_bin", "VARCHAR"),
    ("pan_last4", "VARCHAR"),
    ("terminal_id", "BIGINT"),
    ("tx_amount", "DOUBLE"),
    ("amount_original", "DOUBLE"),
    ("currency", "VARCHAR"),
    ("fx_rate", "DOUBLE"),
    ("channel", "VARCHAR"),
    ("three_ds", "VARCHAR"),
    ("feed", "VARCHAR"),
    ("source_file", "VARCHAR"),
    ("row_number", "BIGINT"),
]
QUARANTINE_COLUMNS = [
    ("business_date", "DATE"),
    ("source", "VARCHAR"),
    ("feed", "VARCHAR"),
    ("source_file", "VARCHAR"),
    ("row_number", "BIGINT"),
    ("transaction_id", "BIGINT"),
    ("reason", "VARCHAR"),
    ("offending_column", "VARCHAR"),
    ("offending_value", "VARCHAR"),
    ("quarantined_at", "TIMESTAMP"),
]
RECONCILIATION_COLUMNS = [
    ("business_date", "DATE"),
    ("raw_rows", "BIGINT"),
    ("cleaned_rows", "BIGINT"),
    ("quarantined_rows", "BIGINT"),
    ("duplicates_removed", "BIGINT"),
    ("reversal_rows", "BIGINT"),
]


@dataclass
class Cleaned:
    transactions: pd.DataFrame
    quarantine: pd.DataFrame
    reconciliation: pd.DataFrame
    by_reason: dict[str, int] = field(default_factory=dict)


def _text(s: pd.Series) -> pd.Series:
    """Stripped strings; blank -> NA."""
    values = s.to_numpy(dtype=object)
    try:
        arr = pa.array(values, type=pa.string(), from_pandas=True)
    except (pa.ArrowTypeError, pa.ArrowInvalid):  # non-text values (tests, odd parquet): as text
        arr = pa.array([None if v is None or v is pd.NA else str(v) for v in values], type=pa.string())
    out = pd.Series(pc.utf8_trim_whitespace(arr), index=s.index, dtype="string[pyarrow]").astype("string")
    return out.mask(out == "")


def parse_ids(s: pd.Series) -> pd.Series:
    """Digit strings -> Int64; anything else (signs, decimals, letters, > int64) -> NA."""
    t = _text(s)
    ok = t.str.fullmatch(r"\d{1,18}").fillna(False)  # 18 digits always fit in a BIGINT
    return t.where(ok).astype("Int64")


def parse_amount_major(s: pd.Series) -> pd.Series:
    """Major units; `.` decimal point, a lone `,` decimal tolerated ("12,50")."""
    t = _text(s)
    t = t.where(~t.str.fullmatch(r"-?\d+,\d+").fillna(False), t.str.replace(",", ".", regex=False))
    ok = t.str.fullmatch(r"-?\d+(\.\d+)?").fillna(False)
    return pd.to_numeric(t.where(ok), errors="coerce").astype("float64")


def parse_amount_minor(s: pd.Series, currency: pd.Series) -> pd.Series:
    t = _text(s)
    ok = t.str.fullmatch(r"-?\d+").fillna(False)
    minor = pd.to_numeric(t.where(ok), errors="coerce").astype("float64")
    exp = currency.map(EXPONENTS).fillna(2).astype("float64")
    return minor / np.power(10.0, exp)


def parse_utc(s: pd.Series) -> pd.Series:
    return pd.to_datetime(_text(s), format="%Y-%m-%dT%H:%M:%SZ", errors="coerce")


def parse_local_ddmm(s: pd.Series) -> pd.Series:
    return pd.to_datetime(_text(s), format="%d/%m/%Y %H:%M:%S", errors="coerce")


def local_to_utc(local: pd.Series, tz: pd.Series) -> pd.Series:
    """Naive local times -> naive UTC, per IANA zone (vectorised per zone)."""
    out = pd.Series(pd.NaT, index=local.index, dtype="datetime64[ns]")
    ok = local.notna() & tz.notna()
    for zone, idx in local[ok].groupby(tz[ok]).groups.items():
        if zone not in ZONES:  # an unknown zone leaves its rows unconverted (invalid_timestamp)
            continue
        part = local.loc[idx]
        conv = part.dt.tz_localize(
            zone, ambiguous=np.ones(len(part), dtype=bool), nonexistent="shift_forward"
        )
        out.loc[idx] = conv.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")
    return out


def utc_to_local(utc: pd.Series, tz: pd.Series) -> pd.Series:
    out = pd.Series(pd.NaT, index=utc.index, dtype="datetime64[ns]")
    ok = utc.notna() & tz.notna()
    for zone, idx in utc[ok].groupby(tz[ok]).groups.items():
        if zone not in ZONES:
            continue
        conv = utc.loc[idx].dt.tz_localize("UTC").dt.tz_convert(zone)
        out.loc[idx] = conv.dt.tz_localize(None).astype("datetime64[ns]")
    return out


def _masked(values: pd.Series) -> pd.Series:
    return values.astype(object).map(lambda v: None if v is None or pd.isna(v) else mask_pans(str(v)))


def clean_authorizations(raw: pd.DataFrame, terminals: pd.DataFrame, fx: pd.DataFrame) -> Cleaned:
    """Clean the raw rows of one or more business dates. See the module docstring for the rules.

    `terminals`: terminal_id, timezone (cleaned.terminals). `fx`: rate_date, quote_currency, rate.
    """
    df = raw.reset_index(drop=True)
    n = len(df)
    bdate = pd.to_datetime(df["business_date"]).dt.normalize()
    feed = df["feed"].astype("string")
    is_b = (feed == "acq_b").to_numpy()

    tx_id = parse_ids(df["transaction_id"])
    term_text = _text(df["terminal_id"])
    term_id = parse_ids(df["terminal_id"])
    tz_map = terminals.set_index("terminal_id")["timezone"] if len(terminals) else pd.Series(dtype=object)
    tz = term_id.map(tz_map).astype(object)
    known_terminal = term_id.isin(tz_map.index) if len(tz_map) else pd.Series(False, index=df.index)

    currency = _text(df["currency"]).str.upper()
    amount = pd.Series(np.nan, index=df.index, dtype="float64")
    amount[~is_b] = parse_amount_major(df.loc[~is_b, "amount"])
    amount[is_b] = parse_amount_minor(df.loc[is_b, "amount"], currency[is_b])
    fx_key = (
        pd.MultiIndex.from_arrays([pd.to_datetime(fx["rate_date"]), fx["quote_currency"]])
        if len(fx)
        else None
    )
    rate = pd.Series(np.nan, index=df.index, dtype="float64")
    if fx_key is not None:
        lookup = pd.Series(fx["rate"].to_numpy(dtype="float64"), index=fx_key)
        rate = pd.Series(
            lookup.reindex(pd.MultiIndex.from_arrays([bdate, currency.astype(object)])).to_numpy(),
            index=df.index,
        )
    rate = rate.mask(currency == REPORTING_CURRENCY, 1.0)

    tx_utc = pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns]")
    tx_utc[~is_b] = parse_utc(df.loc[~is_b, "tx_datetime"]).astype("datetime64[ns]")
    local_b = parse_local_ddmm(df.loc[is_b, "tx_datetime"]).astype("datetime64[ns]")
    tx_utc[is_b] = local_to_utc(local_b, tz[is_b])
    tx_local = utc_to_local(tx_utc, tz)
    tx_local[is_b] = local_b
    ingested = pd.to_datetime(df["ingested_at"])
    landed_end = pd.to_datetime(df["landing_date"]) + pd.Timedelta(days=1)

    channel = _text(df["channel"]).map(CHANNELS)
    three_ds = _text(df["three_ds"]).str.upper()
    msg = _text(df["message_type"]).map(MESSAGE_TYPES)
    orig_id = parse_ids(df["original_transaction_id"])

    malformed = df["malformed_reason"].notna()
    rules: list[tuple[str, pd.Series, str, pd.Series]] = [
        ("malformed_line", malformed, "raw_line", df["raw_line_masked"]),
        ("invalid_transaction_id", tx_id.isna(), "transaction_id", df["transaction_id"]),
        ("invalid_pan", ~df["pan_valid"].fillna(False).astype(bool), "pan", df["pan_masked"]),
        ("missing_terminal_id", term_text.isna(), "terminal_id", df["terminal_id"]),
        ("unknown_terminal", ~known_terminal, "terminal_id", df["terminal_id"]),
        ("invalid_amount", amount.isna(), "amount", df["amount"]),
        ("non_positive_amount", amount <= 0, "amount", df["amount"]),
        ("unknown_currency", rate.isna() | ~(rate > 0), "currency", df["currency"]),
        ("invalid_timestamp", tx_utc.isna(), "tx_datetime", df["tx_datetime"]),
        ("future_timestamp", (tx_utc > ingested) | (tx_utc >= landed_end), "tx_datetime", df["tx_datetime"]),
        ("outside_business_date", tx_utc.dt.normalize() != bdate, "tx_datetime", df["tx_datetime"]),
        ("invalid_channel", channel.isna(), "channel", df["channel"]),
        (
            "invalid_three_ds",
            three_ds.notna() & ~three_ds.isin(THREE_DS).fillna(False),
            "three_ds",
            df["three_ds"],
        ),
        ("invalid_message_type", msg.isna(), "message_type", df["message_type"]),
        (
            "missing_original_transaction_id",
            (msg == "reversal").fillna(False) & orig_id.isna(),
            "original_transaction_id",
            df["original_transaction_id"],
        ),
    ]
    reason = pd.Series(None, index=df.index, dtype=object)
    col = pd.Series(None, index=df.index, dtype=object)
    val = pd.Series(None, index=df.index, dtype=object)
    for name, mask, column, value in rules:
        hit = mask.fillna(False).astype(bool) & reason.isna()
        if hit.any():
            reason[hit] = name
            col[hit] = column
            val[hit] = value[hit].astype(object)

    parsed = pd.DataFrame(
        {
            "transaction_id": tx_id,
            "business_date": bdate,
            "tx_datetime": tx_utc,
            "tx_datetime_local": tx_local,
            "card_token": df["card_token"],
            "pan_bin": df["pan_bin"],
            "pan_last4": df["pan_last4"],
            "terminal_id": term_id,
            "tx_amount": amount / rate,
            "amount_original": amount,
            "currency": currency,
            "fx_rate": rate,
            "channel": channel,
            "three_ds": three_ds,
            "message_type": msg,
            "original_transaction_id": orig_id,
            "feed": df["feed"],
            "source_file": df["source_file"],
            "row_number": df["row_number"].astype("int64"),
            "_landing": pd.to_datetime(df["landing_date"]),
        }
    )

    # Per transaction_id keep the most recently landed valid version.
    valid = parsed[reason.isna()].sort_values(
        ["_landing", "source_file", "row_number"], ascending=False, kind="stable"
    )
    content = [
        "transaction_id",
        "tx_datetime",
        "card_token",
        "terminal_id",
        "amount_original",
        "currency",
        "channel",
        "three_ds",
        "message_type",
        "original_transaction_id",
    ]
    sig = pd.util.hash_pandas_object(valid[content].astype(str), index=False)
    first_sig = sig.groupby(valid["transaction_id"].to_numpy()).transform("first")
    is_first = ~valid["transaction_id"].duplicated(keep="first")
    dup_idx = valid.index[~is_first & (sig == first_sig)]
    superseded_idx = valid.index[~is_first & (sig != first_sig)]
    reason[superseded_idx] = "superseded_by_correction"
    col[superseded_idx] = "transaction_id"
    val[superseded_idx] = df.loc[superseded_idx, "transaction_id"].astype(object)
    kept = valid[is_first]

    # Reversal rule (same business date).
    rev = kept[kept["message_type"] == "reversal"]
    auth = kept[kept["message_type"] == "auth"]
    orig_key = pd.MultiIndex.from_arrays(
        [rev["business_date"], rev["original_transaction_id"].astype("int64")]
    )
    auth_key = pd.MultiIndex.from_arrays([auth["business_date"], auth["transaction_id"].astype("int64")])
    matched_rev = rev.index[orig_key.isin(auth_key)]
    orphan_rev = rev.index[~orig_key.isin(auth_key)]
    reversed_auth = auth.index[auth_key.isin(orig_key[orig_key.isin(auth_key)])]
    reason[orphan_rev] = "orphan_reversal"
    col[orphan_rev] = "original_transaction_id"
    val[orphan_rev] = df.loc[orphan_rev, "original_transaction_id"].astype(object)
    removed = matched_rev.union(reversed_auth)
    tx = kept.drop(index=removed)
    tx = tx[tx["message_type"] == "auth"]

    q = reason.notna()
    quarantine = pd.DataFrame(
        {
            "business_date": bdate[q],
            "source": "authorizations",
            "feed": df.loc[q, "feed"],
            "source_file": df.loc[q, "source_file"],
            "row_number": df.loc[q, "row_number"].astype("int64"),
            "transaction_id": tx_id[q],
            "reason": reason[q],
            "offending_column": col[q],
            "offending_value": _masked(val[q]),
            "quarantined_at": pd.to_datetime(df.loc[q, "ingested_at"]),
        }
    )
    transactions = (
        tx[[c for c, _ in TRANSACTION_COLUMNS]].sort_values(["transaction_id"]).reset_index(drop=True)
    )

    dates = pd.Series(bdate.unique())
    per = lambda idx: pd.Series(bdate[idx]).value_counts()  # noqa: E731
    recon = pd.DataFrame({"business_date": dates})
    recon["raw_rows"] = recon["business_date"].map(per(df.index)).fillna(0).astype("int64")
    recon["cleaned_rows"] = recon["business_date"].map(transactions["business_date"].value_counts())
    recon["quarantined_rows"] = recon["business_date"].map(per(df.index[q]))
    recon["duplicates_removed"] = recon["business_date"].map(per(dup_idx))
    recon["reversal_rows"] = recon["business_date"].map(per(removed))
    recon = recon.fillna(0).astype({c: "int64" for c, _ in RECONCILIATION_COLUMNS[1:]})
    assert n == int(recon["raw_rows"].sum())
    return Cleaned(
        transactions=transactions,
        quarantine=quarantine.reset_index(drop=True),
        reconciliation=recon,
        by_reason={str(k): int(v) for k, v in reason[q].value_counts().items()},
    )
