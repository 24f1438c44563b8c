"""A business date where a processor's file has not arrived (or arrived cut short) is flagged: the day
still flows on and is scored with what landed, but `feed_volumes` warns until the missing rows land."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from fraud_assets.defs import raw
from fraud_assets.resources import build_resources
from fraud_assets_tests import raw_cleaned_support as s
from fraud_assets_tests.conftest import TEST_PAN_KEY
from fraud_assets_tests.days_run import days_run

DAYS = [(dt.date(2018, 4, 1) + dt.timedelta(days=i)).isoformat() for i in range(9)]
CHECK = dg.AssetCheckKey(dg.AssetKey(["raw", "authorizations"]), "feed_volumes")


def _land(data_dir, day: str, a_rows: int, b_rows: int, suffix: str = "") -> None:
    landed = (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()
    first = int(day.replace("-", "")) * 1000 + (500 if suffix else 0)
    if a_rows:
        rows = [s.a_row(first + i) for i in range(a_rows)]
        s.write_acq_a(data_dir, rows, name=f"acq_a_{day}{suffix}.csv.gz", landed=landed)
    if b_rows:
        rows = [s.b_row(first + 200 + i) for i in range(b_rows)]
        s.write_acq_b(data_dir, rows, name=f"acq_b_{day}{suffix}.jsonl.gz", landed=landed)


def _ingest(data_dir, days: list[str]) -> dg.AssetCheckEvaluation:
    """The check's evaluation of the run: the range's own in a range run."""
    return _ingest_days(data_dir, days)[None if len(days) > 1 else days[0]]


def _ingest_days(data_dir, days: list[str]) -> dict[str | None, dg.AssetCheckEvaluation]:
    """The check's evaluations of the run by partition (None: a range run's own)."""
    every = [*raw.defs.assets, *raw.defs.asset_checks]
    resources = build_resources(data_dir, TEST_PAN_KEY)
    instance = dg.DagsterInstance.ephemeral()
    dg.materialize(
        every,
        selection=dg.AssetSelection.assets(["raw", "file_register"]),
        resources=resources,
        instance=instance,
    )
    auth = dg.AssetSelection.assets(["raw", "authorizations"])
    result = dg.materialize(
        every,
        selection=auth | auth.checks(),
        resources=resources,
        instance=instance,
        **days_run(days),
    )
    return {e.partition: e for e in result.get_asset_check_evaluations() if e.asset_check_key == CHECK}


def test_a_missing_feed_file_and_a_cut_one_warn_and_the_day_still_flows(data_dir):
    for day in DAYS[:-1]:
        _land(data_dir, day, a_rows=60, b_rows=60)
    _land(data_dir, DAYS[-1], a_rows=0, b_rows=20)  # acq_a's file has not arrived; acq_b's is cut short

    evaluation = _ingest(data_dir, DAYS)

    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["short_feed_days"].value == 2
    assert f"acq_a on {DAYS[-1]}: 0 rows (median 60" in evaluation.description
    assert f"acq_b on {DAYS[-1]}: 20 rows (median 60" in evaluation.description


def test_in_a_range_only_the_short_day_warns(data_dir):
    for day in DAYS:
        _land(data_dir, day, a_rows=60, b_rows=60 if day != DAYS[-2] else 20)
    evaluations = _ingest_days(data_dir, DAYS)
    assert [d for d in DAYS if not evaluations[d].passed] == [DAYS[-2]]
    assert evaluations[DAYS[-2]].metadata["short_feed_days"].value == 1
    assert f"acq_b on {DAYS[-2]}: 20 rows" in evaluations[DAYS[-2]].description
    assert evaluations[DAYS[-1]].description is None
    whole = evaluations[None]
    assert not whole.passed
    assert whole.metadata["failing_days"].value == DAYS[-2]


def test_the_warning_clears_once_the_late_file_lands(data_dir):
    for day in DAYS[:-1]:
        _land(data_dir, day, a_rows=60, b_rows=60)
    _land(data_dir, DAYS[-1], a_rows=0, b_rows=60)
    assert not _ingest(data_dir, DAYS).passed

    _land(data_dir, DAYS[-1], a_rows=50, b_rows=0, suffix="_late")
    assert _ingest(data_dir, DAYS[-1:]).passed


def test_a_feed_with_no_rows_the_week_before_is_not_expected(data_dir):
    for day in DAYS[:-1]:
        _land(data_dir, day, a_rows=60, b_rows=0)
    _land(data_dir, DAYS[-1], a_rows=60, b_rows=3)  # acq_b starts delivering: no baseline yet
    evaluation = _ingest(data_dir, DAYS)
    assert evaluation.passed, evaluation.description
    assert evaluation.metadata["feed_days_judged"].value == len(DAYS) - 1  # the first day has no week before


def test_a_small_feed_is_flagged_only_when_its_day_is_empty(data_dir):
    for day in DAYS[:-1]:
        _land(data_dir, day, a_rows=60, b_rows=8)
    _land(data_dir, DAYS[-1], a_rows=60, b_rows=2)  # 2 rows of a feed of 8 a day: its own swing
    assert _ingest(data_dir, DAYS).passed
