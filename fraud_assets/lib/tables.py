"""Warehouse tables that one layer writes and other layers read: one name each, importable from any layer
without importing the layer itself (the layers' packages import each other's assets)."""

TRANSACTIONS_TABLE = "cleaned.transactions"
LABELS_TABLE = "cleaned.labels"
FEATURES_TABLE = "features.transaction_features"
TRAINING_SET_TABLE = "models.training_set"
SCORES_TABLE = "scoring.transaction_scores"
SHADOW_TABLE = "scoring.shadow_scores"
DRIFT_TABLE = "monitoring.feature_drift"
