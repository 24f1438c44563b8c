"""`models/candidate_<family>`: one asset per model family, trained and validated prequentially.

Each fold's model is trained on the fold's training rows and scored on its test rows; the metrics'
mean and std over folds are the family's prequential figures. The fold-0 model (the most recent
split) is persisted with skops under the model store and appended to the registry.
"""

# No `from __future__ import annotations`: the factory's `config: config_cls` must be a real type.
import time
from dataclasses import replace
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from fraud_assets.defs.models.common import (
    CODE_VERSION,
    OWNERS,
    TRAINED_BY_HOW_KEY,
    TRAINED_BY_KEY,
    TRAINING_SET_META,
)
from fraud_assets.defs.models.schemas import MODEL_VERSIONS_COLUMNS, MODEL_VERSIONS_DESCRIPTIONS
from fraud_assets.defs.models.snapshots import TrainingSet, current_digest, verified_snapshot
from fraud_assets.lib.catalog_metadata import column_schema_metadata
from fraud_assets.lib.identity import run_launcher
from fraud_assets.lib.markdown import figures_table
from fraud_assets.lib.metrics import METRIC_NAMES, classification_metrics
from fraud_assets.lib.model_io import save_model
from fraud_assets.lib.model_selection import (
    FAMILY_DEFAULTS,
    FAMILY_KINDS,
    SEARCH_SPACE,
    WIDE_SEARCH_SPACE,
    best_point,
    build_estimator,
    compute_threads,
    model_cores,
    recent_days,
    search_points,
    select_features,
    summarise_folds,
)
from fraud_assets.lib.registry import ModelVersion, register_version
from fraud_assets.lib.warehouse import table_metadata
from fraud_assets.resources import ModelStore, Warehouse

# The installed scikit-learn, without importing it at definition load (docs/architecture.md, start-up cost).
SKLEARN_VERSION = package_version("scikit-learn")
FAMILIES = ("logistic_regression", "hist_gradient_boosting", "random_forest")
TRAINING_SET_KEY = dg.AssetKey(["models", "training_set"])
# A candidate is outside the `duckdb` pool, so a pool step may hold the warehouse while it fits: its
# registry write waits as long as a big backfill's step can take rather than have Dagster retry (and refit).
REGISTRY_LOCK_WAIT_SECONDS = 600


TRAIN_DAYS_HELP = "Train on the last n days of each fold's training window (0: all of it)."
CLASS_WEIGHT_HELP = "'' (none) or 'balanced' (frauds weighted up to the genuine rows' total)."


def _configuration(point: dict[str, Any]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in point.items())


def search_help(family: str) -> str:
    """The `search` setting's description: the configurations the search tries, so the launchpad says
    what is trained by default, not only the parameters' defaults."""
    tried = "; ".join(_configuration(p) for p in SEARCH_SPACE[family])
    wide = "; ".join(_configuration(p) for p in WIDE_SEARCH_SPACE[family])
    return (
        f"Train each of these configurations, each over the other settings, and keep the best prequential "
        f"AP: {tried}" + (f" (wide_search adds {wide})" if wide else "") + ". false: train the other "
        "settings as given."
    )


def wide_help(family: str) -> str:
    if not WIDE_SEARCH_SPACE[family]:
        return "Adds no configuration to this family's search (the weekly retrain sets it for every family)."
    return (
        "Also train the configurations `search` says wide_search adds (the weekly retrain sets it; a "
        "backfill keeps to its time budget)."
    )


def searched(family: str, name: str, text: str) -> str:
    """`text`, saying so when the search sets this parameter: its value is then not what is trained."""
    if any(name in p for p in (*SEARCH_SPACE[family], *WIDE_SEARCH_SPACE[family])):
        return (
            f"{text} While search is true (the default), the search configurations that set it override it."
        )
    return text


class LogisticRegressionConfig(dg.Config):
    C: float = Field(default=1.0, description="Inverse L2 regularisation strength.")
    max_iter: int = Field(default=1000, description="Solver iterations.")
    feature_set: str = Field(default="baseline", description="'baseline' (15 handbook features) or 'all'.")
    train_days: int = Field(
        default=0, description=searched("logistic_regression", "train_days", TRAIN_DAYS_HELP)
    )
    class_weight: str = Field(
        default="", description=searched("logistic_regression", "class_weight", CLASS_WEIGHT_HELP)
    )
    search: bool = Field(default=True, description=search_help("logistic_regression"))
    wide_search: bool = Field(default=False, description=wide_help("logistic_regression"))


