"""Model validation (`pytest -m model_validation`, part of `make test`): the production model families,
with their production defaults, trained through the platform's own feature SQL and training code on a
small simulated world, must clear performance floors, stay calibrated, give the same model on a refit
and nearly the same ranking with another seed, and score edge rows sanely. A code change that degrades
the models fails here, not in production.

The world is deterministic (simulator seed, estimator seeds, one thread), so the floors are not flaky;
they sit well below what the families reach (measured on this world: AUC LR 0.75 / HGB 0.94 / RF 0.93,
AP 0.17 / 0.32 / 0.31, CP@100 at 77 % of the best possible for HGB and RF).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from fraud_assets.defs.features.compute import write_features
from fraud_assets.defs.models.candidates import read_training_set, train_family
from fraud_assets.defs.models.common import TRAINING_SET_META
from fraud_assets.defs.models.snapshots import TrainingSet
from fraud_assets.defs.models.training_set import TrainingSetConfig, build_training_set
from fraud_assets.lib.metrics import classification_metrics
from fraud_assets.lib.model_io import canonical_model_hash, model_bytes
from fraud_assets.lib.model_selection import FAMILY_DEFAULTS
from fraud_assets.simulator import SimConfig, generate_world
from fraud_assets.simulator.warehouse_loader import load_world_into_cleaned

pytestmark = pytest.mark.model_validation

WORLD = SimConfig(
    profile="handbook", days=63, customers=1000, terminals=2000, seed=3, clean=True, handbook_labels=True
)
FAMILIES = tuple(FAMILY_DEFAULTS)
# Floors on the most recent split (fold 0): AUC, AP, and CP@100 as a share of the best possible CP@100.
FLOORS = {
    "logistic_regression": {"auc": 0.70, "average_precision": 0.10, "cp_share": 0.25},
    "hist_gradient_boosting": {"auc": 0.88, "average_precision": 0.22, "cp_share": 0.55},
    "random_forest": {"auc": 0.88, "average_precision": 0.22, "cp_share": 0.55},
}
EDGES = EDGE_FIRST_CARD, EDGE_UNKNOWN_TERMINAL, EDGE_TINY, EDGE_HUGE, EDGE_TYPICAL = range(1, 6)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("validation") / "warehouse.duckdb"
    world = generate_world(WORLD)
    with duckdb.connect(str(path)) as conn:
        load_world_into_cleaned(conn, world)
        write_features(conn, [world.day(i).isoformat() for i in range(WORLD.days)])
        build_training_set(conn, TrainingSetConfig(n_folds=1))
    return path


@pytest.fixture(scope="module")
def training(warehouse: Path) -> TrainingSet:
    with duckdb.connect(str(warehouse)) as conn:
        return read_training_set(conn, warehouse.with_name("training_set.parquet"))


@pytest.fixture(scope="module")
def fitted(training: TrainingSet) -> dict[str, tuple]:
    """Each family fitted with its production defaults: (model, features, fold metrics)."""
    available = [c for c in training.columns if c not in TRAINING_SET_META]
    out = {}
    for family in FAMILIES:
        model, features, fold_metrics, _ = train_family(family, FAMILY_DEFAULTS[family], training, available)
        out[family] = (model, features, fold_metrics[0])
    return out


def _test_rows(training: TrainingSet) -> pd.DataFrame:
    return training.part(0, "test")


def _scores(model, features: list[str], rows: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(rows[features].astype(float))[:, 1]


def _best_possible_cp(test: pd.DataFrame) -> float:
    frauded_cards = (
        test.groupby(["business_date", "card_token"])["label"].max().groupby("business_date").sum()
    )
    return float(frauded_cards.clip(upper=100).mean() / 100)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_clears_its_performance_floor(family, fitted, training):
    _, _, metrics = fitted[family]
    floor = FLOORS[family]
    best_cp = _best_possible_cp(_test_rows(training))
    assert best_cp > 0, "the validation world must have frauds to find on its test days"
    assert metrics["auc"] >= floor["auc"], metrics
    assert metrics["average_precision"] >= floor["average_precision"], metrics
    assert metrics["card_precision_at_100"] >= floor["cp_share"] * best_cp, (metrics, best_cp)


@pytest.mark.parametrize("family", FAMILIES)
def test_scores_are_calibrated_on_the_population_production_scores(family, fitted, training, warehouse):
    # Production scores every transaction of a day (known-compromised cards included), so calibration is
    # measured on all transactions of the test days with the labels known now.
    model, features, _ = fitted[family]
    test = _test_rows(training)
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        population = conn.execute(
            "SELECT f.*, (l.transaction_id IS NOT NULL)::INTEGER AS label "
            "FROM features.transaction_features f "
            "LEFT JOIN (SELECT DISTINCT transaction_id FROM cleaned.labels) l USING (transaction_id) "
            "WHERE business_date BETWEEN ? AND ?",
            [test["business_date"].min(), test["business_date"].max()],
        ).df()
    scores, labels = _scores(model, features, population), population["label"].to_numpy()
    deciles = pd.qcut(scores, 10, labels=False, duplicates="drop")
    by_decile = pd.DataFrame({"s": scores, "y": labels, "d": deciles}).groupby("d").mean()
    ece = float(
        (by_decile["s"] - by_decile["y"]).abs().mul(pd.Series(deciles).value_counts(normalize=True)).sum()
    )
    assert 1 / 3 <= scores.mean() / labels.mean() <= 3, (scores.mean(), labels.mean())
    assert ece <= 0.05, by_decile
    assert by_decile["y"].iloc[-1] >= 5 * labels.mean()  # the riskiest decile holds the fraud


@pytest.mark.parametrize("family", FAMILIES)
def test_a_refit_with_the_same_seed_gives_the_same_model(family, fitted, training):
    model, features, _ = fitted[family]
    again, *_ = train_family(family, FAMILY_DEFAULTS[family], training, features)
    assert canonical_model_hash(model_bytes(again)) == canonical_model_hash(model_bytes(model))


@pytest.mark.parametrize("family", FAMILIES)
def test_a_refit_with_another_seed_ranks_alike(family, fitted, training):
    model, features, _ = fitted[family]
    other, *_ = train_family(family, FAMILY_DEFAULTS[family], training, features, seed=1)
    test = _test_rows(training)
    a, b = _scores(model, features, test), _scores(other, features, test)
    metric = lambda s: classification_metrics(test[["business_date", "card_token", "label"]].assign(score=s))  # noqa: E731
    top = lambda s: set(test["transaction_id"].to_numpy()[np.argsort(-s)[:100]])  # noqa: E731
    assert abs(metric(a)["average_precision"] - metric(b)["average_precision"]) <= 0.03
    assert len(top(a) & top(b)) >= 80


@pytest.fixture(scope="module")
def edge_day(warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """A new business day of ordinary transactions plus edge rows, featured by the real feature SQL.

    Each edge row is an ordinary transaction of the day, of its own card, changed in one way and placed
    one second after it (so the ordinary one's windows do not see it): a card never seen before, a
    terminal the reference data does not know, a 0.01 and a 10,000,000 amount. EDGE_TYPICAL is the
    ordinary transaction the 10,000,000 row was copied from."""
    path = tmp_path_factory.mktemp("edge") / "warehouse.duckdb"
    path.write_bytes(warehouse.read_bytes())
    with duckdb.connect(str(path)) as conn:
        last, top_id = conn.execute(
            "SELECT max(business_date), max(transaction_id) FROM cleaned.transactions"
        ).fetchone()
        day = last + dt.timedelta(days=1)
        conn.execute(
            "INSERT INTO cleaned.transactions SELECT * REPLACE (transaction_id + ? AS transaction_id, "
            "business_date + 1 AS business_date, tx_datetime + INTERVAL 1 DAY AS tx_datetime, "
            "tx_datetime_local + INTERVAL 1 DAY AS tx_datetime_local) "
            "FROM cleaned.transactions WHERE business_date = ? LIMIT 300",
            [top_id, last],
        )
        bases = conn.execute(
            "SELECT * FROM cleaned.transactions WHERE business_date = ? AND tx_amount BETWEEN 20 AND 80 "
            "QUALIFY row_number() OVER (PARTITION BY card_token ORDER BY transaction_id) = 1 "
            "ORDER BY transaction_id LIMIT 4",
            [day],
        ).df()
        edges = bases.copy()
        first_edge = 3 * top_id  # above the copied day's ids (original id + top_id)
        edges["transaction_id"] = [
            first_edge + e for e in (EDGE_FIRST_CARD, EDGE_UNKNOWN_TERMINAL, EDGE_TINY, EDGE_HUGE)
        ]
        for col in ("tx_datetime", "tx_datetime_local"):
            edges[col] = edges[col] + pd.Timedelta(seconds=1)
        edges.loc[0, "card_token"] = "f" * 64
        edges.loc[1, "terminal_id"] = 987_654_321
        edges.loc[2, ["tx_amount", "amount_original"]] = 0.01
        edges.loc[3, ["tx_amount", "amount_original"]] = 10_000_000.0
        conn.register("edges", edges)
        conn.execute("INSERT INTO cleaned.transactions BY NAME SELECT * FROM edges")
        write_features(conn, [day.isoformat()])
        ids = {e: first_edge + e for e in EDGES}
        ids[EDGE_TYPICAL] = int(bases["transaction_id"].iloc[3])
        feats = conn.execute(
            "SELECT * FROM features.transaction_features "
            "WHERE transaction_id IN (SELECT unnest(?::BIGINT[]))",
            [list(ids.values())],
        ).df()
    edge_of = {v: k for k, v in ids.items()}
    return feats.assign(edge=feats["transaction_id"].map(edge_of)).set_index("edge").sort_index()


def test_edge_rows_are_featured_not_dropped(edge_day: pd.DataFrame):
    assert sorted(edge_day.index) == list(EDGES)


@pytest.mark.parametrize("family", FAMILIES)
def test_edge_rows_get_finite_probabilities(family, fitted, edge_day: pd.DataFrame):
    model, features, _ = fitted[family]
    scores = _scores(model, features, edge_day)
    assert np.isfinite(scores).all()
    assert ((scores >= 0) & (scores <= 1)).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_an_extreme_amount_scores_higher_than_the_same_transaction_at_a_typical_amount(
    family, fitted, edge_day: pd.DataFrame
):
    # Handbook scenario 1: every transaction above 220 is fraud; a model that lost that signal is broken.
    model, features, _ = fitted[family]
    huge, typical = _scores(model, features, edge_day.loc[[EDGE_HUGE, EDGE_TYPICAL]])
    assert huge > typical
    assert huge >= 0.5
