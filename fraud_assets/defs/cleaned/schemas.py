"""Pandera contracts of the cleaned tables (docs/architecture.md lists them as layer interfaces)."""

from __future__ import annotations

import zoneinfo

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from fraud_assets.defs.cleaned.reference import FX_RATE_BAND, REFERENCE_REASONS
from fraud_assets.defs.cleaned.transform import QUAR, REASONS, RECON, TX
from fraud_assets.defs.raw.schemas import COLUMN_DESCRIPTIONS as RAW_DESCRIPTIONS
from fraud_assets.defs.raw.schemas import COLUMNS as RAW_COLUMNS
from fraud_assets.defs.raw.schemas import INVALID_REASON
from fraud_assets.defs.raw.schemas import LINEAGE as RAW_LINEAGE
from fraud_assets.lib.reason_codes import FRAUD_CODES

HEX64 = r"^[0-9a-f]{64}$"
REFERENCE_SOURCES = ["chargebacks", "fx_rates", "merchants", "cardholders"]

# What each cleaned column holds, by name (a name means the same in every cleaned table); columns that
# mean what they meant in raw keep raw's description. Every cleaned asset's column schema reads them.
COLUMN_DESCRIPTIONS: dict[str, str] = {
    **{
        name: RAW_DESCRIPTIONS[name]
        for name in (
            "pan_bin",
            "pan_last4",
            "feed",
            "source_file",
            "row_number",
            "customer_id",
            "home_x",
            "home_y",
            "home_country",
            "merchant_id",
            "mcc",
            "country",
            "timezone",
            "x",
            "y",
        )
    },
    "transaction_id": "Transaction id (unique in cleaned.transactions); joins labels, features and scores.",
    "business_date": "UTC business date the row belongs to (the partition).",
    "tx_datetime": "Transaction time in UTC (processor B's local times converted by the terminal's zone).",
    "tx_datetime_local": "Transaction time in the terminal's local time zone.",
    "card_token": "HMAC-SHA256 (keyed by FRAUD_PAN_KEY) of the card number: the card's identity, never "
    "the PAN.",
    "terminal_id": "Terminal the transaction was made at (cleaned.terminals).",
    "tx_amount": "Amount in EUR (amount_original / fx_rate); 0 is genuine (account verification).",
    "amount_original": "Amount as charged, in `currency`.",
    "currency": "ISO 4217 code: of amount_original (transactions), the terminal's local currency "
    "(terminals).",
    "fx_rate": "Units of `currency` per EUR on the business date, or the latest published before it within "
    "4 days (weekends, holidays); 1 for EUR. From cleaned.fx_rates.",
    "channel": "`card_present` or `ecommerce`.",
    "three_ds": "3-D Secure result (Y, N, A, U); null when not sent.",
    "source": "Raw table the rejected row came from (authorizations; reference quarantine: chargebacks, "
    "fx_rates, merchants, cardholders).",
    "reason": "Why the row was quarantined (docs/landing-zone.md, 'Row quarantine reasons').",
    "offending_column": "The column whose value broke the rule.",
    "offending_value": "The offending value as received, card numbers masked; null when missing.",
    "quarantined_at": "When the row was ingested (UTC).",
    "raw_rows": "Raw authorisation rows of the business date.",
    "cleaned_rows": "Rows written to cleaned.transactions.",
    "quarantined_rows": "Rows written to cleaned.quarantine.",
    "duplicates_removed": "Exact retransmissions of a kept row, dropped.",
    "reversal_rows": "Matched reversals and the authorisations they reverse, both dropped.",
    "reported_at": "Earliest fraud chargeback report time (UTC): a transaction is fraud as known at t iff "
    "reported_at <= t.",
    "chargeback_id": "Id of the earliest fraud chargeback reporting the transaction.",
    "reason_code": "Card scheme fraud reason code of that chargeback, trimmed and upper case "
    "(fraud_assets/lib/reason_codes.py).",
    "rate_date": "Date the rate applies to; cleaning uses the rate of the business date, or the latest "
    "before it within 4 days.",
    "quote_currency": "Currency quoted against EUR (ISO 4217).",
    "rate": "Units of quote_currency per EUR (within 0.001-10,000,000).",
    "valid_from": "Snapshot (business) date from which this version of the row holds (SCD type 2). The "
    "key's earliest version also serves the business dates before it (reference data that arrived late).",
    "valid_to": "Date of the next snapshot that changes or no longer lists the row (exclusive); null "
    "while the newest snapshot still lists it unchanged.",
}