class HistGradientBoostingConfig(dg.Config):
    learning_rate: float = Field(default=0.05, description="Shrinkage of each tree's contribution.")
    max_iter: int = Field(default=300, description="Boosting rounds (no early stopping: folds are small).")
    max_leaf_nodes: int = Field(default=31, description="Most leaves per tree.")
    min_samples_leaf: int = Field(default=100, description="Fewest training rows in a leaf.")
    l2_regularization: float = Field(default=1.0, description="L2 penalty on the leaves' values.")
    feature_set: str = Field(default="all", description="'baseline' or 'all' numeric features.")
    train_days: int = Field(
        default=0, description=searched("hist_gradient_boosting", "train_days", TRAIN_DAYS_HELP)
    )
    class_weight: str = Field(
        default="", description=searched("hist_gradient_boosting", "class_weight", CLASS_WEIGHT_HELP)
    )
    search: bool = Field(default=True, description=search_help("hist_gradient_boosting"))
    wide_search: bool = Field(default=False, description=wide_help("hist_gradient_boosting"))


class RandomForestConfig(dg.Config):
    n_estimators: int = Field(
        default=100, description=searched("random_forest", "n_estimators", "Trees in the forest.")
    )
    max_depth: int = Field(default=16, description="Deepest a tree grows.")
    min_samples_leaf: int = Field(default=3, description="Fewest training rows in a leaf.")
    max_features: float = Field(default=0.3, description="Fraction of features tried at each split.")
    max_samples: float = Field(
        default=0.0,
        description=searched(
            "random_forest", "max_samples", "Bootstrap sample per tree, share of rows (0: all)."
        ),
    )
    feature_set: str = Field(default="all", description="'baseline' or 'all' numeric features.")
    train_days: int = Field(default=0, description=searched("random_forest", "train_days", TRAIN_DAYS_HELP))
    class_weight: str = Field(
        default="", description=searched("random_forest", "class_weight", CLASS_WEIGHT_HELP)
    )
    search: bool = Field(default=True, description=search_help("random_forest"))
    wide_search: bool = Field(default=False, description=wide_help("random_forest"))


SEARCH_FIELDS = ("search", "wide_search")  # how to select, not parameters of the model
CONFIGS: dict[str, type[dg.Config]] = {
    "logistic_regression": LogisticRegressionConfig,
    "hist_gradient_boosting": HistGradientBoostingConfig,
    "random_forest": RandomForestConfig,
}
for _family, _cls in CONFIGS.items():  # one source of truth for defaults
    assert set(_cls.model_fields) - set(SEARCH_FIELDS) == set(FAMILY_DEFAULTS[_family]), _family


def candidate_key(family: str) -> dg.AssetKey:
    return dg.AssetKey(["models", f"candidate_{family}"])


def read_training_set(conn, path: Path) -> TrainingSet:
    """models.training_set written to `path` and opened as the candidates read it (tests, notebooks)."""
    return TrainingSet.of_table(conn, path)


def fold_workers(n_folds: int) -> int:
    """Folds fitted at once: `FRAUD_MODEL_CORES` (default every core this process may use), at most one
    per fold. Each fit keeps OpenMP/BLAS at `FRAUD_MODEL_THREADS` (`compute_threads`), so a candidate uses
    at most cores x threads."""
    return max(1, min(model_cores(), n_folds))


def _fit_fold(
    family: str,
    params: dict[str, Any],
    train: pd.DataFrame,
    ts: TrainingSet,
    fold: int,
    features: list[str],
    seed: int,
) -> tuple[Any, float, dict[str, float]]:
    """Fit one fold's model and score its test rows, read here: the model, the fit seconds, the metrics."""
    model = build_estimator(family, params, seed=seed, n_rows=len(train))
    test = ts.part(fold, "test", [*features, "business_date", "card_token", "label"])
    with compute_threads():  # per thread: OpenMP's thread count is a per-thread setting
        started = time.perf_counter()
        weight = train["weight"].to_numpy() if "weight" in train else None  # older snapshots have none
        model.fit(train[features], train["label"].to_numpy(), model__sample_weight=weight)
        seconds = time.perf_counter() - started
        scores = model.predict_proba(test[features])[:, 1]
    metrics = classification_metrics(test[["business_date", "card_token", "label"]].assign(score=scores))
    metrics.update(fold=float(fold), train_rows=float(len(train)), train_fraud=float(train["label"].sum()))
    return model, seconds, metrics


