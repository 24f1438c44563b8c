"""When to train: bootstrap (no champion yet), drift, decay, and a weekly schedule.

`training_trigger_sensor` reads only the Dagster instance (materialisation metadata of the monitoring
assets, partition counts, run records), never DuckDB, and requests `training_job` with the reason in the
run's tags. The new candidate faces the champion/challenger gate, and one that passes waits for a
person's approval (model_approval job, docs/governance.md): retraining never changes the champion by
itself, except the bootstrap, which auto-approves the first model when no champion was ever appointed.

- bootstrap: `models/champion` was never materialised, at least `FRAUD_BOOTSTRAP_MIN_DAYS` (default 21)
  business days have features, labels exist, and no run at all is queued or running (so the first model
  sees every seeded day).
- drift: the latest `monitoring/feature_drift` has `max_psi` >= `PSI_ACT` (0.25) for a business day the
  latest training run did not see (`latest_business_date` of `models/training_set`): retraining on the
  same data gives the same model, so drift on a day the models were trained with only alerts.
- decay: the latest `monitoring/model_performance` has `mean_ap_last_7_matured_days` (the mean AP of the 7
  latest matured days) < `FRAUD_AP_FLOOR` (default 0.3). A mean, not the latest day alone: performance is
  computed per day as each day's labels mature, so every day is the latest matured one for a while, and
  one small day's AP swings across the floor by chance (a retraining the gate then refuses).
Each drifted or matured business day triggers at most once (run_key `drift:<day>` / `decay:<day>`:
monitoring is recomputed after every run, the training run included, so a key per measurement would
retrain in a loop), and never while a training run is in flight.
"""

import os

import dagster as dg

from fraud_assets.defs.models.candidates import FAMILIES
from fraud_assets.defs.models.jobs import training_job
from fraud_assets.defs.monitoring.thresholds import PSI_ACT, ap_floor
from fraud_assets.lib.runs import TAG_TRIGGER, runs_in_flight

TAG_REASON = "fraud_assets/retrain_reason"
TAG_DETAIL = "fraud_assets/retrain_detail"
DEFAULT_BOOTSTRAP_MIN_DAYS = 21
WEEKLY_RETRAIN_CRON = "0 3 * * 1"
TRAINING_SENSOR_INTERVAL_SECONDS = 15
FEATURES = dg.AssetKey(["features", "transaction_features"])
LABELS = dg.AssetKey(["cleaned", "labels"])
TRAINING_SET = dg.AssetKey(["models", "training_set"])
CHAMPION = dg.AssetKey(["models", "champion"])
APPROVAL_REQUEST = dg.AssetKey(["models", "approval_request"])
FEATURE_DRIFT = dg.AssetKey(["monitoring", "feature_drift"])
MODEL_PERFORMANCE = dg.AssetKey(["monitoring", "model_performance"])
# Drift materialisations read per tick: every day of a burst measured since the last training.
DRIFT_EVENTS_READ = 400


def bootstrap_min_days() -> int:
    return int(os.environ.get("FRAUD_BOOTSTRAP_MIN_DAYS", DEFAULT_BOOTSTRAP_MIN_DAYS))


def _metadata_value(instance: dg.DagsterInstance, key: dg.AssetKey, name: str):
    """A metadata value of the latest materialisation of `key`, and that event's storage id."""
    records = instance.fetch_materializations(key, limit=1).records
    if not records or records[0].asset_materialization is None:
        return None, None
    value = records[0].asset_materialization.metadata.get(name)
    return (getattr(value, "value", value) if value is not None else None), records[0].storage_id


def awaiting_approval(instance: dg.DagsterInstance) -> str | None:
    """The version models/approval_request last put up for approval, unless a later models/champion
    decision was about it (read from materialisation metadata, like everything this trigger reads)."""
    pending, request_id = _metadata_value(instance, APPROVAL_REQUEST, "pending_version")
    if not pending or pending == "none":
        return None
    decided, decision_id = _metadata_value(instance, CHAMPION, "decided_version")
    if decision_id is not None and decision_id > request_id and decided == pending:
        return None
    return str(pending)


def _training_request(reason: str, detail: str, run_key: str, wide_search: bool = False) -> dg.RunRequest:
    config = {f"models__candidate_{f}": {"config": {"wide_search": True}} for f in FAMILIES}
    return dg.RunRequest(
        job_name=training_job.name,
        run_key=run_key,
        run_config={"ops": config} if wide_search else {},
        tags={TAG_TRIGGER: "training", TAG_REASON: reason, TAG_DETAIL: detail[:200]},
    )


