"""Where alerts go: a pluggable sink resource (docs/monitoring.md).

Every alert is (1) logged, (2) appended to `$FRAUD_DATA_DIR/alerts/alerts.jsonl` (the durable outbox: a
plain file, so raising an alert never waits on the warehouse lock), (3) POSTed as JSON to a webhook
(Slack-compatible `text` field) when `FRAUD_ALERT_WEBHOOK_URL` is set, and (4) loaded into
`monitoring.alerts` by `flush()`.
Sensors call `flush()` every tick; when a run holds the DuckDB lock the flush simply waits for a later tick,
so alerting can never make a pipeline step fail on the lock.
"""

from __future__ import annotations

import hashlib
import json
import logging
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import Field

from fraud_assets.lib import settings
from fraud_assets.lib.pan import mask_number, mask_pans

ALERTS_TABLE = "monitoring.alerts"
OUTBOX = "alerts/alerts.jsonl"
SEVERITIES = ("INFO", "WARN", "ERROR")

_log = logging.getLogger("fraud_assets.alerts")

_CREATE_SQL = f"""
CREATE TABLE IF NOT EXISTS {ALERTS_TABLE} (
    alert_id VARCHAR PRIMARY KEY,
    raised_at TIMESTAMP,
    severity VARCHAR,
    kind VARCHAR,
    subject VARCHAR,
    message VARCHAR,
    run_id VARCHAR,
    details VARCHAR
)
"""