class TransactionsModel(pa.DataFrameModel):
    """Typed authorisations in EUR and UTC, one row per transaction_id."""

    transaction_id: Series[int] = pa.Field(unique=True, ge=0)
    business_date: Series[pd.Timestamp]
    tx_datetime: Series[pd.Timestamp]
    tx_datetime_local: Series[pd.Timestamp]
    card_token: Series[str] = pa.Field(str_matches=HEX64)
    pan_bin: Series[str] = pa.Field(str_matches=r"^[0-9]{6}$")
    pan_last4: Series[str] = pa.Field(str_matches=r"^[0-9]{4}$")
    terminal_id: Series[int] = pa.Field(ge=0)
    tx_amount: Series[float] = pa.Field(ge=0)  # a zero amount is genuine (account verification)
    amount_original: Series[float] = pa.Field(ge=0)
    currency: Series[str] = pa.Field(str_matches=r"^[A-Z]{3}$")
    fx_rate: Series[float] = pa.Field(gt=0)
    channel: Series[str] = pa.Field(isin=["card_present", "ecommerce"])
    three_ds: Series[str] = pa.Field(nullable=True, isin=["Y", "N", "A", "U"])
    feed: Series[str] = pa.Field(isin=["acq_a", "acq_b"])
    source_file: Series[str]
    row_number: Series[int] = pa.Field(ge=1)

    @pa.dataframe_check(
        error="tx_datetime (UTC) falls on the business date",
        statistics={"sql": "date_trunc('day', tx_datetime) = business_date"},
    )
    def on_business_date(cls, df: pd.DataFrame) -> pd.Series:
        return df["tx_datetime"].dt.normalize() == df["business_date"]

    @pa.dataframe_check(
        error="tx_amount = amount_original / fx_rate",
        statistics={"sql": "abs(tx_amount - amount_original / fx_rate) <= 1e-9 * abs(tx_amount)"},
    )
    def amount_in_eur(cls, df: pd.DataFrame) -> pd.Series:
        return (df["tx_amount"] - df["amount_original"] / df["fx_rate"]).abs() <= 1e-9 * df["tx_amount"].abs()

    class Config:
        strict = True
        coerce = True


class _QuarantinedRow(pa.DataFrameModel):
    """A rejected row: where it came from, why, and the (masked) value; `source`, `feed` and `reason`
    are narrowed by each quarantine table."""

    business_date: Series[pd.Timestamp]
    source: Series[str]
    feed: Series[str]
    source_file: Series[str]
    row_number: Series[int] = pa.Field(ge=1)
    transaction_id: Series[pd.Int64Dtype] = pa.Field(nullable=True)
    reason: Series[str]
    offending_column: Series[str]
    offending_value: Series[str] = pa.Field(nullable=True)
    quarantined_at: Series[pd.Timestamp]

    class Config:
        strict = True
        coerce = True
        unique = ["source_file", "row_number"]


class QuarantineModel(_QuarantinedRow):
    """Every rejected authorisation row with where it came from, why, and the (masked) value."""

    source: Series[str] = pa.Field(isin=["authorizations"])
    feed: Series[str] = pa.Field(isin=["acq_a", "acq_b"])
    reason: Series[str] = pa.Field(isin=list(REASONS))


class ReferenceQuarantineModel(_QuarantinedRow):
    """Every rejected chargeback / FX / snapshot row with where it came from, why, and the (masked)
    value."""

    source: Series[str] = pa.Field(isin=REFERENCE_SOURCES)
    feed: Series[str] = pa.Field(isin=REFERENCE_SOURCES)
    reason: Series[str] = pa.Field(isin=list(REFERENCE_REASONS))


class ReconciliationModel(pa.DataFrameModel):
    """Per business date: where every raw row went."""

    business_date: Series[pd.Timestamp] = pa.Field(unique=True)
    raw_rows: Series[int] = pa.Field(ge=0)
    cleaned_rows: Series[int] = pa.Field(ge=0)
    quarantined_rows: Series[int] = pa.Field(ge=0)
    duplicates_removed: Series[int] = pa.Field(ge=0)
    reversal_rows: Series[int] = pa.Field(ge=0)

    @pa.dataframe_check(
        error="raw = cleaned + quarantined + duplicates_removed + reversal_rows",
        statistics={"sql": "raw_rows = cleaned_rows + quarantined_rows + duplicates_removed + reversal_rows"},
    )
    def balances(cls, df: pd.DataFrame) -> pd.Series:
        return df["raw_rows"] == (
            df["cleaned_rows"] + df["quarantined_rows"] + df["duplicates_removed"] + df["reversal_rows"]
        )

    class Config:
        strict = True
        coerce = True


class LabelsModel(pa.DataFrameModel):
    """One row per transaction reported as fraud (a fraud reason code), with its earliest fraud report."""

    transaction_id: Series[int] = pa.Field(unique=True)
    card_token: Series[str] = pa.Field(nullable=True, str_matches=HEX64)
    tx_datetime: Series[pd.Timestamp] = pa.Field(nullable=True)
    reported_at: Series[pd.Timestamp]
    chargeback_id: Series[str] = pa.Field(nullable=True)
    reason_code: Series[str] = pa.Field(isin=sorted(FRAUD_CODES))

    @pa.dataframe_check(
        error="a fraud is reported after it happened",
        statistics={"sql": "tx_datetime IS NULL OR reported_at >= tx_datetime"},
    )
    def reported_after_transaction(cls, df: pd.DataFrame) -> pd.Series:
        return df["tx_datetime"].isna() | (df["reported_at"] >= df["tx_datetime"])

    class Config:
        strict = True
        coerce = True


