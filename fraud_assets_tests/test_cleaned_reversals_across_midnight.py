"""A reversal landed on the business date after its authorisation's still removes both.

The real raw and cleaned assets on a hand-written landing zone: authorisations at 23:57-23:59 UTC on D
(processor A's CSV and processor B's JSON, in Tokyo local time) and their reversals minutes after
midnight, in D+1's files. Landed in order, D is cleaned first with its authorisations as genuine; D+1's
cleaning counts its reversals, lists D as restated, `reference_restatement_sensor` requests
`cleaning_rebuild` for D, and D cleaned again drops them. Landed the other way round (D's file late),
D+1 is restated instead. Reconciliation is exact on every day, and a reversal of another card's
authorisation, of another amount, or two days later (beyond REVERSAL_LOOKBACK_DAYS) stays an orphan.
"""

from __future__ import annotations

import dagster as dg

from fraud_assets.defs.cleaned import assets as cleaned_assets
from fraud_assets.defs.cleaned.assets import RESTATED_DAYS
from fraud_assets.defs.cleaned.sensors import reference_restatement_sensor
from fraud_assets.resources import build_resources
from fraud_assets_tests import raw_cleaned_support as s
from fraud_assets_tests.conftest import TEST_PAN_KEY

D, D1, D2 = "2018-04-01", "2018-04-02", "2018-04-03"
TX = dg.AssetKey(["cleaned", "transactions"])


def reversal(tid: int, of: int, at: str, **kw) -> dict[str, str]:
    return s.a_row(tid, tx_datetime=at, message_type="reversal", original_transaction_id=str(of), **kw)


def land_d(data_dir) -> None:
    s.write_reference(data_dir)
    s.write_acq_a(
        data_dir,
        [
            s.a_row(1, tx_datetime=f"{D}T23:58:00Z"),  # reversed at 00:03 on D+1
            s.a_row(2, tx_datetime=f"{D}T23:59:00Z"),  # "reversed" with another card's PAN
            s.a_row(3, tx_datetime=f"{D}T23:59:30Z"),  # "reversed" for another amount
            s.a_row(4, tx_datetime=f"{D}T23:57:00Z"),  # "reversed" two days later
            s.a_row(5),  # untouched
        ],
        name=f"acq_a_{D}.csv.gz",
        landed=D1,
    )
    # 23:58 UTC = 08:58 in Tokyo on the next calendar day
    s.write_acq_b(
        data_dir, [s.b_row(11, local_time="02/04/2018 08:58:00")], name=f"acq_b_{D}.jsonl.gz", landed=D1
    )


def land_d1(data_dir) -> None:
    s.write_acq_a(
        data_dir,
        [
            reversal(101, 1, f"{D1}T00:03:00Z"),
            reversal(102, 2, f"{D1}T00:04:00Z", pan=s.PANS[2]),
            reversal(103, 3, f"{D1}T00:05:00Z", amount="9.00"),
            s.a_row(6, tx_datetime=f"{D1}T12:00:00Z"),
        ],
        name=f"acq_a_{D1}.csv.gz",
        landed=D2,
    )
    s.write_acq_b(
        data_dir,
        [s.b_row(111, local_time="02/04/2018 09:03:00", msg="0400", orig_ref="11")],
        name=f"acq_b_{D1}.jsonl.gz",
        landed=D2,
    )


def land_d2(data_dir) -> None:
    s.write_acq_a(
        data_dir,
        [reversal(104, 4, f"{D2}T00:01:00Z"), s.a_row(7, tx_datetime=f"{D2}T12:00:00Z")],
        name=f"acq_a_{D2}.csv.gz",
        landed="2018-04-04",
    )


def clean(data_dir, instance, day: str) -> None:
    """What a landed day's run does: raw and cleaned, checks included; every check passes (but the
    feed-volume warning: these days are a few hand-written rows, not a processor's day)."""
    for result in s.run_pipeline(data_dir, [day], instance=instance):
        assert result.success
        failed = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
        assert [c for c in failed if c != "feed_volumes"] == [], failed


def rebuild(data_dir, instance, day: str) -> None:
    """What the requested `cleaning_rebuild` run does."""
    defs = s.defs_for(data_dir)
    result = dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=dg.AssetSelection.assets(*[dg.AssetKey.from_user_string(k) for k in s.TX_STEP]),
        resources=build_resources(data_dir, TEST_PAN_KEY),
        instance=instance,
        partition_key=day,
    )
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert "raw_rows_reconcile" in {e.check_name for e in evaluations}
    assert all(e.passed for e in evaluations)


def tick(instance, cursor: str | None = None):
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor)
    result = reference_restatement_sensor(ctx)
    return [(r.job_name, r.partition_key) for r in (result if isinstance(result, list) else [])], ctx.cursor


def restated(instance, day: str) -> list[str]:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=TX, asset_partitions=[day]), limit=1
    ).records
    return list(records[0].asset_materialization.metadata[RESTATED_DAYS].value)


