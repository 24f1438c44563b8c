"""The models layer: point-in-time training set, prequential candidates, the champion gate, rollback.
(Approval, four eyes and the evidence pack: test_governance.py.)"""

from __future__ import annotations

from datetime import date, timedelta
from math import nan
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from fraud_assets.defs.features.compute import PRODUCTION_COLUMNS
from fraud_assets.defs.models.candidates import (
    candidate_assets,
    read_training_set,
    select_family,
    train_family,
)
from fraud_assets.defs.models.champion import champion as champion_asset
from fraud_assets.defs.models.common import TRAINING_SET_META
from fraud_assets.defs.models.evaluation import evaluation as evaluation_asset
from fraud_assets.defs.models.evaluation import same_window_refusal
from fraud_assets.defs.models.snapshots import TrainingSet
from fraud_assets.defs.models.training_set import (
    TrainingSetConfig,
    build_training_set,
    genuine_share_used,
    outside_warmup,
    resolve_folds,
)
from fraud_assets.defs.models.training_set import training_set as training_set_asset
from fraud_assets.lib import registry
from fraud_assets.lib.model_selection import (
    CORES_ENV,
    FAMILY_DEFAULTS,
    SEARCH_SPACE,
    Fold,
    best_point,
    build_estimator,
    gate_decision,
    prequential_folds,
    search_points,
)
from fraud_assets_tests.conftest import TEST_REGISTRY_KEY
from fraud_assets_tests.models_world import (
    connect,
    copy_world,
    decide,
    failure_message,
    layer_defs,
    make_world,
    run_config,
    run_job,
    schema_mismatches,
    shared_trained_world,
    write_world,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_trained_world(tmp_path_factory)


# training_set columns that are not features (the candidates' own list)
TRAINING_SET_KEYS = set(TRAINING_SET_META)


@pytest.fixture
def world_db(tmp_path: Path) -> Path:
    db = tmp_path / "w.duckdb"
    write_world(db, *make_world())
    return db


def test_fold_metrics_do_not_depend_on_how_many_folds_are_fitted_at_once(
    trained: Path, tmp_path: Path, monkeypatch
):
    with connect(trained) as conn:
        ts = read_training_set(conn, tmp_path / "training_set.parquet")
    available = [c for c in ts.columns if c not in TRAINING_SET_KEYS]
    params = {**FAMILY_DEFAULTS["hist_gradient_boosting"], "max_iter": 20}
    runs = {}
    for cores in ("1", "4"):
        monkeypatch.setenv(CORES_ENV, cores)
        runs[cores] = train_family("hist_gradient_boosting", params, ts, available)[2]
    assert len(runs["1"]) > 1
    assert runs["1"] == runs["4"]


def test_a_forest_bootstrap_share_counts_rows_not_weights():
    # scikit-learn reads a float max_samples as a share of the sample weights' total: with genuine rows
    # weighted 1 / genuine_share it drew as many rows as the sample holds, at 5x the fit time.
    model = build_estimator(
        "random_forest", {**FAMILY_DEFAULTS["random_forest"], "max_samples": 0.2}, n_rows=1000
    )
    assert model.named_steps["model"].max_samples == 200
    full = build_estimator("random_forest", FAMILY_DEFAULTS["random_forest"], n_rows=1000)
    assert full.named_steps["model"].max_samples is None


def test_selection_keeps_the_best_point_on_the_older_folds_and_records_every_point(
    trained: Path, tmp_path: Path
):
    with connect(trained) as conn:
        ts = read_training_set(conn, tmp_path / "training_set.parquet")
    available = [c for c in ts.columns if c not in TRAINING_SET_KEYS]
    points = search_points("logistic_regression", FAMILY_DEFAULTS["logistic_regression"])
    assert len(points) == len(SEARCH_SPACE["logistic_regression"]) > 1
    chosen, _, _, fold_metrics, _, rows = select_family("logistic_regression", points, ts, available)
    assert [r["config"] for r in rows] == list(range(len(points)))
    best = best_point(
        [
            {
                "average_precision_mean": r["selection_average_precision"],
                "card_precision_at_100_mean": r["selection_card_precision_at_100"],
            }
            for r in rows
        ]
    )
    assert [r["chosen"] for r in rows] == [float(i == best) for i in range(len(rows))]
    assert chosen == points[best]
    assert fold_metrics[0]["fold"] == 0.0  # fold 0: the held-out estimate of the chosen point
    assert len(search_points("random_forest", {}, wide=True)) > len(search_points("random_forest", {}))


def test_prequential_folds_shift_back_by_step_with_a_delay_gap():
    folds = prequential_folds(date(2018, 7, 25), 7, 7, 7, n_folds=3, step_days=7)
    f0 = folds[0]
    assert (f0.train_start, f0.train_end, f0.test_start, f0.test_end) == (
        date(2018, 7, 25),
        date(2018, 7, 31),
        date(2018, 8, 8),
        date(2018, 8, 14),
    )
    assert [f.train_start for f in folds] == [date(2018, 7, 25) - timedelta(days=7 * i) for i in range(3)]


def test_training_labels_are_only_those_reported_by_the_cutoff(world_db: Path):
    with duckdb.connect(str(world_db)) as conn:
        folds, _, _, _ = build_training_set(
            conn, TrainingSetConfig(train_start="2018-07-25", train_days=7, n_folds=1, genuine_share=1.0)
        )
        wrong = conn.execute(
            """
            SELECT count(*) FROM models.training_set t
            LEFT JOIN (SELECT transaction_id, min(reported_at) r FROM cleaned.labels GROUP BY 1) l
              USING (transaction_id)
            WHERE t.split = 'train'
              AND t.label <> coalesce(l.r <= TIMESTAMP '2018-08-08 00:00:00', false)::INT
            """
        ).fetchone()[0]
        late = conn.execute(
            "SELECT count(*) FROM cleaned.labels l JOIN models.training_set t USING (transaction_id) "
            "WHERE t.split = 'train' AND l.reported_at > TIMESTAMP '2018-08-08 00:00:00'"
        ).fetchone()[0]
    assert folds[0].cutoff == date(2018, 8, 8)
    assert wrong == 0
    assert late > 0, "the world should have frauds reported after the cut-off (labelled 0 in training)"


def test_training_rows_keep_every_fraud_and_the_same_share_of_genuine_rows_in_every_run(world_db: Path):
    def rows(share: float, split: str) -> pd.DataFrame:
        config = TrainingSetConfig(train_start="2018-07-25", train_days=7, n_folds=2, genuine_share=share)
        build_training_set(conn, config)
        return conn.execute(
            "SELECT fold, transaction_id, label FROM models.training_set WHERE split = ? ORDER BY ALL",
            [split],
        ).df()

    with duckdb.connect(str(world_db)) as conn:
        every, sampled, again = rows(1.0, "train"), rows(0.2, "train"), rows(0.2, "train")
        pd.testing.assert_frame_equal(rows(0.2, "test"), rows(1.0, "test"))  # test rows are never sampled
    assert sampled["label"].sum() == every["label"].sum() > 0
    genuine = (sampled["label"] == 0).sum() / (every["label"] == 0).sum()
    assert 0.17 < genuine < 0.23
    pd.testing.assert_frame_equal(sampled, again)


def test_a_training_window_keeps_at_most_max_genuine_rows_with_weights_that_follow(world_db: Path):
    # A network's daily volume must not make training cost grow with it: the genuine share drops to fit.
    with duckdb.connect(str(world_db)) as conn:
        config = TrainingSetConfig(train_start="2018-07-25", train_days=7, n_folds=2, max_genuine_rows=200)
        build_training_set(conn, config)
        train = conn.execute("SELECT fold, label, weight FROM models.training_set WHERE split = 'train'").df()
        window = conn.execute(
            "SELECT count(*) FROM features.transaction_features "
            "WHERE business_date BETWEEN '2018-07-25' AND '2018-07-31'"
        ).fetchone()[0]
        share = genuine_share_used(conn, config, resolve_folds(config, date(2018, 8, 14))[0])
        uncapped = TrainingSetConfig(train_start="2018-07-25", train_days=7, n_folds=1, max_genuine_rows=0)
        assert genuine_share_used(conn, uncapped, resolve_folds(uncapped, date(2018, 8, 14))[0]) == 0.2
    assert window * 0.2 > 200, "the test world's window should exceed the cap"
    assert share == pytest.approx(200 / window)
    for _, fold in train.groupby("fold"):
        genuine = fold[fold["label"] == 0]
        assert 150 < len(genuine) < 250
        assert genuine["weight"].to_numpy() == pytest.approx(1_000_000 / round(share * 1_000_000))
        assert (fold.loc[fold["label"] == 1, "weight"] == 1.0).all()


def test_test_days_exclude_cards_already_known_to_be_compromised(world_db: Path):
    with duckdb.connect(str(world_db)) as conn:
        build_training_set(conn, TrainingSetConfig(train_start="2018-07-25", train_days=7, n_folds=1))
        known = conn.execute(
            "SELECT count(*) FROM models.training_set t WHERE split = 'test' AND EXISTS (SELECT 1 FROM "
            "cleaned.labels l WHERE l.card_token = t.card_token "
            "AND l.reported_at <= CAST(t.business_date AS TIMESTAMP))"
        ).fetchone()[0]
        all_test_days = conn.execute(
            "SELECT count(*) FROM features.transaction_features "
            "WHERE business_date BETWEEN '2018-08-08' AND '2018-08-14'"
        ).fetchone()[0]
        kept = conn.execute("SELECT count(*) FROM models.training_set WHERE split = 'test'").fetchone()[0]
    assert known == 0
    assert 0 < kept < all_test_days


def test_handbook_rule_keeps_cards_whose_fraud_is_inside_the_delay_window(world_db: Path):
    with duckdb.connect(str(world_db)) as conn:
        build_training_set(conn, TrainingSetConfig(train_start="2018-07-25", train_days=7, n_folds=1))
        reported = conn.execute("SELECT count(*) FROM models.training_set WHERE split = 'test'").fetchone()[0]
        build_training_set(
            conn,
            TrainingSetConfig(
                train_start="2018-07-25", train_days=7, n_folds=1, known_compromised="handbook"
            ),
        )
        handbook = conn.execute("SELECT count(*) FROM models.training_set WHERE split = 'test'").fetchone()[0]
    assert handbook > reported


def test_training_job_bootstraps_a_champion_with_hashes_and_a_model_card(trained: Path):
    with connect(trained) as conn:
        champion = registry.current_alias(conn, registry.CHAMPION)
        mv = registry.get_version(conn, champion)
        families = {r[0] for r in conn.execute("SELECT family FROM models.model_versions").fetchall()}
        eval_rows = conn.execute("SELECT count(*) FROM models.evaluation WHERE scope = 'mean'").fetchone()[0]
    assert families == {"logistic_regression", "hist_gradient_boosting", "random_forest"}
    assert mv.metrics["average_precision_mean"] > 0
    assert "card_precision_at_100_std" in mv.metrics
    assert len(mv.data_hash) == 64
    assert mv.code_version.startswith("models-v1")
    assert eval_rows >= 9  # 3 families x 3 metrics
    card = (trained.parent / "cards" / f"{champion}.md").read_text()
    assert "## Intended use" in card
    assert f"{champion}_pr.png" in card
    assert (trained.parent / "cards" / f"{champion}_pr.png").stat().st_size > 1000


def test_model_card_shows_the_expected_cost_curve(trained: Path):
    with connect(trained) as conn:
        champion = registry.current_alias(conn, registry.CHAMPION)
    cards = trained.parent / "cards"
    assert f"{champion}_cost.png" in (cards / f"{champion}.md").read_text()
    assert (cards / f"{champion}_cost.png").stat().st_size > 1000
    assert "data:image/png;base64," in (trained / "models" / "cards" / f"{champion}.embedded.md").read_text()


def test_declared_column_schemas_match_the_models_tables(trained: Path):
    with connect(trained) as conn:
        # This synthetic world has none of the production features (test_catalog_column_types.py checks that
        # the training set declares every feature column the feature layer declares); its one stand-in
        # (`prod_amount_ratio`) is carried undeclared.
        world = {r[0] for r in conn.execute("DESCRIBE features.transaction_features").fetchall()}
        not_in_world = {f"models.training_set.{c}" for c in PRODUCTION_COLUMNS if c not in world}
        problems = [
            *[
                p
                for p in schema_mismatches(conn, training_set_asset, "models.training_set", exact=False)
                if p.split(":")[0] not in not_in_world
            ],
            *[p for a in candidate_assets for p in schema_mismatches(conn, a, "models.model_versions")],
            *schema_mismatches(conn, evaluation_asset, "models.evaluation"),
            *schema_mismatches(conn, champion_asset, "models.model_events"),
        ]
    assert not problems, problems


def test_gate_keeps_a_worse_challenger_out(trained: Path, tmp_path: Path):
    data_dir = copy_world(trained, tmp_path / "data")
    with connect(data_dir) as conn:
        before = registry.current_alias(conn, registry.CHAMPION)
        # Labels scrambled onto random transactions: every new candidate is worse than the champion.
        conn.execute(
            "CREATE OR REPLACE TABLE cleaned.labels AS SELECT f.transaction_id, f.card_token, f.tx_datetime, "
            "f.tx_datetime + INTERVAL 1 DAY AS reported_at, 'x' AS chargeback_id, 'x' AS reason_code "
            "FROM features.transaction_features f USING SAMPLE 2% (bernoulli, 7)"
        )
    result = (
        layer_defs(data_dir)
        .resolve_job_def("training_job")
        .execute_in_process(
            run_config=run_config(tmp_path / "cards"),
            instance=dg.DagsterInstance.ephemeral(),
            raise_on_error=False,
        )
    )
    (gate,) = result.get_asset_check_evaluations()
    assert not gate.passed
    assert "stays champion" in gate.description
    assert "does not beat champion" in gate.description
    assert dg.AssetKey(["models", "champion"]) not in {
        e.materialization.asset_key for e in result.get_asset_materialization_events()
    }
    with connect(data_dir) as conn:
        assert registry.current_alias(conn, registry.CHAMPION) == before
        assert registry.current_alias(conn, registry.CHALLENGER) != before


def test_candidates_trained_on_another_training_set_are_not_evaluated(trained: Path, tmp_path: Path):
    """An evaluation materialised alone after the training set changed must not re-score older versions
    on a test window that may hold their own training rows."""
    data_dir = copy_world(trained, tmp_path / "data")
    with connect(data_dir) as conn:
        conn.execute("COMMENT ON TABLE models.training_set IS 'data_hash:" + "0" * 64 + "'")
    result = run_job(
        data_dir,
        "training_job",
        run_config(tmp_path / "cards"),
        assets=[dg.AssetKey(["models", "evaluation"])],
    )
    assert not result.success
    assert "no candidate trained on the current models/training_set" in failure_message(result)


def test_gate_promotes_only_with_the_ap_margin_and_no_worse_card_precision():
    champ = {"average_precision_mean": 0.60, "card_precision_at_100_mean": 0.30, "auc_mean": 0.87}

    def chall(ap, cp):
        return {"average_precision_mean": ap, "card_precision_at_100_mean": cp, "auc_mean": 0.9}

    assert gate_decision("new", chall(0.62, 0.30), "old", champ).promote
    assert not gate_decision("new", chall(0.601, 0.31), "old", champ).promote  # inside the margin
    lower_cp = gate_decision("new", chall(0.70, 0.29), "old", champ)
    assert not lower_cp.promote
    assert "CP@100" in lower_cp.reason


def test_gate_also_compares_both_models_on_the_same_test_window():
    """Prequential folds of a champion trained months ago cover other weeks: a challenger that wins
    there but loses on the same transactions (both re-scored on this fold-0 window) is not put up."""
    champ = {"average_precision_mean": 0.60, "card_precision_at_100_mean": 0.30, "auc_mean": 0.87}
    chall = {"average_precision_mean": 0.70, "card_precision_at_100_mean": 0.35, "auc_mean": 0.9}

    def window(ap, cp):
        return {"average_precision": ap, "card_precision_at_100": cp, "auc": 0.9}

    losing = gate_decision("new", chall, "old", champ, same_window=(window(0.61, 0.30), window(0.66, 0.30)))
    assert not losing.promote
    assert "same-window AP 0.6100 does not beat champion 0.6600" in losing.reason
    fewer_cards = gate_decision("new", chall, "old", champ, same_window=(window(0.7, 0.28), window(0.6, 0.3)))
    assert not fewer_cards.promote
    assert "same-window CP@100" in fewer_cards.reason
    winning = gate_decision("new", chall, "old", champ, same_window=(window(0.7, 0.3), window(0.6, 0.3)))
    assert winning.promote
    assert "same-window AP 0.7000 >= 0.6000" in winning.reason
    # A window without fraud defines no AP: the prequential comparison decides, and says so.
    undefined = gate_decision("new", chall, "old", champ, same_window=(window(nan, 0), window(nan, 0)))
    assert undefined.promote
    assert "same-window figures undefined" in undefined.reason
    assert "not re-scored" in gate_decision("new", chall, "old", champ).reason


def test_the_champion_is_re_scored_only_where_it_did_not_train(tmp_path_factory):
    with connect(shared_trained_world(tmp_path_factory)) as conn:
        champ = registry.get_version(conn, registry.current_alias(conn, registry.CHAMPION))
    after = pd.Timestamp(champ.train_end) + pd.Timedelta(days=1)
    test = pd.DataFrame({c: [0.0] for c in champ.feature_columns}).assign(business_date=[after])
    assert same_window_refusal(champ, test) is None
    assert "trained through" in same_window_refusal(champ, test.assign(business_date=[champ.train_end]))
    gone = champ.feature_columns[0]
    assert "not in the current training set" in same_window_refusal(champ, test.drop(columns=[gone]))


@pytest.mark.parametrize("unmeasured", ["challenger_ap", "challenger_cp", "champion_ap", "champion_cp"])
def test_gate_never_promotes_on_a_figure_that_could_not_be_measured(unmeasured):
    # NaN (no test window with both classes) compares False with everything: it must not read as a met margin.
    champ = {"average_precision_mean": 0.60, "card_precision_at_100_mean": 0.30, "auc_mean": 0.87}
    chall = {"average_precision_mean": 0.70, "card_precision_at_100_mean": 0.35, "auc_mean": 0.9}
    who, metric = unmeasured.split("_")
    name = "average_precision_mean" if metric == "ap" else "card_precision_at_100_mean"
    (chall if who == "challenger" else champ)[name] = nan
    decision = gate_decision("new", chall, "old", champ)
    assert not decision.promote
    assert "cannot compare" in decision.reason


def test_training_windows_start_after_the_features_warm_up_when_history_allows():
    """The first 37 days of history have short 30-day windows and, for 7 days, no delayed terminal risk:
    a model trained there learns features that look nothing like the days it scores."""
    first = date(2018, 4, 1)
    full = first + timedelta(days=37)

    def fold(start, days):
        return Fold(0, start, start + timedelta(days=days - 1), start + timedelta(days=days + 7), start)

    straddling = fold(full - timedelta(days=20), 56)
    assert outside_warmup(straddling, first).train_start == full
    assert outside_warmup(straddling, first).train_end == straddling.train_end
    after = fold(full, 56)
    assert outside_warmup(after, first) == after
    # A bootstrap on a short history keeps its window: fewer than 7 full days would remain.
    short = fold(first, full.toordinal() - first.toordinal() + 6)
    assert outside_warmup(short, first) == short


def test_first_champion_needs_absolute_sanity():
    weak = {
        "average_precision_mean": 0.02,
        "card_precision_at_100_mean": 0.01,
        "auc_mean": 0.55,
        "fraud_rate_mean": 0.01,
    }
    d = gate_decision("v1", weak, None, None)
    assert not d.promote
    assert "sanity" in d.reason


def test_first_champion_auc_floor_can_be_relaxed_for_tiny_worlds_but_not_the_ap_lift(monkeypatch):
    small_world = {
        "average_precision_mean": 0.29,
        "card_precision_at_100_mean": 0.03,
        "auc_mean": 0.68,
        "fraud_rate_mean": 0.026,
    }
    assert not gate_decision("v1", small_world, None, None).promote
    monkeypatch.setenv("FRAUD_BOOTSTRAP_MIN_AUC", "0.6")
    assert gate_decision("v1", small_world, None, None).promote
    no_lift = {**small_world, "average_precision_mean": 0.05}
    assert not gate_decision("v1", no_lift, None, None).promote


def _promote_other(data_dir: Path) -> tuple[str, str]:
    """Make another registered version champion (a signed approval event); returns (first, other)."""
    from fraud_assets.lib.signing import Signer

    with connect(data_dir) as conn:
        first = registry.current_alias(conn, registry.CHAMPION)
        other = next(v.model_version for v in registry.latest_versions(conn) if v.model_version != first)
        registry.move_alias(
            conn, registry.CHAMPION, other, "promoted for the test", signer=Signer(TEST_REGISTRY_KEY)
        )
    return first, other


def test_rollback_decision_restores_the_previous_champion(trained: Path, tmp_path: Path):
    data_dir = copy_world(trained, tmp_path / "data")
    first, other = _promote_other(data_dir)
    assert decide(data_dir, "rollback", approver="oncall", reason="bad alerts").success
    with connect(data_dir) as conn:
        assert registry.current_alias(conn, registry.CHAMPION) == first
        last = registry.alias_history(conn, registry.CHAMPION)[-1]
    assert (last["event"], last["from_version"], last["to_version"]) == ("rolled_back", other, first)
    assert (last["actor"], last["reason"]) == ("oncall", "bad alerts")


def test_champion_with_a_tampered_artifact_cannot_be_rolled_back_onto(trained: Path, tmp_path: Path):
    data_dir = copy_world(trained, tmp_path / "data")
    first, other = _promote_other(data_dir)
    with connect(data_dir) as conn:
        artifact = registry.get_version(conn, first).artifact_path
    (data_dir / "models" / artifact).write_bytes(b"not the model")
    result = decide(data_dir, "rollback", approver="oncall", version=first, reason="back")
    assert not result.success
    assert "does not match the registry" in failure_message(result)
    with connect(data_dir) as conn:
        assert registry.current_alias(conn, registry.CHAMPION) == other


def test_disabling_the_champion_never_hands_over_to_a_former_one_that_cannot_load(trained: Path, tmp_path):
    """The switch still acts at once; with no loadable former champion, nobody holds the alias."""
    data_dir = copy_world(trained, tmp_path / "data")
    first, other = _promote_other(data_dir)
    with connect(data_dir) as conn:
        artifact = registry.get_version(conn, first).artifact_path
    (data_dir / "models" / artifact).write_bytes(b"not the model")
    assert decide(data_dir, "disable", approver="oncall", version=other, reason="INC-11").success
    with connect(data_dir) as conn:
        assert registry.version_status(conn, other) == "disabled"
        assert registry.current_alias(conn, registry.CHAMPION) is None


def test_rollback_to_a_version_that_was_never_champion_is_refused(trained: Path, tmp_path: Path):
    data_dir = copy_world(trained, tmp_path / "data")
    with connect(data_dir) as conn:
        first = registry.current_alias(conn, registry.CHAMPION)
        never = next(v.model_version for v in registry.latest_versions(conn) if v.model_version != first)
    result = decide(data_dir, "rollback", approver="oncall", version=never, reason="sneak it in")
    assert not result.success
    assert "not a former champion" in failure_message(result)


def test_saved_artifacts_reproduce_their_registered_fold0_metrics(trained: Path):
    with connect(trained) as conn:
        pairs = conn.execute(
            """
            SELECT r.model_version, r.metric, r.value, f.value
            FROM models.evaluation r JOIN models.evaluation f
              ON f.model_version = r.model_version AND f.metric = r.metric AND f.scope = 'fold' AND f.fold = 0
            WHERE r.scope = 'reloaded_artifact' AND r.metric IN ('auc', 'average_precision')
            """
        ).fetchall()
    assert len(pairs) == 6  # 3 families x 2 metrics
    for version, metric, reloaded, registered in pairs:
        assert reloaded == pytest.approx(registered, abs=1e-9), (version, metric)


def test_model_cards_are_published_only_where_asked(monkeypatch, tmp_path):
    from fraud_assets.defs.models.model_card import CARDS_DIR_ENV, publish_cards_dir

    monkeypatch.delenv(CARDS_DIR_ENV, raising=False)
    assert publish_cards_dir() is None  # a platform run from a checkout never writes into docs/
    monkeypatch.setenv(CARDS_DIR_ENV, str(tmp_path / "published"))
    assert publish_cards_dir() == tmp_path / "published"


def test_the_training_set_reader_is_capped_like_the_warehouse_and_closes(tmp_path: Path, monkeypatch):
    """Its private DuckDB would otherwise take DuckDB's default of 80 % of RAM beside a fit, and spill into
    whatever folder the process runs in; it spills beside the archive (the data's volume) instead, in a
    folder of its own that closing removes."""
    store = tmp_path / "store"
    store.mkdir()
    path = store / "training_set.parquet"
    duckdb.sql("SELECT 0 AS fold, 'train' AS split, 'tx1' AS transaction_id").write_parquet(str(path))
    monkeypatch.setenv("FRAUD_DUCKDB_MEMORY_LIMIT", "1GB")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    with TrainingSet(path) as ts, TrainingSet(path) as other:
        limit, spill = ts._db.execute(
            "SELECT current_setting('memory_limit'), current_setting('temp_directory')"
        ).fetchone()
        assert ts.rows == {(0, "train"): 1}
        assert Path(spill).parent == store
        assert Path(spill).is_dir()
        assert other._db.execute("SELECT current_setting('temp_directory')").fetchone()[0] != spill
    assert limit == "953.6 MiB"  # 1 GB as DuckDB shows it
    assert sorted(p.name for p in store.iterdir()) == ["training_set.parquet"]  # spill folders removed
    with pytest.raises(duckdb.ConnectionException):
        ts._db.execute("SELECT 1")


def test_a_training_set_that_cannot_be_read_leaves_no_spill_folder(tmp_path: Path):
    store = tmp_path / "store"
    store.mkdir()
    path = store / "training_set.parquet"
    path.write_bytes(b"not parquet")
    with pytest.raises(duckdb.Error):
        TrainingSet(path)
    assert [p.name for p in store.iterdir()] == ["training_set.parquet"]


def test_the_days_in_warm_up_are_counted_only_where_the_history_has_data(tmp_path: Path):
    """The bootstrap's 56-day training window starts before this 45-day history: of its days, only the
    31 that hold data (all inside the 37-day warm-up) are counted, not the window's nominal length."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    write_world(data_dir / "warehouse.duckdb", *make_world())
    result = run_job(data_dir, "training_job", assets=[dg.AssetKey(["models", "training_set"])])
    assert result.success
    md = result.asset_materializations_for_node("models__training_set")[0].metadata
    with connect(data_dir) as conn:
        train_days = conn.execute(
            "SELECT count(DISTINCT business_date) FROM models.training_set WHERE fold = 0 AND split = 'train'"
        ).fetchone()[0]
    assert train_days == 31
    assert md["fold0_train_days_in_warmup"].value == 31
