"""`make pipeline` runs the named jobs the sensors launch, in their order (fraud_assets/cli/pipeline.py)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import dagster as dg
import pytest

from fraud_assets.cli.pipeline import planned_runs
from fraud_assets_tests.automation_stubs import materialize_stub, stub_definitions
from fraud_assets_tests.platform import REPO_ROOT

DATES = ["2018-04-01", "2018-04-02", "2018-04-04"]  # 2018-04-03 never came


def test_a_fresh_platform_lands_each_block_of_days_trains_then_scores_and_monitors(tmp_path):
    runs = planned_runs(stub_definitions(tmp_path / "landing"), dg.DagsterInstance.ephemeral(), DATES, False)
    assert [r.label for r in runs] == [
        "landed_day 2018-04-01 to 2018-04-02",
        "landed_day 2018-04-04",
        "training_job",
        "scoring_job 2018-04-01 to 2018-04-02",
        "scoring_job 2018-04-04",
        "monitoring_job 2018-04-01 to 2018-04-02",
        "monitoring_job 2018-04-04",
    ]
    assert not [k for k in runs[0].assets if k.path[0] == "scoring"]  # no champion yet


def test_with_a_champion_the_landed_days_are_scored_in_their_own_runs(tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    materialize_stub(instance, "models/champion")
    runs = planned_runs(stub_definitions(tmp_path / "landing"), instance, DATES, True)
    assert [r.label for r in runs] == [
        "landed_day 2018-04-01 to 2018-04-02",
        "landed_day 2018-04-04",
        "monitoring_job 2018-04-01 to 2018-04-02",
        "monitoring_job 2018-04-04",
    ]
    assert runs[0].assets is None  # the whole job, scores included


def _run_main(monkeypatch, training_outcome, min_days: int = 0) -> tuple[int, list[str]]:
    """`make pipeline` over two landed days whose training run ends as `training_outcome` says; the first
    model needs `min_days` days with features (the ephemeral instance has none)."""
    from fraud_assets.cli import pipeline
    from fraud_assets.lib.dead_runs import Reaped

    days = DATES[:2]
    monkeypatch.setenv("FRAUD_FIRST_BUSINESS_DATE", days[0])
    monkeypatch.setenv("FRAUD_LAST_BUSINESS_DATE", days[-1])
    monkeypatch.setenv("FRAUD_BOOTSTRAP_MIN_DAYS", str(min_days))
    plan = [
        pipeline.JobRun("landed_day", days),
        pipeline.JobRun("training_job"),
        pipeline.JobRun("scoring_job", days),
        pipeline.JobRun("monitoring_job", days),
    ]
    executed: list[str] = []

    def execute(defs, instance, run):
        executed.append(run.label)
        if run.job == "training_job":
            return training_outcome(run)
        return pipeline.RunOutcome(run, success=True, seconds=0.0)

    monkeypatch.setattr(pipeline, "business_dates_in_landing", lambda _: days)
    monkeypatch.setattr(pipeline, "planned_runs", lambda *_: plan)
    monkeypatch.setattr(pipeline, "reap_at_start_up", lambda *_: Reaped(dead=[], released={}))
    monkeypatch.setattr(pipeline, "layer_row_counts", dict)
    monkeypatch.setattr(pipeline, "execute", execute)
    monkeypatch.setattr(dg.DagsterInstance, "get", staticmethod(dg.DagsterInstance.ephemeral))
    return pipeline.main([]), executed


def test_a_challenger_refused_by_the_gate_keeps_the_champion_and_monitoring_still_runs(monkeypatch):
    from fraud_assets.cli.pipeline import CHAMPION_GATE, RunOutcome

    def refused(run):
        return RunOutcome(
            run,
            success=False,
            seconds=0.0,
            checks_failed=[CHAMPION_GATE],
            blocking_failed=[CHAMPION_GATE],
            failed_steps=["models__evaluation_champion_gate"],
        )

    status, executed = _run_main(monkeypatch, refused)
    assert executed == [
        "landed_day 2018-04-01 to 2018-04-02",
        "training_job",
        "scoring_job 2018-04-01 to 2018-04-02",
        "monitoring_job 2018-04-01 to 2018-04-02",
    ]
    assert status == 0


def test_a_training_run_that_broke_stops_the_pipeline_fails_it_and_names_the_reason(monkeypatch, capsys):
    from fraud_assets.cli.pipeline import RunOutcome

    def broke(run):
        return RunOutcome(
            run,
            success=False,
            seconds=0.0,
            failed_steps=["models__training_set"],
            errors=["models__training_set: fold 0 has no trainable data"],
        )

    status, executed = _run_main(monkeypatch, broke)
    assert executed == ["landed_day 2018-04-01 to 2018-04-02", "training_job"]
    assert status == 1
    out = capsys.readouterr()
    assert "models__training_set: fold 0 has no trainable data" in out.err
    assert out.out.rstrip().endswith("Pipeline FAILED\n  models__training_set: fold 0 has no trainable data")


def test_too_little_history_for_a_first_model_skips_training_and_scoring_and_says_why(monkeypatch, capsys):
    def never(run):
        raise AssertionError("training ran")

    status, executed = _run_main(monkeypatch, never, min_days=21)
    assert executed == ["landed_day 2018-04-01 to 2018-04-02", "monitoring_job 2018-04-01 to 2018-04-02"]
    assert status == 0
    out = capsys.readouterr().out
    assert "skipped: no model yet: 0 business days have features; the first model needs 21" in out
    assert "Pipeline succeeded (no model yet: nothing scored)" in out


def _main_on_landed_days(monkeypatch, capsys, days: list[str], partitions, scoring_only=False):
    """`make pipeline` on a landing zone holding `days`, the business-date partitions being `partitions`:
    (exit status, the days it planned runs for, its output)."""
    from fraud_assets.cli import pipeline
    from fraud_assets.lib import partitions as partitions_module
    from fraud_assets.lib.dead_runs import Reaped

    planned: list[str] = []

    def plan(defs, instance, dates, scoring_only):
        planned.extend(dates)
        return []

    monkeypatch.setattr(partitions_module, "business_date_partitions", partitions)
    monkeypatch.setattr(pipeline, "business_dates_in_landing", lambda _: days)
    monkeypatch.setattr(pipeline, "planned_runs", plan)
    monkeypatch.setattr(pipeline, "reap_at_start_up", lambda *_: Reaped(dead=[], released={}))
    monkeypatch.setattr(pipeline, "layer_row_counts", dict)
    monkeypatch.setattr(dg.DagsterInstance, "get", staticmethod(dg.DagsterInstance.ephemeral))
    status = pipeline.main(["--scoring-only"] if scoring_only else [])
    return status, planned, capsys.readouterr()


def _live_partitions(first: dt.date) -> dg.DailyPartitionsDefinition:
    """A live platform's business dates: from `first` to the last day that is over (no last date set)."""
    return dg.DailyPartitionsDefinition(start_date=first.isoformat(), timezone="UTC")


