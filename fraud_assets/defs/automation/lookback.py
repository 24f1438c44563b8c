"""`feature_lookback_sensor`: rebuild the features of the days that follow a day cleaned after them, or
that were computed without labels known now.

A day's features read the cleaned transactions of the 37 days before it (card windows, terminal windows
behind the label delay) and the labels reported up to each transaction. Dagster does not see the lookback
as a dependency (business dates are dynamic partitions, which have no time-window mapping), and a label
file changes an unpartitioned table, so on its own it would never notice that:
- a late or corrected file re-cleaned day D after days D+1.. had their features computed,
- days that landed together ran concurrently and D+1's features were written before D was cleaned, or
- a late (or corrected) chargeback file added labels reported on day R after days R.. were featured.
In each case some days' windows miss what is known now. This sensor reads the instance (never DuckDB):
- for every new materialisation of `cleaned/transactions` for day D, the features partitions of days in
  (D, D + lookback] whose latest materialisation is older than it are stale;
- for every new materialisation of `cleaned/labels` that changed labels (its metadata: the earliest report
  date R among the changed labels and the latest transaction date T), the days in [R, T + lookback]
  featured before it are stale (a label counts from its report time, for transactions up to the lookback
  after its own).
It requests one run per block of consecutive stale days (a partition range: `features/transaction_features`
runs a range in one set-based pass). Scores of those days then follow by the automation policy (new
features for a day rescore that day). Steady state (each new day cleaned after every earlier one, its
chargebacks loaded in its own run before its features) requests nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import dagster as dg
from dagster._core.events import DagsterEventType

from fraud_assets.defs.automation import graph as g
from fraud_assets.defs.automation.sensors import PRIORITY_TAG, TAG_TRIGGER, in_process_config
from fraud_assets.defs.cleaned.assets import CHANGED_FIRST_REPORT, CHANGED_LABELS, CHANGED_LAST_TRANSACTION
from fraud_assets.defs.features.compute import LOOKBACK_DAYS
from fraud_assets.lib.partitions import consecutive_blocks

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
TAG_CAUSE = "fraud_assets/lookback_cause"
BATCH = 500


def _day(key: str) -> dt.date:
    return dt.date.fromisoformat(key)


@dataclass
class LookbackCursor:
    """The newest storage id read, per watched asset. Earlier versions kept one integer (cleaned only)."""

    cleaned: int | None = None
    labels: int | None = None

    @classmethod
    def parse(cls, raw: str | None) -> LookbackCursor:
        if not raw:
            return cls()
        data = json.loads(raw)
        if isinstance(data, int):
            return cls(cleaned=data, labels=data)
        return cls(cleaned=data.get("cleaned"), labels=data.get("labels"))

    def serialize(self) -> str:
        return json.dumps({"cleaned": self.cleaned, "labels": self.labels}, sort_keys=True)


def _new_records(instance: dg.DagsterInstance, key: dg.AssetKey, after: int | None):
    return instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, after_storage_id=after), limit=BATCH, ascending=True
    ).records


def _label_span(record) -> tuple[dt.date, dt.date] | None:
    """(earliest report date, latest transaction date) of the labels a cleaned/labels materialisation
    changed; None when it changed none or predates that metadata."""
    md = record.asset_materialization.metadata if record.asset_materialization else {}
    value = lambda k: getattr(md.get(k), "value", None)  # noqa: E731
    if not value(CHANGED_LABELS) or not value(CHANGED_FIRST_REPORT) or not value(CHANGED_LAST_TRANSACTION):
        return None
    return _day(value(CHANGED_FIRST_REPORT)), _day(value(CHANGED_LAST_TRANSACTION))


def stale_feature_days(
    instance: dg.DagsterInstance, cursor: LookbackCursor
) -> tuple[list[list[str]], str, LookbackCursor]:
    """(stale feature partitions as runs of consecutive partitions in partition order, a short cause, the
    cursor past the records read)."""
    cleaned_records = _new_records(instance, g.CLEANED_TRANSACTIONS, cursor.cleaned)
    label_records = _new_records(instance, g.LABELS, cursor.labels)
    after = LookbackCursor(
        cleaned=cleaned_records[-1].storage_id if cleaned_records else cursor.cleaned,
        labels=label_records[-1].storage_id if label_records else cursor.labels,
    )
    if not cleaned_records and not label_records:
        return [], "", after
    latest_features = instance.event_log_storage.get_latest_storage_id_by_partition(
        g.FEATURES, DagsterEventType.ASSET_MATERIALIZATION
    )
    featured = [(day, _day(day), storage_id) for day, storage_id in latest_features.items()]

    def featured_before(storage_id: int, first: dt.date, last: dt.date) -> set[str]:
        return {day for day, date, sid in featured if first <= date <= last and sid < storage_id}

    stale: set[str] = set()
    causes: set[str] = set()
    for rec in cleaned_records:
        if not rec.partition_key:
            continue
        cleaned_day = _day(rec.partition_key)
        window = (cleaned_day + dt.timedelta(days=1), cleaned_day + dt.timedelta(days=LOOKBACK_DAYS))
        later = featured_before(rec.storage_id, *window)
        if later:
            stale |= later
            causes.add(f"cleaned after: {rec.partition_key}")
    for rec in label_records:
        span = _label_span(rec)
        if span is None:
            continue
        first_report, last_transaction = span
        affected = featured_before(
            rec.storage_id, first_report, last_transaction + dt.timedelta(days=LOOKBACK_DAYS)
        )
        if affected:
            stale |= affected
            causes.add(f"labels reported from {first_report.isoformat()}")
    # Consecutive stale partitions form one range; a partition in between that is not stale (never
    # featured: its day was blocked, or is still running) splits it.
    blocks = consecutive_blocks(sorted(stale))
    shown = sorted(causes)
    cause = "; ".join(shown[:3]) + (f"; +{len(shown) - 3}" if len(shown) > 3 else "")
    return blocks, cause, after


@dg.sensor(
    name="feature_lookback_sensor",
    description=(
        "Rebuilds features/transaction_features for the days whose 37-day lookback includes a day that was "
        "cleaned after them (a late or corrected file, or days that landed together and ran out of order) "
        "or labels that arrived after them (a late chargeback file), so no day's windows miss an earlier "
        "day's transactions or a label known now. One run per block of days, a partition range; scores "
        "follow by automation. Reads only the Dagster instance."
    ),
    target=dg.AssetSelection.assets(g.FEATURES),
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def feature_lookback_sensor(context: dg.SensorEvaluationContext):
    blocks, cause, after = stale_feature_days(context.instance, LookbackCursor.parse(context.cursor))
    context.update_cursor(after.serialize())
    if not blocks:
        return dg.SkipReason(
            "no day's features are older than what was cleaned or labelled in their lookback"
        )
    newest = max(after.cleaned or 0, after.labels or 0)
    return [
        dg.RunRequest(
            run_key=f"lookback:{newest}:{block[0]}",
            asset_selection=[g.FEATURES],
            tags={
                RANGE_START: block[0],
                RANGE_END: block[-1],
                TAG_TRIGGER: "lookback",
                TAG_CAUSE: cause[:200],
                PRIORITY_TAG: "0",
            },
            run_config=in_process_config(context),
        )
        for block in blocks
    ]
