"""Landing and label sensors: files in the landing zone -> runs for the partitions they belong to.

- `landing_sensor` (authorisations and reference snapshots/FX): adds the business-date partitions it finds
  and asks for one run per (business date, batch of new files) covering the partition's whole daily chain
  raw -> cleaned -> features -> scoring, so a landed day is scored in one run. Reference files and labels
  are handled first: authorisation files wait while a reference or chargebacks run is queued or running,
  because cleaning a day needs the merchants snapshot and FX rates, and its features need the labels.
- `label_sensor` (chargebacks): one run per batch of new chargeback files: raw -> cleaned labels. The
  monitoring of performance on matured labels follows by declarative automation (policy.py), after the
  day's authorisations that wait for these labels have run, so it is not on their critical path.

Neither sensor opens DuckDB. An identical re-sent file launches nothing (cursor), and run keys are content
hashes, so even a reset cursor cannot launch the same content twice.
"""

from collections import defaultdict

import dagster as dg
from dagster._core.storage.dagster_run import DagsterRunStatus, RunsFilter

from fraud_assets.defs.automation import graph as g
from fraud_assets.defs.automation.landing import (
    AUTHORIZATIONS,
    CHARGEBACKS,
    REFERENCE_SOURCES,
    LandingCursor,
    NewFile,
    content_key,
    new_files,
)
from fraud_assets.lib.partitions import BUSINESS_DATE, business_date_partitions
from fraud_assets.resources import LandingZone

TAG_TRIGGER = "fraud_assets/trigger"
TAG_KIND = "fraud_assets/landing_kind"
TAG_DATE = "fraud_assets/business_date"
TAG_FILES = "fraud_assets/files"
TAG_CONTENT = "fraud_assets/content_sha256"
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
SENSOR_INTERVAL_SECONDS = 5
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


def _tags(kind: str, files: list[NewFile], business_date: str | None = None) -> dict[str, str]:
    names = [nf.file.rel_path.rsplit("/", 1)[-1] for nf in files]
    extra = len(names) - MAX_FILES_TAG
    shown = ",".join(names[:MAX_FILES_TAG]) + (f",+{extra}" if extra > 0 else "")
    tags = {
        TAG_TRIGGER: "landing",
        TAG_KIND: kind,
        TAG_FILES: shown,
        TAG_CONTENT: content_key(nf.sha256 for nf in files),
        PRIORITY_TAG: LANDING_PRIORITY,
    }
    if business_date:
        tags[TAG_DATE] = business_date
    return tags


def _request(
    kind: str, keys: list[dg.AssetKey], files: list[NewFile], partition: str | None = None, run_config=None
) -> dg.RunRequest:
    # run_key = content hash: Dagster refuses a second run with the same key from this sensor.
    prefix = f"{kind}:{partition}:" if partition else f"{kind}:"
    return dg.RunRequest(
        run_key=prefix + content_key(nf.sha256 for nf in files),
        asset_selection=keys,
        partition_key=partition,
        tags=_tags(kind, files, partition),
        run_config=run_config or {},
    )


def _skip_resends(context, cursor: LandingCursor, files: list[NewFile]) -> list[NewFile]:
    fresh = []
    for nf in files:
        if nf.resent:
            context.log.info(f"{nf.file.rel_path}: identical content already handled; no run")
            cursor.record(nf.file, nf.sha256)
        else:
            fresh.append(nf)
    return fresh


FINISHED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]


def _inputs_pending(instance: dg.DagsterInstance, graph, landing: LandingZone) -> bool:
    """A day's chain needs reference data and labels (features use cleaned/labels): hold authorisation
    files while a reference or chargebacks run is queued or running, and, on a fresh platform whose landing
    zone has chargeback files, until the first chargebacks run has finished (whatever its outcome)."""
    for kind in ("reference", CHARGEBACKS):
        if runs_in_flight(instance, {TAG_TRIGGER: "landing", TAG_KIND: kind}):
            return True
    if graph.has(g.LABELS) and not g.ever_materialized(instance, graph, g.LABELS):
        has_files = any((landing.path / CHARGEBACKS).glob("*/chargebacks_*"))
        finished = instance.get_run_records(
            RunsFilter(tags={TAG_TRIGGER: "landing", TAG_KIND: CHARGEBACKS}, statuses=FINISHED), limit=1
        )
        return has_files and not finished
    return False