def train_family(
    family: str, params: dict[str, Any], ts: TrainingSet, available: list[str], seed: int = 0
) -> tuple[Any, list[str], list[dict[str, float]], dict[str, float]]:
    """Train one model per fold, folds in parallel threads (tree building and OpenMP histograms run outside
    the GIL; threads share the training rows and return the forests without copying them). Every fold's
    training rows are read first; a fold's test rows only while it is scored. Returns the fold-0 model,
    its features, per-fold metrics and timings."""
    from joblib import Parallel, delayed  # scikit-learn's own dependency; imported on use like sklearn

    features = select_features(params["feature_set"], available)
    folds = []
    for fold in ts.folds:
        train = ts.part(fold, "train")
        train = train[recent_days(train["business_date"].to_numpy(), int(params.get("train_days") or 0))]
        if train["label"].nunique() < 2 or not ts.rows.get((fold, "test")):
            continue  # a fold without both classes cannot be trained or scored
        folds.append((fold, train))
    if not folds or folds[0][0] != 0:
        raise dg.Failure(f"{family}: fold 0 has no trainable data (needs both fraud and genuine rows)")
    with compute_threads():
        fitted = Parallel(n_jobs=fold_workers(len(folds)), prefer="threads")(
            delayed(_fit_fold)(family, params, train, ts, fold, features, seed) for fold, train in folds
        )
    fit_seconds = [seconds for _, seconds, _ in fitted]
    timing = {"fit_seconds_mean": float(np.mean(fit_seconds)), "fit_seconds_fold0": fit_seconds[0]}
    return fitted[0][0], features, [metrics for _, _, metrics in fitted], timing


def select_family(
    family: str, points: list[dict[str, Any]], ts: TrainingSet, available: list[str], seed: int = 0
) -> tuple[dict[str, Any], Any, list[str], list[dict[str, float]], dict[str, float], list[dict[str, Any]]]:
    """Train every configuration prequentially and keep the best on folds 1.. (`best_point`): its
    parameters, fold-0 model, features, fold metrics and timings, and one row per configuration tried (what
    it changed, its selection means, its fit seconds) for the registry and the model card."""
    started = time.perf_counter()
    trained, rows, summaries = [], [], []
    for i, point in enumerate(points):
        model, features, fold_metrics, timing = train_family(family, point, ts, available, seed)
        # Chosen on the older folds: fold 0 stays a held-out estimate of the chosen configuration (its test
        # window is also the one whose labels are least complete when the platform trains).
        older = [m for m in fold_metrics if m["fold"] >= 1] or fold_metrics
        summary = summarise_folds(older, METRIC_NAMES)
        summaries.append(summary)
        rows.append(
            {
                "config": i,
                "train_days": float(point.get("train_days") or 0),
                "balanced": float(point.get("class_weight") == "balanced"),
                **{k: float(v) for k, v in point.items() if isinstance(v, int | float) and k != "train_days"},
                "selection_average_precision": summary["average_precision_mean"],
                "selection_card_precision_at_100": summary["card_precision_at_100_mean"],
                "fit_seconds_mean": timing["fit_seconds_mean"],
            }
        )
        trained.append((point, model, features, fold_metrics, timing))
    chosen = best_point(summaries)
    point, model, features, fold_metrics, timing = trained[chosen]
    for row in rows:
        row["chosen"] = float(row["config"] == chosen)
    timing = {**timing, "search_seconds": time.perf_counter() - started}
    return point, model, features, fold_metrics, timing, rows


