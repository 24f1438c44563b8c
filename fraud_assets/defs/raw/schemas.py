"""Raw tables: their DuckDB column types (what the assets write) and pandera contracts (what the
blocking checks enforce). Raw values stay as received (VARCHAR) except lineage and PAN token columns.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

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
    ],
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
    """Cardholder snapshots (one card per customer per snapshot), PAN tokenised."""

    customer_id: Series[pd.Int64Dtype] = pa.Field(nullable=True)
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
