"""The cleaned layer's named job: clean given days again (their features and scores follow by automation)."""

import dagster as dg

CLEANED_TRANSACTIONS = dg.AssetKey(["cleaned", "transactions"])

cleaning_job = dg.define_asset_job(
    "cleaning_rebuild",
    # The step that writes transactions also writes their quarantine and reconciliation.
    selection=dg.AssetSelection.assets(CLEANED_TRANSACTIONS).required_multi_asset_neighbors(),
    description=(
        "Cleans a day or a range of days again from their raw rows, in one set-based pass: the days whose "
        "cleaning a late or corrected FX rate or merchants snapshot, or a reversal landed on the next "
        "business date, changes (reference_restatement_sensor). "
        "Features, labels and scores follow by declarative automation."
    ),
)

CLEANED_JOBS = [cleaning_job]
