"""The `models` layer: training set -> candidates -> evaluation -> champion gate -> approval request ->
champion (docs/models.md, docs/governance.md)."""

import dagster as dg

from fraud_assets.defs.models.approval import approval_request
from fraud_assets.defs.models.candidates import candidate_assets
from fraud_assets.defs.models.champion import champion, champion_gate, model_approval_job
from fraud_assets.defs.models.evaluation import evaluation
from fraud_assets.defs.models.training_set import training_set

training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.groups("models"),
    description=(
        "Retrain: models/training_set -> one candidate per family -> models/evaluation -> champion_gate "
        "(blocking) -> models/approval_request (the challenger waits for a person) -> models/champion "
        "(moves only at bootstrap). Reads features and labels already in the warehouse."
    ),
)

defs = dg.Definitions(
    assets=[training_set, *candidate_assets, evaluation, approval_request, champion],
    asset_checks=[champion_gate],
    jobs=[training_job, model_approval_job],
)
