"""What the UI's launchpad shows a data scientist for each job: the job's run priority pre-filled, so a run
launched by hand queues as the same job launched by its sensor or schedule does."""

from __future__ import annotations

import pytest

from fraud_assets.definitions import defs
from fraud_assets.lib.runs import PRIORITY_TAG

JOBS = [job for job in defs.get_repository_def().get_all_jobs() if not job.name.startswith("__")]


@pytest.mark.parametrize("job", JOBS, ids=lambda job: job.name)
def test_the_launchpad_prefills_the_priority_a_job_runs_at(job):
    # The launchpad pre-fills a job's definition tags, never its separate `run_tags`: a priority declared
    # only there reaches sensor and schedule runs but not a run launched by hand.
    assert job.run_tags.items() <= job.tags.items()


def test_landed_days_and_training_keep_their_priorities():
    tags = {job.name: job.tags.get(PRIORITY_TAG) for job in JOBS}
    assert int(tags["landed_day"]) > 0
    assert int(tags["landed_inputs"]) > 0
    assert int(tags["training_job"]) < 0
