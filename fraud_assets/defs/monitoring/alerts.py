"""What the alert sensors (sensors.py) read from the Dagster instance: why a run failed, and which check
failures are new, changed or still open. The sink (lib/alerting.py) owns where alerts go."""

import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dagster as dg

from fraud_assets.lib.alerting import Alert
from fraud_assets.lib.contracts import EVALUATED_OVER

CHECK_SENSOR_BATCH = 100


BLOCKING_CHECK_ERROR = "DagsterAssetCheckFailedError"


def failed_only_on_blocking_checks(instance: dg.DagsterInstance, run_id: str) -> bool:
    """The run failed because blocking checks failed (Dagster then fails their step so that what follows
    does not run), and for no other reason: a contract that stopped bad data, or the champion gate keeping
    a worse challenger out. `check_failure_alert_sensor` reports those checks, with their reason."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    errors = [r.event_log_entry.dagster_event.event_specific_data.error for r in records]
    return bool(errors) and all(e is not None and e.cls_name == BLOCKING_CHECK_ERROR for e in errors)


def step_failure_causes(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The innermost error of each failed step (`Class: message`), e.g. a registry integrity refusal."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    causes = []
    for r in records:
        error = r.event_log_entry.dagster_event.event_specific_data.error
        while error is not None and error.cause is not None:
            error = error.cause
        if error is not None:
            causes.append(f"{error.cls_name}: {error.message.strip()}")
    return causes


def worker_crash(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """How the run's worker process ended when it died before ending its run, as the code server recorded
    it (`[DagsterApiServer] Run execution process for <run> was terminated by signal 9 (SIGKILL)...`),
    from `Run execution process` on; else None."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT).records
    said = f"Run execution process for {run_id} "
    messages = [r.event_log_entry.dagster_event.message or "" for r in records]
    crashes = [m[m.index(said) :] for m in messages if said in m]
    return crashes[-1] if crashes else None


FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


REMIND_AFTER_SECONDS = 24 * 3600


@dataclass
class CheckAlertCursor:
    """Where the check sensor is: the last finished run it read (`after`, a run update timestamp) and the
    checks that are failing now (`open`: check subject + partition -> fingerprint of the cause, time it was
    last alerted). An alert goes out when a check starts failing, when the cause of a failure changes
    (`_fingerprint`), and once a day while it stays failing; a pass closes it."""

    after: float | None = None
    open: dict[str, tuple[str, float]] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: str | None) -> "CheckAlertCursor":
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            return cls()
        return cls(
            after=data.get("after"), open={k: (v[0], float(v[1])) for k, v in data.get("open", {}).items()}
        )

    def serialize(self) -> str:
        return json.dumps({"after": self.after, "open": self.open}, sort_keys=True)


def _fingerprint(severity: str, description: str | None, metadata: dict) -> str:
    """The cause of a failure: a result that describes itself (the drift check: day, worst feature, counts
    at act/warn) is that description, so a measurement joining later (the score's PSI once a champion
    scored) is not a new cause; a result without one is its metadata (failure counts, rejected files)."""
    cause = json.dumps(
        [severity, description] if description else [severity, metadata], sort_keys=True, default=str
    )
    return hashlib.sha256(cause.encode()).hexdigest()[:16]


def _check_alerts_for_run(
    instance: dg.DagsterInstance, run_id: str, state: CheckAlertCursor, now: float
) -> list[Alert]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    alerts = []
    for rec in records:
        ev = rec.event_log_entry.dagster_event.event_specific_data
        subject = f"{ev.asset_key.to_user_string()}:{ev.check_name}"
        key = f"{subject}|{ev.partition or ''}"
        if ev.passed:
            state.open.pop(key, None)
            continue
        if ev.partition and EVALUATED_OVER in (ev.metadata or {}):
            continue  # a range run's per-day copy: its range evaluation alerts, once
        severity = "ERROR" if ev.severity == dg.AssetCheckSeverity.ERROR else "WARN"
        md = {k: getattr(v, "value", v) for k, v in (ev.metadata or {}).items()}
        fingerprint = _fingerprint(severity, ev.description, md)
        previous = state.open.get(key)
        if previous and previous[0] == fingerprint and now - previous[1] < REMIND_AFTER_SECONDS:
            continue  # the same failure, already alerted
        state.open[key] = (fingerprint, now)
        reminder = previous is not None and previous[0] == fingerprint
        message = ev.description or f"check {ev.check_name} failed"
        alerts.append(
            Alert(
                severity=severity,
                kind="check_failure",
                subject=subject,
                message=f"still failing: {message}" if reminder else message,
                run_id=run_id,
                details={"metadata": md, "partition": ev.partition or "", "event_id": rec.storage_id},
            )
        )
    return alerts


def check_failure_alerts(
    instance: dg.DagsterInstance, cursor: CheckAlertCursor | None, now: float | None = None
) -> tuple[list[Alert], CheckAlertCursor]:
    """Alerts for failed check evaluations in runs that finished after the cursor, de-duplicated per
    (check, partition, cause), and the new cursor. Read run by run: the default SQLite event log is
    sharded by run."""
    state = cursor or CheckAlertCursor()
    now = time.time() if now is None else now
    since = datetime.fromtimestamp(state.after, tz=UTC) if state.after is not None else None
    runs = instance.get_run_records(
        dg.RunsFilter(statuses=FINISHED, updated_after=since),
        limit=CHECK_SENSOR_BATCH,
        order_by="update_timestamp",
        ascending=True,
    )
    alerts = [a for r in runs for a in _check_alerts_for_run(instance, r.dagster_run.run_id, state, now)]
    if runs:
        state.after = runs[-1].update_timestamp.timestamp()
    return alerts, state
