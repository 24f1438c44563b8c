"""fraud_assets: the payments fraud data platform (code location: fraud_assets.definitions).

Dagster features in beta or preview that the platform uses on purpose (docs/architecture.md, "Dagster
features in beta or preview", says why each): they warn at every definition, in the log of every code
server, run worker, daemon and test, and would bury the warnings that matter. Only these are silenced,
matched by message (so importing the package does not import Dagster); any other use still warns, and
fraud_assets_tests/test_dagster_warnings.py fails when one of them stops warning or a new one appears.
"""

import warnings

DELIBERATE_DAGSTER_PREVIEWS = (
    r"Parameter `backfill_policy` of function `asset` is currently in beta",
    r"Specifying a partitions_def on an AssetCheckSpec is currently in preview",
    r"Function `with_source_code_references` is currently in beta",
    r"Class `LocalFileCodeReference` is currently in beta",
    r"Class `CodeReferencesMetadataValue` is currently in beta",
    r"Function `Definitions\.map_asset_specs` is currently in preview",
    r"Function `Definitions\.map_resolved_asset_specs` is currently in preview",
    r"Function `pandera_schema_to_dagster_type` is currently in beta",
)
for _message in DELIBERATE_DAGSTER_PREVIEWS:
    warnings.filterwarnings("ignore", message=_message)
