"""Raw tables: their DuckDB column types (what the assets write) and pandera contracts (what the
blocking checks enforce). Raw values stay as received (VARCHAR) except lineage and PAN token columns.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from fraud_assets.defs.raw.snapshots import ROW_REASONS

HEX64 = r"^[0-9a-f]{64}$"
STATUSES = ["ingested", "rejected", "duplicate_file"]

LINEAGE = [
    ("feed", "VARCHAR"),
    ("source_file", "VARCHAR"),
    ("file_sha256", "VARCHAR"),
    ("landing_date", "DATE"),
    ("row_number", "BIGINT"),
    ("ingested_at", "TIMESTAMP"),
    ("business_date", "DATE"),
]
TOKENS = [
    ("card_token", "VARCHAR"),
    ("pan_bin", "VARCHAR"),
    ("pan_last4", "VARCHAR"),
    ("pan_valid", "BOOLEAN"),
    ("pan_masked", "VARCHAR"),
]
MALFORMED = [("malformed_reason", "VARCHAR"), ("raw_line_masked", "VARCHAR")]
# A snapshot row the cleaned layer cannot use keeps its reason (raw/snapshots.py ROW_RULES).
INVALID_REASON = "invalid_reason"

COLUMNS: dict[str, list[tuple[str, str]]] = {
    "raw.file_register": [
        ("source", "VARCHAR"),
        ("feed", "VARCHAR"),
        ("source_file", "VARCHAR"),
        ("file_sha256", "VARCHAR"),
        ("landing_date", "DATE"),
        ("business_date", "DATE"),
        ("status", "VARCHAR"),
        ("reason", "VARCHAR"),
        ("rows_landed", "BIGINT"),
        ("registered_at", "TIMESTAMP"),
        ("file_size", "BIGINT"),
        ("file_mtime_ns", "BIGINT"),
        ("file_inode", "BIGINT"),
        ("file_ctime_ns", "BIGINT"),
    ],
    "raw.authorizations": [
        ("transaction_id", "VARCHAR"),
        ("tx_datetime", "VARCHAR"),
        *TOKENS,
        ("terminal_id", "VARCHAR"),
        ("amount", "VARCHAR"),
        ("currency", "VARCHAR"),
        ("channel", "VARCHAR"),
        ("three_ds", "VARCHAR"),
        ("message_type", "VARCHAR"),
        ("original_transaction_id", "VARCHAR"),
        *LINEAGE,
        *MALFORMED,
    ],
    "raw.chargebacks": [
        ("chargeback_id", "VARCHAR"),
        ("transaction_id", "VARCHAR"),
        *TOKENS,
        ("tx_datetime", "VARCHAR"),
        ("reported_at", "VARCHAR"),
        ("reason_code", "VARCHAR"),
        ("amount", "VARCHAR"),
        ("currency", "VARCHAR"),
        *LINEAGE,
        *MALFORMED,
    ],
    "raw.fx_rates": [
        ("rate_date", "VARCHAR"),
        ("base_currency", "VARCHAR"),
        ("quote_currency", "VARCHAR"),
        ("rate", "VARCHAR"),
        *LINEAGE,
        *MALFORMED,
    ],
    # Parquet snapshots arrive typed; raw keeps those types.
    "raw.cardholders": [
        ("customer_id", "BIGINT"),
        *TOKENS,
        ("home_x", "DOUBLE"),
        ("home_y", "DOUBLE"),
        ("home_country", "VARCHAR"),
        ("issued_at", "DATE"),
        *LINEAGE,
        (INVALID_REASON, "VARCHAR"),
    ],
    "raw.merchants": [
        ("terminal_id", "BIGINT"),
        ("merchant_id", "BIGINT"),
        ("mcc", "VARCHAR"),
        ("country", "VARCHAR"),
        ("currency", "VARCHAR"),
        ("timezone", "VARCHAR"),
        ("x", "DOUBLE"),
        ("y", "DOUBLE"),
        *LINEAGE,
        (INVALID_REASON, "VARCHAR"),
    ],
}

# What each raw column holds, by name: a name means the same in every raw table. The column schema of
# each raw asset (definition and materialisation) reads its descriptions here.
COLUMN_DESCRIPTIONS: dict[str, str] = {
    # file_register
    "source": "Landing folder the file arrived in (authorizations, chargebacks, cardholders, merchants, "
    "fx_rates); null when the path is outside them.",
    "status": "`ingested` (its rows are in the raw table), `rejected` (see `reason`) or `duplicate_file` "
    "(identical content already landed).",
    "reason": "Why the file was rejected or set aside (docs/landing-zone.md lists the reasons); null when "
    "ingested.",
    "rows_landed": "Rows the file contributed to its raw table; raw and cleaned row counts reconcile to it.",
    "registered_at": "When the register first saw the file (UTC).",
    "file_size": "File size in bytes when registered; an unchanged size, mtime, inode and ctime means not "
    "re-read.",
    "file_mtime_ns": "File modification time (ns since the epoch, clamped to 1677-2262) when registered.",
    "file_inode": "File inode number when registered (its low 63 bits: some filesystems set the top bit).",
    "file_ctime_ns": "File status-change time (ns since the epoch) when registered: a file rewritten in "
    "place with its mtime set back still changes it.",
    # lineage, every source table
    "feed": "Producer feed the file belongs to, from the file name: the processor (acq_a, acq_b) for "
    "authorisations, else the source itself (chargebacks, cardholders, merchants, fx_rates).",
    "source_file": "Path of the landing file relative to the landing root (card numbers masked).",
    "file_sha256": "SHA-256 of the landing file's bytes (hex).",
    "landing_date": "Landing-zone folder date the file was delivered under.",
    "row_number": "1-based row (line or Parquet row) within the landing file; with source_file, the "
    "row's identity.",
    "ingested_at": "When the file was first registered (UTC); stable across re-runs.",
    "business_date": "UTC business date the file's rows belong to, from its file name.",
    "malformed_reason": "Why the line could not be split into fields; null for a parsed line.",
    "raw_line_masked": "The malformed line as received, card numbers masked; null for a parsed line.",
    "invalid_reason": "Why the snapshot row cannot be used (missing_terminal_id, invalid_timezone, "
    "invalid_position, missing_pan, ...: docs/landing-zone.md); null for a usable row. Cleaned leaves the "
    "row out and quarantines it (cleaned.reference_quarantine).",
    # PAN, tokenised at ingestion
    "card_token": "HMAC-SHA256 (keyed by FRAUD_PAN_KEY) of the card number: joins a card across tables "
    "without the PAN; null when the received number is not a valid card number.",
    "pan_bin": "First 6 digits of the card number (issuer BIN).",
    "pan_last4": "Last 4 digits of the card number.",
    "pan_valid": "Whether the received card number was 13-19 digits with a valid Luhn checksum.",
    "pan_masked": "An invalid card number as received, masked (BIN, stars, last 4); null when valid.",
    # authorizations and chargebacks, values as received (text)
    "transaction_id": "Producer's transaction id, as received.",
    "tx_datetime": "Transaction time as received (processor A: UTC; processor B: terminal local time).",
    "terminal_id": "Terminal id, as received (typed in the merchants snapshot).",
    "amount": "Amount in `currency`, as received.",
    "currency": "ISO 4217 currency code: of `amount` (authorizations, chargebacks), the terminal's local "
    "currency (merchants).",
    "channel": "Card present or e-commerce, as received (CP/card_present, ECOM/ecommerce).",
    "three_ds": "3-D Secure result, as received (Y, N, A, U or empty).",
    "message_type": "Authorisation or reversal, as received (auth/0100, reversal/0400).",
    "original_transaction_id": "For a reversal, the transaction it reverses, as received.",
    "chargeback_id": "Producer's chargeback (fraud report) id.",
    "reported_at": "When the fraud was reported, as received.",
    "reason_code": "Card scheme chargeback reason code, as received.",
    # fx_rates
    "rate_date": "Date the rate applies to, as received.",
    "base_currency": "Currency the rate is quoted against, as received (EUR expected).",
    "quote_currency": "Currency quoted, as received (ISO 4217).",
    "rate": "Units of quote_currency per base_currency, as received.",
    # cardholders
    "customer_id": "Cardholder (customer) id.",
    "home_x": "Cardholder's home location, x coordinate (simulator grid 0-100).",
    "home_y": "Cardholder's home location, y coordinate (simulator grid 0-100).",
    "home_country": "Cardholder's home country (ISO 3166 alpha-2).",
    "issued_at": "Date the card was issued.",
    # merchants
    "merchant_id": "Merchant operating the terminal.",
    "mcc": "Merchant category code (4 digits).",
    "country": "Country of the terminal (ISO 3166 alpha-2).",
    "timezone": "IANA time zone of the terminal: converts processor B's local times to UTC.",
    "x": "Terminal location, x coordinate (simulator grid 0-100).",
    "y": "Terminal location, y coordinate (simulator grid 0-100).",
}


def select_sql(table: str, view: str) -> str:
    """SELECT with explicit casts so every write (even of zero rows) has the documented types."""
    return "SELECT " + ", ".join(f'CAST("{c}" AS {t}) AS "{c}"' for c, t in COLUMNS[table]) + f" FROM {view}"


class _Lineage(pa.DataFrameModel):
    feed: Series[str]
    source_file: Series[str]
    file_sha256: Series[str] = pa.Field(str_matches=HEX64)
    landing_date: Series[pd.Timestamp]
    row_number: Series[int] = pa.Field(ge=1)
    ingested_at: Series[pd.Timestamp]
    business_date: Series[pd.Timestamp]

    class Config:  # inherited by every raw source table: a landed line is its file and row number
        strict = True
        coerce = True
        unique = ["source_file", "row_number"]


class _Tokens(pa.DataFrameModel):
    card_token: Series[str] = pa.Field(nullable=True, str_matches=HEX64)
    pan_bin: Series[str] = pa.Field(nullable=True, str_matches=r"^\d{6}$")
    pan_last4: Series[str] = pa.Field(nullable=True, str_matches=r"^\d{4}$")
    pan_valid: Series[pd.BooleanDtype] = pa.Field(nullable=True)
    pan_masked: Series[str] = pa.Field(nullable=True, str_matches=r"^[0-9]{0,6}\*+[0-9]{0,4}$")


class FileRegisterModel(pa.DataFrameModel):
    """One row per landing file seen; status says whether its rows were ingested."""

    source: Series[str] = pa.Field(nullable=True)
    feed: Series[str] = pa.Field(nullable=True)
    source_file: Series[str] = pa.Field(unique=True)
    file_sha256: Series[str] = pa.Field(str_matches=HEX64)
    landing_date: Series[pd.Timestamp] = pa.Field(nullable=True)
    business_date: Series[pd.Timestamp] = pa.Field(nullable=True)
    status: Series[str] = pa.Field(isin=STATUSES)
    reason: Series[str] = pa.Field(nullable=True)
    rows_landed: Series[int] = pa.Field(ge=0)
    registered_at: Series[pd.Timestamp]
    file_size: Series[int] = pa.Field(ge=0)
    file_mtime_ns: Series[int]
    file_inode: Series[int] = pa.Field(ge=0)
    file_ctime_ns: Series[int]

    @pa.dataframe_check(
        error="rejected and duplicate files carry a reason, ingested ones do not",
        statistics={"sql": "coalesce(status = 'ingested', FALSE) = (reason IS NULL)"},
    )
    def reason_iff_not_ingested(cls, df: pd.DataFrame) -> pd.Series:
        return (df["status"] == "ingested") == df["reason"].isna()

    class Config:
        strict = True
        coerce = True


class RawAuthorizationsModel(_Tokens, _Lineage):
    """Authorisations as received (canonical names), PAN tokenised, one row per landed line."""

    transaction_id: Series[str] = pa.Field(nullable=True)
    tx_datetime: Series[str] = pa.Field(nullable=True)
    terminal_id: Series[str] = pa.Field(nullable=True)
    amount: Series[str] = pa.Field(nullable=True)
    currency: Series[str] = pa.Field(nullable=True)
    channel: Series[str] = pa.Field(nullable=True)
    three_ds: Series[str] = pa.Field(nullable=True)
    message_type: Series[str] = pa.Field(nullable=True)
    original_transaction_id: Series[str] = pa.Field(nullable=True)
    feed: Series[str] = pa.Field(isin=["acq_a", "acq_b"])
    malformed_reason: Series[str] = pa.Field(nullable=True)
    raw_line_masked: Series[str] = pa.Field(nullable=True)

    @pa.dataframe_check(
        error="a malformed line keeps its masked text and no parsed fields",
        statistics={
            "sql": "malformed_reason IS NULL OR (raw_line_masked IS NOT NULL AND transaction_id IS NULL)"
        },
    )
    def malformed_rows_are_masked_lines(cls, df: pd.DataFrame) -> pd.Series:
        bad = df["malformed_reason"].notna()
        return ~bad | (df["raw_line_masked"].notna() & df["transaction_id"].isna())


class RawChargebacksModel(_Tokens, _Lineage):
    """Chargeback reports as received, PAN tokenised."""

    chargeback_id: Series[str] = pa.Field(nullable=True)
    transaction_id: Series[str] = pa.Field(nullable=True)
    tx_datetime: Series[str] = pa.Field(nullable=True)
    reported_at: Series[str] = pa.Field(nullable=True)
    reason_code: Series[str] = pa.Field(nullable=True)
    amount: Series[str] = pa.Field(nullable=True)
    currency: Series[str] = pa.Field(nullable=True)
    malformed_reason: Series[str] = pa.Field(nullable=True)
    raw_line_masked: Series[str] = pa.Field(nullable=True)


class RawFxRatesModel(_Lineage):
    """Daily FX rates as received."""

    rate_date: Series[str] = pa.Field(nullable=True)
    base_currency: Series[str] = pa.Field(nullable=True)
    quote_currency: Series[str] = pa.Field(nullable=True)
    rate: Series[str] = pa.Field(nullable=True)
    malformed_reason: Series[str] = pa.Field(nullable=True)
    raw_line_masked: Series[str] = pa.Field(nullable=True)


class RawCardholdersModel(_Tokens, _Lineage):
    """Cardholder snapshots (one row per card; a customer may hold several), PAN tokenised."""

    customer_id: Series[pd.Int64Dtype] = pa.Field(nullable=True)
    invalid_reason: Series[str] = pa.Field(nullable=True, isin=ROW_REASONS["cardholders"])
    home_x: Series[float] = pa.Field(nullable=True)
    home_y: Series[float] = pa.Field(nullable=True)
    home_country: Series[str] = pa.Field(nullable=True)
    issued_at: Series[pd.Timestamp] = pa.Field(nullable=True)


class RawMerchantsModel(_Lineage):
    """Merchant/terminal snapshots as received."""

    terminal_id: Series[pd.Int64Dtype] = pa.Field(nullable=True)
    merchant_id: Series[pd.Int64Dtype] = pa.Field(nullable=True)
    mcc: Series[str] = pa.Field(nullable=True)
    country: Series[str] = pa.Field(nullable=True)
    currency: Series[str] = pa.Field(nullable=True)
    timezone: Series[str] = pa.Field(nullable=True)
    x: Series[float] = pa.Field(nullable=True)
    y: Series[float] = pa.Field(nullable=True)
    invalid_reason: Series[str] = pa.Field(nullable=True, isin=ROW_REASONS["merchants"])


# Each raw table's contract: its check (raw/checks.py) runs it, its column schema shows its constraints.
CONTRACTS: dict[str, type[pa.DataFrameModel]] = {
    "raw.file_register": FileRegisterModel,
    "raw.authorizations": RawAuthorizationsModel,
    "raw.chargebacks": RawChargebacksModel,
    "raw.cardholders": RawCardholdersModel,
    "raw.merchants": RawMerchantsModel,
    "raw.fx_rates": RawFxRatesModel,
}
