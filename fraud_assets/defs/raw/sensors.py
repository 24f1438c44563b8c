"""The raw layer's sensors: files that land become runs, and a day whose files never came becomes an alert.

`landing_sensor` watches every source with one cursor (lib/landing.py) and never opens DuckDB. New
authorisation files become one `landed_day` run per block of consecutive business days (the job loads the
inputs the days read, so a day never waits for another run; the inputs of a source that sent nothing
since its last successful build are left out); inputs that landed alone become one `landed_inputs` run.
Run keys are content hashes, so even a lost cursor cannot launch the same content twice.

`missing_day_sensor` alerts once for the business days past their deadline that have no authorisation
file: in the UI they are the missing partitions of raw/authorizations.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import defaultdict
from collections.abc import Sequence

import dagster as dg

from fraud_assets.defs.raw.jobs import (
    RAW_AUTHORIZATIONS,
    SOURCE_INPUTS,
    landed_day_job,
    landed_day_selection,
    landed_inputs_job,
)
from fraud_assets.defs.raw.limits import DEFAULT_LIMITS
from fraud_assets.lib import settings
from fraud_assets.lib.alerting import Alert, AlertSink
from fraud_assets.lib.landing import (
    AUTHORIZATIONS,
    CHARGEBACKS,
    REFERENCE_SOURCES,
    LandingCursor,
    NewFile,
    business_dates_in_landing,
    content_key,
    new_files,
)
from fraud_assets.lib.partitions import business_date_partitions, consecutive_blocks, day_span
from fraud_assets.lib.runs import TAG_TRIGGER, days_request
from fraud_assets.resources import LandingZone

TAG_KIND = "fraud_assets/landing_kind"
TAG_DATE = "fraud_assets/business_date"
TAG_FILES = "fraud_assets/files"
TAG_CONTENT = "fraud_assets/content_sha256"
MAX_FILES_TAG = 3
RUN_KEY_TAG = "dagster/run_key"  # the tag Dagster gives a sensor's run: its run key
# The sensor daemon starts a loop every 5 s and evaluates due sensors in a shuffled order: an interval of
# exactly 5 s would skip a loop whenever this sensor came earlier in it than in the last; 3 s never does.
LANDING_INTERVAL_SECONDS = 3
MISSING_DAY_INTERVAL_SECONDS = 60


def _kind(files: list[NewFile]) -> str:
    """`authorizations`, `chargebacks`, `reference`, or several joined by `+`."""
    sources = {nf.file.source for nf in files}
    kinds = [AUTHORIZATIONS] if AUTHORIZATIONS in sources else []
    kinds += [CHARGEBACKS] if CHARGEBACKS in sources else []
    kinds += ["reference"] if sources & set(REFERENCE_SOURCES) else []
    return "+".join(kinds)


def _tags(files: list[NewFile], content: str) -> dict[str, str]:
    names = [nf.file.source_file.rsplit("/", 1)[-1] for nf in files]
    extra = len(names) - MAX_FILES_TAG
    return {
        TAG_TRIGGER: "landing",
        TAG_KIND: _kind(files),
        TAG_FILES: ",".join(names[:MAX_FILES_TAG]) + (f",+{extra}" if extra > 0 else ""),
        TAG_CONTENT: content,
    }


def _days_run(days: list[str], files: list[NewFile], selection) -> dg.RunRequest:
    content = content_key(nf.sha256 for nf in files)
    span = day_span(days)
    tags = {**_tags(files, content), TAG_DATE: span}
    return days_request(landed_day_job.name, days, f"{_kind(files)}:{span}:{content}", tags, selection)


def _inputs_run(files: list[NewFile]) -> dg.RunRequest:
    content = content_key(nf.sha256 for nf in files)
    return dg.RunRequest(
        job_name=landed_inputs_job.name, run_key=f"{_kind(files)}:{content}", tags=_tags(files, content)
    )


def _day_status(day: str, covered: tuple[str, str] | None) -> str:
    """`covered` (a partition), `pending` (not over yet: its partition comes at midnight UTC) or `outside`
    (before the first business date or after the last)."""
    if covered and covered[0] <= day <= covered[1]:
        return "covered"
    last = settings.last_business_date()
    date = dt.date.fromisoformat(day)
    if date < settings.first_business_date() or (last is not None and date > last):
        return "outside"
    return "pending"


def _built_by_owed_run(instance: dg.DagsterInstance, owed: list, latest: Sequence[dg.EventLogEntry]) -> bool:
    """The `latest` materialisations of a source's assets all come from a run launched with the owed run
    key after it was recorded (its retries included). A run key Dagster had already used launches nothing
    new, and a run that failed before these steps built nothing: either way the source stays owed."""
    run_key, recorded_at = owed
    if not run_key:
        return False
    since = dt.datetime.fromtimestamp(recorded_at, dt.UTC)
    records = instance.get_run_records(dg.RunsFilter(tags={RUN_KEY_TAG: run_key}, created_after=since))
    runs = {r.dagster_run.run_id for r in records}
    return all(event.run_id in runs for event in latest)


def _unchanged_inputs(instance: dg.DagsterInstance, cursor: LandingCursor, sent: set[str]) -> list[str]:
    """The input sources a landed day's run can leave out: none of their files in this tick, their assets
    built, and built by the last run handed their files if one is owed. A source whose run failed, has
    not ended or was never launched stays owed: the next day's run builds its assets again."""
    unchanged = []
    for source, keys in SOURCE_INPUTS.items():
        if source in sent:
            continue
        latest = [instance.get_latest_materialization_event(k) for k in keys]
        if any(event is None for event in latest):
            continue
        owed = cursor.owed.get(source)
        if owed is not None:
            if not _built_by_owed_run(instance, owed, latest):
                continue
            del cursor.owed[source]
        unchanged.append(source)
    return unchanged


