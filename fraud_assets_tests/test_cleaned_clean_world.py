"""A `--clean` simulated world reaches cleaned.transactions whole: every ground-truth transaction, with
its values unchanged, and nothing quarantined - zero-amount authorisations and the autumn DST changes
of Europe (28 Oct 2018) and the United States (4 Nov 2018) included."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from fraud_assets.lib.pan import Tokenizer
from fraud_assets.resources import build_resources
from fraud_assets.simulator import SimConfig, simulate
from fraud_assets_tests import raw_cleaned_support as s
from fraud_assets_tests.conftest import TEST_PAN_KEY

# Seed 41 of this small world holds two authorisations of 0.00 (as the 183-day handbook world holds 34).
CONFIG = SimConfig(
    profile="realistic", start="2018-10-26", days=10, customers=300, terminals=600, seed=41, clean=True
)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("clean_world") / "data"
    simulate(data_dir, CONFIG)
    keys = [(CONFIG.start_date + dt.timedelta(days=i)).isoformat() for i in range(CONFIG.days)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FRAUD_PAN_KEY", TEST_PAN_KEY)
        results = s.run_pipeline(data_dir, keys, raise_on_error=False)
    with build_resources(data_dir, TEST_PAN_KEY)["duckdb"].get_connection() as conn:
        tables = {
            t: conn.execute(f"SELECT * FROM {t}").df()
            for t in ("cleaned.transactions", "cleaned.quarantine", "cleaned.reconciliation")
        }
    truth = pd.read_parquet(data_dir / "ground_truth" / "transactions.parquet")
    return {"results": results, "tables": tables, "truth": truth}


def test_the_world_holds_zero_amounts_and_dst_changes(world):
    truth = world["truth"]
    assert (truth["amount_original"] == 0).sum() == 2
    days = set(pd.to_datetime(truth["tx_datetime"]).dt.date.astype(str))
    assert {"2018-10-28", "2018-11-04"} <= days


def test_every_run_succeeds_with_every_check_passing(world):
    assert all(r.success for r in world["results"])
    failed = [
        ev.check_name for r in world["results"] for ev in r.get_asset_check_evaluations() if not ev.passed
    ]
    assert failed == []


def test_nothing_is_quarantined_or_removed(world):
    recon = world["tables"]["cleaned.reconciliation"]
    assert world["tables"]["cleaned.quarantine"].empty
    assert (recon["raw_rows"] == recon["cleaned_rows"]).all()


def test_every_ground_truth_transaction_is_cleaned_unchanged(world):
    tx = world["tables"]["cleaned.transactions"].set_index("transaction_id").sort_index()
    truth = world["truth"].set_index("transaction_id").sort_index()
    assert tx.index.equals(truth.index)
    assert (tx["amount_original"] == truth["amount_original"]).all()
    # EUR amounts of the truth are before rounding to the original currency's minor unit.
    assert (tx["tx_amount"] - truth["tx_amount"]).abs().max() <= 0.01 + 1e-4 * truth["tx_amount"].max()
    assert (tx["tx_datetime"] == truth["tx_datetime"]).all()
    assert (tx["tx_datetime_local"] == truth["tx_datetime_local"]).all()
    for column in ("terminal_id", "currency", "channel"):
        assert (tx[column] == truth[column]).all(), column
    assert (tx["three_ds"].fillna("") == truth["three_ds"].fillna("")).all()
    assert (tx["card_token"] == truth["pan"].map(Tokenizer(TEST_PAN_KEY).token)).all()
