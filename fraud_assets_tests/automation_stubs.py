"""A stand-in asset graph with the platform's keys, groups and partitioning (docs/architecture.md), whose
assets do nothing: sensors and automation policy are tested against the shape of the graph, fast."""

from __future__ import annotations

import functools
from pathlib import Path

import dagster as dg

from fraud_assets.definitions import control_path
from fraud_assets.defs.features.assets import TRANSACTIONS_LOOKBACK
from fraud_assets.defs.policy import apply_policies
from fraud_assets.lib import settings
from fraud_assets.lib.partitions import business_date_partitions
from fraud_assets.resources import LandingZone, build_alert_sink

K = dg.AssetKey
FAILING_CONTRACT_DAYS = {"2018-12-31"}  # the stub raw/authorizations' blocking check fails for these days
CRASHING_DAYS = {"2018-12-29"}  # raises for these days (not next to a failing day: one run each)


def _dep(key: str, lookback: bool) -> dg.AssetDep:
    return dg.AssetDep(K(key.split("/")), partition_mapping=TRANSACTIONS_LOOKBACK if lookback else None)


def _stub(key: str, deps=(), partitioned=False, blocking_check=False):
    path = key.split("/")
    # The features' lookback over cleaned transactions, as the real asset declares it.
    lookback = key == "features/transaction_features"
    checks = (
        [
            dg.AssetCheckSpec(
                "contract",
                asset=K(path),
                blocking=True,
                partitions_def=business_date_partitions if partitioned else None,
            )
        ]
        if blocking_check
        else None
    )

    @dg.asset(
        key=path,
        group_name=path[0],
        deps=[_dep(d, lookback and d == "cleaned/transactions") for d in deps],
        partitions_def=business_date_partitions if partitioned else None,
        # The drift monitor measures a burst of days in one run, as the real one does.
        backfill_policy=dg.BackfillPolicy.single_run() if key == "monitoring/feature_drift" else None,
        check_specs=checks,
    )
    def _a(context):
        if key == "monitoring/feature_drift":
            return dg.MaterializeResult(metadata=_stub_drift_metadata())
        if checks:
            if context.has_partition_key and context.partition_key in CRASHING_DAYS:
                raise RuntimeError(f"stub {key} crashed on {context.partition_key}")
            passed = not (context.has_partition_key and context.partition_key in FAILING_CONTRACT_DAYS)
            return dg.MaterializeResult(
                check_results=[dg.AssetCheckResult(check_name="contract", passed=passed)]
            )
        return dg.MaterializeResult()

    return _a


def _stub_drift_metadata() -> dict:
    """The stub drift monitor reports what `$FRAUD_DATA_DIR/stub_psi` says ("<psi> <business date>"), so an
    end-to-end test can make a day drift without real features."""
    knob = settings.data_dir() / "stub_psi"
    if not knob.exists():
        return {"max_psi": 0.0}
    psi, day = knob.read_text().split()
    return {"max_psi": float(psi), "max_psi_feature": "tx_amount", "current_business_date": day}


STUB_ASSETS = [
    _stub("raw/file_register"),
    _stub("raw/authorizations", ["raw/file_register"], partitioned=True, blocking_check=True),
    *(
        _stub(f"raw/{s}", ["raw/file_register"])
        for s in ("chargebacks", "cardholders", "merchants", "fx_rates")
    ),
    _stub("cleaned/terminals", ["raw/merchants"]),
    _stub("cleaned/fx_rates", ["raw/fx_rates"]),
    _stub("cleaned/cards", ["raw/cardholders"]),
    _stub("cleaned/labels", ["raw/chargebacks", "cleaned/transactions"]),
    _stub("cleaned/transactions", ["raw/authorizations", "cleaned/terminals", "cleaned/fx_rates"], True),
    _stub("features/transaction_features", ["cleaned/transactions", "cleaned/labels"], partitioned=True),
    _stub("models/training_set", ["features/transaction_features", "cleaned/labels"]),
    _stub("models/candidates", ["models/training_set"]),
    _stub("models/evaluation", ["models/candidates"]),
    _stub("models/champion", ["models/evaluation"]),
    _stub("scoring/transaction_scores", ["features/transaction_features", "models/champion"], True),
    _stub("scoring/fraud_alerts", ["scoring/transaction_scores"], partitioned=True),
    _stub(
        "monitoring/model_performance",
        ["scoring/transaction_scores", "cleaned/labels", "cleaned/transactions"],
        partitioned=True,
    ),
    _stub(
        "monitoring/shadow_comparison",
        ["scoring/transaction_scores", "cleaned/labels"],
        partitioned=True,
    ),
    _stub(
        "monitoring/feature_drift",
        ["features/transaction_features", "scoring/transaction_scores", "models/training_set"],
        partitioned=True,
    ),
]


@functools.cache
def stub_definitions(landing_root: Path) -> dg.Definitions:
    return apply_policies(
        dg.Definitions.merge(
            dg.Definitions(
                assets=STUB_ASSETS,
                resources={
                    "landing": LandingZone(root=str(landing_root)),
                    "alert_sink": build_alert_sink(landing_root.parent),
                },
            ),
            control_path(),
        )
    )


def materialize_stub(instance: dg.DagsterInstance, *keys: str, partitions: tuple[str, ...] = ()) -> None:
    """Record materialisations as if runs had happened (no run, no storage)."""
    for key in keys:
        for partition in partitions or (None,):
            event = dg.AssetMaterialization(asset_key=K(key.split("/")), partition=partition)
            instance.report_runless_asset_event(event)


def run_stub(instance: dg.DagsterInstance, key: str, partition: str | None = None) -> bool:
    """Really execute one stub asset (with its checks) in `instance`."""
    asset = next(a for a in STUB_ASSETS if a.key == K(key.split("/")))
    return dg.materialize([asset], instance=instance, partition_key=partition, raise_on_error=False).success
