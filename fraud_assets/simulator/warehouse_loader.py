"""Load a simulated world straight into the cleaned interface tables (docs/architecture.md).

For benchmarks and for unit tests of the layers downstream of `cleaned` (features, models): they
get a realistic cleaned warehouse in a second instead of running landing -> raw -> cleaned. The
pipeline never uses it; there, `cleaned` is built from the landing zone.

    load_world_into_cleaned(conn, generate_world(SimConfig(profile="handbook", handbook_labels=True)))

The clear PAN stays in the world's DataFrames: tables get the keyed token, BIN and last four only.
"""

from __future__ import annotations

import datetime as dt
import os

import duckdb
import numpy as np
import pandas as pd

from fraud_assets.lib.pan import Tokenizer
from fraud_assets.lib.warehouse import replace_table

# Only for a simulated world loaded without FRAUD_PAN_KEY (benchmarks): these are not real cards.
SIMULATION_KEY = "simulated-world-only-not-a-secret"

_TX = "transaction_id BIGINT, business_date DATE, tx_datetime TIMESTAMP, tx_datetime_local TIMESTAMP, "
_TX += "card_token VARCHAR, pan_bin VARCHAR, pan_last4 VARCHAR, terminal_id BIGINT, tx_amount DOUBLE, "
_TX += "amount_original DOUBLE, currency VARCHAR, fx_rate DOUBLE, channel VARCHAR, three_ds VARCHAR, "
_TX += "feed VARCHAR, source_file VARCHAR, row_number BIGINT"
_SCHEMAS = {
    "transactions": _TX,
    "labels": "transaction_id BIGINT, card_token VARCHAR, tx_datetime TIMESTAMP, reported_at TIMESTAMP, "
    "chargeback_id VARCHAR, reason_code VARCHAR",
    # one version per card and per terminal, serving every day (a simulated world's never change)
    "cards": "card_token VARCHAR, pan_bin VARCHAR, pan_last4 VARCHAR, customer_id BIGINT, home_x DOUBLE, "
    "home_y DOUBLE, home_country VARCHAR, valid_from DATE, valid_to DATE",
    "terminals": "terminal_id BIGINT, merchant_id BIGINT, mcc VARCHAR, country VARCHAR, currency VARCHAR, "
    "timezone VARCHAR, x DOUBLE, y DOUBLE, valid_from DATE, valid_to DATE",
    "fx_rates": "rate_date DATE, quote_currency VARCHAR, rate DOUBLE",
}
# The cleaned interface (docs/architecture.md): table -> {column: DuckDB type}.
SCHEMAS: dict[str, dict[str, str]] = {
    table: dict(col.strip().split(" ", 1) for col in spec.split(",")) for table, spec in _SCHEMAS.items()
}


def settle(conn: duckdb.DuckDBPyConnection) -> None:
    """Finish any half-fetched result: duckdb 2 refuses register()/sql() on a connection whose last
    execute() was read with fetchone() (lib/warehouse.py does that)."""
    conn.execute("SELECT 1").fetchall()


def _tokenizer(tokenizer: Tokenizer | None) -> Tokenizer:
    if tokenizer is not None:
        return tokenizer
    return Tokenizer(os.environ.get("FRAUD_PAN_KEY") or SIMULATION_KEY)


def _local_time(utc: pd.Series, timezone: pd.Series) -> pd.Series:
    """Naive local wall-clock time of each UTC timestamp in its terminal's IANA time zone."""
    out = pd.Series(pd.NaT, index=utc.index, dtype="datetime64[ns]")
    for tz, idx in timezone.groupby(timezone, sort=False).groups.items():
        stamps = utc.loc[idx].dt.tz_localize("UTC")
        out.loc[idx] = stamps.dt.tz_convert(tz).dt.tz_localize(None).to_numpy()
    return out


def world_end(world) -> pd.Timestamp:
    """The end of the world's last day (UTC): what has been reported by then is known."""
    return pd.Timestamp(world.last_day + dt.timedelta(days=1))