def evaluate_landing(
    context: dg.SensorEvaluationContext, landing: LandingZone, now: dt.datetime | None = None
) -> dg.SensorResult:
    keys = business_date_partitions.get_partition_keys(current_time=now or dt.datetime.now(dt.UTC))
    covered = (keys[0], keys[-1]) if keys else None
    cursor = LandingCursor.parse(context.cursor)
    inputs: list[NewFile] = []
    by_day: dict[str, list[NewFile]] = defaultdict(list)

    def later(f) -> bool:  # an authorisation file of a day not over yet: seen again on a later tick
        return f.source == AUTHORIZATIONS and _day_status(f.business_date, covered) == "pending"

    # Hashed under the register's default size cap: a larger file is refused unread there too.
    for nf in new_files(landing.path, cursor, DEFAULT_LIMITS.max_file_bytes, later=later):
        if nf.resent:
            context.log.info(f"{nf.file.source_file}: identical content already handled; no run")
            cursor.record(nf.file, nf.sha256)
        elif nf.file.source != AUTHORIZATIONS:
            inputs.append(nf)
        else:
            if _day_status(nf.file.business_date, covered) == "outside":
                context.log.warning(
                    f"{nf.file.source_file}: business date outside the platform's days "
                    f"({settings.FIRST_BUSINESS_DATE_ENV} / {settings.LAST_BUSINESS_DATE_ENV}); no run"
                )
                cursor.record(nf.file, nf.sha256)
                continue
            by_day[nf.file.business_date].append(nf)
    requests = []
    sent = {nf.file.source for nf in inputs}
    owing: set[str] = set()
    if by_day:
        unchanged = _unchanged_inputs(context.instance, cursor, sent)
        selection = landed_day_selection(context.instance, context.repository_def.asset_graph, unchanged)
        for i, days in enumerate(consecutive_blocks(list(by_day))):
            # The inputs go with the first block's run (every block's run loads the changed ones anyway).
            files = [nf for day in days for nf in by_day[day]] + (inputs if i == 0 else [])
            requests.append(_days_run(days, files, selection))
        owing = set(SOURCE_INPUTS) - set(unchanged)
    elif inputs:
        requests.append(_inputs_run(inputs))
        owing = sent
    for source in owing:
        # Wall-clock time, not the evaluation's `now`: compared with the run's creation time.
        cursor.owed[source] = [requests[0].run_key, time.time()]
    for nf in inputs + [nf for files in by_day.values() for nf in files]:
        cursor.record(nf.file, nf.sha256)
    skip = "no new landing files"
    if not requests and (gone := landing_zone_gone(landing)):
        context.log.warning(gone)
        skip = gone
    return dg.SensorResult(
        run_requests=requests,
        cursor=cursor.serialize(),
        skip_reason=None if requests else skip,
    )


