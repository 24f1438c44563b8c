"""The `scoring` layer: daily scores with the champion and the top-k alert queue (docs/models.md).

`defs` is merged into the code location by fraud_assets/definitions.py; `control` is its job.
"""

import dagster as dg

from fraud_assets.defs.scoring.fraud_alerts import fraud_alerts
from fraud_assets.defs.scoring.jobs import SCORING_JOBS
from fraud_assets.defs.scoring.shadow_scores import shadow_scores
from fraud_assets.defs.scoring.transaction_scores import transaction_scores

control = dg.Definitions(jobs=SCORING_JOBS)
defs = dg.Definitions.merge(dg.Definitions(assets=[transaction_scores, fraud_alerts, shadow_scores]), control)
