"""What the UI's launchpad shows a data scientist for each job: every setting described, honest about what
the model search overrides, and the job's run priority pre-filled, so a run launched by hand queues as
the same job launched by its sensor or schedule does."""

from __future__ import annotations

import pytest

from fraud_assets.definitions import defs
from fraud_assets.defs.models.candidates import CONFIGS
from fraud_assets.lib.model_selection import SEARCH_SPACE, WIDE_SEARCH_SPACE
from fraud_assets.lib.runs import PRIORITY_TAG

JOBS = [job for job in defs.get_repository_def().get_all_jobs() if not job.name.startswith("__")]


def _undescribed_settings(job) -> list[str]:
    """Paths of the job's op and resource settings without a description, read from the job's config
    schema snapshot: what the launchpad renders beside each setting."""
    snapshot = job.get_job_snapshot()
    types = snapshot.config_schema_snapshot.all_config_snaps_by_key
    root = types[snapshot.mode_def_snaps[0].root_config_key]

    def walk(type_snap, path: tuple[str, ...]):
        for field in type_snap.fields or []:
            here = (*path, field.name)
            # ops.<op>.config.<setting> and resources.<resource>.config.<setting>, but Dagster's own
            # io_manager, which Dagster describes.
            ours = here[0] == "ops" or (here[0] == "resources" and here[1:2] != ("io_manager",))
            if ours and len(here) >= 4 and not field.description:
                yield ".".join(here)
            if field.type_key in types:
                yield from walk(types[field.type_key], here)

    return list(walk(root, ()))


@pytest.mark.parametrize("job", JOBS, ids=lambda job: job.name)
def test_every_setting_the_launchpad_shows_says_what_it_does(job):
    assert _undescribed_settings(job) == []


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_the_search_setting_names_every_configuration_a_candidate_trains_by_default(family):
    described = CONFIGS[family].model_fields["search"].description
    for point in (*SEARCH_SPACE[family], *WIDE_SEARCH_SPACE[family]):
        for name, value in point.items():
            assert f"{name}={value!r}" in described


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_a_parameter_the_search_overrides_says_so_beside_its_default(family):
    searched = {name for point in (*SEARCH_SPACE[family], *WIDE_SEARCH_SPACE[family]) for name in point}
    fields = CONFIGS[family].model_fields
    assert searched <= set(fields)
    for name, field in fields.items():
        overridden = "search configurations that set it override it" in (field.description or "")
        assert overridden == (name in searched), name


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
