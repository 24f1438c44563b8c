"""`make pipeline` runs the named jobs the sensors launch, in their order (fraud_assets/cli/pipeline.py)."""

from __future__ import annotations

import dagster as dg

from fraud_assets.cli.pipeline import planned_runs
from fraud_assets_tests.automation_stubs import materialize_stub, stub_definitions

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
