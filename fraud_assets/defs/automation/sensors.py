"""The landing sensor: files in the landing zone -> runs for the partitions they belong to.

`landing_sensor` watches every source of the landing zone (authorisations, chargebacks, reference snapshots
and FX rates) with one cursor. It adds the business-date partitions it finds and asks for runs that take a
landed day through its whole chain raw -> cleaned -> features -> scoring. The inputs a day needs (the
merchants snapshot and FX rates to clean it, the labels known by then for its features) are loaded first:
in the same run when they landed with one day's authorisations (the daily case: one run, one queue wait),
else by a run of their own that the day's runs wait for (`evaluate_landing`).

This is also the platform's label sensor: new chargeback files -> raw/chargebacks -> cleaned/labels (with
the day that landed with them, or alone); performance on matured labels (`monitoring/model_performance`)
follows by declarative automation (policy.py) once the run has finished, off the day's critical path. One
sensor rather than a second one for chargebacks: two cursors could not tell which sensor had taken a
file, and the day would have to wait for a separate labels run.

The sensor never opens DuckDB. An identical re-sent file launches nothing (cursor), and run keys are
content hashes, so even a reset cursor cannot launch the same content twice.
"""

from collections import defaultdict

import dagster as dg
from dagster._core.storage.dagster_run import DagsterRunStatus, RunsFilter

from fraud_assets.defs.automation import graph as g
from fraud_assets.defs.automation.landing import (
    AUTHORIZATIONS,
    CHARGEBACKS,
    REFERENCE_SOURCES,
    SOURCES,
    LandingCursor,
    NewFile,
    content_key,
    new_files,
)
from fraud_assets.resources import LandingZone

TAG_TRIGGER = "fraud_assets/trigger"
TAG_KIND = "fraud_assets/landing_kind"
TAG_DATE = "fraud_assets/business_date"
TAG_FILES = "fraud_assets/files"
TAG_CONTENT = "fraud_assets/content_sha256"
# "true" on runs that load reference data or labels: a day's chain waits while one is in flight.
TAG_INPUTS = "fraud_assets/loads_inputs"
INPUT_SOURCES = (CHARGEBACKS, *REFERENCE_SOURCES)
IN_FLIGHT = [
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]
# Dagster's run priority (public tag): the queue dequeues, and the `duckdb` pool hands slots to, higher
# values first. Files that landed are what people wait for: their runs go ahead of automation's
# follow-ups (0) and of training (training.py, below 0).
PRIORITY_TAG = "dagster/priority"
LANDING_PRIORITY = "10"
# Dagster's sensor daemon evaluates due sensors in a loop that starts every 5 s, in a shuffled order. A
# minimum interval of exactly 5 s skips every other loop whenever this sensor came later in the previous
# loop than in this one (seen: 10 s gaps); 3 s lets it be evaluated on every loop, i.e. every ~5 s.
SENSOR_INTERVAL_SECONDS = 3
MAX_FILES_TAG = 3


def in_process_config(context) -> dict:
    """Run a landed file's steps in one process: the steps are serial anyway (the `duckdb` pool has one
    slot), and one process per step would add seconds of start-up to every step of every landed day.
    Only when the code location keeps Dagster's default executor, whose config accepts this."""
    executor = context.repository_def.get_implicit_global_asset_job_def().executor_def
    if executor.name == "multi_or_in_process_executor":
        return {"execution": {"config": {"in_process": {}}}}
    return {}


def runs_in_flight(instance: dg.DagsterInstance, tags: dict[str, str]) -> int:
    return len(instance.get_run_records(RunsFilter(tags=tags, statuses=IN_FLIGHT), limit=50))


def _request(
    keys: list[dg.AssetKey], files: list[NewFile], partition: str | None, run_config: dict
) -> dg.RunRequest:
    kind, content = _kind(files), content_key(nf.sha256 for nf in files)
    names = [nf.file.shown_name for nf in files]
    extra = len(names) - MAX_FILES_TAG
    tags = {
        TAG_TRIGGER: "landing",
        TAG_KIND: kind,
        TAG_FILES: ",".join(names[:MAX_FILES_TAG]) + (f",+{extra}" if extra > 0 else ""),
        TAG_CONTENT: content,
        PRIORITY_TAG: LANDING_PRIORITY,
    }
    if any(nf.file.source in INPUT_SOURCES for nf in files):
        tags[TAG_INPUTS] = "true"
    if partition:
        tags[TAG_DATE] = partition
    # run_key = content hash: Dagster refuses a second run with the same key from this sensor.
    return dg.RunRequest(
        run_key=f"{kind}:{partition}:{content}" if partition else f"{kind}:{content}",
        asset_selection=keys,
        partition_key=partition,
        tags=tags,
        run_config=run_config,
    )


