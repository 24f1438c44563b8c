"""Column schemas of the models layer's tables, declared on the asset definitions.

The UI and docs/catalog.md show an asset's columns before it is ever materialised only if the definition
carries them (`column_schema_metadata`). The same descriptions feed `table_metadata` at run time, so the
two schemas agree; fraud_assets_tests/test_models.py checks each declaration against the table written.
Types are DuckDB's as the tables come out (pandas round trips give `fold` BIGINT, `business_date`
TIMESTAMP in models.training_set).
"""

from __future__ import annotations

from fraud_assets.defs.features.compute import COLUMN_DESCRIPTIONS as FEATURE_DESCRIPTIONS
from fraud_assets.defs.features.compute import PRODUCTION_COLUMNS
from fraud_assets.lib.catalog_metadata import column_lineage
from fraud_assets.lib.model_selection import BASELINE_FEATURES

# models.training_set: keys, the 15 baseline features (always present), every other numeric column of
# features.transaction_features (the production features, cast to DOUBLE) in table order, label. The
# asset reads the feature columns from the table, so a new feature is carried before it is declared
# here; declaring it gives it its type and description in the UI and the catalog.
TRAINING_SET_COLUMNS: list[tuple[str, str]] = [
    ("fold", "BIGINT"),
    ("split", "VARCHAR"),
    ("transaction_id", "BIGINT"),
    ("business_date", "TIMESTAMP"),
    ("tx_datetime", "TIMESTAMP"),
    ("card_token", "VARCHAR"),
    ("terminal_id", "BIGINT"),
    *[(c, "DOUBLE") for c in BASELINE_FEATURES],
    *[(c, "DOUBLE") for c in PRODUCTION_COLUMNS],
    ("label", "INTEGER"),
    ("weight", "DOUBLE"),
]
TRAINING_SET_DESCRIPTIONS = {
    "fold": "Prequential fold; 0 = the most recent split (its model is the one registered).",
    "split": "train | test.",
    "transaction_id": "Transaction (features.transaction_features).",
    "business_date": "UTC business date of the transaction (midnight).",
    "tx_datetime": "Transaction time, UTC.",
    "card_token": "HMAC token of the card (never the PAN); the unit of Card Precision@100.",
    "terminal_id": "Terminal of the transaction.",
    **{c: "Handbook baseline feature, cast to DOUBLE (docs/features.md)." for c in BASELINE_FEATURES},
    **{
        c: f"Production feature, cast to DOUBLE (docs/features.md): {FEATURE_DESCRIPTIONS[c]}."
        for c in PRODUCTION_COLUMNS
    },
    "label": "1 = fraud. Train rows: a label reported by the fold's training cut-off (point in time); "
    "test rows: any label known now.",
    "weight": "Fit weight: 1 / the genuine share used (metadata genuine_share_used) for a sampled genuine "
    "train row (the fit sees the population's class balance and scores stay calibrated), else 1.",
}

# Where each training-set column comes from: feature columns as they are, the fold and split from the
# business date, the label from the first report of the transaction (training_set.py states the cut-offs).
_FEATURES = "features/transaction_features"
TRAINING_SET_LINEAGE = column_lineage(
    {
        "fold": [(_FEATURES, "business_date")],
        "split": [(_FEATURES, "business_date")],
        **{
            c: [(_FEATURES, c)]
            for c in ("transaction_id", "business_date", "tx_datetime", "card_token", "terminal_id")
        },
        **{c: [(_FEATURES, c)] for c in (*BASELINE_FEATURES, *PRODUCTION_COLUMNS)},
        "label": [("cleaned/labels", "transaction_id"), ("cleaned/labels", "reported_at")],
        "weight": [("cleaned/labels", "transaction_id"), ("cleaned/labels", "reported_at")],
    }
)

