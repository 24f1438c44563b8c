"""A late or corrected FX rate, or a terminal listed after its transactions, re-cleans the days it changes.

The real raw and cleaned assets on a hand-written landing zone: a day cleaned with the day before's rate
(its own not published yet), a currency without any rate and a terminal no snapshot lists. The next FX
file and merchants snapshot make cleaned/fx_rates and cleaned/terminals list the day as restated,
`reference_restatement_sensor` requests `cleaning_rebuild` for it, and the day cleaned again converts
with its own rate and keeps every genuine row. The sensor's bookkeeping runs on the stand-in graph.
"""

from __future__ import annotations

import threading

import dagster as dg
import pandas as pd

from fraud_assets.defs.cleaned.assets import RESTATED_DAYS
from fraud_assets.defs.cleaned.sensors import reference_restatement_sensor
from fraud_assets.lib.runs import RANGE_END, RANGE_START
from fraud_assets.resources import build_resources
from fraud_assets_tests import raw_cleaned_support as s
from fraud_assets_tests.automation_stubs import materialize_stub
from fraud_assets_tests.conftest import TEST_PAN_KEY

DAY2 = "2018-04-02"
FX = dg.AssetKey(["cleaned", "fx_rates"])
TERMINALS = dg.AssetKey(["cleaned", "terminals"])


def tick(instance, cursor: str | None = None):
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor)
    result = reference_restatement_sensor(ctx)
    return (result if isinstance(result, list) else []), ctx.cursor


def restated(instance, key: dg.AssetKey) -> list[str]:
    record = instance.fetch_materializations(key, limit=1).records[0]
    return list(record.asset_materialization.metadata[RESTATED_DAYS].value)


def materialise(data_dir, instance, keys: list[str], partition: str | None = None) -> None:
    defs = s.defs_for(data_dir)
    result = dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=dg.AssetSelection.assets(*[dg.AssetKey.from_user_string(k) for k in keys]),
        resources=build_resources(data_dir, TEST_PAN_KEY),
        instance=instance,
        partition_key=partition,
    )
    assert result.success


def day2_rows(data_dir) -> dict[str, pd.DataFrame]:
    with build_resources(data_dir, TEST_PAN_KEY)["duckdb"].get_connection() as conn:
        where = f"WHERE business_date = DATE '{DAY2}' ORDER BY transaction_id"
        return {
            "tx": conn.execute(
                f"SELECT transaction_id, currency, fx_rate FROM cleaned.transactions {where}"
            ).df(),
            "q": conn.execute(f"SELECT transaction_id, reason FROM cleaned.quarantine {where}").df(),
        }


def test_a_late_rate_and_a_late_terminal_restate_the_day_they_change(data_dir):
    instance = dg.DagsterInstance.ephemeral()
    s.write_reference(data_dir)  # rates and terminals of 2018-04-01
    at = {"tx_datetime": f"{DAY2}T12:00:00Z", "amount": "13.00"}
    rows = [
        s.a_row(1, **at, currency="USD", terminal_id="2"),  # no USD rate of its own day yet: 04-01's
        s.a_row(2, **at, currency="CHF", terminal_id="2"),  # no CHF rate at all yet
        s.a_row(3, **at, terminal_id="9"),  # a terminal no snapshot lists yet
        s.a_row(4, **at),  # EUR at a known terminal: nothing to restate
    ]
    s.write_acq_a(data_dir, rows, name=f"acq_a_{DAY2}.csv.gz", landed="2018-04-03")
    s.run_pipeline(data_dir, keys=[DAY2], instance=instance)
    before = day2_rows(data_dir)
    assert before["tx"].values.tolist() == [[1, "USD", 1.25], [4, "EUR", 1.0]]
    assert before["q"].values.tolist() == [[2, "unknown_currency"], [3, "unknown_terminal"]]
    assert tick(instance)[0] == []  # the references were built before the day was cleaned

    # Day 2's own rates (USD 1.30, CHF 1.10) land, and a snapshot that lists terminal 9.
    fx = [
        {"rate_date": DAY2, "base_currency": "EUR", "quote_currency": c, "rate": r}
        for c, r in (("USD", "1.30"), ("CHF", "1.10"))
    ]
    s.write(data_dir, f"fx_rates/{DAY2}/fx_rates_{DAY2}.csv", s.csv_text(fx, list(fx[0])))
    nine = s.TERMINALS.iloc[[0]].assign(terminal_id=9, merchant_id=90)
    path = data_dir / "landing" / "merchants" / DAY2 / f"merchants_{DAY2}.parquet"
    path.parent.mkdir(parents=True)
    pd.concat([s.TERMINALS, nine]).to_parquet(path, index=False)
    materialise(data_dir, instance, [*s.RAW_REFS, "cleaned/fx_rates", "cleaned/terminals"])
    assert restated(instance, FX) == [DAY2]
    assert restated(instance, TERMINALS) == [DAY2]

    requests, cursor = tick(instance)
    assert [(r.job_name, r.partition_key) for r in requests] == [("cleaning_rebuild", DAY2)]
    assert requests[0].tags["fraud_assets/trigger"] == "restatement"
    assert tick(instance, cursor)[0] == []  # each reference version is acted on once

    materialise(data_dir, instance, s.TX_STEP, partition=DAY2)  # what the requested run does
    after = day2_rows(data_dir)
    assert after["tx"].values.tolist() == [
        [1, "USD", 1.30],
        [2, "CHF", 1.10],
        [3, "EUR", 1.0],
        [4, "EUR", 1.0],
    ]
    assert after["q"].empty
    materialise(data_dir, instance, ["cleaned/fx_rates", "cleaned/terminals"])
    assert restated(instance, FX) == restated(instance, TERMINALS) == []