def _skip_resends(context, cursor: LandingCursor, files: list[NewFile]) -> list[NewFile]:
    fresh = []
    for nf in files:
        if nf.resent:
            context.log.info(f"{nf.file.shown_path}: identical content already handled; no run")
            cursor.record(nf.file, nf.sha256)
        else:
            fresh.append(nf)
    return fresh


def inputs_in_flight(instance: dg.DagsterInstance) -> bool:
    """A run that loads reference data or labels is queued or running: a day's chain must not start before
    it (cleaning needs the merchants snapshot and FX rates, features the labels known by then)."""
    return bool(runs_in_flight(instance, {TAG_TRIGGER: "landing", TAG_INPUTS: "true"}))


def _kind(files: list[NewFile]) -> str:
    """`authorizations`, `chargebacks`, `reference`, or several joined by `+` (a day with its inputs)."""
    sources = {nf.file.source for nf in files}
    kinds = [AUTHORIZATIONS] if AUTHORIZATIONS in sources else []
    kinds += [CHARGEBACKS] if CHARGEBACKS in sources else []
    kinds += ["reference"] if sources & set(REFERENCE_SOURCES) else []
    return "+".join(kinds)


def evaluate_landing(context: dg.SensorEvaluationContext, landing: LandingZone) -> dg.SensorResult:
    """One cursor for the whole landing zone, so a day's authorisations and the inputs that landed with
    them (FX rates, snapshots, chargebacks) can go in one run:
    - inputs without authorisations -> one run loading them (raw -> unpartitioned cleaned);
    - inputs with the authorisations of one business date -> ONE run: the inputs' chain, then the day's
      chain raw -> cleaned -> features -> scoring (partition = that date; unpartitioned assets in a
      partitioned run materialise unpartitioned). The common case "today's files landed": one run start,
      one queue wait;
    - inputs with several dates' authorisations (a seeded zone, a burst, a late file) -> the inputs' run
      first; the dates wait for it and then get one run each;
    - authorisations alone -> one run per date, unless an inputs run is still in flight (they wait)."""
    graph = context.repository_def.asset_graph
    instance = context.instance
    cursor = LandingCursor.parse(context.cursor)
    found = new_files(landing.path, cursor, SOURCES)
    fresh = _skip_resends(context, cursor, found)
    requests: list[dg.RunRequest] = []
    run_config = in_process_config(context)

    inputs = [nf for nf in fresh if nf.file.source in INPUT_SOURCES]
    input_chain = g.downstream_chain(
        graph, sorted({g.raw_key(nf.file.source) for nf in inputs}, key=str), g.INPUT_GROUPS, False
    )
    by_date: dict[str, list[NewFile]] = defaultdict(list)
    for nf in fresh:
        if nf.file.source == AUTHORIZATIONS:
            by_date[nf.file.business_date].append(nf)
    day_chain = g.downstream_chain(graph, [g.RAW_AUTHORIZATIONS], g.DAILY_GROUPS, True) if by_date else []
    pending = bool(by_date) and inputs_in_flight(instance)

    if inputs and len(by_date) == 1 and not pending:
        [(date, files)] = by_date.items()
        keys = g.runnable_now(instance, graph, g.ordered(graph, [*input_chain, *day_chain]))
        if keys:
            requests.append(_request(keys, [*inputs, *files], date, run_config))
        handled = [*inputs, *files]
    else:
        handled = list(inputs)
        if inputs:
            keys = g.runnable_now(instance, graph, input_chain)
            if keys:
                requests.append(_request(keys, inputs, None, run_config))
        if by_date and (inputs or pending):
            n = sum(len(f) for f in by_date.values())
            context.log.info(f"{n} authorisation file(s) wait for the run loading reference data and labels")
        elif by_date:
            keys = g.runnable_now(instance, graph, day_chain)
            for date, files in sorted(by_date.items()):
                if keys:
                    requests.append(_request(keys, files, date, run_config))
                handled += files
    for nf in handled:
        cursor.record(nf.file, nf.sha256)
    return dg.SensorResult(
        run_requests=requests,
        cursor=cursor.serialize(),
        skip_reason=None if requests else "no new landing files",
    )


@dg.sensor(
    name="landing_sensor",
    description=(
        "Watches $FRAUD_DATA_DIR/landing (authorisations, chargebacks, reference snapshots, FX rates; "
        "docs/landing-zone.md). Adds business-date partitions and runs each landed day's chain raw -> "
        "cleaned -> features -> scoring (scoring once a champion exists), after or together with the "
        "inputs it needs: FX rates, snapshots and chargebacks (-> cleaned/labels; model performance "
        "follows by automation). run_key = file content hash: a re-sent identical file launches nothing, "
        "a corrected file does. Never opens DuckDB."
    ),
    target=dg.AssetSelection.groups(*g.DAILY_GROUPS),
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def landing_sensor(context: dg.SensorEvaluationContext, landing: LandingZone) -> dg.SensorResult:
    return evaluate_landing(context, landing)
