"""`make pipeline` / `make score`: headless materialisation of everything for what is in the landing zone.

Runs go through the Dagster instance in `$DAGSTER_HOME`, so they appear in the UI like any other run.
A run holds assets of one partitioning only, so the asset graph is cut into *stages*: consecutive
layers of the topological order that share a partitioning. Unpartitioned stages run once; partitioned
stages run as one run over every business date in the landing zone (the assets' single-run backfill
policy turns that into one set-based pass).

At start-up it fails the runs of its instance whose worker process died (a `make pipeline` or a run
worker killed by the system: SIGKILL, out of memory), frees the pool slots they still held, and alerts
(lib/dead_runs.py); without that, the next run would wait for the dead run's `duckdb` slot for ever. Its own
runs carry their worker (this process) from creation, so the next start-up can tell.

Exit status: 0 when every stage succeeded and no blocking check failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import dagster as dg
import duckdb

from fraud_assets.lib import settings
from fraud_assets.lib.alerting import AlertSink
from fraud_assets.lib.dead_runs import Reaped, reap_dead_runs
from fraud_assets.lib.landing import business_dates_in_landing
from fraud_assets.lib.run_worker import RunWorker

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
TRAINING_GROUPS = frozenset({"models"})
PIPELINE_JOB = "make_pipeline"


@dataclass
class Stage:
    partitioned: bool
    keys: list[dg.AssetKey] = field(default_factory=list)


@dataclass
class StageOutcome:
    stage: Stage
    success: bool
    seconds: float
    checks_passed: int = 0
    checks_failed: list[str] = field(default_factory=list)
    blocking_failed: list[str] = field(default_factory=list)


def plan_stages(defs: dg.Definitions, exclude_groups: Iterable[str] = ()) -> list[Stage]:
    """Cut the materialisable asset graph into runs that each hold one partitioning."""
    graph = defs.resolve_asset_graph()
    excluded = set(exclude_groups)
    keys = [
        k
        for k in graph.toposorted_asset_keys
        if graph.get(k).is_materializable and graph.get(k).group_name not in excluded
    ]
    wanted = set(keys)
    level: dict[dg.AssetKey, int] = {}
    for key in keys:
        node = graph.get(key)
        partitioned = node.partitions_def is not None
        lvl = 0 if not partitioned else 1  # unpartitioned reference data first
        for parent in node.parent_keys:
            if parent not in wanted:
                continue
            same = (graph.get(parent).partitions_def is not None) == partitioned
            lvl = max(lvl, level[parent] if same else level[parent] + 1)
        # keep levels alternating by kind: even = unpartitioned, odd = partitioned
        if (lvl % 2 == 1) != partitioned:
            lvl += 1
        level[key] = lvl
    stages: dict[int, Stage] = {}
    for key in keys:
        stages.setdefault(level[key], Stage(partitioned=level[key] % 2 == 1)).keys.append(key)
    return [stages[i] for i in sorted(stages)]


def run_stage(
    defs: dg.Definitions, instance: dg.DagsterInstance, stage: Stage, partitions: Sequence[str]
) -> StageOutcome:
    graph = defs.resolve_asset_graph()
    # This process is the run's worker (in-process execution): recorded at creation, so a next start-up
    # finds the run if this process is killed.
    run_id = str(uuid.uuid4())
    tags = {"fraud_assets/launched_by": "make-pipeline", **RunWorker.current(run_id).tags()}
    if stage.partitioned:
        tags |= {RANGE_START: partitions[0], RANGE_END: partitions[-1]}
    job = dg.Definitions(
        jobs=[dg.define_asset_job(PIPELINE_JOB, selection=stage.keys)],
        assets=list(defs.assets or []) + list(defs.asset_checks or []),
        resources=defs.resources,
    ).resolve_job_def(PIPELINE_JOB)
    started = time.monotonic()
    result = job.execute_in_process(instance=instance, tags=tags, run_id=run_id, raise_on_error=False)
    outcome = StageOutcome(stage=stage, success=result.success, seconds=time.monotonic() - started)
    for ev in result.get_asset_check_evaluations():
        name = f"{ev.asset_key.to_user_string()}:{ev.check_name}"
        if ev.passed:
            outcome.checks_passed += 1
            continue
        outcome.checks_failed.append(name)
        spec = graph.get_check_spec(ev.asset_check_key) if graph.has(ev.asset_check_key) else None
        if spec is not None and spec.blocking and ev.severity == dg.AssetCheckSeverity.ERROR:
            outcome.blocking_failed.append(name)
    return outcome


def cover_landed_days(dates: Sequence[str]) -> None:
    """Business days from the landing zone's first to its last unless set: any world, past or live,
    runs with no flag. Before the definitions load, which read them once."""
    os.environ.setdefault(settings.FIRST_BUSINESS_DATE_ENV, dates[0])
    os.environ.setdefault(settings.LAST_BUSINESS_DATE_ENV, dates[-1])


def reap_at_start_up(defs: dg.Definitions, instance: dg.DagsterInstance) -> Reaped:
    """Fail the dead runs of this instance, free their slots and alert, before asking for any slot."""
    with dg.build_resources({"alert_sink": defs.resources["alert_sink"]}) as resources:
        sink: AlertSink = resources.alert_sink
        return reap_dead_runs(instance, sink)


def layer_row_counts() -> dict[str, int]:
    path = settings.warehouse_path()
    if not path.exists():
        return {}
    try:
        conn = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:  # a failed step may still hold its connection in this process
        print(f"  (row counts unavailable: {type(exc).__name__})", file=sys.stderr)
        return {}
    with conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' ORDER BY 1, 2"
        ).fetchall()
        count = 'SELECT count(*) FROM "{}"."{}"'
        return {f"{s}.{t}": conn.execute(count.format(s, t)).fetchone()[0] for s, t in tables}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fraud_assets.cli.pipeline", description=__doc__)
    parser.add_argument(
        "--scoring-only",
        action="store_true",
        help="`make score`: ingest, clean, build features and score with the current champion; no training",
    )
    args = parser.parse_args(argv)

    dates = business_dates_in_landing(settings.landing_dir())
    if dates:
        cover_landed_days(dates)
    from fraud_assets.definitions import defs

    instance = dg.DagsterInstance.get()
    reaped = reap_at_start_up(defs, instance)
    if reaped.dead or reaped.released:
        print(f"Start-up: {reaped.summary()}", file=sys.stderr)
    if not dates:
        print(f"No authorisation files in {settings.landing_dir()}: nothing to do.", file=sys.stderr)
        return 0
    print(f"Landing zone: {len(dates)} business dates ({dates[0]} .. {dates[-1]})")

    exclude = TRAINING_GROUPS if args.scoring_only else ()
    outcomes: list[StageOutcome] = []
    for stage in plan_stages(defs, exclude_groups=exclude):
        names = ", ".join(k.to_user_string() for k in stage.keys)
        scope = f"{len(dates)} partitions" if stage.partitioned else "unpartitioned"
        print(f"-> {scope}: {names}", flush=True)
        outcome = run_stage(defs, instance, stage, dates)
        outcomes.append(outcome)
        if not outcome.success:
            print(f"   stage failed after {outcome.seconds:.1f}s; later stages not run", file=sys.stderr)
            break
        print(f"   ok in {outcome.seconds:.1f}s, checks passed {outcome.checks_passed}")

    print("\nRows per table:")
    for table, rows in layer_row_counts().items():
        print(f"  {table:<40} {rows:>12,}")
    passed = sum(o.checks_passed for o in outcomes)
    failed = [c for o in outcomes for c in o.checks_failed]
    blocking = [c for o in outcomes for c in o.blocking_failed]
    print(f"\nChecks: {passed} passed, {len(failed)} failed ({len(blocking)} blocking)")
    for name in failed:
        print(f"  FAILED {'(blocking) ' if name in blocking else ''}{name}")
    ok = all(o.success for o in outcomes) and not blocking
    print("Pipeline " + ("succeeded" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
