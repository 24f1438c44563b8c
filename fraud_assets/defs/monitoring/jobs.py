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

MONITORING_JOBS = [monitoring_job]
