"""The automation and freshness policy of the whole platform, in one place.

`apply_policies(defs)` is called once on the merged code location (fraud_assets/definitions.py): it sets
each asset's `AutomationCondition` and `FreshnessPolicy` by layer (the asset's group), so a reader finds
every rule here and the graph snapshot shows them all. `automation_sensor` evaluates them.

- raw: no condition; the landing sensor runs a landed day's job. Freshness 26 h, but 8 days (warn 2) for
  the cardholder and merchant snapshots and what is cleaned from them (full snapshots, not daily).
- cleaned: `fill_and_follow` - build a missing partition once its inputs exist, rebuild when an input of
  the same day updates (not when labels or a reference snapshot do), only after upstream blocking checks
  passed. Freshness 26 h.
- features: the same over the 60-day lookback the asset graph declares (features depend on the cleaned
  transactions of the days before them): a day re-cleaned after later days' features rebuilds them.
- models: no condition; training is requested by `training_trigger_sensor` and the weekly schedule.
  Freshness 8 days (warn 7).
- scoring: `fill_and_follow` that ignores champion updates (a new champion scores new days; history keeps
  the scores that were served) and waits until a champion exists. Freshness 26 h.
- monitoring: `follow` - recompute after upstream updates, without waiting for every partition; a day's
  drift follows its own day's features and scores once both exist (one drift run per landed day, not one
  after its features and another after its scores; a new training window does not recompute history);
  a day's performance and shadow comparison likewise follow their own day's scores (new labels do not
  recompute every day: performance_labels_sensor requests the days they change). 26 h.

Not plain `eager()`: its `newly_missing` is reset on the automation sensor's first evaluation, so days
that landed before that first tick (a seeded landing zone at `make run`) would never be built.
`fill_and_follow` builds any missing partition whose inputs exist, once (`~execution_failed` stops a
failing partition from being retried every tick; a new upstream update retries it).
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

AC = dg.AutomationCondition
RAW_AUTHORIZATIONS = dg.AssetKey(["raw", "authorizations"])
CHAMPION = dg.AssetKey(["models", "champion"])
AUTOMATION_SENSOR_INTERVAL_SECONDS = 10

DAILY_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=26), warn_window=timedelta(hours=24)
)
MODEL_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(days=8), warn_window=timedelta(days=7))
SNAPSHOT_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(days=8), warn_window=timedelta(days=2)
)
SNAPSHOT_KEYS = frozenset(
    dg.AssetKey(k)
    for k in (["raw", "cardholders"], ["raw", "merchants"], ["cleaned", "cards"], ["cleaned", "terminals"])
)


def _ready(ignore: dg.AssetSelection | None = None) -> AC:
    """Inputs exist, nothing upstream or here is running, and upstream blocking checks passed (`ignore`:
    inputs not waited for)."""
    missing = AC.any_deps_missing()
    in_progress = AC.any_deps_in_progress()
    checks = AC.all_deps_blocking_checks_passed()
    if ignore is not None:
        missing, in_progress, checks = (
            missing.ignore(ignore),
            in_progress.ignore(ignore),
            checks.ignore(ignore),
        )
    return ~missing & ~in_progress & ~AC.in_progress() & checks


def _lookback_ready() -> AC:
    """Ready over a lookback window of daily inputs. Dagster maps a day to every day of its window, so
    "any input missing" would hold a day back for good behind a day that never had data, and "all blocking
    checks passed" would hold when any one day passed. Instead: the day itself has authorisations (not a
    dependency, so mapped day to day), no day of the window that is on its way (its own inputs exist) is
    missing, running or failed a blocking check."""
    day_exists = AC.asset_matches(RAW_AUTHORIZATIONS, ~AC.missing()).with_label("day_has_authorizations")
    on_its_way = (AC.missing() & ~AC.will_be_requested() & ~AC.any_deps_missing()).with_label(
        "missing_with_inputs"
    )
    failed = AC.any_checks_match(AC.check_failed(), blocking_only=True).with_label("blocking_check_failed")
    return (
        day_exists
        & ~AC.any_deps_match(on_its_way)
        & ~AC.any_deps_match(failed)
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
    )


def _inputs_updated(ignore: dg.AssetSelection | None) -> AC:
    """Any input updated, but those of `ignore`."""
    updated = AC.any_deps_updated()
    return updated.ignore(ignore) if ignore is not None else updated


def fill_and_follow(
    ignore_updates_of: dg.AssetSelection | None = None,
    not_waiting_for: dg.AssetSelection | None = None,
    lookback: bool = False,
    settle: bool = False,
) -> AC:
    """Build a missing partition once its inputs exist; rebuild when an input updates. `settle` (assets
    the landing run writes together with their inputs): act one tick after the inputs changed. A tick
    reads the parts of a condition at different moments, so one that ends while that run writes its
    partitions saw the inputs' new rows but not all of this asset's, and requested them again (a fresh
    `make run` rebuilt 26 of 45 days' features so); one tick later the run's writes are all visible."""
    updated = _inputs_updated(ignore_updates_of)
    fill = (AC.missing() & ~AC.execution_failed()).with_label("missing_not_failed")
    follow = updated.since_last_handled().with_label("deps_updated_since_last_handled")
    trigger = fill | follow
    if settle:
        trigger = trigger & ~updated.with_label("inputs_changed_this_tick")
    ready = _lookback_ready() if lookback else _ready(not_waiting_for)
    return (trigger & ready).with_label("fill_and_follow_lookback" if lookback else "fill_and_follow")


def champion_exists() -> AC:
    return AC.asset_matches(CHAMPION, ~AC.missing()).with_label("champion_exists")


def scoring_condition(ignore: dg.AssetSelection | None = None) -> AC:
    champion = dg.AssetSelection.assets(CHAMPION)
    ignored = champion | ignore if ignore is not None else champion
    return (fill_and_follow(ignore_updates_of=ignored) & champion_exists()).with_label("score_when_champion")


def follow(ignore_updates_of: dg.AssetSelection | None = None, wait_for_inputs: bool = False) -> AC:
    """Monitoring: recompute after upstream updates, without waiting for every partition to exist.
    `wait_for_inputs` (a day's monitor): also wait until the day's every input exists, so a day whose
    features are written before its scores is measured once, with both, not once per input."""
    updated = _inputs_updated(ignore_updates_of)
    ready = ~AC.any_deps_in_progress() & ~AC.in_progress() & AC.all_deps_blocking_checks_passed()
    if wait_for_inputs:
        ready = ~AC.any_deps_missing() & ready
    return (updated.since_last_handled() & ready).with_label(
        "follow_upstream_inputs" if wait_for_inputs else "follow_upstream"
    )


def condition_for(
    spec: dg.AssetSpec,
    has_champion: bool,
    unpartitioned: dg.AssetSelection | None = None,
    partitioned: dg.AssetSelection | None = None,
) -> AC | None:
    """A day's partition follows its own day's inputs only: new labels, a new merchants snapshot or new FX
    rates (unpartitioned inputs) do not rebuild every past day (features are point-in-time; the days a late
    FX rate or terminal changes are re-cleaned by cleaned/sensors.py, which knows which). A whole table built
    from daily partitions (labels judged against the cleaned transactions) follows every day's update but
    waits for none: one day missing, running or failing its checks must not hold it back for good."""
    layer = spec.group_name or spec.key.path[0]
    ignore = unpartitioned if spec.partitions_def is not None else None
    if layer == "features":
        lookback = spec.partitions_def is not None
        return fill_and_follow(ignore_updates_of=ignore, lookback=lookback, settle=True)
    if layer == "cleaned":
        waits_for_days = spec.partitions_def is not None
        return fill_and_follow(
            ignore_updates_of=ignore, not_waiting_for=None if waits_for_days else partitioned, settle=True
        )
    if layer == "scoring":
        return scoring_condition(ignore) if has_champion else fill_and_follow(ignore_updates_of=ignore)
    if layer == "monitoring":
        return follow(ignore_updates_of=ignore, wait_for_inputs=spec.partitions_def is not None)
    return None  # raw (sensors), models (training sensor + schedule), anything else


def freshness_for(spec: dg.AssetSpec) -> dg.FreshnessPolicy | None:
    layer = spec.group_name or spec.key.path[0]
    if spec.key in SNAPSHOT_KEYS:
        return SNAPSHOT_FRESHNESS
    if layer == "models":
        return MODEL_FRESHNESS
    if layer in ("raw", "cleaned", "features", "scoring", "monitoring"):
        return DAILY_FRESHNESS
    return None


def apply_policies(defs: dg.Definitions) -> dg.Definitions:
    """Set every asset's automation condition and freshness policy by layer (see module docstring)."""
    specs = [
        spec
        for a in defs.assets or []
        if isinstance(a, dg.AssetsDefinition | dg.AssetSpec)
        for spec in (a.specs if isinstance(a, dg.AssetsDefinition) else [a])
    ]
    has_champion = any(spec.key == CHAMPION for spec in specs)
    unpartitioned = dg.AssetSelection.assets(*[s.key for s in specs if s.partitions_def is None])
    partitioned = dg.AssetSelection.assets(*[s.key for s in specs if s.partitions_def is not None])

    def _apply(spec: dg.AssetSpec) -> dg.AssetSpec:
        condition = condition_for(spec, has_champion, unpartitioned, partitioned)
        return spec.replace_attributes(automation_condition=condition, freshness_policy=freshness_for(spec))

    return defs.map_asset_specs(func=_apply)


automation_sensor = dg.AutomationConditionSensorDefinition(
    name="automation_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=AUTOMATION_SENSOR_INTERVAL_SECONDS,
    # Many partitions requested at once (the seeded days at bootstrap) become one backfill, which runs
    # assets with a single-run backfill policy (raw, cleaned, features) for all those days in one run.
    emit_backfills=True,
    description=(
        "Evaluates the declarative automation policy (fraud_assets/defs/policy.py): fills and follows "
        "cleaned/features/scoring partitions, rebuilds features over their lookback, recomputes "
        "monitoring. Running by default."
    ),
)