def test_a_landed_day_not_over_yet_is_left_for_later_and_said_so(monkeypatch, capsys):
    today = dt.datetime.now(dt.UTC).date()
    days = [(today - dt.timedelta(days=n)).isoformat() for n in (2, 1, 0, -1)]
    status, planned, out = _main_on_landed_days(
        monkeypatch, capsys, days, _live_partitions(today - dt.timedelta(2))
    )
    assert planned == days[:2]
    assert f"Left for later: {days[2]} to {days[3]}: not over yet" in out.out
    assert status == 0


def test_a_world_over_by_yesterday_runs_every_landed_day_with_no_note(monkeypatch, capsys):
    today = dt.datetime.now(dt.UTC).date()
    days = [(today - dt.timedelta(days=n)).isoformat() for n in (3, 2, 1)]
    status, planned, out = _main_on_landed_days(
        monkeypatch, capsys, days, _live_partitions(today - dt.timedelta(3))
    )
    assert planned == days
    assert "Left for later" not in out.out
    assert status == 0


def test_a_past_world_runs_every_landed_day_as_before(monkeypatch, capsys):
    days = ["2018-04-01", "2018-04-02", "2018-04-04"]
    status, planned, out = _main_on_landed_days(
        monkeypatch, capsys, days, _live_partitions(dt.date(2018, 4, 1))
    )
    assert planned == days
    assert "Left for later" not in out.out
    assert "Not business dates" not in out.out


def test_a_world_wholly_ahead_of_the_clock_runs_nothing_yet_and_says_why(monkeypatch, capsys):
    today = dt.datetime.now(dt.UTC).date()
    days = [(today + dt.timedelta(days=n)).isoformat() for n in (1, 2)]
    status, planned, out = _main_on_landed_days(
        monkeypatch, capsys, days, _live_partitions(today + dt.timedelta(1))
    )
    assert planned == []
    assert f"Left for later: {days[0]} to {days[1]}: not over yet" in out.out
    assert "nothing to run now" in out.out
    assert status == 0


def test_make_score_without_a_champion_says_so_in_one_line_and_runs_nothing(monkeypatch, capsys):
    status, planned, out = _main_on_landed_days(
        monkeypatch, capsys, ["2018-04-01"], _live_partitions(dt.date(2018, 4, 1)), scoring_only=True
    )
    assert status == 2
    assert planned == []
    assert out.err.strip().splitlines() == [out.err.strip()]
    assert "no champion model yet" in out.err
    assert "Traceback" not in out.err


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("FRAUD_FIRST_BUSINESS_DATE", "2026-13-01"),
        ("FRAUD_LAST_BUSINESS_DATE", "yesterday"),
        ("FRAUD_LAST_BUSINESS_DATE", "2018-01-01"),  # before the first
        ("FRAUD_AUTHORIZATIONS_DEADLINE_HOURS", "six"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it_and_status_2(tmp_path, setting, value):
    """As `make pipeline` starts it: a fresh process, whose imports build the business dates."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "FRAUD_DATA_DIR": str(tmp_path / "data"),
        "DAGSTER_HOME": str(tmp_path / "home"),
        setting: value,
    }
    done = subprocess.run(
        [sys.executable, "-m", "fraud_assets.cli.pipeline"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith(f"make pipeline: {setting}")


def test_a_failed_steps_reason_is_one_line_a_failures_description_or_the_errors_first_line():
    from fraud_assets.cli.pipeline import JobRun, execute

    @dg.op
    def refuses():
        raise dg.Failure(description="fold 0 has no trainable data\nsecond line")

    @dg.op
    def breaks():
        raise ValueError("bad value\nmore")

    @dg.job
    def refusing():
        refuses()

    @dg.job
    def breaking():
        breaks()

    defs = dg.Definitions(jobs=[refusing, breaking])
    instance = dg.DagsterInstance.ephemeral()
    assert execute(defs, instance, JobRun("refusing")).errors == ["refuses: fold 0 has no trainable data"]
    (error,) = execute(defs, instance, JobRun("breaking")).errors
    assert error.startswith("breaks: ")
    assert "bad value" in error
    assert "\n" not in error
