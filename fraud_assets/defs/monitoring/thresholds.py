"""Monitoring thresholds, shared by the monitoring checks and the retraining trigger."""

from __future__ import annotations

import os

PSI_WARN = 0.1  # population stability index: moderate shift, look at it
PSI_ACT = 0.25  # significant shift: retrain
DEFAULT_AP_FLOOR = 0.3  # handbook baselines reach AP ~0.6; below 0.3 the model has decayed
MATURITY_DAYS = 7  # labels of a day are "matured" once this many days of reports have followed it
TOP_K_CARDS = 100  # card precision@k, the handbook's operational metric
PSI_BINS = 10


def ap_floor() -> float:
    return float(os.environ.get("FRAUD_AP_FLOOR", DEFAULT_AP_FLOOR))