# models.model_versions (fraud_assets/lib/registry.py); a candidate appends one signed row per run.
MODEL_VERSIONS_COLUMNS: list[tuple[str, str]] = [
    ("model_version", "VARCHAR"),
    ("family", "VARCHAR"),
    ("params_json", "VARCHAR"),
    ("params_hash", "VARCHAR"),
    ("feature_columns_json", "VARCHAR"),
    ("train_start", "DATE"),
    ("train_end", "DATE"),
    ("delay_days", "INTEGER"),
    ("test_start", "DATE"),
    ("test_end", "DATE"),
    ("n_folds", "INTEGER"),
    ("data_hash", "VARCHAR"),
    ("code_version", "VARCHAR"),
    ("code_revision", "VARCHAR"),
    ("environment_json", "VARCHAR"),
    ("seed", "INTEGER"),
    ("metrics_json", "VARCHAR"),
    ("artifact_path", "VARCHAR"),
    ("artifact_sha256", "VARCHAR"),
    ("created_at", "TIMESTAMP"),
    ("run_id", "VARCHAR"),
    ("key_id", "VARCHAR"),
    ("signature", "VARCHAR"),
]
MODEL_VERSIONS_DESCRIPTIONS = {
    "model_version": "Registry id, `<lr|hgb|rf>-<UTC stamp>-<run>`; primary key, never reused.",
    "family": "logistic_regression | hist_gradient_boosting | random_forest.",
    "params_json": "Hyper-parameters (run config of the candidate asset), JSON.",
    "params_hash": "SHA-256 of family, params and feature columns.",
    "feature_columns_json": "Feature columns the model was trained on, in order (JSON list).",
    "train_start": "First training day of fold 0.",
    "train_end": "Last training day of fold 0.",
    "delay_days": "Label-delay gap between training and test windows, days.",
    "test_start": "First test day of fold 0.",
    "test_end": "Last test day of fold 0.",
    "n_folds": "Prequential folds actually used (a fold without both classes is skipped).",
    "data_hash": "SHA-256 of the training set content (order independent); names its data snapshot.",
    "code_version": "models code version + scikit-learn version.",
    "code_revision": "Git commit of the code that trained it (`+dirty` if the checkout had changes).",
    "environment_json": (
        "Python, the package source digest (source_sha256) and library versions at training (JSON)."
    ),
    "seed": "Random seed of the estimators (make reproduce refits with it).",
    "metrics_json": "Per-fold, mean and std metrics (AUC, AP, CP@100, ...) and fit times, JSON.",
    "artifact_path": "skops file, relative to the model store.",
    "artifact_sha256": "SHA-256 of the artifact; the loader refuses a file that does not match.",
    "created_at": "When the version was registered, UTC.",
    "run_id": "Dagster run that trained it.",
    "key_id": "Which FRAUD_REGISTRY_KEY signed the row (a fingerprint, never the key).",
    "signature": "HMAC-SHA256 of every other column with FRAUD_REGISTRY_KEY; verified before any load.",
}

# models.model_events (fraud_assets/lib/registry.py): the signed, chained governance ledger.
MODEL_EVENTS_COLUMNS: list[tuple[str, str]] = [
    ("event_id", "BIGINT"),
    ("event", "VARCHAR"),
    ("model_version", "VARCHAR"),
    ("alias", "VARCHAR"),
    ("from_version", "VARCHAR"),
    ("to_version", "VARCHAR"),
    ("actor", "VARCHAR"),
    ("launched_by", "VARCHAR"),
    ("reason", "VARCHAR"),
    ("evidence_path", "VARCHAR"),
    ("evidence_sha256", "VARCHAR"),
    ("event_at", "TIMESTAMP"),
    ("run_id", "VARCHAR"),
    ("key_id", "VARCHAR"),
    ("prev_signature", "VARCHAR"),
    ("signature", "VARCHAR"),
]
MODEL_EVENTS_DESCRIPTIONS = {
    "event_id": "Position in the chain, 1..n without gaps.",
    "event": "challenger_chosen | pending_approval | approved | bootstrap_approved | rejected | superseded "
    "| rolled_back | disabled.",
    "model_version": "The version the event is about.",
    "alias": "champion | challenger when the event moves an alias, else empty.",
    "from_version": "Previous holder of the alias.",
    "to_version": "New holder of the alias (empty: nobody, after disabling the last champion).",
    "actor": "Who decided: the approver, or platform:champion_gate / platform:bootstrap (automatic).",
    "launched_by": "Identity that launched the training run of model_version (the four-eyes reference).",
    "reason": "Why: the gate's decision, or the approver's reason.",
    "evidence_path": "Evidence pack (JSON) in the model store that the decision was taken on.",
    "evidence_sha256": "SHA-256 of that evidence pack.",
    "event_at": "When, UTC.",
    "run_id": "Dagster run that appended the event (its config and launcher are in the run history).",
    "key_id": "Which FRAUD_REGISTRY_KEY signed the event.",
    "prev_signature": "Signature of the previous event (`genesis` for the first): the chain.",
    "signature": "HMAC-SHA256 of every other column, prev_signature included.",
}

# models.evaluation, long format. (models.expected_cost, also written by models/evaluation, is described
# in docs/models.md and shown as a plot in each model card.)
EVALUATION_COLUMNS: list[tuple[str, str]] = [
    ("model_version", "VARCHAR"),
    ("family", "VARCHAR"),
    ("scope", "VARCHAR"),
    ("fold", "DOUBLE"),
    ("metric", "VARCHAR"),
    ("value", "DOUBLE"),
    ("evaluated_at", "TIMESTAMP"),
]
EVALUATION_DESCRIPTIONS = {
    "model_version": "Evaluated registry version (the newest of its family, or the champion).",
    "family": "Model family.",
    "scope": "fold | mean | std | reloaded_artifact (the fold-0 test window of the version's latest "
    "evaluation, re-scored from the saved artifact; the champion is re-scored in each evaluation, on the "
    "candidates' window, unless it trained on rows of it).",
    "fold": "Fold number for scope fold / reloaded_artifact; empty for mean and std.",
    "metric": "auc | average_precision | card_precision_at_100 | n_transactions | n_fraud | fraud_rate | "
    "train_rows | ...",
    "value": "The metric's value.",
    "evaluated_at": "When models/evaluation ran, UTC.",
}