def evaluate_landing(context: dg.SensorEvaluationContext, landing: LandingZone) -> dg.SensorResult:
    graph = context.repository_def.asset_graph
    instance = context.instance
    cursor = LandingCursor.parse(context.cursor)
    found = new_files(landing.path, cursor, (AUTHORIZATIONS, *REFERENCE_SOURCES))
    fresh = _skip_resends(context, cursor, found)
    requests: list[dg.RunRequest] = []

    reference = [nf for nf in fresh if nf.file.source in REFERENCE_SOURCES]
    if reference:
        roots = sorted({g.raw_key(nf.file.source) for nf in reference}, key=str)
        keys = g.runnable_now(instance, graph, g.downstream_chain(graph, roots, g.REFERENCE_GROUPS, False))
        if keys:
            requests.append(_request("reference", keys, reference, run_config=in_process_config(context)))
        for nf in reference:
            cursor.record(nf.file, nf.sha256)

    auth = [nf for nf in fresh if nf.file.source == AUTHORIZATIONS]
    dates = sorted({nf.file.business_date for nf in found if nf.file.source == AUTHORIZATIONS})
    existing = set(instance.get_dynamic_partitions(BUSINESS_DATE)) if dates else set()
    add = [d for d in dates if d not in existing]
    if auth and (bool(reference) or _inputs_pending(instance, graph, landing)):
        context.log.info(f"{len(auth)} authorisation file(s) wait for reference data and labels to load")
    elif auth:
        chain = g.downstream_chain(graph, [g.RAW_AUTHORIZATIONS], g.DAILY_GROUPS, True)
        keys = g.runnable_now(instance, graph, chain)
        by_date: dict[str, list[NewFile]] = defaultdict(list)
        for nf in auth:
            by_date[nf.file.business_date].append(nf)
        for date, files in sorted(by_date.items()):
            if keys:
                requests.append(_request("authorizations", keys, files, date, in_process_config(context)))
            for nf in files:
                cursor.record(nf.file, nf.sha256)
    return dg.SensorResult(
        run_requests=requests,
        cursor=cursor.serialize(),
        dynamic_partitions_requests=[business_date_partitions.build_add_request(add)] if add else [],
        skip_reason=None if requests or add else "no new landing files",
    )


def evaluate_labels(context: dg.SensorEvaluationContext, landing: LandingZone) -> dg.SensorResult:
    graph = context.repository_def.asset_graph
    cursor = LandingCursor.parse(context.cursor)
    fresh = _skip_resends(context, cursor, new_files(landing.path, cursor, (CHARGEBACKS,)))
    requests = []
    if fresh:
        chain = g.downstream_chain(graph, [g.RAW_CHARGEBACKS], g.LABEL_GROUPS, False)
        keys = g.runnable_now(context.instance, graph, chain)
        if keys:
            requests.append(_request("chargebacks", keys, fresh, run_config=in_process_config(context)))
        for nf in fresh:
            cursor.record(nf.file, nf.sha256)
    return dg.SensorResult(
        run_requests=requests,
        cursor=cursor.serialize(),
        skip_reason=None if requests else "no new chargeback files",
    )


@dg.sensor(
    name="landing_sensor",
    description=(
        "Watches $FRAUD_DATA_DIR/landing for authorisation, reference and FX files (docs/landing-zone.md). "
        "Adds business-date partitions and runs each landed day's chain raw -> cleaned -> features -> "
        "scoring (scoring once a champion exists). run_key = file content hash: a re-sent identical file "
        "launches nothing, a corrected file does. Never opens DuckDB."
    ),
    target=dg.AssetSelection.groups(*g.DAILY_GROUPS),
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def landing_sensor(context: dg.SensorEvaluationContext, landing: LandingZone) -> dg.SensorResult:
    return evaluate_landing(context, landing)


@dg.sensor(
    name="label_sensor",
    description=(
        "Watches landing/chargebacks. New chargeback files -> raw/chargebacks -> cleaned/labels -> "
        "in one run; monitoring/model_performance (performance on matured labels) follows by automation. "
        "Never opens DuckDB."
    ),
    target=dg.AssetSelection.groups(*g.LABEL_GROUPS),
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def label_sensor(context: dg.SensorEvaluationContext, landing: LandingZone) -> dg.SensorResult:
    return evaluate_labels(context, landing)
