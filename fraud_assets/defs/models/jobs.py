"""The models layer's named job: training, launched by the training trigger, the weekly schedule and
`make pipeline`."""

import dagster as dg

from fraud_assets.lib.runs import PRIORITY_TAG, TRAINING_PRIORITY

training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.groups("models"),
    # `tags`, not `run_tags`: the UI's launchpad pre-fills only the job's `tags` (raw/jobs.py).
    tags={PRIORITY_TAG: TRAINING_PRIORITY},
    description=(
        "Retrain: models/training_set -> one candidate per family -> models/evaluation -> champion_gate "
        "(blocking) -> models/approval_request (the challenger waits for a person) -> models/champion "
        "(moves only at bootstrap). Reads features and labels already in the warehouse."
    ),
)

MODELS_JOBS = [training_job]
