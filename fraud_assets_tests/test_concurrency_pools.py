"""Deployment -> Concurrency in the UI: the platform's pools are listed with their limit from the moment
`make run` starts, not only once a step first claimed one."""

from __future__ import annotations

import dagster as dg

from fraud_assets.cli.dagster_home import POOLS, show_pools, write_dagster_yaml
from fraud_assets.definitions import defs


def _pool_limits(home) -> dict[str, int]:
    # What the Concurrency page lists (Dagster's GraphQL reads the same storage).
    with dg.DagsterInstance.from_config(str(home)) as instance:
        storage = instance.event_log_storage
        return {
            pool: storage.get_concurrency_info(pool).slot_count for pool in storage.get_concurrency_keys()
        }


def test_a_new_instance_lists_the_duckdb_pool_with_its_limit_before_any_run(tmp_path):
    home = write_dagster_yaml(tmp_path / "home").parent
    assert _pool_limits(home) == {}  # what Dagster alone shows until a step claims the pool
    show_pools(home)
    assert _pool_limits(home) == {"duckdb": 1}


def test_a_pool_limit_set_by_hand_is_kept_when_the_platform_starts_again(tmp_path):
    home = write_dagster_yaml(tmp_path / "home").parent
    show_pools(home)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.event_log_storage.set_concurrency_slots("duckdb", 2)
    show_pools(home)
    assert _pool_limits(home) == {"duckdb": 2}


def test_the_pools_shown_are_every_pool_the_assets_and_checks_declare():
    # Every op of every job: the steps of assets and checks alike.
    jobs = defs.get_repository_def().get_all_jobs()
    declared = {op.pool for job in jobs for op in job.graph.iterate_op_defs() if op.pool}
    assert declared == set(POOLS)
