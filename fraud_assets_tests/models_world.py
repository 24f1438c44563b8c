"""A tiny synthetic warehouse for the models/scoring tests: features.transaction_features and
cleaned.labels written directly, so the model layer is tested without the simulator or feature SQL.

Fraud depends on `tx_amount` and `terminal_risk_7d` (learnable signal); frauds are reported 0-10 days
after they happen. An extra `prod_amount_ratio` column stands for a production feature.
"""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from fraud_assets.defs import models, scoring
from fraud_assets.lib.model_selection import BASELINE_FEATURES
from fraud_assets.resources import build_resources
from fraud_assets_tests.conftest import TEST_PAN_KEY, TEST_REGISTRY_KEY

START = date(2018, 7, 1)
DAYS = 45
TX_PER_DAY = 300
N_CARDS = 3000

# Small, fast hyper-parameters: tests check behaviour, not model quality.
FAST_RUN_CONFIG = {
    "ops": {
        "models__candidate_hist_gradient_boosting": {"config": {"max_iter": 30}},
        "models__candidate_random_forest": {"config": {"n_estimators": 10, "max_depth": 6}},
    }
}


def make_world(
    seed: int = 0, days: int = DAYS, tx_per_day: int = TX_PER_DAY
) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    n = days * tx_per_day
    day_idx = np.repeat(np.arange(days), tx_per_day)
    bdate = np.array([START + timedelta(days=int(d)) for d in day_idx])
    secs = rng.integers(0, 86400, n)
    tx_dt = pd.to_datetime(bdate) + pd.to_timedelta(secs, unit="s")
    feats = pd.DataFrame(
        {
            "transaction_id": np.arange(1, n + 1, dtype=np.int64),
            "business_date": bdate,
            "tx_datetime": tx_dt,
            "card_token": [f"tok{c:04d}" for c in rng.integers(0, N_CARDS, n)],
            "terminal_id": rng.integers(0, 500, n).astype(np.int64),
        }
    )
    for c in BASELINE_FEATURES:
        feats[c] = rng.random(n)
    feats["tx_amount"] = rng.gamma(2.0, 30.0, n)
    feats["is_weekend"] = (pd.to_datetime(bdate).dayofweek >= 5).astype(int)
    feats["prod_amount_ratio"] = rng.random(n)
    logit = (
        -8.0 + 0.02 * feats["tx_amount"] + 3.0 * feats["terminal_risk_7d"] + 1.5 * feats["prod_amount_ratio"]
    )
    fraud = rng.random(n) < 1 / (1 + np.exp(-logit))
    f = feats[fraud]
    labels = pd.DataFrame(
        {
            "transaction_id": f["transaction_id"].to_numpy(),
            "card_token": f["card_token"].to_numpy(),
            "tx_datetime": f["tx_datetime"].to_numpy(),
            "reported_at": (
                f["tx_datetime"] + pd.to_timedelta(rng.integers(0, 10 * 86400, len(f)), unit="s")
            ).to_numpy(),
            "chargeback_id": [f"cb{i}" for i in range(len(f))],
            "reason_code": "10.4",
        }
    )
    return feats, labels


def write_world(db_path: Path, feats: pd.DataFrame, labels: pd.DataFrame) -> None:
    with duckdb.connect(str(db_path)) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS features")
        conn.execute("CREATE SCHEMA IF NOT EXISTS cleaned")
        conn.register("f", feats)
        conn.register("l", labels)
        conn.execute(
            "CREATE OR REPLACE TABLE features.transaction_features AS "
            "SELECT * REPLACE (CAST(business_date AS DATE) AS business_date) FROM f"
        )
        conn.execute("CREATE OR REPLACE TABLE cleaned.labels AS SELECT * FROM l")
        # The transactions the features were computed from: what scoring reconciles its scores with.
        conn.execute(
            "CREATE OR REPLACE TABLE cleaned.transactions AS "
            "SELECT transaction_id, business_date, card_token FROM features.transaction_features"
        )


def layer_defs(data_dir: Path) -> dg.Definitions:
    return dg.Definitions.merge(
        models.defs,
        scoring.defs,
        dg.Definitions(resources=build_resources(data_dir, TEST_PAN_KEY, TEST_REGISTRY_KEY)),
    )


def run_config(cards_dir: Path, **extra_ops) -> dict:
    ops = {k: {"config": dict(v["config"])} for k, v in FAST_RUN_CONFIG["ops"].items()}
    ops["models__evaluation"] = {"config": {"cards_dir": str(cards_dir)}}
    for op, cfg in extra_ops.items():
        ops.setdefault(op, {"config": {}})["config"].update(cfg)
    return {"ops": ops}


_TRAINED: dict[str, Path] = {}
# A gate that any retrained challenger passes: these tests are about what happens after the gate.
PERMISSIVE_GATE = {"FRAUD_GATE_AP_MARGIN": "-1", "FRAUD_GATE_CP_TOLERANCE": "1"}
TRAINER = "dana"  # who launches the retraining in the governance tests (`dagster/user` tag)


