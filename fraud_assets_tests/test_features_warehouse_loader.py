"""simulator/warehouse_loader: a simulated world written straight into the cleaned interface tables."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from fraud_assets.lib.pan import Tokenizer, contains_pan
from fraud_assets.lib.provenance import LEAK_SCAN_EXEMPT_COLUMNS
from fraud_assets.simulator import SimConfig, generate_world
from fraud_assets.simulator.warehouse_loader import SCHEMAS, load_world_into_cleaned, world_end
from fraud_assets_tests.conftest import TEST_PAN_KEY


@pytest.fixture(scope="module")
def world():
    return generate_world(SimConfig(profile="realistic", days=30, customers=120, terminals=240, seed=3))


@pytest.fixture
def conn(world):
    c = duckdb.connect()
    load_world_into_cleaned(c, world, Tokenizer(TEST_PAN_KEY))
    yield c
    c.close()


def test_tables_have_exactly_the_interface_columns_and_types(conn):
    for table, columns in SCHEMAS.items():
        described = {r[0]: r[1] for r in conn.execute(f"DESCRIBE cleaned.{table}").fetchall()}
        assert described == columns, table


def test_no_clear_card_number_reaches_any_table(conn, world):
    for table, columns in SCHEMAS.items():
        text = [c for c, t in columns.items() if t == "VARCHAR" and c not in LEAK_SCAN_EXEMPT_COLUMNS]
        values = conn.execute(f"SELECT DISTINCT {', '.join(text)} FROM cleaned.{table}").fetchall()
        assert not any(contains_pan(str(v)) for row in values for v in row if v is not None), table
    assert set(world.transactions["pan"]).isdisjoint(
        r[0] for r in conn.execute("SELECT card_token FROM cleaned.transactions").fetchall()
    )


def test_card_token_is_the_keyed_hmac_of_the_pan(conn, world):
    row = world.transactions.iloc[0]
    token = conn.execute(
        "SELECT card_token FROM cleaned.transactions WHERE transaction_id = ?", [int(row["transaction_id"])]
    ).fetchall()[0][0]
    assert token == Tokenizer(TEST_PAN_KEY).token(row["pan"])


def test_labels_are_the_frauds_reported_by_the_end_of_the_last_day(conn, world):
    tx = world.transactions
    known = tx[(tx["tx_fraud"] == 1) & (tx["reported_at"] <= world_end(world))]
    labels = conn.execute("SELECT transaction_id, reported_at FROM cleaned.labels").df()
    assert set(labels["transaction_id"]) == set(known["transaction_id"])
    assert len(known) < int(tx["tx_fraud"].sum())  # the realistic profile reports some later
    assert labels["reported_at"].max() <= world_end(world)


def test_business_date_is_the_utc_day_and_local_time_follows_the_terminal_zone(conn, world):
    df = conn.execute(
        """SELECT t.business_date, t.tx_datetime, t.tx_datetime_local, m.timezone
           FROM cleaned.transactions t JOIN cleaned.terminals m USING (terminal_id)"""
    ).df()
    assert (pd.to_datetime(df["business_date"]) == df["tx_datetime"].dt.normalize()).all()
    assert df["timezone"].nunique() > 1
    sample = df.groupby("timezone").head(3)
    for _, r in sample.iterrows():
        local = r["tx_datetime"].tz_localize("UTC").tz_convert(r["timezone"]).tz_localize(None)
        assert r["tx_datetime_local"] == local
