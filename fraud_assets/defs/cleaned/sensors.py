"""`reference_restatement_sensor`: clean again the days a late or corrected FX rate or terminal (a new
merchants snapshot that lists, moves to another zone or drops a terminal from its date on), or a reversal
landed on the next business date, changes.

A day is cleaned against the FX rates and terminals known at the time: its non-EUR amounts take the rate
of the day or the latest within 4 days before it, and a transaction at a terminal no merchants snapshot
lists yet is quarantined `unknown_terminal`. Both tables are unpartitioned and the cleaning policy ignores
their updates (a new snapshot must not re-clean every past day), so a reference rate published after the
day was cleaned, a rate correction, or a new terminal's snapshot would leave the days as they were, with
genuine rows quarantined for good. Each cleaned/fx_rates and cleaned/terminals materialisation lists the
cleaned days it would clean differently (metadata `restated_days`, computed in the warehouse); the sensor
requests `cleaning_rebuild` for those not cleaned again since, one run per block of consecutive days.
A reversal may land on the business date after its authorisation's: each cleaned/transactions
materialisation lists, the same way, the days next to it its reversal links change (an authorisation
cleaned as genuine before its reversal landed, a reversal quarantined as an orphan before its
authorisation's day landed), never more. The sensor waits while the run that wrote the table is still
going (a landed day's run cleans its own day after its inputs). Reads only the Dagster instance.
"""

from __future__ import annotations

import dagster as dg

from fraud_assets.defs.cleaned.assets import RESTATED_DAYS
from fraud_assets.defs.cleaned.jobs import CLEANED_TRANSACTIONS, cleaning_job
from fraud_assets.lib.partitions import business_date_partitions, consecutive_blocks, day_span
from fraud_assets.lib.runs import (
    TAG_TRIGGER,
    days_request,
    materializations_after,
    metadata_value,
    partitions_written_after,
)

# The assets whose materialisations list restated days, and what changed the days.
RESTATING = {
    dg.AssetKey(["cleaned", "fx_rates"]): "an FX rate",
    dg.AssetKey(["cleaned", "terminals"]): "a terminal",
    CLEANED_TRANSACTIONS: "a reversal on the next business date",
}
TAG_CAUSE = "fraud_assets/restatement_cause"
BATCH = 100


def _restated(record) -> list[str]:
    value = metadata_value(record, RESTATED_DAYS)
    return [str(d) for d in value] if isinstance(value, list) else []


def _run_going(instance: dg.DagsterInstance, run_id: str) -> bool:
    run = instance.get_run_by_id(run_id) if run_id else None
    return run is not None and not run.is_finished


def restated_day_blocks(
    instance: dg.DagsterInstance, cursors: dict[str, int]
) -> tuple[list[list[str]], list[str], dict[str, int]]:
    """(blocks of consecutive days to clean again, causes, the storage id read up to per reference)."""
    days: set[str] = set()
    causes: list[str] = []
    read = dict(cursors)
    for key, what in RESTATING.items():
        name = key.to_user_string()
        records = materializations_after(instance, key, cursors.get(name), BATCH)
        for record in records:
            if _run_going(instance, record.run_id):
                break  # its own run may still clean these days: look again next tick
            read[name] = record.storage_id
            restated = _restated(record)
            written = partitions_written_after(instance, CLEANED_TRANSACTIONS, restated, record.storage_id)
            stale = set(restated) - written
            if stale:
                days |= stale
                causes.append(f"{what} ({name}) changed {len(stale)} cleaned day(s)")
    return consecutive_blocks(sorted(days)), causes, read


@dg.sensor(
    name="reference_restatement_sensor",
    description=(
        "Cleans again the days a late or corrected FX rate, a terminal listed after its transactions or "
        "moved to another zone (or dropped) by a snapshot dated on or before them, or "
        "a reversal landed on the next business date changes (metadata `restated_days` of "
        "cleaned/fx_rates, cleaned/terminals and cleaned/transactions): one `cleaning_rebuild` run per "
        "block of consecutive days; features, labels and scores follow by automation. Reads only the "
        "Dagster instance."
    ),
    job=cleaning_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def reference_restatement_sensor(context: dg.SensorEvaluationContext):
    cursors = {k: int(v) for k, v in (p.split("=", 1) for p in (context.cursor or "").split(";") if p)}
    blocks, causes, read = restated_day_blocks(context.instance, cursors)
    # A day cleaned beyond this process's partitions (by `make pipeline` over a landed day not over yet, or
    # before the business dates were narrowed) cannot be requested: a request for it fails the whole tick,
    # every tick, and no other day would be cleaned again.
    days = {day for block in blocks for day in block}
    outside = sorted(days - set(business_date_partitions.get_partition_keys()))
    if outside:
        context.log.warning(
            f"{len(outside)} restated day(s), {day_span(outside)}, are not business-date partitions now "
            "(before the first, after the last or not over yet): not cleaned again"
        )
        blocks = consecutive_blocks(sorted(days - set(outside)))
    if read != cursors:
        context.update_cursor(";".join(f"{k}={v}" for k, v in sorted(read.items())))
    if not blocks:
        return dg.SkipReason("no cleaned day is older than the FX rates, terminals and reversals it reads")
    tags = {TAG_TRIGGER: "restatement", TAG_CAUSE: "; ".join(causes)[:200]}
    stamp = max(read.values())
    return [days_request(cleaning_job.name, days, f"restated:{stamp}:{days[0]}", tags) for days in blocks]


CLEANED_SENSORS = [reference_restatement_sensor]