def unseen_drift(instance: dg.DagsterInstance, seen: str | None) -> tuple[float, str, str] | None:
    """(max PSI, feature, business day): the worst of each business day's latest drift measurement, among
    the days after `seen`. Per day rather than the latest event: drift is partitioned by day, and a later
    re-measurement of an older day (a lookback rebuild) must not hide the drift of a newer one."""
    latest: dict[str, tuple[float, str]] = {}
    records = instance.fetch_materializations(FEATURE_DRIFT, limit=DRIFT_EVENTS_READ).records
    for i, record in enumerate(records):
        if record.asset_materialization is None:
            continue
        md = {k: getattr(v, "value", v) for k, v in record.asset_materialization.metadata.items()}
        day, psi = md.get("current_business_date"), md.get("max_psi")
        if psi is None or (day is None and i > 0):  # an undated measurement counts only as the latest
            continue
        key = str(day) if day is not None else f"measurement {record.storage_id}"
        latest.setdefault(key, (float(psi), str(md.get("max_psi_feature", ""))))
    unseen = [
        (psi, feature, day)
        for day, (psi, feature) in latest.items()
        # psi == psi: NaN (nothing to compare yet) is no drift; an undated measurement is never seen.
        if psi == psi and (seen is None or day.startswith("measurement") or day > seen)
    ]
    return max(unseen) if unseen else None


def ever_materialized(instance: dg.DagsterInstance, key: dg.AssetKey) -> bool:
    return instance.get_latest_materialization_event(key) is not None


def training_reasons(context: dg.SensorEvaluationContext) -> list[dg.RunRequest]:
    """The training runs to request now (at most one)."""
    instance = context.instance
    if runs_in_flight(instance, {TAG_TRIGGER: "training"}):
        return []
    if not ever_materialized(instance, CHAMPION):
        # Wait until the platform is quiet (landing runs, automation's backfills): the first model should
        # see every seeded day, not the ones that happened to be ready first.
        if runs_in_flight(instance, {}):
            return []
        days = len(instance.get_materialized_partitions(FEATURES))
        if days < bootstrap_min_days() or not ever_materialized(instance, LABELS):
            return []
        detail = f"no champion yet; {days} business days with features"
        return [_training_request("bootstrap", detail, f"bootstrap:{days}")]
    seen, _ = _metadata_value(instance, TRAINING_SET, "latest_business_date")
    worst = unseen_drift(instance, None if seen is None else str(seen))
    if worst is not None and worst[0] >= PSI_ACT:
        psi, feature, day = worst
        detail = f"PSI {psi:.3f} >= {PSI_ACT} on {feature} for {day}"
        return [_training_request("drift", detail, f"drift:{day}")]
    ap, perf_id = _metadata_value(instance, MODEL_PERFORMANCE, "mean_ap_last_7_matured_days")
    floor = ap_floor()
    if ap is not None and float(ap) == float(ap) and float(ap) < floor:
        day, _ = _metadata_value(instance, MODEL_PERFORMANCE, "latest_matured_business_date")
        detail = f"mean matured-label AP of the 7 days through {day} {float(ap):.3f} < floor {floor}"
        return [_training_request("decay", detail, f"decay:{day}" if day else f"decay:{perf_id}")]
    return []


@dg.sensor(
    name="training_trigger_sensor",
    description=(
        "Requests the training chain (models/* up to models/champion; a passing challenger then waits for "
        "approval) when there is no champion yet and "
        "enough labelled days exist (bootstrap), when feature/score drift reaches PSI 0.25, or when the mean "
        "AP of the 7 latest matured days falls below the floor. The reason is in the run tags "
        "(fraud_assets/retrain_reason, fraud_assets/retrain_detail). Reads only the Dagster instance."
    ),
    job=training_job,
    minimum_interval_seconds=TRAINING_SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def training_trigger_sensor(context: dg.SensorEvaluationContext):
    requests = training_reasons(context)
    if not requests:
        return dg.SkipReason("no training needed")
    context.log.info(f"requesting training: {requests[0].tags[TAG_DETAIL]}")
    return requests


@dg.schedule(
    name="weekly_retrain",
    cron_schedule=WEEKLY_RETRAIN_CRON,
    execution_timezone="UTC",
    job=training_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=(
        "Retrains every Monday 03:00 UTC whatever the monitors say (fresh labels have matured over the "
        "week), except while a challenger awaits approval; the candidate still has to beat the champion "
        "at the gate, then wait for approval."
    ),
)
def weekly_retrain(context: dg.ScheduleEvaluationContext):
    # A weekly retrain would supersede the challenger awaiting approval every week, before any of its
    # shadow days has matured labels (7 days): the approver would never see live evidence. Drift and
    # decay still retrain: the data changed, the evidence with it.
    waiting = awaiting_approval(context.instance)
    if waiting:
        return dg.SkipReason(f"{waiting} awaits approval (model_approval job): no weekly retrain meanwhile")
    stamp = context.scheduled_execution_time.strftime("%Y-%m-%d")
    # Nobody waits on a weekly retrain: it also tries the configurations a backfill's budget leaves out.
    return _training_request("weekly", f"weekly retrain {stamp}", f"weekly:{stamp}", wide_search=True)


MODELS_SENSORS = [training_trigger_sensor]
MODELS_SCHEDULES = [weekly_retrain]
