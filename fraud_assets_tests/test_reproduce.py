"""`make reproduce`: a registered model is rebuilt from its recorded data, code, parameters and seed, and
the report says whether it matches and, when the warehouse moved on, exactly why."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from fraud_assets.cli.reproduce import compare_metrics, main, reproduce
from fraud_assets.defs.models.snapshots import current_digest, training_set_hash
from fraud_assets.lib import registry
from fraud_assets.lib.signing import Signer
from fraud_assets.lib.training_provenance import SOURCE_DIGEST, same_code, source_digest
from fraud_assets_tests.conftest import TEST_REGISTRY_KEY
from fraud_assets_tests.models_world import connect, copy_world, shared_trained_world

SIGNER = Signer(TEST_REGISTRY_KEY)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_trained_world(tmp_path_factory)


@pytest.fixture
def world(trained: Path, tmp_path: Path) -> tuple[Path, str]:
    data_dir = copy_world(trained, tmp_path / "data")
    with connect(data_dir) as conn:
        return data_dir, registry.current_alias(conn, registry.CHAMPION)


def _labels_as_of(data_dir: Path) -> str:
    with connect(data_dir) as conn:
        return str(conn.execute("SELECT max(labels_as_of) FROM models.data_snapshots").fetchone()[0])


def test_the_champion_is_rebuilt_from_the_warehouse_and_matches_its_canonical_hash_and_metrics(world):
    data_dir, champion = world
    report = reproduce(champion, data_dir, SIGNER)
    assert report["data"]["rebuilt_matches"]
    assert report["refit_on"] == "rebuilt training set"
    assert report["model"]["canonical_hash_match"]
    assert report["model"]["fold0_max_abs_prediction_difference"] == 0.0
    assert report["metrics"]["match"]
    assert report["metrics"]["compared"] > 0
    assert not report["model"]["artifact_sha256_match"]  # skops files of identical fits differ: explained
    assert report["reproduced"]


def test_labels_reported_after_training_are_excluded_by_construction(world):
    data_dir, champion = world
    with connect(data_dir) as conn:
        # Every test-window transaction turns out to be fraud, reported a day after training: no effect.
        conn.execute(
            "INSERT INTO cleaned.labels SELECT f.transaction_id, f.card_token, f.tx_datetime, "
            "TIMESTAMP '2030-01-01', 'late', 'x' FROM features.transaction_features f "
            "WHERE f.transaction_id NOT IN (SELECT transaction_id FROM cleaned.labels)"
        )
    report = reproduce(champion, data_dir, SIGNER)
    assert report["data"]["rebuilt_matches"]
    assert report["reproduced"]


def test_a_label_that_arrived_late_with_an_earlier_report_time_is_named_and_the_snapshot_is_used(world):
    data_dir, champion = world
    as_of = _labels_as_of(data_dir)
    with connect(data_dir) as conn:
        conn.execute(
            "INSERT INTO cleaned.labels SELECT transaction_id, card_token, tx_datetime, "
            "CAST(? AS TIMESTAMP) - INTERVAL 1 HOUR, 'late-file', 'x' FROM models.training_set "
            "WHERE split = 'test' AND label = 0 LIMIT 5",
            [as_of],
        )
    report = reproduce(champion, data_dir, SIGNER)
    assert not report["data"]["rebuilt_matches"]
    assert any("a chargeback file arrived after training" in w for w in report["data"]["why"])
    assert report["data"]["differences"]["label_differences"] > 0
    assert report["refit_on"] == "archived snapshot"
    assert report["reproduced"]


def test_feature_values_rebuilt_since_training_are_named(world):
    data_dir, champion = world
    with connect(data_dir) as conn:
        conn.execute(
            "UPDATE features.transaction_features SET tx_amount = tx_amount + 1 "
            "WHERE business_date = (SELECT min(business_date) FROM models.training_set WHERE fold = 0)"
        )
    report = reproduce(champion, data_dir, SIGNER)
    assert "tx_amount" in report["data"]["differences"]["feature_value_differences"]
    assert any("feature values changed" in w for w in report["data"]["why"])
    assert report["reproduced"]


def test_a_modified_snapshot_file_is_refused(world, capsys):
    data_dir, champion = world
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as conn:
        path = conn.execute("SELECT parquet_path FROM models.data_snapshots").fetchone()[0]
    with open(data_dir / "models" / path, "ab") as f:
        f.write(b"\0")
    assert main([champion, "--data-dir", str(data_dir)]) == 2
    assert "modified after training" in capsys.readouterr().err


def test_the_command_prints_the_verdict_and_exits_zero_when_reproduced(world, capsys, tmp_path):
    data_dir, champion = world
    assert main([champion, "--data-dir", str(data_dir), "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "canonical model hash: MATCH" in out
    assert "REPRODUCED: yes" in out
    assert (tmp_path / "r.json").stat().st_size > 0


def _comment(conn) -> str | None:
    return conn.execute(
        "SELECT comment FROM duckdb_tables() WHERE schema_name = 'models' AND table_name = 'training_set'"
    ).fetchone()[0]


def test_the_training_set_names_its_snapshot_until_it_is_rewritten(world):
    """Candidates find their snapshot by the hash the table carries (no rehash of 100M rows); a rewrite of
    the table drops it, and the hash is then computed from the content again."""
    data_dir, _ = world
    with connect(data_dir) as conn:
        archived = {r[0] for r in conn.execute("SELECT data_hash FROM models.data_snapshots").fetchall()}
        assert _comment(conn) is not None
        assert current_digest(conn) == training_set_hash(conn)
        assert current_digest(conn) in archived
        conn.execute(
            "CREATE OR REPLACE TABLE models.training_set AS SELECT * FROM models.training_set WHERE fold = 0"
        )
        assert _comment(conn) is None
        assert current_digest(conn) == training_set_hash(conn)
        assert current_digest(conn) not in archived


def test_a_fold_missing_from_the_refit_or_a_metric_nan_on_one_side_is_a_mismatch():
    fold = {"fold": 0, "auc": 0.9, "average_precision": 0.5, "card_precision_at_100": 0.1}
    fold |= {"n_transactions": 100.0, "n_fraud": 3.0}
    recorded = {f"fold0_{k}": v for k, v in fold.items() if k != "fold"} | {"fold0_fraud_rate": 0.03}
    assert compare_metrics(recorded, [fold])["match"]
    assert not compare_metrics({**recorded, "fold1_auc": 0.8}, [fold])["match"]
    assert not compare_metrics({**recorded, "fold0_auc": float("nan")}, [fold])["match"]
    assert not compare_metrics(recorded, [fold, {**fold, "fold": 1}])["match"]


def test_a_data_directory_without_a_warehouse_is_refused_in_one_line(tmp_path, capsys):
    """`make reproduce MODEL=...` on the wrong FRAUD_DATA_DIR, or before anything was trained."""
    assert main(["some-version", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"refused: no warehouse.duckdb in {tmp_path.resolve()} (FRAUD_DATA_DIR "
        "or --data-dir): no model was registered there"
    ]
    assert not (tmp_path / "warehouse.duckdb").exists()


def test_a_ledger_cut_back_at_its_end_is_refused_against_the_recorded_head(world):
    """What is left of a ledger cut back at its end verifies on its own; the head Dagster recorded (as
    scoring checks it) must refuse it here too, not report the model as reproducible."""
    data_dir, champion = world
    with connect(data_dir) as conn:
        head = registry.verify_registry(conn, SIGNER)
        conn.execute("DELETE FROM models.model_events WHERE event_id = ?", [head["head_event_id"]])
    anchor = registry.Anchor(head["head_event_id"], head["head_signature"])
    with pytest.raises(registry.RegistryIntegrityError):
        reproduce(champion, data_dir, SIGNER, anchor)


def test_the_source_digest_decides_whether_the_code_is_the_same(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "a.py").write_text("x = 1\n")
    (package / "sub" / "q.sql").write_text("SELECT 1\n")
    (package / "README.md").write_text("docs\n")
    before = source_digest(package)
    (package / "README.md").write_text("other docs\n")
    assert source_digest(package) == before  # not source
    (package / "sub" / "q.sql").write_text("SELECT 2\n")
    assert source_digest(package) != before
    (package / "sub" / "q.sql").write_text("SELECT 1\n")
    (package / "sub" / "q.sql").rename(package / "q.sql")
    assert source_digest(package) != before  # a file moved is other code

    recorded = {"code_version": "v1", "revision": "aaa", SOURCE_DIGEST: "d1", "numpy": "2.0"}
    assert same_code(recorded, {**recorded, "revision": "bbb"})  # a docs-only commit
    assert not same_code(recorded, {**recorded, SOURCE_DIGEST: "d2"})
    assert not same_code(recorded, {**recorded, "numpy": "2.1"})
    old = {k: v for k, v in recorded.items() if k != SOURCE_DIGEST}  # registered before the digest
    assert same_code(old, dict(old))
    assert not same_code(old, {**old, "revision": "bbb"})


def test_the_report_names_the_code_same_after_a_commit_that_changed_no_source(world, monkeypatch):
    from fraud_assets.cli import reproduce as module

    data_dir, champion = world
    monkeypatch.setattr(module, "code_revision", lambda: "f" * 40)  # another commit, same source
    report = reproduce(champion, data_dir, SIGNER)
    assert report["code"]["same"] is True
    assert report["code"]["recorded"][SOURCE_DIGEST] == source_digest()
