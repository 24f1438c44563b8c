"""The `models` layer: training set -> candidates -> evaluation -> champion gate -> approval request ->
champion (docs/models.md, docs/governance.md), and when to train (sensors.py).

`defs` is merged into the code location by fraud_assets/definitions.py; `control` is the training job, its
trigger and schedule (model_approval is a person's decision, launched from the UI).
"""

import dagster as dg

from fraud_assets.defs.models.approval import approval_request
from fraud_assets.defs.models.candidates import candidate_assets
from fraud_assets.defs.models.champion import champion, champion_gate, model_approval_job
from fraud_assets.defs.models.evaluation import evaluation
from fraud_assets.defs.models.jobs import MODELS_JOBS
from fraud_assets.defs.models.sensors import MODELS_SCHEDULES, MODELS_SENSORS
from fraud_assets.defs.models.training_set import training_set

control = dg.Definitions(jobs=MODELS_JOBS, sensors=MODELS_SENSORS, schedules=MODELS_SCHEDULES)
defs = dg.Definitions.merge(
    dg.Definitions(
        assets=[training_set, *candidate_assets, evaluation, approval_request, champion],
        asset_checks=[champion_gate],
        jobs=[model_approval_job],
    ),
    control,
)
