"""Typed resources. Environments (local / CI / production) differ only in how these are configured
(docs/environments.md)."""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field, PrivateAttr

from fraud_assets.lib import settings
from fraud_assets.lib.alerting import AlertSink
from fraud_assets.lib.model_io import warm_up_model_libraries
from fraud_assets.lib.pan import Tokenizer
from fraud_assets.lib.registry import Anchor, load_version, recorded_anchor
from fraud_assets.lib.signing import Signer

_LOCK_HELD = re.compile(r"Conflicting lock is held in (?P<holder>.+?)(?:\. See also|$)", re.S)


class Warehouse(DuckDBResource):
    """The DuckDB warehouse. Only one process may write it, and the platform's own steps take turns
    (pool `duckdb`); a process outside the platform holding it (a notebook's `duckdb.connect`) is waited
    for `lock_wait_seconds` with a warning that names it, then the step is retried by Dagster
    (`dg.RetryRequested`: `lock_retries` times, `lock_retry_seconds` apart, the pool slot free meanwhile),
    so a day resumes by itself once the holder lets go, and fails with the holder's name only after that."""

    lock_wait_seconds: float = Field(default=30.0, description="How long one step attempt waits for a lock.")
    lock_retries: int = Field(default=5, description="Step retries after a lock outlasted the wait.")
    lock_retry_seconds: int = Field(default=60, description="Seconds between those step retries.")

    @contextlib.contextmanager
    def get_connection(self, lock_wait_seconds: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection; `lock_wait_seconds` overrides the wait for a step whose retry would
        cost more than waiting (a model fit before its registry write)."""
        conn = self._connect(self.lock_wait_seconds if lock_wait_seconds is None else lock_wait_seconds)
        try:
            yield conn
        finally:
            conn.close()

    def _connect(self, wait: float) -> duckdb.DuckDBPyConnection:
        deadline, delay, warned = time.monotonic() + wait, 0.1, False
        while True:
            try:
                return duckdb.connect(self.database, read_only=False, config=self.connection_config)
            except duckdb.IOException as e:
                held = _LOCK_HELD.search(str(e))
                if not held:
                    raise
                holder = " ".join(held["holder"].split())[:300]
                if not warned:
                    dg.get_dagster_logger().warning(
                        f"warehouse locked by {holder}: waiting up to {wait:.0f} s, then "
                        f"retrying the step (docs/runbooks.md, lock error)"
                    )
                    warned = True
                if time.monotonic() + delay > deadline:
                    raise dg.RetryRequested(
                        max_retries=self.lock_retries, seconds_to_wait=self.lock_retry_seconds
                    ) from e
                time.sleep(delay)
                delay = min(delay * 2, 5.0)


class PanTokenizer(dg.ConfigurableResource):
    """Keyed HMAC tokenisation of card numbers. The key comes from `FRAUD_PAN_KEY`: the secret store in
    production, the local key `scripts/with-env` keeps outside the data directory otherwise. Assets that
    write tokens call `fraud_assets.lib.token_keys.ensure_token_key` first: a second key is refused."""

    key: str = Field(description="The HMAC key, as `env: FRAUD_PAN_KEY`: never the key in clear.")

    def tokenizer(self) -> Tokenizer:
        return Tokenizer(self.key)


class LandingZone(dg.ConfigurableResource):
    """The landing zone: an outside contract (docs/landing-zone.md). Read-only for the platform."""

    root: str = Field(description="Directory the feeds deliver into: `$FRAUD_DATA_DIR/landing`.")

    @property
    def path(self) -> Path:
        return Path(self.root)


class ModelStore(dg.ConfigurableResource):
    """Directory of skops model artifacts, the key that signs their registry records
    (`FRAUD_REGISTRY_KEY`; never stored in the warehouse or the data directory), and the ledger's head as
    the Dagster instance last recorded it (`anchor`)."""

    root: str = Field(
        description="Model artifacts, cards, training-set snapshots and decision evidence: "
        "`$FRAUD_DATA_DIR/models`."
    )
    signing_key: str = Field(
        description="Key that signs the registry records, as `env: FRAUD_REGISTRY_KEY`: never the key in "
        "clear."
    )
    _instance: dg.DagsterInstance | None = PrivateAttr(default=None)

    @property
    def path(self) -> Path:
        p = Path(self.root)
        p.mkdir(parents=True, exist_ok=True)
        return p

    def signer(self) -> Signer:
        return Signer(self.signing_key)

    def anchor(self) -> Anchor | None:
        """The ledger head recorded in Dagster's event log (None outside a run): events deleted from the
        end of the ledger no longer match it (lib/registry.recorded_anchor)."""
        return recorded_anchor(self._instance) if self._instance is not None else None

    def load(self, conn, model_version: str):
        """(model, its ModelVersion), through the signed registry verified against the anchor."""
        return load_version(conn, self.path, model_version, self.signer(), self.anchor())

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._instance = context.instance
        # Every step that uses the store loads or fits a model: the run imports the model libraries from
        # its start, beside the steps before (lib/model_io.warm_up_model_libraries).
        warm_up_model_libraries()


FEATURE_ENGINES = ("duckdb", "spark")


class FeatureEngine(dg.ConfigurableResource):
    """Which engine computes features.transaction_features: `duckdb` (in the run worker, the default and
    the fast one on one machine) or `spark` (a Spark application launched through Dagster Pipes, reading
    the cleaned layer's Parquet exports; docs/environments.md). From `FRAUD_FEATURE_ENGINE`,
    `FRAUD_SPARK_MASTER` (`local[2]`, or a cluster URL such as spark://host:7077), `FRAUD_SPARK_DRIVER_MEMORY`
    and `FRAUD_SPARK_CONF` (any other Spark settings, `key=value` separated by spaces: executor memory and
    cores on a cluster, the driver's address the executors connect back to)."""

    engine: str = Field(default="duckdb", description="`duckdb` or `spark` (`FRAUD_FEATURE_ENGINE`).")
    spark_master: str = Field(
        default="local[2]", description="Spark master URL, spark engine only (`FRAUD_SPARK_MASTER`)."
    )
    spark_driver_memory: str = Field(
        default="2g", description="Spark driver memory, spark engine only (`FRAUD_SPARK_DRIVER_MEMORY`)."
    )
    spark_shuffle_partitions: int = Field(
        default=16, description="spark.sql.shuffle.partitions of the feature application, spark engine only."
    )
    spark_conf: dict[str, str] = Field(
        default={}, description="Any other Spark settings, spark engine only (`FRAUD_SPARK_CONF`)."
    )

    @property
    def uses_spark(self) -> bool:
        if self.engine not in FEATURE_ENGINES:
            raise ValueError(f"feature engine must be one of {FEATURE_ENGINES}, not {self.engine!r}")
        return self.engine == "spark"


def feature_engine_from_env() -> FeatureEngine:
    return FeatureEngine(
        engine=os.environ.get("FRAUD_FEATURE_ENGINE", "duckdb"),
        spark_master=os.environ.get("FRAUD_SPARK_MASTER", "local[2]"),
        spark_driver_memory=os.environ.get("FRAUD_SPARK_DRIVER_MEMORY", "2g"),
        spark_conf=_key_values("FRAUD_SPARK_CONF"),
    )


def _key_values(env: str) -> dict[str, str]:
    items = os.environ.get(env, "").split()
    malformed = [item for item in items if "=" not in item]
    if malformed:
        raise ValueError(f"{env}: expected key=value items separated by spaces, got {malformed}")
    return dict(item.split("=", 1) for item in items)


WEBHOOK_ENV = "FRAUD_ALERT_WEBHOOK_URL"


def build_alert_sink(data_dir: Path | None = None) -> AlertSink:
    # The webhook is optional: referenced only when set, so an unset one is not a missing secret.
    webhook = dg.EnvVar(WEBHOOK_ENV) if os.environ.get(WEBHOOK_ENV) else None
    return AlertSink(data_dir=str(data_dir) if data_dir else None, webhook_url=webhook)


def build_resources(
    data_dir: Path | None = None, pan_key: str | None = None, registry_key: str | None = None
) -> dict[str, object]:
    """Resources for a data directory. Definitions use the environment; tests pass a tmp_path."""
    root = Path(data_dir) if data_dir else settings.data_dir()
    return {
        "duckdb": Warehouse(
            database=str(root / settings.WAREHOUSE_FILE), connection_config=settings.warehouse_config()
        ),
        "pan_tokenizer": PanTokenizer(key=pan_key if pan_key else dg.EnvVar("FRAUD_PAN_KEY")),
        "landing": LandingZone(root=str(root / "landing")),
        "model_store": ModelStore(
            root=str(root / "models"),
            signing_key=registry_key if registry_key else dg.EnvVar("FRAUD_REGISTRY_KEY"),
        ),
        "alert_sink": build_alert_sink(Path(data_dir) if data_dir else None),
        "feature_engine": feature_engine_from_env(),
    }
