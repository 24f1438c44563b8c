"""Reference data point in time, from the landing zone to the features: a merchants snapshot dated
mid-history moves a terminal (location, merchant category) and another one to a new time zone, and a
cardholder snapshot moves a card's home. The days before the snapshots keep the values of their own date in
cleaned and in features, the days from the snapshots' date on use the new ones: in a backfill run after the
snapshots landed, and when the snapshots land after the days were featured (label_lookback_sensor)."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from fraud_assets.defs.cleaned.assets import CHANGED_REFERENCE_FIRST, CHANGED_REFERENCE_LAST
from fraud_assets.defs.features.assets import transaction_features
from fraud_assets.defs.features.sensors import label_lookback_sensor
from fraud_assets.lib.runs import RANGE_END, RANGE_START
from fraud_assets.lib.tables import FEATURES_TABLE
from fraud_assets.resources import build_resources
from fraud_assets_tests import raw_cleaned_support as s
from fraud_assets_tests.automation_stubs import stub_definitions
from fraud_assets_tests.conftest import TEST_PAN_KEY

DAYS = ["2018-04-01", "2018-04-02", "2018-04-03", "2018-04-04"]
SNAPSHOT = DAYS[2]  # the second snapshots are dated mid-history
# card 1 at terminal 1: before the snapshots home (1, 1) and terminal (1, 5); from them on (40, 40), (50, 5)
OLD_HOME_DISTANCE, NEW_HOME_DISTANCE = 4.0, 36.400549


def _landed(n: int) -> str:
    return f"2018-04-0{n + 2}"


def _land_authorisations(data_dir) -> None:
    s.write_reference(data_dir)  # merchants and cardholders dated 04-01
    for n, day in enumerate(DAYS):
        # card 1 at terminal 1 at noon UTC every day; card 2 at terminal 3 (processor B, local time)
        noon = [s.a_row(10 + n, tx_datetime=f"{day}T12:00:00Z")]
        s.write_acq_a(data_dir, noon, f"acq_a_{day}.csv.gz", _landed(n))
        local = f"{day[8:]}/04/2018 15:00:00"  # 06:00 UTC in Tokyo, 19:00 UTC in New York (EDT)
        s.write_acq_b(data_dir, [s.b_row(20 + n, local_time=local)], f"acq_b_{day}.jsonl.gz", _landed(n))


def _land_second_snapshots(data_dir) -> None:
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


def _feature(data_dir, instance, days: list[str]) -> None:
    result = dg.materialize(
        [transaction_features],
        resources=build_resources(data_dir, TEST_PAN_KEY),
        instance=instance,
        tags={"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]},
    )
    assert result.success


def _features(data_dir) -> pd.DataFrame:
    with build_resources(data_dir, TEST_PAN_KEY)["duckdb"].get_connection() as conn:
        columns = "CAST(tx_datetime AS VARCHAR) AS t, dist_home_terminal, dist_prev_terminal"
        sql = f"SELECT transaction_id, {columns} FROM {FEATURES_TABLE} ORDER BY transaction_id"
        return conn.execute(sql).df().set_index("transaction_id")


def _assert_point_in_time(features: pd.DataFrame) -> None:
    card_1 = features.loc[[10, 11, 12, 13]]
    assert card_1["dist_home_terminal"].round(6).tolist() == [OLD_HOME_DISTANCE] * 2 + [NEW_HOME_DISTANCE] * 2
    # the previous transaction (04-02) was at the terminal's old place, 49 grid units away
    assert card_1["dist_prev_terminal"].round(6).tolist() == [0.0, 0.0, 49.0, 0.0]


def test_features_use_the_reference_data_of_their_own_date(data_dir):
    _land_authorisations(data_dir)
    _land_second_snapshots(data_dir)
    s.run_pipeline(data_dir, DAYS)  # every day cleaned and featured after the snapshots landed
    _feature(data_dir, dg.DagsterInstance.ephemeral(), DAYS)
    features = _features(data_dir)
    _assert_point_in_time(features)
    # terminal 3's local times: Tokyo before the snapshot, New York from it on, in cleaned and features
    assert features.loc[[20, 21, 22, 23], "t"].tolist() == [
        "2018-04-01 06:00:00",
        "2018-04-02 06:00:00",
        "2018-04-03 19:00:00",
        "2018-04-04 19:00:00",
    ]


def test_snapshots_landed_after_the_days_were_featured_rebuild_the_days_from_their_date(data_dir, tmp_path):
    """cleaned/terminals and cleaned/cards say which transaction dates read other values now (from the
    snapshots' date on), label_lookback_sensor requests those days, and the rebuilt days equal the
    backfill's."""
    instance = dg.DagsterInstance.ephemeral()
    _land_authorisations(data_dir)
    s.run_pipeline(data_dir, DAYS, instance=instance)
    _feature(data_dir, instance, DAYS)
    assert _features(data_dir)["dist_home_terminal"].loc[[12, 13]].tolist() == [OLD_HOME_DISTANCE] * 2

    _land_second_snapshots(data_dir)
    refs = ["raw/file_register", "raw/cardholders", "raw/merchants", "cleaned/cards", "cleaned/terminals"]
    defs = s.defs_for(data_dir)
    dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=dg.AssetSelection.assets(*[dg.AssetKey.from_user_string(k) for k in refs]),
        resources=build_resources(data_dir, TEST_PAN_KEY),
        instance=instance,
    )
    for name in ("cards", "terminals"):
        record = instance.fetch_materializations(dg.AssetKey(["cleaned", name]), limit=1).records[0]
        md = record.asset_materialization.metadata
        assert (md[CHANGED_REFERENCE_FIRST].value, md[CHANGED_REFERENCE_LAST].value) == (SNAPSHOT, DAYS[-1])
    context = dg.build_sensor_context(instance=instance, definitions=stub_definitions(tmp_path))
    requests = label_lookback_sensor(context)
    assert [(r.tags[RANGE_START], r.tags[RANGE_END]) for r in requests] == [(SNAPSHOT, DAYS[-1])]

    _feature(data_dir, instance, DAYS[2:])  # what the requested run does
    _assert_point_in_time(_features(data_dir))