def cleaned_frames(world, tokenizer: Tokenizer | None = None) -> dict[str, pd.DataFrame]:
    """The cleaned tables of a world as DataFrames, in interface column order."""
    tok = _tokenizer(tokenizer)
    tx = world.transactions
    terminals = world.terminals

    tz = tx["terminal_id"].map(terminals.set_index("terminal_id")["timezone"]).fillna("UTC")
    pans = tok.tokenise_series(tx["pan"])
    amount_original = tx["amount_original"] if "amount_original" in tx else tx["tx_amount"]
    currency = tx["currency"] if "currency" in tx else pd.Series("EUR", index=tx.index)
    three_ds = tx["three_ds"].replace("", None) if "three_ds" in tx else None
    transactions = pd.DataFrame(
        {
            "transaction_id": tx["transaction_id"].astype("int64"),
            "business_date": tx["tx_datetime"].dt.normalize().dt.date,
            "tx_datetime": tx["tx_datetime"].astype("datetime64[us]"),
            "tx_datetime_local": _local_time(tx["tx_datetime"], tz).astype("datetime64[us]"),
            "card_token": pans["card_token"],
            "pan_bin": pans["pan_bin"],
            "pan_last4": pans["pan_last4"],
            "terminal_id": tx["terminal_id"].astype("int64"),
            "tx_amount": tx["tx_amount"].astype("float64"),
            "amount_original": amount_original.astype("float64"),
            "currency": currency,
            # units of the original currency per EUR, as cleaned derives it (amount_eur = amount / rate)
            "fx_rate": np.where(tx["tx_amount"] > 0, amount_original / tx["tx_amount"], 1.0).round(6),
            "channel": tx["channel"] if "channel" in tx else "card_present",
            "three_ds": three_ds,
            "feed": tx["feed"] if "feed" in tx else "simulator",
            "source_file": "simulator",
            "row_number": np.arange(1, len(tx) + 1, dtype="int64"),
        }
    ).sort_values(["business_date", "tx_datetime", "transaction_id"], ignore_index=True)

    end = world_end(world)
    fraud = tx[(tx["tx_fraud"] == 1) & tx["reported_at"].notna() & (tx["reported_at"] <= end)]
    fraud_tokens = pans.loc[fraud.index, "card_token"]
    labels = pd.DataFrame(
        {
            "transaction_id": fraud["transaction_id"].astype("int64"),
            "card_token": fraud_tokens,
            "tx_datetime": fraud["tx_datetime"].astype("datetime64[us]"),
            "reported_at": fraud["reported_at"].astype("datetime64[us]"),
            "chargeback_id": "sim-" + fraud["transaction_id"].astype(str),
            "reason_code": "10.4",
        }
    ).reset_index(drop=True)

    customers = world.customers
    card_pans = tok.tokenise_series(customers["pan"])
    cards = pd.DataFrame(
        {
            "card_token": card_pans["card_token"],
            "pan_bin": card_pans["pan_bin"],
            "pan_last4": card_pans["pan_last4"],
            "customer_id": customers["customer_id"].astype("int64"),
            "home_x": customers["home_x"].astype("float64"),
            "home_y": customers["home_y"].astype("float64"),
            "home_country": customers["home_country"] if "home_country" in customers else None,
        }
    )
    # the snapshots of the world's first day, its only ones
    first_day = transactions["business_date"].min() if len(transactions) else world.last_day
    cards["valid_from"], cards["valid_to"] = first_day, None
    cleaned_terminals = terminals[
        ["terminal_id", "merchant_id", "mcc", "country", "currency", "timezone", "x", "y"]
    ].reset_index(drop=True)
    cleaned_terminals["valid_from"], cleaned_terminals["valid_to"] = first_day, None
    fx = world.fx_rates
    fx_rates = pd.DataFrame(
        {
            "rate_date": pd.to_datetime(fx["rate_date"]).dt.date,
            "quote_currency": fx["quote_currency"],
            "rate": fx["rate"].astype("float64"),
        }
    )
    return {
        "transactions": transactions,
        "labels": labels,
        "cards": cards,
        "terminals": cleaned_terminals,
        "fx_rates": fx_rates,
    }


def load_world_into_cleaned(
    conn: duckdb.DuckDBPyConnection, world, tokenizer: Tokenizer | None = None
) -> dict[str, int]:
    """Write cleaned.transactions/labels/cards/terminals/fx_rates from `world`; returns row counts.

    Labels are the frauds reported by the end of the world's last day (later reports are not known
    yet). `tokenizer` defaults to FRAUD_PAN_KEY, or a fixed simulation key when that is unset.
    """
    frames = cleaned_frames(world, tokenizer)
    counts = {}
    for name, frame in frames.items():
        # Explicit interface types: an all-null column (three_ds in the handbook profile) must not
        # become DuckDB's NULL type.
        sql = "SELECT " + ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in SCHEMAS[name].items())
        sql += " FROM _loader_frame"
        settle(conn)
        conn.register("_loader_frame", frame)
        try:
            counts[name] = replace_table(conn, f"cleaned.{name}", sql)
        finally:
            settle(conn)
            conn.unregister("_loader_frame")
    return counts
