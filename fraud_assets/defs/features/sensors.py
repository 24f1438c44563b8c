"""`label_lookback_sensor`: rebuild the features of the days computed without labels known now.

A day's terminal risk and known-fraud counts read the labels reported up to each transaction, and
`cleaned/labels` is one unpartitioned table: Dagster cannot map "labels reported on day R" to the feature
days they change, so this is the one lookback the asset graph does not express (a day re-cleaned after
later days is: features depend on the 60 days of cleaned transactions before them through a
`TimeWindowPartitionMapping`, and automation rebuilds them). Each `cleaned/labels` materialisation says
what it changed (metadata: earliest report date R of the changed labels, latest transaction date T); the
days in [R, T + 60] featured before it are stale. One run per block of consecutive stale days. Reads only
the Dagster instance; a day's chargebacks loaded in its own run, before its features, request nothing.

Reference data is read as of each transaction's date, and `cleaned/cards` and `cleaned/terminals` are
unpartitioned too: each of their materialisations gives the first and last transaction date F, L whose
card home or terminal location / merchant category it changed (a snapshot that lands after the days it
applies to were featured); the days in [F, L + 60] featured before it are stale the same way.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from fraud_assets.defs.cleaned.assets import (
    CHANGED_FIRST_REPORT,
    CHANGED_LABELS,
    CHANGED_LAST_TRANSACTION,
    CHANGED_REFERENCE_FIRST,
    CHANGED_REFERENCE_LAST,
)
from fraud_assets.defs.features.compute import LOOKBACK_DAYS
from fraud_assets.defs.features.jobs import FEATURES, features_job
from fraud_assets.lib.partitions import consecutive_blocks
from fraud_assets.lib.runs import (
    TAG_TRIGGER,
    days_request,
    materializations_after,
    metadata_value,
    partitions_written_after,
)

LABELS = dg.AssetKey(["cleaned", "labels"])
REFERENCES = {dg.AssetKey(["cleaned", "cards"]): "cards", dg.AssetKey(["cleaned", "terminals"]): "terminals"}
TAG_CAUSE = "fraud_assets/lookback_cause"
BATCH = 500


def _label_span(record) -> tuple[dt.date, dt.date] | None:
    """(earliest report date, latest transaction date) of the labels a cleaned/labels materialisation
    changed; None when it changed none."""
    if not metadata_value(record, CHANGED_LABELS):
        return None
    first, last = (
        metadata_value(record, CHANGED_FIRST_REPORT),
        metadata_value(record, CHANGED_LAST_TRANSACTION),
    )
    return (dt.date.fromisoformat(first), dt.date.fromisoformat(last)) if first and last else None


def _reference_span(record) -> tuple[dt.date, dt.date] | None:
    """(first, last) transaction date whose reference values a cleaned/cards or cleaned/terminals
    materialisation changed; None when none."""
    first, last = (
        metadata_value(record, CHANGED_REFERENCE_FIRST),
        metadata_value(record, CHANGED_REFERENCE_LAST),
    )
    return (dt.date.fromisoformat(first), dt.date.fromisoformat(last)) if first and last else None


def _sources() -> list[tuple[dg.AssetKey, object, str]]:
    """(asset, its materialisation's span of changed days, cause)."""
    return [
        (LABELS, _label_span, "labels reported from {first}"),
        *((key, _reference_span, f"{what} changed from {{first}}") for key, what in REFERENCES.items()),
    ]


def _parse_cursor(cursor: str | None) -> dict[str, int]:
    """Per source asset, the storage id read up to (a bare number: the labels', as this sensor kept it
    before it read the reference tables)."""
    if not cursor:
        return {}
    if cursor.isdigit():
        return {LABELS.to_user_string(): int(cursor)}
    return {k: int(v) for k, v in (part.split("=", 1) for part in cursor.split(";") if part)}


def stale_feature_days(
    instance: dg.DagsterInstance, cursors: dict[str, int]
) -> tuple[list[list[str]], list[str], dict[str, int]]:
    """(blocks of consecutive stale days, causes, the storage id read up to per source)."""
    featured = None
    stale: set[str] = set()
    causes: list[str] = []
    read = dict(cursors)
    for key, span_of, cause in _sources():
        name = key.to_user_string()
        records = materializations_after(instance, key, cursors.get(name), BATCH)
        if not records:
            continue
        read[name] = records[-1].storage_id
        featured = instance.get_materialized_partitions(FEATURES) if featured is None else featured
        for record in records:
            span = span_of(record)
            if span is None:
                continue
            first, last_transaction = span
            last = last_transaction + dt.timedelta(days=LOOKBACK_DAYS)
            window = [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
            window = [day for day in window if day in featured]
            affected = set(window) - partitions_written_after(instance, FEATURES, window, record.storage_id)
            if affected:
                stale |= affected
                causes.append(cause.format(first=first.isoformat()))
    return consecutive_blocks(sorted(stale)), sorted(set(causes)), read


@dg.sensor(
    name="label_lookback_sensor",
    description=(
        "Rebuilds features/transaction_features for the days computed without labels known now (a late or "
        "corrected chargeback file): from the earliest report date of the changed labels to "
        f"{LOOKBACK_DAYS} days after their latest transaction; likewise for the days whose card home or "
        "terminal location / merchant category as of their date a new cardholder or merchants snapshot "
        "changed. One run per block of days, a partition "
        "range; scores follow by automation. Reads only the Dagster instance."
    ),
    job=features_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def label_lookback_sensor(context: dg.SensorEvaluationContext):
    cursors = _parse_cursor(context.cursor)
    blocks, causes, read = stale_feature_days(context.instance, cursors)
    if read != cursors:
        context.update_cursor(";".join(f"{k}={v}" for k, v in sorted(read.items())))
    if not blocks:
        return dg.SkipReason("no day's features are older than the labels and reference data they read")
    cause = "; ".join(causes[:3]) + (f"; +{len(causes) - 3}" if len(causes) > 3 else "")
    tags = {TAG_TRIGGER: "lookback", TAG_CAUSE: cause[:200]}
    stamp = max(read.values())
    return [days_request(features_job.name, days, f"labels:{stamp}:{days[0]}", tags) for days in blocks]


FEATURES_SENSORS = [label_lookback_sensor]