class _Versioned(pa.DataFrameModel):
    """A reference row's version (SCD type 2): from its snapshot date to the next snapshot that changes or
    drops it."""

    valid_from: Series[pd.Timestamp]
    valid_to: Series[pd.Timestamp] = pa.Field(nullable=True)

    @pa.dataframe_check(
        error="a version ends after it starts",
        statistics={"sql": "valid_to IS NULL OR valid_to > valid_from"},
    )
    def ends_after_start(cls, df: pd.DataFrame) -> pd.Series:
        return df["valid_to"].isna() | (df["valid_to"] > df["valid_from"])


class CardsModel(_Versioned):
    """Card reference, versioned: one row per card token and version (cardholder snapshots)."""

    card_token: Series[str] = pa.Field(str_matches=HEX64)
    pan_bin: Series[str] = pa.Field(str_matches=r"^[0-9]{6}$")
    pan_last4: Series[str] = pa.Field(str_matches=r"^[0-9]{4}$")
    customer_id: Series[int]
    home_x: Series[float] = pa.Field(nullable=True)
    home_y: Series[float] = pa.Field(nullable=True)
    home_country: Series[str] = pa.Field(nullable=True)

    class Config:
        strict = True
        coerce = True
        unique = ["card_token", "valid_from"]


class TerminalsModel(_Versioned):
    """Terminal reference, versioned: one row per terminal and version (merchants snapshots)."""

    terminal_id: Series[int]
    merchant_id: Series[pd.Int64Dtype] = pa.Field(nullable=True)
    mcc: Series[str] = pa.Field(nullable=True, str_matches=r"^[0-9]{4}$")
    country: Series[str] = pa.Field(nullable=True)
    currency: Series[str] = pa.Field(nullable=True, str_matches=r"^[A-Z]{3}$")
    timezone: Series[str] = pa.Field(isin=sorted(zoneinfo.available_timezones()))
    x: Series[float] = pa.Field(nullable=True)
    y: Series[float] = pa.Field(nullable=True)

    class Config:
        strict = True
        coerce = True
        unique = ["terminal_id", "valid_from"]


class FxRatesModel(pa.DataFrameModel):
    """EUR reference rates: one rate per (rate_date, quote_currency)."""

    rate_date: Series[pd.Timestamp]
    quote_currency: Series[str] = pa.Field(str_matches=r"^[A-Z]{3}$")
    rate: Series[float] = pa.Field(in_range={"min_value": FX_RATE_BAND[0], "max_value": FX_RATE_BAND[1]})

    class Config:
        strict = True
        coerce = True
        unique = ["rate_date", "quote_currency"]


# The reference tables' columns as the warehouse stores them (DuckDB types, in the tables' order): the
# definition-time schema the UI and docs/catalog.md show. The contracts above name pandas dtypes (`str`,
# `datetime64[ns]` for what is a DATE in the table), which is what they check, not what a reader queries.
VERSION_COLUMNS = [("valid_from", "DATE"), ("valid_to", "DATE")]
REFERENCE_COLUMNS: dict[str, list[tuple[str, str]]] = {
    # the merchants snapshot's columns as raw holds them, without raw's lineage
    "terminals": [
        *(c for c in RAW_COLUMNS["raw.merchants"] if c not in RAW_LINEAGE and c[0] != INVALID_REASON),
        *VERSION_COLUMNS,
    ],
    "cards": [
        ("card_token", "VARCHAR"),
        ("pan_bin", "VARCHAR"),
        ("pan_last4", "VARCHAR"),
        ("customer_id", "BIGINT"),
        ("home_x", "DOUBLE"),
        ("home_y", "DOUBLE"),
        ("home_country", "VARCHAR"),
        *VERSION_COLUMNS,
    ],
    "fx_rates": [("rate_date", "DATE"), ("quote_currency", "VARCHAR"), ("rate", "DOUBLE")],
    "labels": [
        ("transaction_id", "BIGINT"),
        ("card_token", "VARCHAR"),
        ("tx_datetime", "TIMESTAMP"),
        ("reported_at", "TIMESTAMP"),
        ("chargeback_id", "VARCHAR"),
        ("reason_code", "VARCHAR"),
    ],
}
# Each cleaned table's contract, by table name: its check (cleaned/checks.py) runs it, its column schema
# (definition and every materialisation, cleaned/assets.py) shows it.
CONTRACTS: dict[str, type[pa.DataFrameModel]] = {
    TX: TransactionsModel,
    QUAR: QuarantineModel,
    RECON: ReconciliationModel,
    "cleaned.terminals": TerminalsModel,
    "cleaned.cards": CardsModel,
    "cleaned.fx_rates": FxRatesModel,
    "cleaned.labels": LabelsModel,
    "cleaned.reference_quarantine": ReferenceQuarantineModel,
}
