"""`make pipeline` / `make score`: headless runs of the platform's named jobs for what is in the landing zone.

The same jobs the sensors launch, in their order: `landed_day` over each block of consecutive landed days
(one range run each: inputs, raw -> cleaned -> features, and scores once a champion exists), then
`training_job` (not with `--scoring-only`), `scoring_job` over the same days when the landed runs could
not score yet, and `monitoring_job` over them (drift per day, performance, the shadow comparison). Runs
go through the Dagster instance in `$DAGSTER_HOME`, so they appear in the UI like any other run.

Only complete days run: a landed date is processed once it is a business-date partition, as the landing
sensor of `make run` does. The partitions are those of the environment as given, the same as `make run`'s
on the same data (`scripts/with-env` sets the first business date from the landing zone). Today (UTC, the
partitions' time zone) is not over, so a live feed's first files of the day wait; so do the days of a
simulated world after today. The output names the landed dates left for later and why (docs/runbooks.md,
"Landed days that are not over yet").

At start-up it fails the runs of its instance whose worker process died (a `make pipeline` or a run
worker killed by the system: SIGKILL, out of memory), frees the pool slots they still held, and alerts
(lib/dead_runs.py); without that, the next run would wait for the dead run's `duckdb` slot for ever. Its own
runs carry their worker (this process) from creation, so the next start-up can tell.

Exit status: 0 when every run succeeded and no blocking check failed, 1 otherwise. A challenger the champion
gate refuses is not a failure: the champion stays (the gate working, docs/runbooks.md) and the scoring and
monitoring runs still follow.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import dagster as dg
import duckdb

from fraud_assets.lib import settings
from fraud_assets.lib.alerting import AlertSink
from fraud_assets.lib.dead_runs import Reaped, reap_dead_runs
from fraud_assets.lib.landing import business_dates_in_landing
from fraud_assets.lib.run_worker import RunWorker
from fraud_assets.lib.runs import RANGE_END, RANGE_START

LAUNCHED_BY = {"fraud_assets/launched_by": "make-pipeline"}
# The training run's blocking gate: when it alone failed, the challenger lost and the champion stays.
CHAMPION_GATE = "models/evaluation:champion_gate"


@dataclass
class JobRun:
    """One run of a named job: over consecutive business days, or unpartitioned (`days` empty)."""

    job: str
    days: list[str] = field(default_factory=list)
    assets: list[dg.AssetKey] | None = None  # a subset of the job; None: all of it

    @property
    def label(self) -> str:
        from fraud_assets.lib.partitions import day_span

        if not self.days:
            return self.job
        return f"{self.job} {day_span(self.days)}"


@dataclass
class RunOutcome:
    run: JobRun
    success: bool
    seconds: float
    checks_passed: int = 0
    checks_failed: list[str] = field(default_factory=list)
    blocking_failed: list[str] = field(default_factory=list)
    failed_steps: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # each failed step's reason, one line

    @property
    def champion_kept(self) -> bool:
        """A training run that failed only because the gate refused its challenger: nothing is broken."""
        gate_step = CHAMPION_GATE.replace("/", "__").replace(":", "_")
        return (
            self.run.job == "training_job"
            and not self.success
            and self.blocking_failed == [CHAMPION_GATE]
            and self.failed_steps == [gate_step]
        )


def execute(defs: dg.Definitions, instance: dg.DagsterInstance, run: JobRun) -> RunOutcome:
    job = defs.resolve_job_def(run.job)
    # This process is the run's worker (in-process execution): recorded at creation, so a next start-up
    # finds the run if this process is killed.
    run_id = str(uuid.uuid4())
    tags = {**LAUNCHED_BY, **RunWorker.current(run_id).tags()}
    partition_key = None
    if len(run.days) == 1:
        partition_key = run.days[0]
    elif run.days:
        tags |= {RANGE_START: run.days[0], RANGE_END: run.days[-1]}
    started = time.monotonic()
    result = job.execute_in_process(
        instance=instance,
        partition_key=partition_key,
        asset_selection=run.assets,
        tags=tags,
        run_id=run_id,
        raise_on_error=False,
    )
    outcome = RunOutcome(run=run, success=result.success, seconds=time.monotonic() - started)
    outcome.failed_steps = sorted({ev.step_key for ev in result.get_step_failure_events() if ev.step_key})
    outcome.errors = [
        f"{step}: {_reason(result.failure_data_for_node(step))}" for step in outcome.failed_steps
    ]
    graph = defs.resolve_asset_graph()
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


def planned_runs(
    defs: dg.Definitions, instance: dg.DagsterInstance, dates: Sequence[str], scoring_only: bool
) -> list[JobRun]:
    """The landed days (one run per block of consecutive days: a range over a gap would hide the missing
    day), training, the scores the landed runs could not write without a champion, monitoring."""
    from fraud_assets.defs.raw.jobs import landed_day_selection
    from fraud_assets.lib.partitions import consecutive_blocks

    assets = landed_day_selection(instance, defs.resolve_asset_graph())
    landed = [JobRun("landed_day", days, assets) for days in consecutive_blocks(list(dates))]
    training = [] if scoring_only else [JobRun("training_job")]
    scoring = [JobRun("scoring_job", run.days) for run in landed] if assets is not None else []
    monitoring = [JobRun("monitoring_job", run.days) for run in landed]
    return [*landed, *training, *scoring, *monitoring]


def _reason(failure: object) -> str:
    """A failed step's reason in one line: a raised dg.Failure's description, else the first line of what
    the step raised (the stack trace is in the run's log above and in the UI)."""
    user = getattr(failure, "user_failure_data", None)
    if user is not None and user.description:
        return user.description.splitlines()[0]
    error = getattr(failure, "error", None)
    while error is not None and error.cause is not None:  # Dagster wraps what the step raised
        error = error.cause
    message = (error.message.strip() if error is not None else "") or "no reason recorded"
    return message.splitlines()[0]


def training_waits(instance: dg.DagsterInstance) -> str | None:
    """Why the first model cannot be trained yet (the training sensor's bootstrap rule: so many business
    days with features), or None. A platform with a champion always retrains."""
    from fraud_assets.defs.models.sensors import FEATURES, bootstrap_min_days

    if has_champion(instance):
        return None
    days, needed = len(instance.get_materialized_partitions(FEATURES)), bootstrap_min_days()
    if days >= needed:
        return None
    return (
        f"{days} business days have features; the first model needs {needed} (FRAUD_BOOTSTRAP_MIN_DAYS, "
        "as for `make run`'s training sensor): land more days and run again"
    )


def check_settings() -> None:
    """ValueError naming the setting when a date or the deadline in the environment cannot be read."""
    settings.first_business_date()
    settings.last_business_date()
    try:
        settings.authorizations_deadline()
    except ValueError as exc:
        raise ValueError(f"{settings.DEADLINE_ENV}={os.environ[settings.DEADLINE_ENV]!r}: {exc}") from exc


def has_champion(instance: dg.DagsterInstance) -> bool:
    from fraud_assets.defs.raw.jobs import CHAMPION

    return instance.get_latest_materialization_event(CHAMPION) is not None


@dataclass
class LandedDays:
    """The landed business dates split by what `make pipeline` does with them now."""

    runnable: list[str]  # business-date partitions: processed
    later: list[str]  # today or after: not over yet, processed once they are
    outside: list[str]  # over but not partitions: before the first business date or after the last

    def notes(self) -> list[str]:
        """One line per kind of date left out, for the operator."""
        lines = []
        if self.later:
            lines.append(
                f"Left for later: {_spans(self.later)}: not over yet (a business day is a UTC calendar "
                "day, a partition from the midnight that ends it); processed then by `make pipeline` or "
                "`make run`'s landing sensor"
            )
        if self.outside:
            lines.append(
                f"Not business dates: {_spans(self.outside)}: before {settings.FIRST_BUSINESS_DATE_ENV} or "
                f"after {settings.LAST_BUSINESS_DATE_ENV}; not processed"
            )
        return lines


def _spans(days: list[str]) -> str:
    from fraud_assets.lib.partitions import consecutive_blocks, day_span

    return ", ".join(day_span(block) for block in consecutive_blocks(days))


def sort_landed_days(dates: Sequence[str], partition_keys: Sequence[str], today: dt.date) -> LandedDays:
    """`dates` that are partitions run; the others wait (today or later) or are outside the business dates."""
    keys = set(partition_keys)
    runnable = [d for d in dates if d in keys]
    later = [d for d in dates if d not in keys and d >= today.isoformat()]
    outside = [d for d in dates if d not in keys and d < today.isoformat()]
    return LandedDays(runnable, later, outside)


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

    command = "make score" if args.scoring_only else "make pipeline"
    try:
        check_settings()
    except ValueError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 2
    # Imported once the settings they read are known good (lib/partitions builds the business dates from
    # them on import): the partitions of the environment as given, the same as `make run`'s on this data.
    from fraud_assets.definitions import defs
    from fraud_assets.lib.partitions import business_date_partitions

    dates = business_dates_in_landing(settings.landing_dir())
    today = dt.datetime.now(dt.UTC).date()

    instance = dg.DagsterInstance.get()
    reaped = reap_at_start_up(defs, instance)
    if reaped.dead or reaped.released:
        print(f"Start-up: {reaped.summary()}", file=sys.stderr)
    if not dates:
        print(f"No authorisation files in {settings.landing_dir()}: nothing to do.", file=sys.stderr)
        return 0
    if args.scoring_only and not has_champion(instance):
        home = os.environ.get("DAGSTER_HOME")
        print(
            f"{command}: no champion model yet on this instance (DAGSTER_HOME={home}): `make pipeline` "
            "trains one (make score scores with the current champion and never trains)",
            file=sys.stderr,
        )
        return 2
    print(f"Landing zone: {len(dates)} business dates ({dates[0]} .. {dates[-1]})")
    landed = sort_landed_days(dates, business_date_partitions.get_partition_keys(), today)
    for note in landed.notes():
        print(note)
    if not landed.runnable:
        print("No landed day is over and a business date yet: nothing to run now.")
        return 0

    outcomes: list[RunOutcome] = []
    waiting = None  # why no model can be trained yet
    for run in planned_runs(defs, instance, landed.runnable, args.scoring_only):
        print(f"-> {run.label}", flush=True)
        if run.job == "training_job":
            waiting = training_waits(instance)
        if waiting and run.job in ("training_job", "scoring_job"):
            print(
                f"   skipped: no model yet: {waiting}"
                if run.job == "training_job"
                else "   skipped: no model"
            )
            continue
        outcome = execute(defs, instance, run)
        outcomes.append(outcome)
        if outcome.champion_kept:
            print(f"   the champion stays: the challenger did not pass {CHAMPION_GATE} (docs/governance.md)")
            continue
        if not outcome.success:
            print(f"   run failed after {outcome.seconds:.1f}s; later runs not started", file=sys.stderr)
            for error in outcome.errors:
                print(f"     {error}", file=sys.stderr)
            break
        print(f"   ok in {outcome.seconds:.1f}s, checks passed {outcome.checks_passed}")

    print("\nRows per table:")
    for table, rows in layer_row_counts().items():
        print(f"  {table:<40} {rows:>12,}")
    passed = sum(o.checks_passed for o in outcomes)
    failed = [c for o in outcomes for c in o.checks_failed]
    blocking = [c for o in outcomes if not o.champion_kept for c in o.blocking_failed]
    print(f"\nChecks: {passed} passed, {len(failed)} failed ({len(blocking)} blocking)")
    for name, times in Counter(failed).items():  # a check failing on several days: one line
        print(
            f"  FAILED {'(blocking) ' if name in blocking else ''}{name}"
            + (f" ({times}x)" if times > 1 else "")
        )
    ok = all(o.success or o.champion_kept for o in outcomes) and not blocking
    print(
        "Pipeline "
        + ("succeeded" if ok else "FAILED")
        + (" (no model yet: nothing scored)" if waiting else "")
    )
    for error in [e for o in outcomes if not o.success and not o.champion_kept for e in o.errors]:
        print(f"  {error}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
