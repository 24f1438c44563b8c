"""Registry and artifacts: append-only aliases, and the one checked loader that refuses bad artifacts."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pytest
import skops.io as sio
from sklearn.neighbors import KNeighborsClassifier

from fraud_assets.lib import registry
from fraud_assets.lib.model_io import ArtifactIntegrityError, UntrustedTypeError, load_model, save_model
from fraud_assets.lib.model_selection import build_estimator


def _fitted(family: str = "logistic_regression"):
    rng = np.random.default_rng(0)
    X = rng.random((200, 3))
    y = (X[:, 0] > 0.7).astype(int)
    params = {
        "logistic_regression": {"C": 1.0, "max_iter": 100},
        "hist_gradient_boosting": {
            "learning_rate": 0.1,
            "max_iter": 5,
            "max_leaf_nodes": 7,
            "min_samples_leaf": 5,
            "l2_regularization": 0.0,
        },
        "random_forest": {"n_estimators": 3, "max_depth": 3, "min_samples_leaf": 1},
    }[family]
    return build_estimator(family, params).fit(X, y), X


@pytest.mark.parametrize("family", ["logistic_regression", "hist_gradient_boosting", "random_forest"])
def test_saved_model_loads_back_and_predicts_the_same(tmp_path: Path, family: str):
    model, X = _fitted(family)
    rel, sha = save_model(model, tmp_path, "m1")
    loaded = load_model(tmp_path, rel, sha)
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X))


def test_tampered_artifact_is_refused(tmp_path: Path):
    model, _ = _fitted()
    rel, sha = save_model(model, tmp_path, "m1")
    with open(tmp_path / rel, "ab") as f:
        f.write(b"\0")
    with pytest.raises(ArtifactIntegrityError, match="does not match the registry"):
        load_model(tmp_path, rel, sha)


def test_artifact_with_an_untrusted_type_is_refused(tmp_path: Path):
    # A KNN model is valid scikit-learn (skops itself trusts it) but not in our pinned trust list.
    model = KNeighborsClassifier(n_neighbors=1).fit(np.eye(3), [0, 1, 1])
    path = tmp_path / "knn.skops"
    sio.dump(model, path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(UntrustedTypeError, match="KNeighborsClassifier"):
        load_model(tmp_path, "knn.skops", sha)


def test_saving_an_untrusted_type_is_refused_at_training_time(tmp_path: Path):
    model = KNeighborsClassifier(n_neighbors=1).fit(np.eye(3), [0, 1, 1])
    store = tmp_path / "store"
    with pytest.raises(UntrustedTypeError):
        save_model(model, store, "knn")
    assert not list(store.iterdir())


def test_artifact_outside_the_model_store_is_refused(tmp_path: Path):
    model, _ = _fitted()
    rel, sha = save_model(model, tmp_path / "elsewhere", "m1")
    (tmp_path / "store").mkdir()
    with pytest.raises(ArtifactIntegrityError, match="outside the model store"):
        load_model(tmp_path / "store", f"../elsewhere/{rel}", sha)


def _register(conn, store: Path, name: str) -> str:
    model, _ = _fitted()
    rel, sha = save_model(model, store, name)
    registry.register_version(
        conn,
        registry.ModelVersion(
            model_version=name,
            family="logistic_regression",
            params={"C": 1.0},
            feature_columns=["a", "b", "c"],
            train_start=date(2018, 7, 25),
            train_end=date(2018, 7, 31),
            delay_days=7,
            test_start=date(2018, 8, 8),
            test_end=date(2018, 8, 14),
            n_folds=1,
            data_hash="d" * 64,
            code_version="test",
            metrics={"average_precision_mean": 0.5},
            artifact_path=rel,
            artifact_sha256=sha,
        ),
    )
    return name


def test_alias_moves_are_appended_and_rollback_restores_the_previous_champion(tmp_path: Path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        v1, v2 = _register(conn, tmp_path, "v1"), _register(conn, tmp_path, "v2")
        registry.move_alias(conn, registry.CHAMPION, v1, "bootstrap")
        registry.move_alias(conn, registry.CHAMPION, v2, "better")
        assert registry.current_alias(conn, registry.CHAMPION) == v2
        registry.move_alias(conn, registry.CHAMPION, registry.previous_champion(conn), "rollback")
        assert registry.current_alias(conn, registry.CHAMPION) == v1
        history = registry.alias_history(conn, registry.CHAMPION)
        assert [(e["from_version"], e["to_version"]) for e in history] == [(None, v1), (v1, v2), (v2, v1)]


def test_alias_cannot_point_at_an_unregistered_version(tmp_path: Path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        with pytest.raises(KeyError):
            registry.move_alias(conn, registry.CHAMPION, "never-trained", "oops")


def test_registered_version_keeps_hashes_and_metrics(tmp_path: Path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        _register(conn, tmp_path, "v1")
        mv = registry.get_version(conn, "v1")
    assert mv.metrics == {"average_precision_mean": 0.5}
    assert len(mv.artifact_sha256) == 64
    assert len(mv.params_hash) == 64
    assert mv.data_hash == "d" * 64
    assert mv.train_start == date(2018, 7, 25)