def landing_zone_gone(landing: LandingZone) -> str | None:
    """Why nothing can land, when the landing root is not a folder (an unmounted volume, a wrong
    FRAUD_DATA_DIR): without it, the sensors would only say that no file came."""
    if landing.path.is_dir():
        return None
    return (
        f"the landing zone {landing.path} does not exist or is not a folder (an unmounted volume, "
        "a wrong FRAUD_DATA_DIR?): no file can land"
    )


@dg.sensor(
    name="landing_sensor",
    description=(
        "Watches $FRAUD_DATA_DIR/landing (authorisations, chargebacks, reference snapshots, FX rates; "
        "docs/landing-zone.md). New authorisation files -> one `landed_day` run per block of consecutive "
        "business days (changed inputs, raw -> cleaned -> features -> scores); inputs alone -> one "
        "`landed_inputs` run. run_key = content hash: a re-sent identical file launches nothing, a "
        "corrected file does. Never opens DuckDB."
    ),
    jobs=[landed_day_job, landed_inputs_job],
    minimum_interval_seconds=LANDING_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def landing_sensor(context: dg.SensorEvaluationContext, landing: LandingZone) -> dg.SensorResult:
    return evaluate_landing(context, landing)


def overdue_days(days: list[str], now: dt.datetime, deadline: dt.timedelta) -> list[str]:
    """The business days whose files were due by `now` (the day's end plus the deadline)."""
    end = lambda day: dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC) + dt.timedelta(days=1)  # noqa: E731
    return [day for day in days if end(day) + deadline <= now]


def _spans(days: list[str]) -> str:
    blocks = consecutive_blocks(days)
    shown = [day_span(b) for b in blocks[:5]]
    return ", ".join(shown) + (f", +{len(blocks) - 5} more" if len(blocks) > 5 else "")


def missing_days(
    instance: dg.DagsterInstance, landing: LandingZone, now: dt.datetime, deadline: dt.timedelta
) -> list[str]:
    """Overdue business days with no well-named authorisation file and no raw/authorizations partition
    (a day ingested from a file since archived is not missing)."""
    overdue = overdue_days(business_date_partitions.get_partition_keys(current_time=now), now, deadline)
    present = set(business_dates_in_landing(landing.path)) | instance.get_materialized_partitions(
        RAW_AUTHORIZATIONS
    )
    return [day for day in overdue if day not in present]


def evaluate_missing_days(
    context: dg.SensorEvaluationContext,
    landing: LandingZone,
    alert_sink: AlertSink,
    now: dt.datetime | None = None,
) -> dg.SkipReason:
    now = now or dt.datetime.now(dt.UTC)
    deadline = settings.authorizations_deadline()
    missing = missing_days(context.instance, landing, now, deadline)
    alerted = set(json.loads(context.cursor)) if context.cursor else set()
    new = [day for day in missing if day not in alerted]
    if new:
        alert_sink.send(
            [
                Alert(
                    severity="ERROR",
                    kind="missing_business_day",
                    subject=RAW_AUTHORIZATIONS.to_user_string(),
                    message=(
                        f"{len(new)} business day(s) without an authorisation file "
                        f"{deadline.total_seconds() / 3600:g} h after the day ended: {_spans(new)}"
                        + (f"; {gone}" if (gone := landing_zone_gone(landing)) else "")
                    ),
                    details={"days": new[:366], "deadline_hours": deadline.total_seconds() / 3600},
                )
            ],
            log=context.log,
        )
    # Only days still missing stay in the cursor: one whose file came and went again alerts anew.
    context.update_cursor(json.dumps(sorted(set(missing) & (alerted | set(new)))))
    return dg.SkipReason(f"{len(missing)} business day(s) missing, {len(new)} newly alerted")


@dg.sensor(
    name="missing_day_sensor",
    description=(
        "Alerts (ERROR, kind missing_business_day) once for the business days that have no authorisation "
        "file FRAUD_AUTHORIZATIONS_DEADLINE_HOURS (default 6) after they ended: the missing partitions of "
        "raw/authorizations. A day whose file arrives later drops out; never opens DuckDB."
    ),
    minimum_interval_seconds=MISSING_DAY_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def missing_day_sensor(
    context: dg.SensorEvaluationContext, landing: LandingZone, alert_sink: AlertSink
) -> dg.SkipReason:
    return evaluate_missing_days(context, landing, alert_sink)


RAW_SENSORS = [landing_sensor, missing_day_sensor]
