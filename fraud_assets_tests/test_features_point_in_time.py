"""Reference data point in time, from the landing zone to the features: a merchants snapshot dated
mid-history moves a terminal (location, merchant category) and another one to a new time zone, and a
cardholder snapshot moves a card's home. Every day is cleaned and featured after both landed (a backfill):
the days before the snapshots keep the values of their own date in cleaned and in features, the days from
the snapshots' date on use the new ones."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from fraud_assets.defs.features.assets import transaction_features
from fraud_assets.lib.tables import FEATURES_TABLE
from fraud_assets.resources import build_resources
from fraud_assets_tests import raw_cleaned_support as s
from fraud_assets_tests.conftest import TEST_PAN_KEY

DAYS = ["2018-04-01", "2018-04-02", "2018-04-03", "2018-04-04"]
SNAPSHOT = DAYS[2]  # the second snapshots are dated mid-history


def _landed(n: int) -> str:
    return f"2018-04-0{n + 2}"


def _land(data_dir) -> None:
    s.write_reference(data_dir)  # merchants and cardholders dated 04-01
    terminals = s.TERMINALS.copy()
    terminals.loc[terminals["terminal_id"] == 1, ["x", "mcc"]] = [50.0, "5999"]
    terminals.loc[terminals["terminal_id"] == 3, "timezone"] = "America/New_York"
    homes = pd.DataFrame(
        {
            "customer_id": list(s.PANS),
            "pan": list(s.PANS.values()),
            "home_x": [40.0, 2.0, 3.0],  # card 1 moved from (1, 1) to (40, 40)
            "home_y": [40.0, 2.0, 3.0],
            "home_country": ["FR", "JP", "US"],
            "issued_at": pd.to_datetime(["2017-01-01"] * 3).date,
        }
    )
    for source, frame in (("merchants", terminals), ("cardholders", homes)):
        path = data_dir / "landing" / source / SNAPSHOT / f"{source}_{SNAPSHOT}.parquet"
        path.parent.mkdir(parents=True)
        frame.to_parquet(path, index=False)
    for n, day in enumerate(DAYS):
        # card 1 at terminal 1 at noon UTC every day; card 2 at terminal 3 (processor B, local time)
        s.write_acq_a(
            data_dir, [s.a_row(10 + n, tx_datetime=f"{day}T12:00:00Z")], f"acq_a_{day}.csv.gz", _landed(n)
        )
        local = f"{day[8:]}/04/2018 15:00:00"  # 06:00 UTC in Tokyo, 19:00 UTC in New York (EDT)
        s.write_acq_b(data_dir, [s.b_row(20 + n, local_time=local)], f"acq_b_{day}.jsonl.gz", _landed(n))


@pytest.fixture
def featured(data_dir) -> pd.DataFrame:
    _land(data_dir)
    s.run_pipeline(data_dir, DAYS)
    result = dg.materialize(
        [transaction_features],
        resources=build_resources(data_dir, TEST_PAN_KEY),
        tags={"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[-1]},
    )
    assert result.success
    with build_resources(data_dir, TEST_PAN_KEY)["duckdb"].get_connection() as conn:
        columns = "CAST(tx_datetime AS VARCHAR) AS t, dist_home_terminal, dist_prev_terminal"
        sql = f"SELECT transaction_id, {columns} FROM {FEATURES_TABLE} ORDER BY transaction_id"
        return conn.execute(sql).df().set_index("transaction_id")


def test_features_use_the_reference_data_of_their_own_date(featured):
    card_1 = featured.loc[[10, 11, 12, 13]]
    # before: home (1, 1), terminal 1 at (1, 5); from the snapshot on: home (40, 40), terminal at (50, 5)
    assert card_1["dist_home_terminal"].round(6).tolist() == [4.0, 4.0, 36.400549, 36.400549]
    # the previous transaction (04-02) was at the terminal's old place, 49 grid units away
    assert card_1["dist_prev_terminal"].round(6).tolist() == [0.0, 0.0, 49.0, 0.0]
    # terminal 3's local times: Tokyo before the snapshot, New York from it on, in cleaned and features
    assert featured.loc[[20, 21, 22, 23], "t"].tolist() == [
        "2018-04-01 06:00:00",
        "2018-04-02 06:00:00",
        "2018-04-03 19:00:00",
        "2018-04-04 19:00:00",
    ]
