"""The monitoring layer's named job: what `make pipeline` runs last (under the daemon, monitoring follows
its inputs by declarative automation instead)."""

import dagster as dg

monitoring_job = dg.define_asset_job(
    "monitoring_job",
    selection=dg.AssetSelection.groups("monitoring"),
    description=(
        "Drift of the given business days against the training window, performance on matured labels and "
        "the shadow comparison, from the tables already in the warehouse."
    ),
)

PERFORMANCE = dg.AssetKey(["monitoring", "model_performance"])
SHADOW_COMPARISON = dg.AssetKey(["monitoring", "shadow_comparison"])
# The monitors measured on labels: a day's figures change when labels of its days (or earlier ones) do.
LABELLED_MONITORS = (PERFORMANCE, SHADOW_COMPARISON)

performance_job = dg.define_asset_job(
    "performance_rebuild",
    selection=dg.AssetSelection.assets(*LABELLED_MONITORS),
    description=(
        "Recomputes monitoring/model_performance and monitoring/shadow_comparison (and their checks) for a "
        "day or a range of days in one pass: the days whose labels, or whose label maturity, a "
        "cleaned/labels rebuild changed (performance_labels_sensor)."
    ),
)

MONITORING_JOBS = [monitoring_job, performance_job]