def masked_details(value):
    """`value` with every card number masked and its structure and numbers kept. Masking the JSON text
    instead would turn a float's digits (a PSI of 0.4539148803436467 reads as a Luhn-valid 16-digit run)
    into stars, and the text into invalid JSON: a number is masked only when its integral part holds a
    card number."""
    if isinstance(value, dict):
        return {mask_pans(str(k)): masked_details(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [masked_details(v) for v in value]
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        masked = mask_number(value)
        return value if masked is None else masked
    return mask_pans(value if isinstance(value, str) else str(value))


# Where the engineer paged at night starts, per kind of alert: a section of the docs (GitHub anchors),
# carried in every alert's details and shown beside its text in the log and the webhook.
RUNBOOKS = {
    "run_failure": "docs/runbooks.md#recover-a-failed-run",
    "dead_run": "docs/runbooks.md#a-run-that-died",
    "check_failure": "docs/runbooks.md#a-check-failed",
    "missing_business_day": "docs/runbooks.md#a-business-day-without-its-authorisation-file",
}


@dataclass(frozen=True)
class Alert:
    """One alert. `kind` says what raised it (run_failure, check_failure, retrain_requested, ...),
    `subject` what it is about (a job, an asset check key). Free text is PAN-masked on creation."""

    severity: str
    kind: str
    subject: str
    message: str
    run_id: str = ""
    details: dict = field(default_factory=dict)
    raised_at: str = field(default_factory=lambda: datetime.now(UTC).replace(tzinfo=None).isoformat())

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}")
        # A failure message can quote a data row, a subject name a file; never let a card number through.
        object.__setattr__(self, "subject", mask_pans(self.subject))
        object.__setattr__(self, "message", mask_pans(self.message))
        details = masked_details(self.details)
        if self.kind in RUNBOOKS and "runbook" not in details:
            details = {**details, "runbook": RUNBOOKS[self.kind]}
        object.__setattr__(self, "details", details)

    @property
    def summary(self) -> str:
        """One line for a log or a chat message: what, about what, why, and where to start."""
        runbook = self.details.get("runbook")
        return f"{self.kind} {self.subject}: {self.message}" + (f" (runbook: {runbook})" if runbook else "")

    @property
    def alert_id(self) -> str:
        """Stable id: the same event alerted twice (a sensor tick retried) is stored once."""
        basis = f"{self.kind}|{self.subject}|{self.run_id}|{self.message}|{self.details.get('event_id', '')}"
        return hashlib.sha256(basis.encode()).hexdigest()[:24]

    def as_row(self) -> dict:
        row = asdict(self)
        row["alert_id"] = self.alert_id
        row["details"] = json.dumps(self.details, sort_keys=True, default=str)
        return row


class AlertSink(dg.ConfigurableResource):
    """Pluggable alert destination. `data_dir` (default `$FRAUD_DATA_DIR`, read when an alert is sent) holds
    the outbox and the warehouse; `webhook_url` (from `dg.EnvVar("FRAUD_ALERT_WEBHOOK_URL")` when set) adds
    a Slack/Teams-style webhook."""

    data_dir: str | None = Field(
        default=None, description="Holds the outbox and the warehouse; empty: `$FRAUD_DATA_DIR` when sending."
    )
    webhook_url: str | None = Field(
        default=None, description="Slack/Teams-style webhook (`FRAUD_ALERT_WEBHOOK_URL`); empty: none."
    )
    webhook_timeout_seconds: float = Field(default=5.0, description="How long one webhook post may take.")

    @property
    def root(self) -> Path:
        return Path(self.data_dir) if self.data_dir else settings.data_dir()

    @property
    def outbox(self) -> Path:
        return self.root / OUTBOX

    @property
    def warehouse(self) -> Path:
        return self.root / settings.WAREHOUSE_FILE

    def send(self, alerts: list[Alert], log: logging.Logger | None = None) -> int:
        """Log, append to the outbox, post to the webhook; then try to load the outbox into the table.

        An outbox that cannot be written (disk full, read-only or missing data volume) is logged and
        skipped: the alerts still go to the log and the webhook, the channels that reach someone when the
        data volume is what broke. They are then in no table; the sensor does not raise, or every tick
        would page again."""
        if not alerts:
            return 0
        logger = log or _log
        for alert in alerts:
            (logger.error if alert.severity == "ERROR" else logger.warning)(
                f"[ALERT {alert.severity}] {alert.summary}"
            )
        rows = "".join(json.dumps(alert.as_row(), sort_keys=True) + "\n" for alert in alerts)
        try:
            self.outbox.parent.mkdir(parents=True, exist_ok=True)
            with self.outbox.open("a", encoding="utf-8") as fh:
                fh.write(rows)
            written = True
        except OSError as exc:
            written = False
            also = " and posted to the webhook" if self.webhook_url else ""
            logger.error(
                f"alert outbox {self.outbox} cannot be written ({type(exc).__name__}: {exc}): "
                f"{len(alerts)} alert(s) only logged{also}"
            )
        if self.webhook_url:
            for alert in alerts:
                self._post(alert, logger)
        if written:
            self.flush(logger)
        return len(alerts)

    def _post(self, alert: Alert, logger: logging.Logger) -> None:
        body = json.dumps({"text": f"[{alert.severity}] {alert.summary}", **alert.as_row()}).encode()
        req = urllib.request.Request(  # noqa: S310 - URL comes from the operator's configuration
            self.webhook_url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(req, timeout=self.webhook_timeout_seconds):  # noqa: S310
                pass
        except OSError as exc:  # a webhook outage must not stop alerting to the table and log
            logger.warning(f"alert webhook failed: {type(exc).__name__}")

    def read_outbox(self) -> list[dict]:
        if not self.outbox.exists():
            return []
        return [json.loads(line) for line in self.outbox.read_text(encoding="utf-8").splitlines() if line]

    def flush(self, log: logging.Logger | None = None) -> int:
        """Load outbox rows missing from `monitoring.alerts`. Returns rows added; 0 when the warehouse is
        busy (a writer holds the lock) — the outbox keeps them for the next call."""
        rows = self.read_outbox()
        if not rows:
            return 0
        try:
            conn = duckdb.connect(str(self.warehouse), config=settings.warehouse_config())
        except (duckdb.IOException, duckdb.ConnectionException):
            (log or _log).info("warehouse busy; alerts stay in the outbox until the next flush")
            return 0
        try:
            conn.execute("CREATE SCHEMA IF NOT EXISTS monitoring")
            conn.execute(_CREATE_SQL)
            before = conn.execute(f"SELECT count(*) FROM {ALERTS_TABLE}").fetchone()[0]
            conn.execute(
                f"""INSERT INTO {ALERTS_TABLE}
                SELECT alert_id, CAST(raised_at AS TIMESTAMP), severity, kind, subject, message, run_id,
                       details
                FROM (SELECT unnest(?::STRUCT(alert_id VARCHAR, raised_at VARCHAR, severity VARCHAR,
                      kind VARCHAR, subject VARCHAR, message VARCHAR, run_id VARCHAR, details VARCHAR)[],
                      recursive := true))
                WHERE alert_id NOT IN (SELECT alert_id FROM {ALERTS_TABLE})
                QUALIFY row_number() OVER (PARTITION BY alert_id ORDER BY raised_at) = 1""",
                [rows],
            )
            return int(conn.execute(f"SELECT count(*) FROM {ALERTS_TABLE}").fetchone()[0] - before)
        finally:
            conn.close()