def fx_version(instance, days: list[str]) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=FX, metadata={RESTATED_DAYS: days}))


def test_the_sensor_requests_blocks_of_days_not_cleaned_again_since():
    instance = dg.DagsterInstance.ephemeral()
    days = ["2018-05-01", "2018-05-02", "2018-05-03", "2018-05-07"]
    fx_version(instance, days)
    materialize_stub(instance, "cleaned/transactions", partitions=("2018-05-02",))  # cleaned again since
    requests, _ = tick(instance)
    single = [r.partition_key for r in requests if r.partition_key]
    ranges = [(r.tags[RANGE_START], r.tags[RANGE_END]) for r in requests if not r.partition_key]
    assert sorted(single) == ["2018-05-01", "2018-05-03", "2018-05-07"]
    assert ranges == []
    fx_version(instance, ["2018-05-10", "2018-05-11"])
    requests, _ = tick(instance, _)
    assert [(r.tags[RANGE_START], r.tags[RANGE_END]) for r in requests] == [("2018-05-10", "2018-05-11")]


def test_the_sensor_waits_while_the_run_that_wrote_the_rates_is_still_going():
    """A landed day's run builds the FX rates, then cleans its own day: until it ends, the days the rates
    restate may still be cleaned by it."""
    logged, release = threading.Event(), threading.Event()

    @dg.op
    def write_rates(context):
        context.log_event(dg.AssetMaterialization(asset_key=FX, metadata={RESTATED_DAYS: ["2018-05-01"]}))
        logged.set()
        assert release.wait(60)

    @dg.job
    def landed():
        write_rates()

    # No compute-log capture (instance_for_test tails the step's logs in subprocesses, which a run in a
    # thread can outlive): the in-memory instance records the run and its events only.
    with dg.DagsterInstance.ephemeral() as instance:
        worker = threading.Thread(target=lambda: landed.execute_in_process(instance=instance))
        worker.start()
        try:
            assert logged.wait(60)
            requests, cursor = tick(instance)
            assert requests == []
            assert not cursor
        finally:
            release.set()
            worker.join(60)
        assert not worker.is_alive()
        requests, _ = tick(instance, cursor)
        assert [r.partition_key for r in requests] == ["2018-05-01"]


def test_a_snapshot_moving_a_terminal_restates_only_its_days_from_the_snapshot_date(data_dir):
    """Terminal 3 moves from Tokyo to New York in a snapshot dated 04-03: of the days already cleaned, only
    those from 04-03 on with rows on terminal 3 are cleaned again (in New York time); 04-01 and 04-02 keep
    Tokyo time, and 04-04 (no row on terminal 3) is left alone."""
    instance = dg.DagsterInstance.ephemeral()
    s.write_reference(data_dir)  # snapshot dated 2018-04-01
    days = ["2018-04-01", "2018-04-02", "2018-04-03", "2018-04-04"]
    for n, day in enumerate(days[:3], start=1):
        local = f"{day[8:]}/04/2018 15:00:00"  # 06:00 UTC in Tokyo, 19:00 UTC in New York (EDT)
        landed = f"2018-04-0{n + 1}"
        s.write_acq_b(data_dir, [s.b_row(n, local_time=local)], f"acq_b_{day}.jsonl.gz", landed)
    s.write_acq_a(
        data_dir, [s.a_row(4, tx_datetime="2018-04-04T12:00:00Z")], "acq_a_2018-04-04.csv.gz", "2018-04-05"
    )
    s.run_pipeline(data_dir, keys=days, instance=instance)

    moved = s.TERMINALS.copy()
    moved.loc[moved["terminal_id"] == 3, "timezone"] = "America/New_York"
    path = data_dir / "landing" / "merchants" / "2018-04-03" / "merchants_2018-04-03.parquet"
    path.parent.mkdir(parents=True)
    moved.to_parquet(path, index=False)
    materialise(data_dir, instance, [*s.RAW_REFS, "cleaned/terminals"])
    assert restated(instance, TERMINALS) == ["2018-04-03"]
    requests, _ = tick(instance)
    assert [r.partition_key for r in requests] == ["2018-04-03"]

    materialise(data_dir, instance, s.TX_STEP, partition="2018-04-03")  # what the requested run does
    with build_resources(data_dir, TEST_PAN_KEY)["duckdb"].get_connection() as conn:
        times = conn.execute(
            "SELECT transaction_id, CAST(tx_datetime AS VARCHAR) FROM cleaned.transactions ORDER BY 1"
        ).fetchall()
    assert times == [
        (1, "2018-04-01 06:00:00"),
        (2, "2018-04-02 06:00:00"),
        (3, "2018-04-03 19:00:00"),
        (4, "2018-04-04 12:00:00"),
    ]
    materialise(data_dir, instance, ["cleaned/terminals"])
    assert restated(instance, TERMINALS) == []  # nothing changed since


def test_a_restated_day_that_is_not_a_partition_now_is_left_out_and_the_others_are_requested():
    """`make pipeline` may have cleaned a landed day not over yet (its last business date is the landing
    zone's); a request for it would fail the whole tick, every tick, and no day would be cleaned again."""
    instance = dg.DagsterInstance.ephemeral()
    fx_version(instance, ["2018-05-01", "2999-01-01"])
    requests, cursor = tick(instance)
    assert [r.partition_key for r in requests] == ["2018-05-01"]
    assert cursor  # read past: the day left out is not looked at again on every tick
