"""The `scoring` layer: daily scores with the champion and the top-k alert queue (docs/models.md)."""

import dagster as dg

from fraud_assets.defs.scoring.fraud_alerts import fraud_alerts
from fraud_assets.defs.scoring.shadow_scores import shadow_scores
from fraud_assets.defs.scoring.transaction_scores import transaction_scores

# Everything the scores need except training: raw -> cleaned -> features -> scoring, for the business
# dates given (make score); partitioned by business_date (inferred from the selected assets). The models
# chain upstream of models/champion is excluded: scoring never trains.
scoring_selection = (
    dg.AssetSelection.groups("scoring").upstream() - dg.AssetSelection.groups("models", "monitoring")
).required_multi_asset_neighbors()  # multi-assets upstream (e.g. cleaned/transactions) run whole

scoring_job = dg.define_asset_job(
    "scoring_job",
    selection=scoring_selection,
    description=(
        "Daily scoring without training: landing data -> raw -> cleaned -> features -> "
        "scoring/transaction_scores -> scoring/fraud_alerts with the current champion (and "
        "scoring/shadow_scores by the challenger awaiting approval), per business date."
    ),
)

defs = dg.Definitions(assets=[transaction_scores, fraud_alerts, shadow_scores], jobs=[scoring_job])
