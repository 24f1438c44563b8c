"""The features layer's named job: rebuild the features of given days (their scores follow by automation)."""

import dagster as dg

FEATURES = dg.AssetKey(["features", "transaction_features"])

features_job = dg.define_asset_job(
    "features_rebuild",
    selection=dg.AssetSelection.assets(FEATURES),
    description=(
        "Rebuilds features/transaction_features for a day or a range of days in one set-based pass: the days "
        "whose features were computed without labels known now (label_lookback_sensor). Their scores "
        "follow by declarative automation."
    ),
)

FEATURES_JOBS = [features_job]
