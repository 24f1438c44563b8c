"""Registry and artifacts: a signed, chained, append-only ledger, and the one checked loader that refuses
bad artifacts, tampered rows, forged or replayed events."""

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
from fraud_assets.lib.model_io import (
    ArtifactIntegrityError,
    UntrustedTypeError,
    canonical_model_hash,
    load_model,
    model_bytes,
    save_model,
)
from fraud_assets.lib.model_selection import build_estimator
from fraud_assets.lib.signing import Signer
from fraud_assets_tests.conftest import TEST_REGISTRY_KEY

SIGNER = Signer(TEST_REGISTRY_KEY)


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


def _register(conn, store: Path, name: str, model=None) -> str:
    model = model if model is not None else _fitted()[0]
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
        SIGNER,
    )
    return name


def test_alias_moves_are_appended_and_rollback_restores_the_previous_champion(tmp_path: Path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        v1, v2 = _register(conn, tmp_path, "v1"), _register(conn, tmp_path, "v2")
        registry.move_alias(conn, registry.CHAMPION, v1, "bootstrap", signer=SIGNER)
        registry.move_alias(conn, registry.CHAMPION, v2, "better", signer=SIGNER)
        assert registry.current_alias(conn, registry.CHAMPION) == v2
        rollback = registry.previous_champion(conn)
        registry.move_alias(
            conn, registry.CHAMPION, rollback, "rollback", signer=SIGNER, event=registry.ROLLED_BACK
        )
        assert registry.current_alias(conn, registry.CHAMPION) == v1
        history = registry.alias_history(conn, registry.CHAMPION)
        assert [(e["from_version"], e["to_version"]) for e in history] == [(None, v1), (v1, v2), (v2, v1)]


def test_alias_cannot_point_at_an_unregistered_version(tmp_path: Path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        with pytest.raises(KeyError):
            registry.move_alias(conn, registry.CHAMPION, "never-trained", "oops", signer=SIGNER)


def test_registered_version_keeps_hashes_and_metrics(tmp_path: Path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        _register(conn, tmp_path, "v1")
        mv = registry.get_version(conn, "v1")
    assert mv.metrics == {"average_precision_mean": 0.5}
    assert len(mv.artifact_sha256) == 64
    assert len(mv.params_hash) == 64
    assert mv.data_hash == "d" * 64
    assert mv.train_start == date(2018, 7, 25)


def _chain(tmp_path: Path):
    """A registry with two versions and v2 approved as champion after v1: the ledger has 2 events."""
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    v1, v2 = _register(conn, tmp_path, "v1"), _register(conn, tmp_path, "v2")
    registry.move_alias(conn, registry.CHAMPION, v1, "bootstrap", signer=SIGNER)
    registry.move_alias(conn, registry.CHAMPION, v2, "approved by alice", signer=SIGNER, actor="alice")
    return conn


def test_every_registry_row_and_event_verifies_with_the_key(tmp_path: Path):
    with _chain(tmp_path) as conn:
        summary = registry.verify_registry(conn, SIGNER)
        model, mv = registry.load_version(conn, tmp_path, "v2", SIGNER)
    assert (summary["versions"], summary["events"]) == (2, 2)
    assert mv.signature
    assert model.predict_proba(np.zeros((1, 3))).shape == (1, 2)


def test_a_tampered_version_row_is_refused_at_load(tmp_path: Path):
    with _chain(tmp_path) as conn:
        conn.execute("UPDATE models.model_versions SET metrics_json = '{\"average_precision_mean\": 0.99}'")
        with pytest.raises(registry.RegistryIntegrityError, match="models.model_versions row 'v2' does not"):
            registry.load_version(conn, tmp_path, "v2", SIGNER)


def test_a_swapped_artifact_registered_with_its_own_but_unsigned_hash_is_refused(tmp_path: Path):
    # The attack the registry used to let through: replace the champion's file by a "never fraud" model
    # and write that file's SHA-256 into the registry row. The SHA-256 check passes; the signature does not.
    never_fraud, _ = _fitted()
    never_fraud[-1].coef_[:] = 0.0
    never_fraud[-1].intercept_[:] = -50.0
    with _chain(tmp_path) as conn:
        mv = registry.get_version(conn, "v2")
        rel, sha = save_model(never_fraud, tmp_path, "v2")
        assert rel == mv.artifact_path
        conn.execute("UPDATE models.model_versions SET artifact_sha256 = ? WHERE model_version = 'v2'", [sha])
        with pytest.raises(registry.RegistryIntegrityError, match="does not verify"):
            registry.load_version(conn, tmp_path, "v2", SIGNER)


def test_a_forged_version_and_champion_event_written_without_the_key_are_refused(tmp_path: Path):
    forger = Signer("someone-elses-key-0123456789abcdef")
    with _chain(tmp_path) as conn:
        rel, sha = save_model(_fitted()[0], tmp_path, "evil")
        registry.register_version(
            conn,
            registry.ModelVersion(
                model_version="evil", family="logistic_regression", params={}, feature_columns=["a"],
                train_start=None, train_end=None, delay_days=None, test_start=None, test_end=None, n_folds=1,
                data_hash="x", code_version="x", metrics={}, artifact_path=rel, artifact_sha256=sha,
            ),
            forger,
        )  # fmt: skip
        with pytest.raises(registry.RegistryIntegrityError, match="signed with key"):
            registry.load_version(conn, tmp_path, "evil", SIGNER)


def test_a_replayed_old_approval_is_refused(tmp_path: Path):
    with _chain(tmp_path) as conn:
        # Event 1 made v1 champion; copy it, valid signature and all, to the end of the ledger.
        conn.execute(
            "INSERT INTO models.model_events SELECT * REPLACE (3 AS event_id) FROM models.model_events "
            "WHERE event_id = 1"
        )
        assert registry.current_alias(conn, registry.CHAMPION) == "v1"  # what the replay aims at
        with pytest.raises(registry.RegistryIntegrityError, match="not chained to event 2"):
            registry.load_version(conn, tmp_path, "v1", SIGNER)


def test_a_replayed_approval_rechained_by_hand_does_not_verify(tmp_path: Path):
    with _chain(tmp_path) as conn:
        head = registry.events(conn)[-1]["signature"]
        conn.execute(
            "INSERT INTO models.model_events SELECT * REPLACE (3 AS event_id, ? AS prev_signature) "
            "FROM models.model_events WHERE event_id = 1",
            [head],
        )
        with pytest.raises(registry.RegistryIntegrityError, match="event 3 .* does not verify"):
            registry.verify_chain(conn, SIGNER)


def test_a_deleted_event_breaks_the_chain(tmp_path: Path):
    with _chain(tmp_path) as conn:
        registry.move_alias(
            conn, registry.CHAMPION, "v1", "rollback", signer=SIGNER, event=registry.ROLLED_BACK
        )
        conn.execute("DELETE FROM models.model_events WHERE event_id = 2")
        with pytest.raises(registry.RegistryIntegrityError, match="removed or inserted"):
            registry.verify_chain(conn, SIGNER)


def test_no_event_is_appended_to_a_chain_that_does_not_verify(tmp_path: Path):
    with _chain(tmp_path) as conn:
        conn.execute("UPDATE models.model_events SET reason = 'nothing to see' WHERE event_id = 1")
        with pytest.raises(registry.RegistryIntegrityError):
            registry.move_alias(conn, registry.CHALLENGER, "v1", "after the tampering", signer=SIGNER)
        assert len(registry.events(conn)) == 2


def test_a_disabled_version_is_never_loaded(tmp_path: Path):
    with _chain(tmp_path) as conn:
        registry.append_event(
            conn, SIGNER, registry.DISABLED, model_version="v1", actor="oncall", reason="INC-1: bad scores"
        )
        with pytest.raises(registry.DisabledModelError):
            registry.load_version(conn, tmp_path, "v1", SIGNER)
        assert registry.previous_champion(conn) is None  # a disabled version is no rollback target


def test_refits_with_the_same_seed_differ_as_files_but_share_the_canonical_model_hash():
    rng = np.random.default_rng(1)
    X = rng.random((400, 3))
    y = (X[:, 0] > 0.8).astype(int)
    params = {"n_estimators": 5, "max_depth": 4, "min_samples_leaf": 2, "max_features": 0.5}
    first, second = (
        model_bytes(build_estimator("random_forest", params, seed=0).fit(X, y)) for _ in range(2)
    )
    other_seed = model_bytes(build_estimator("random_forest", params, seed=1).fit(X, y))
    assert hashlib.sha256(first).digest() != hashlib.sha256(second).digest()  # array names are memory ids
    assert canonical_model_hash(first) == canonical_model_hash(second)
    assert canonical_model_hash(first) != canonical_model_hash(other_seed)
