"""The scoring layer's named job: score days with the current champion."""

import dagster as dg

scoring_job = dg.define_asset_job(
    "scoring_job",
    selection=dg.AssetSelection.groups("scoring"),
    description=(
        "Scores business days with the current champion, from the features already in the warehouse: "
        "scoring/transaction_scores -> scoring/fraud_alerts, and scoring/shadow_scores by the challenger "
        "awaiting approval. Never trains. A landed day's run (landed_day) scores its day already; `make "
        "pipeline` runs this after training appointed the first champion."
    ),
)

SCORING_JOBS = [scoring_job]
