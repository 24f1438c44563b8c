"""What a sensor asks to run, read from the asset graph at evaluation time (keys and groups, never
another layer's internals), so assets added by other layers join the right runs without code changes."""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg
from dagster._core.definitions.assets.graph.base_asset_graph import BaseAssetGraph

from fraud_assets.lib.partitions import business_date_partitions

RAW_AUTHORIZATIONS = dg.AssetKey(["raw", "authorizations"])
RAW_CHARGEBACKS = dg.AssetKey(["raw", "chargebacks"])
CLEANED_TRANSACTIONS = dg.AssetKey(["cleaned", "transactions"])
FEATURES = dg.AssetKey(["features", "transaction_features"])
LABELS = dg.AssetKey(["cleaned", "labels"])
TRAINING_SET = dg.AssetKey(["models", "training_set"])
CHAMPION = dg.AssetKey(["models", "champion"])
APPROVAL_REQUEST = dg.AssetKey(["models", "approval_request"])
SCORES = dg.AssetKey(["scoring", "transaction_scores"])
FEATURE_DRIFT = dg.AssetKey(["monitoring", "feature_drift"])
MODEL_PERFORMANCE = dg.AssetKey(["monitoring", "model_performance"])

DAILY_GROUPS = ("raw", "cleaned", "features", "scoring")
# Reference data, FX rates and labels: unpartitioned raw -> cleaned assets a day's chain reads.
INPUT_GROUPS = ("raw", "cleaned")
TRAINING_GROUP = "models"


def raw_key(source: str) -> dg.AssetKey:
    return dg.AssetKey(["raw", source])


def _is_daily(node) -> bool:
    return node.partitions_def == business_date_partitions


def downstream_chain(
    graph: BaseAssetGraph, roots: Iterable[dg.AssetKey], groups: Iterable[str], partitioned: bool
) -> list[dg.AssetKey]:
    """Materialisable assets reached from `roots` (inclusive) through a chain of assets in `groups`, all
    business-date partitioned (`partitioned=True`) or all unpartitioned, in topological order."""
    roots = [k for k in roots if graph.has(k)]
    if not roots:
        return []
    groups = set(groups)
    selected = dg.AssetSelection.assets(*roots).downstream().resolve(graph)
    keep = set(roots)
    # Walk in topological order and keep an asset only if a parent is already kept: the chain is what the
    # new data flows through, not everything that happens to be downstream by another path (new labels
    # do not make monitoring/feature_drift stale; that asset follows features and scores).
    for key in graph.toposorted_asset_keys:
        if key not in selected or key in keep:
            continue
        node = graph.get(key)
        if not node.is_materializable or node.group_name not in groups:
            continue
        if not (_is_daily(node) if partitioned else node.partitions_def is None):
            continue
        if node.parent_keys & keep:
            keep.add(key)
    # The raw layer's gate in front of the roots (raw/file_register: which files exist and which are
    # re-sends) must run first in the same run, or the roots would read a stale register.
    for root in roots:
        for parent in graph.get(root).parent_keys:
            node = graph.get(parent)
            if node.group_name == "raw" and node.partitions_def is None and node.is_materializable:
                keep.add(parent)
    return ordered(graph, keep)


def ordered(graph: BaseAssetGraph, keys: Iterable[dg.AssetKey]) -> list[dg.AssetKey]:
    """`keys` without repeats, in topological order."""
    keep = set(keys)
    return [k for k in graph.toposorted_asset_keys if k in keep]


def training_keys(graph: BaseAssetGraph) -> list[dg.AssetKey]:
    """The models layer's chain up to the champion (training set -> candidates -> evaluation -> gate)."""
    if not graph.has(CHAMPION):
        return []
    upstream = dg.AssetSelection.assets(CHAMPION).upstream().resolve(graph)
    keep = {
        k
        for k in upstream
        if graph.get(k).group_name == TRAINING_GROUP
        and graph.get(k).is_materializable
        and graph.get(k).partitions_def is None
    }
    return ordered(graph, keep)


def ever_materialized(instance: dg.DagsterInstance, graph: BaseAssetGraph, key: dg.AssetKey) -> bool:
    node = graph.get(key)
    if node.partitions_def is not None:
        return bool(instance.get_materialized_partitions(key))
    return instance.get_latest_materialization_event(key) is not None


def runnable_now(
    instance: dg.DagsterInstance, graph: BaseAssetGraph, keys: list[dg.AssetKey]
) -> list[dg.AssetKey]:
    """Drop every asset (and what follows it in `keys`) with a dependency outside `keys` that has never been
    materialised: no champion yet -> no scores; no merchants snapshot yet -> no cleaned transactions.
    Declarative automation fills those partitions in once the dependency exists."""
    dropped: set[dg.AssetKey] = set()
    cache: dict[dg.AssetKey, bool] = {}
    for key in keys:
        ok = True
        for parent in graph.get(key).parent_keys:
            if parent in dropped:
                ok = False
            elif parent in keys or not graph.has(parent) or not graph.get(parent).is_materializable:
                continue
            else:
                if parent not in cache:
                    cache[parent] = ever_materialized(instance, graph, parent)
                ok = ok and cache[parent]
        if not ok:
            # A multi-asset that cannot be subset (cleaned/transactions + quarantine + reconciliation)
            # leaves the run as a whole.
            dropped |= set(graph.get(key).execution_set_asset_keys) | {key}
    # Whatever is downstream of a dropped asset inside `keys` goes too.
    for key in keys:
        if graph.get(key).parent_keys & dropped:
            dropped |= set(graph.get(key).execution_set_asset_keys) | {key}
    return [k for k in keys if k not in dropped]