def search_metrics(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The search table flattened into registry metrics: `search<i>_<column>`."""
    return {f"search{int(r['config'])}_{k}": float(v) for r in rows for k, v in r.items() if k != "config"}


def make_candidate_asset(family: str) -> dg.AssetsDefinition:
    config_cls = CONFIGS[family]

    @dg.asset(
        key=candidate_key(family),
        group_name="models",
        owners=OWNERS,
        kinds={"python", "scikit-learn", "duckdb"},
        code_version=CODE_VERSION,
        # Not in the `duckdb` pool, unlike every other DuckDB writer: a candidate holds the warehouse for
        # seconds (read the training set, append one registry row) but fits for minutes, and a pool slot is
        # held for the whole step, so a landed day would wait behind the fit. Its two short connections
        # wait for the file lock instead: the first as every step does (a retry costs nothing yet), the
        # registry write after the fit up to REGISTRY_LOCK_WAIT_SECONDS (a retry would fit again).
        deps=[TRAINING_SET_KEY],
        # Its table is the registry row it appends to models.model_versions.
        metadata=column_schema_metadata(MODEL_VERSIONS_COLUMNS, descriptions=MODEL_VERSIONS_DESCRIPTIONS),
        description=(
            f"Candidate fraud model of family `{family}`, for the champion gate and the data scientists "
            "comparing families. Trained per prequential fold of models/training_set; metrics (AUC, AP, "
            "Card Precision@100) are the mean and std over folds. The fold-0 model is saved with skops "
            "under the model store and appended to models.model_versions with its data hash, params "
            "hash, code version and artifact SHA-256."
        ),
    )
    def _candidate(
        context: dg.AssetExecutionContext, config: config_cls, duckdb: Warehouse, model_store: ModelStore
    ) -> dg.MaterializeResult:
        params = config.model_dump()
        search, wide = params.pop("search"), params.pop("wide_search")
        # Trained on the signed snapshot of the training set it finds: exactly the data its registry row
        # names, read outside the warehouse (a long fit must not hold its lock).
        with duckdb.get_connection() as conn:
            digest = current_digest(conn)
            snapshot = verified_snapshot(conn, model_store.path, model_store.signer(), digest)
        with TrainingSet(snapshot["file"]) as ts:
            available = [c for c in ts.columns if c not in TRAINING_SET_META]
            params, model, features, fold_metrics, timing, searched = select_family(
                family, search_points(family, params, wide) if search else [params], ts, available
            )
            (train_start, train_end), (test_start, test_end) = ts.dates(0, "train"), ts.dates(0, "test")
        summary = summarise_folds(fold_metrics, (*METRIC_NAMES, "fraud_rate"))
        metrics = {
            **summary,
            **{f"fold{int(m['fold'])}_{k}": v for m in fold_metrics for k, v in m.items() if k != "fold"},
            **timing,
            "n_folds_used": float(len(fold_metrics)),
            **search_metrics(searched),
        }
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        version = f"{FAMILY_KINDS[family]}-{stamp}-{context.run.run_id[:8]}"
        rel_path, sha = save_model(model, model_store.path, version)
        mv = ModelVersion(
            model_version=version,
            family=family,
            params=params,
            feature_columns=features,
            train_start=train_start,
            train_end=train_end,
            delay_days=None,
            test_start=test_start,
            test_end=test_end,
            n_folds=len(fold_metrics),
            data_hash=digest,
            code_version=f"{CODE_VERSION}+sklearn{SKLEARN_VERSION}",
            metrics=metrics,
            artifact_path=rel_path,
            artifact_sha256=sha,
            run_id=context.run.run_id,
            seed=0,  # train_family's default: what make reproduce refits with
        )
        mv = _with_delay(mv)
        with duckdb.get_connection(lock_wait_seconds=REGISTRY_LOCK_WAIT_SECONDS) as conn:
            register_version(conn, mv, model_store.signer())
            md = table_metadata(
                conn,
                "models.model_versions",
                where="model_version = ?",
                params=[version],
                descriptions=MODEL_VERSIONS_DESCRIPTIONS,
                preview_columns=["model_version", "family", "params_hash", "data_hash", "artifact_sha256"],
            )
        folds_df = pd.DataFrame(fold_metrics)
        trained_by, established_by = run_launcher(context.run.tags)
        md.update(
            {
                "model_version": version,
                TRAINED_BY_KEY: trained_by,
                TRAINED_BY_HOW_KEY: established_by,
                "artifact_sha256": sha,
                "params_hash": mv.params_hash,
                "data_hash": mv.data_hash,
                "n_features": len(features),
                "fold_workers": fold_workers(len(fold_metrics)),
                "fold_metrics": dg.MetadataValue.md(figures_table(folds_df)),
                "model_selection": dg.MetadataValue.md(figures_table(pd.DataFrame(searched))),
                **{k: float(v) for k, v in metrics.items()},
            }
        )
        context.log.info(
            f"{family} {version}: prequential AP {metrics['average_precision_mean']:.4f} "
            f"± {metrics['average_precision_std']:.4f}, CP@100 {metrics['card_precision_at_100_mean']:.4f}"
        )
        return dg.MaterializeResult(metadata=md)

    return _candidate


def _with_delay(mv: ModelVersion) -> ModelVersion:
    """Delay window = days strictly between the last training day and the first test day."""
    delay = (mv.test_start - mv.train_end).days - 1 if mv.test_start and mv.train_end else None
    return replace(mv, delay_days=delay)


candidate_assets = [make_candidate_asset(f) for f in FAMILIES]