def shared_trained_world(tmp_path_factory) -> Path:
    """One trained world per test session, shared by the models and scoring tests (training is the slow
    part). Tests that change the registry work on a `copy_world` of it."""
    if "dir" not in _TRAINED:
        _TRAINED["dir"] = trained_world(tmp_path_factory.mktemp("trained"))
    return _TRAINED["dir"]


def trained_world(root: Path) -> Path:
    """A data dir under `root` with the synthetic world and a bootstrapped champion; returns it."""
    data_dir, result = bootstrap_training(root)
    assert result.success
    return data_dir


def bootstrap_training(root: Path) -> tuple[Path, dg.ExecuteInProcessResult]:
    """The synthetic world under `root` and the training run that appoints its first champion."""
    data_dir = root / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    feats, labels = make_world()
    write_world(data_dir / "warehouse.duckdb", feats, labels)
    result = (
        layer_defs(data_dir)
        .resolve_job_def("training_job")
        .execute_in_process(run_config=run_config(root / "cards"), instance=dg.DagsterInstance.ephemeral())
    )
    return data_dir, result


def shared_pending_world(tmp_path_factory) -> Path:
    """The trained world retrained by TRAINER through a permissive gate: the new challenger awaits
    approval. Shared per session; tests that decide on it work on a `copy_world`."""
    if "pending" not in _TRAINED:
        src = shared_trained_world(tmp_path_factory)
        root = tmp_path_factory.mktemp("pending")
        data_dir = copy_world(src, root / "data")
        with pytest.MonkeyPatch.context() as mp:
            for k, v in PERMISSIVE_GATE.items():
                mp.setenv(k, v)
            result = run_job(data_dir, "training_job", run_config(root / "cards"), user=TRAINER)
        assert result.success
        _TRAINED["pending"] = data_dir
    return _TRAINED["pending"]


def run_job(
    data_dir: Path,
    job: str,
    config: dict | None = None,
    user: str | None = None,
    partition: str | None = None,
    instance: dg.DagsterInstance | None = None,
    assets: list[dg.AssetKey] | None = None,
):
    """Execute a job of the models/scoring layers in process, as `user` (the `dagster/user` tag) if given,
    on `instance` (default: a new ephemeral one), only `assets` of it if given."""
    return (
        layer_defs(data_dir)
        .resolve_job_def(job)
        .execute_in_process(
            run_config=config or {},
            instance=instance or dg.DagsterInstance.ephemeral(),
            tags={"dagster/user": user} if user else None,
            partition_key=partition,
            asset_selection=assets,
            raise_on_error=False,
        )
    )


def decide(
    data_dir: Path,
    decision: str,
    approver: str,
    version: str = "",
    reason: str = "tested",
    user=None,
    instance: dg.DagsterInstance | None = None,
):
    """A run of the model_approval job."""
    cfg = {"decision": decision, "model_version": version, "approver": approver, "reason": reason}
    config = {"ops": {"models__champion": {"config": cfg}}}
    return run_job(data_dir, "model_approval", config, user=user, instance=instance)


def failure_message(result) -> str:
    return " ".join(str(e.step_failure_data.error) for e in result.all_events if e.is_step_failure)


def copy_world(src: Path, dst: Path) -> Path:
    """A private copy of a trained data dir, for tests that change it."""
    shutil.copytree(src, dst)
    return dst


def connect(data_dir: Path):
    """A connection configured like the platform's (a run that failed may still hold one open in-process,
    and DuckDB refuses a second connection to the same file with a different configuration)."""
    return build_resources(data_dir, TEST_PAN_KEY, TEST_REGISTRY_KEY)["duckdb"].get_connection()


def _norm_type(t: str) -> str:
    # pandas round trips write TIMESTAMP_NS where the platform's SQL writes TIMESTAMP: same column.
    return "TIMESTAMP" if str(t).upper().startswith("TIMESTAMP") else str(t).upper()


def schema_mismatches(conn, asset_def: dg.AssetsDefinition, table: str, exact: bool = True) -> list[str]:
    """How the column schema declared on an asset definition differs from the table it writes: declared
    columns missing or typed differently; with `exact`, also table columns left undeclared."""
    declared = {
        c.name: _norm_type(c.type)
        for spec in asset_def.specs
        for c in spec.metadata["dagster/column_schema"].columns
    }
    actual = {name: _norm_type(typ) for name, typ, *_ in conn.execute(f"DESCRIBE {table}").fetchall()}
    problems = [
        f"{table}.{n}: declared {t}, table {actual.get(n)}" for n, t in declared.items() if actual.get(n) != t
    ]
    if exact:
        problems += [f"{table}.{n}: not declared" for n in actual if n not in declared]
    return problems