def tables(data_dir) -> dict[str, object]:
    with build_resources(data_dir, TEST_PAN_KEY)["duckdb"].get_connection() as conn:

        def by_day(sql: str) -> dict[str, list]:
            out: dict[str, list] = {}
            for day, *row in conn.execute(sql).fetchall():
                out.setdefault(str(day), []).append(row[0] if len(row) == 1 else tuple(row))
            return out

        return {
            "tx": by_day("SELECT business_date, transaction_id FROM cleaned.transactions ORDER BY ALL"),
            "q": by_day("SELECT business_date, transaction_id, reason FROM cleaned.quarantine ORDER BY ALL"),
            "recon": by_day(
                "SELECT business_date, raw_rows, cleaned_rows, quarantined_rows, duplicates_removed, "
                "reversal_rows FROM cleaned.reconciliation ORDER BY ALL"
            ),
        }


def test_a_reversal_after_midnight_restates_the_day_of_its_authorisation(data_dir):
    instance = dg.DagsterInstance.ephemeral()
    land_d(data_dir)
    clean(data_dir, instance, D)
    assert tables(data_dir)["tx"][D] == [1, 2, 3, 4, 5, 11]  # no reversal known yet
    assert tick(instance)[0] == []

    land_d1(data_dir)
    clean(data_dir, instance, D1)
    t = tables(data_dir)
    assert t["tx"][D1] == [6]
    orphans = [(102, "orphan_reversal"), (103, "orphan_reversal")]  # another card; another amount
    assert t["q"][D1] == orphans
    # raw, cleaned, quarantined, duplicates, reversal rows: both reversals counted on their own day
    assert t["recon"][D1] == [(5, 1, 2, 0, 2)]
    assert restated(instance, D1) == [D]

    requests, cursor = tick(instance)
    assert requests == [("cleaning_rebuild", D)]
    assert tick(instance, cursor)[0] == []  # acted on once

    rebuild(data_dir, instance, D)
    t = tables(data_dir)
    assert t["tx"][D] == [2, 3, 4, 5]  # the reversed authorisations are gone
    assert D not in t["q"]
    assert t["recon"][D] == [(6, 4, 0, 0, 2)]
    assert t["recon"][D1] == [(5, 1, 2, 0, 2)]
    assert restated(instance, D) == []  # D+1 already agrees
    assert tick(instance, cursor)[0] == []

    land_d2(data_dir)
    clean(data_dir, instance, D2)
    t = tables(data_dir)
    assert t["q"][D2] == [(104, "orphan_reversal")]  # two days after its authorisation: beyond the lookback
    assert t["recon"][D2] == [(2, 1, 1, 0, 0)]
    assert 4 in t["tx"][D]
    assert restated(instance, D2) == []
    assert tick(instance, cursor)[0] == []


def test_an_authorisation_landed_after_its_reversal_restates_the_reversal_s_day(data_dir):
    instance = dg.DagsterInstance.ephemeral()
    s.write_reference(data_dir)
    land_d1(data_dir)  # D's files are late
    clean(data_dir, instance, D1)
    t = tables(data_dir)
    assert t["q"][D1] == [
        (101, "orphan_reversal"),
        (102, "orphan_reversal"),
        (103, "orphan_reversal"),
        (111, "orphan_reversal"),
    ]
    assert restated(instance, D1) == []

    land_d(data_dir)
    clean(data_dir, instance, D)
    t = tables(data_dir)
    assert t["tx"][D] == [2, 3, 4, 5]
    assert t["recon"][D] == [(6, 4, 0, 0, 2)]
    assert restated(instance, D) == [D1]
    requests, _ = tick(instance)
    assert requests == [("cleaning_rebuild", D1)]

    rebuild(data_dir, instance, D1)
    t = tables(data_dir)
    assert t["q"][D1] == [(102, "orphan_reversal"), (103, "orphan_reversal")]
    assert t["recon"][D1] == [(5, 1, 2, 0, 2)]


def test_days_cleaned_in_one_run_resolve_their_reversals_without_a_restatement(data_dir):
    instance = dg.DagsterInstance.ephemeral()
    land_d(data_dir)
    land_d1(data_dir)
    for result in s.run_pipeline(data_dir, [D, D1], instance=instance):
        assert result.success
        assert all(e.passed for e in result.get_asset_check_evaluations())
    t = tables(data_dir)
    assert t["tx"] == {D: [2, 3, 4, 5], D1: [6]}
    assert t["recon"] == {D: [(6, 4, 0, 0, 2)], D1: [(5, 1, 2, 0, 2)]}
    assert restated(instance, D) == restated(instance, D1) == []
    assert tick(instance)[0] == []


def test_a_run_that_cleans_both_days_again_restates_neither(data_dir, monkeypatch):
    """In chunks of one day, the first chunk sees the second day's stale orphans, which the same run
    cleans next: nothing to restate."""
    instance = dg.DagsterInstance.ephemeral()
    s.write_reference(data_dir)
    land_d1(data_dir)
    clean(data_dir, instance, D1)
    land_d(data_dir)
    monkeypatch.setattr(cleaned_assets, "CHUNK_DAYS", 1)
    for result in s.run_pipeline(data_dir, [D, D1], instance=instance):
        assert result.success
    t = tables(data_dir)
    assert t["tx"] == {D: [2, 3, 4, 5], D1: [6]}
    assert t["recon"] == {D: [(6, 4, 0, 0, 2)], D1: [(5, 1, 2, 0, 2)]}
    assert restated(instance, D) == restated(instance, D1) == []
    assert tick(instance)[0] == []
