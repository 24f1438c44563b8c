"""Trust at the door, end to end (issue 13's acceptance): a messy simulated world with every hostile file and
row of the issue beside it, run through `make pipeline`'s entry point on an on-disk instance.

Every genuine transaction reaches cleaned.transactions unchanged, each hostile input is refused or
quarantined with its reason, and no card number of the input is left anywhere: DuckDB (any column type),
the exports, DAGSTER_HOME, the instance's runs, event logs and cursors, the pipeline's console output, nor
the landing sensor's cursor, run keys and tags.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fraud_assets.cli.dagster_home import write_dagster_yaml
from fraud_assets.lib.pan import Tokenizer, normalise_pan
from fraud_assets.lib.pan_leaks import pans_in
from fraud_assets.lib.pan_scan import collect_pans, holds_any, scan_deployment, scan_file
from fraud_assets.simulator import SimConfig, simulate
from fraud_assets_tests.conftest import TEST_PAN_KEY, TEST_REGISTRY_KEY

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

WORLD = SimConfig(profile="realistic", days=5, customers=120, terminals=240, seed=13)
DAY, NEXT = "2018-04-02", "2018-04-03"
# A hang guard, not a performance bound.
RUN_TIMEOUT = 1500
ZERO_IDS = (800000000001, 800000000002)


def arabic(digits: str) -> str:
    return "".join(chr(0x0660 + int(c)) for c in digits)


def gzip_bomb(size: int) -> bytes:
    out = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\n" * (1 << 20)
    return b"".join(out.compress(block) for _ in range(size >> 20)) + out.flush()


@dataclass
class Deployment:
    root: Path
    truth: pd.DataFrame
    outside: Path

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def landing(self) -> Path:
        return self.data_dir / "landing"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "FRAUD_DATA_DIR": str(self.data_dir),
            "DAGSTER_HOME": str(self.home),
            "FRAUD_PAN_KEY": TEST_PAN_KEY,
            "FRAUD_REGISTRY_KEY": TEST_REGISTRY_KEY,
        }

    def query(self, sql: str) -> pd.DataFrame:
        with duckdb.connect(str(self.data_dir / "warehouse.duckdb"), read_only=True) as conn:
            return conn.execute(sql).df()


def write(root: Path, rel: str, content: bytes | str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def csv(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(",".join(r) for r in [header, *rows]) + "\n"


AUTH_HEADER = [
    "transaction_id",
    "tx_datetime",
    "pan",
    "terminal_id",
    "amount",
    "currency",
    "channel",
    "three_ds",
    "message_type",
    "original_transaction_id",
]


def add_hostile_inputs(dep: Deployment) -> None:
    """Every finding of issue 13 as a file or row beside the simulated world."""
    truth, landing = dep.truth, dep.landing
    day = truth[truth["tx_datetime"].dt.strftime("%Y-%m-%d") == DAY]
    real = day[day["currency"] == "EUR"].iloc[0]
    other = truth[truth["pan"] != real["pan"]].iloc[0]
    pan, pan2 = real["pan"], other["pan"]
    at = f"{DAY}T13:00:00Z"

    def auth(tid: str, amount: str = "10.00", **kw) -> list[str]:
        row = {
            "transaction_id": tid,
            "tx_datetime": at,
            "pan": pan,
            "terminal_id": str(real["terminal_id"]),
            "amount": amount,
            "currency": "EUR",
            "channel": "card_present",
            "three_ds": "",
            "message_type": "auth",
            "original_transaction_id": "",
        } | kw
        return [row[c] for c in AUTH_HEADER]

    folder = f"authorizations/{DAY}"
    rows = [
        auth(str(ZERO_IDS[0]), "0.00"),  # finding 11: zero amounts are genuine
        auth(str(ZERO_IDS[1]), "0"),
        auth(arabic(str(real["transaction_id"])), "999.00"),  # finding 12: must not supersede the real one
        auth("800000000003", "-5.00"),  # finding 11: negatives are quarantined
        auth("800000000004", three_ds=".".join(pan2[i : i + 4] for i in range(0, 16, 4))),  # finding 2
        [f"{pan} 12/26", "broken"],  # finding 2: a PAN and its expiry in a malformed line
        auth("800000000005", terminal_id=f"{pan2[:8]}\u00a0{pan2[8:]}"),  # non-breaking space
    ]
    write(landing, f"{folder}/acq_a_{DAY}_extra.csv", csv(AUTH_HEADER, rows))
    good = csv(AUTH_HEADER, [auth("800000000006")])
    write(landing, f"{folder}/acq_a_{DAY}_bomb.csv.gz", gzip_bomb(64 << 20))  # finding 6
    write(landing, f"{folder}/acq_a_{DAY}_cr.csv", good.replace("\n", "\r"))  # finding 7
    write(
        landing, f"{folder}/acq_a_{DAY}_header.csv", ",".join(AUTH_HEADER) + ",x" + "y" * (130 << 10) + "\n"
    )
    write(landing, f"{folder}/acq_a_{DAY}_{pan}.csv", good)  # finding 3: a PAN in a name
    write(landing, f"{folder}/acq_a_{DAY}.csv\n", good)  # finding 10
    write(landing, f"authorizations/9999-12-31/acq_a_{DAY}_late.csv", good)  # finding 7: year 9999
    write(landing, f"{folder}/acq_a_9999-12-31.csv", good)
    write(landing, f"{folder}/acq_a_0001-01-01.csv.gz", gzip.compress(good.encode()))
    dep.outside.write_text(csv(AUTH_HEADER, [auth("800000000007", pan=pan2)]))
    (landing / folder / f"acq_a_{DAY}_link.csv").symlink_to(dep.outside)  # finding 9

    snap = f"cardholders/{NEXT}/cardholders_{NEXT}_pan_ids.parquet"  # finding 1: a PAN typed int64
    (landing / snap).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"customer_id": [int(pan)], "pan": [float(pan2)]}), landing / snap)
    bad = pa.table({"terminal_id": ["T0"], "merchant_id": [1], "timezone": ["UTC"], "x": ["n/a"]})
    (landing / f"merchants/{NEXT}").mkdir(parents=True, exist_ok=True)
    pq.write_table(bad, landing / f"merchants/{NEXT}/merchants_{NEXT}_bad.parquet")  # finding 8

    fx = [["rate_date", "base_currency", "quote_currency", "rate"]] + [
        [DAY, "EUR", "NOK", rate] for rate in ("0", "-1.1", "9" * 400, "1e-301", "NaN", "11.2", "11.9")
    ]  # finding 13: absurd rates, two conflicting ones
    write(landing, f"fx_rates/{DAY}/fx_rates_{DAY}_bad.csv", "\n".join(",".join(r) for r in fx) + "\n")

    cb_header = ["chargeback_id", "transaction_id", "pan", "tx_datetime", "reported_at", "reason_code"]
    cb_header += ["amount", "currency"]
    tx_at = real["tx_datetime"].strftime("%Y-%m-%dT%H:%M:%SZ")
    tid = str(real["transaction_id"])
    chargebacks = [  # finding 14
        ["CBX1", "812345678901", pan, tx_at, f"{NEXT}T09:00:00Z", "10.4", "10.00", "EUR"],
        ["CBX2", tid, pan2, tx_at, f"{NEXT}T09:00:00Z", "10.4", "10.00", "EUR"],
        ["CBX3", tid, pan, tx_at, f"{NEXT}T09:00:00Z", "10.4", "-10.00", "EUR"],
        ["CBX4", tid, pan, tx_at, f"{NEXT}T09:00:00Z", "10.4", "NaN", "EUR"],
    ]
    write(landing, f"chargebacks/{NEXT}/chargebacks_{NEXT}_extra.csv", csv(cb_header, chargebacks))


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Deployment:
    root = tmp_path_factory.mktemp("door")
    (root / "data").mkdir()
    simulate(root / "data", WORLD)
    truth = pd.read_parquet(root / "data" / "ground_truth" / "transactions.parquet")
    dep = Deployment(root, truth, root / "outside.csv")
    add_hostile_inputs(dep)
    write_dagster_yaml(dep.home)
    log = root / "pipeline.log"
    with log.open("wb") as out:
        subprocess.run(
            [sys.executable, "-m", "fraud_assets.cli.pipeline"],
            env=dep.env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=RUN_TIMEOUT,
            check=False,
        )
    dep.log = log.read_text(errors="replace")
    return dep


def test_no_blocking_check_of_raw_cleaned_or_features_fails(deployment):
    blocking = [line for line in deployment.log.splitlines() if "FAILED (blocking)" in line]
    layers = ("raw/", "cleaned/", "features/")
    assert not [line for line in blocking if any(layer in line for layer in layers)], deployment.log[-4000:]
    assert "Rows per table:" in deployment.log


def test_every_genuine_transaction_reaches_cleaned_unchanged(deployment):
    truth = deployment.truth
    last_day = (pd.Timestamp(WORLD.start) + pd.Timedelta(days=WORLD.days - 1)).strftime("%Y-%m-%d")
    landed = truth[truth["landing_date"].astype(str) <= last_day]
    cleaned = deployment.query(
        "SELECT transaction_id, tx_datetime, terminal_id, amount_original, currency, card_token "
        "FROM cleaned.transactions"
    )
    merged = landed.merge(cleaned, on="transaction_id", how="left", suffixes=("", "_cleaned"))
    assert merged["tx_datetime_cleaned"].notna().all(), merged[merged["tx_datetime_cleaned"].isna()]
    assert (merged["tx_datetime"] == merged["tx_datetime_cleaned"]).all()
    assert (merged["terminal_id"] == merged["terminal_id_cleaned"]).all()
    assert (merged["amount_original"].round(6) == merged["amount_original_cleaned"].round(6)).all()
    assert (merged["currency"] == merged["currency_cleaned"]).all()
    tokens = Tokenizer(TEST_PAN_KEY)
    assert (merged["pan"].map(lambda p: tokens.token(normalise_pan(p))) == merged["card_token"]).all()


def test_zero_amount_authorisations_are_transactions_and_negatives_are_quarantined(deployment):
    zero = deployment.query(
        f"SELECT transaction_id, amount_original FROM cleaned.transactions WHERE transaction_id IN {ZERO_IDS}"
    )
    assert sorted(zero["transaction_id"]) == list(ZERO_IDS)
    assert (zero["amount_original"] == 0).all()
    reasons = deployment.query("SELECT transaction_id, reason FROM cleaned.quarantine")
    assert "negative_amount" in set(reasons.loc[reasons["transaction_id"] == 800000000003, "reason"])


def test_each_hostile_file_is_refused_with_its_reason(deployment):
    register = deployment.query("SELECT source_file, status, reason FROM raw.file_register")
    refused = register[register["status"] == "rejected"]
    by_name = dict(zip(refused["source_file"], refused["reason"], strict=True))
    for fragment in (
        "_bomb.csv.gz",
        "_cr.csv",
        "_header.csv",
        "_link.csv",
        "_pan_ids.parquet",
        "_bad.parquet",
    ):
        assert [name for name in by_name if fragment in name], fragment
    assert [name for name in by_name if name.startswith("authorizations/9999-12-31/")]
    assert len({r for r in by_name.values()}) >= 6  # distinct reasons, not one catch-all
    names_by_reason = {}
    for name, reason in by_name.items():
        names_by_reason.setdefault(reason, []).append(name)
    assert [n for n in names_by_reason.get("pan_in_file_name", []) if "******" in n]  # finding 3, masked
    assert [n for n in names_by_reason.get("unrecognised_name", []) if n.endswith("\n")]  # finding 10
    out_of_range = names_by_reason.get("date_out_of_range", [])
    assert {"9999-12-31.csv", "0001-01-01.csv.gz"} <= {n.rsplit("_", 1)[-1] for n in out_of_range}  # 7


def test_bad_fx_rates_and_chargebacks_are_quarantined_with_reasons(deployment):
    quarantine = deployment.query("SELECT source, reason FROM cleaned.reference_quarantine")
    fx = set(quarantine.loc[quarantine["source"] == "fx_rates", "reason"])
    chargebacks = set(quarantine.loc[quarantine["source"] == "chargebacks", "reason"])
    assert {"rate_out_of_range", "conflicting_rate"} <= fx
    assert {"unknown_transaction", "card_mismatch", "negative_amount", "invalid_amount"} <= chargebacks


def test_no_card_number_of_the_input_is_left_anywhere(deployment):
    pans = collect_pans([*deployment.landing.rglob("*"), deployment.outside])
    assert len(pans) > 100  # the scan knows what to look for
    with dg.DagsterInstance.from_config(str(deployment.home)) as instance:
        findings = scan_deployment(deployment.data_dir, deployment.home, instance=instance, pans=pans)
    # and what `make pipeline` printed: the operator's console, or a log collector's copy of it
    findings += scan_file(deployment.root / "pipeline.log", lambda text: holds_any(text, pans), any_pan=False)
    assert [str(f) for f in findings] == []


def test_the_landing_sensor_keeps_no_card_number_in_its_cursor_run_keys_or_tags(deployment, monkeypatch):
    monkeypatch.setenv("FRAUD_DATA_DIR", str(deployment.data_dir))
    from fraud_assets.definitions import defs
    from fraud_assets.resources import build_resources

    [sensor] = [s for s in defs.sensors if s.name == "landing_sensor"]  # resources come with the context
    resources = build_resources(deployment.data_dir, TEST_PAN_KEY)
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_sensor_context(instance=instance, resources=resources, definitions=defs)
        result = sensor(context)
    requests = list(result.run_requests or []) if isinstance(result, dg.SensorResult) else list(result)
    texts = [context.cursor or "", *(r.run_key or "" for r in requests)]
    texts += [f"{k}={v}" for r in requests for k, v in (r.tags or {}).items()]
    assert requests  # the sensor did look at the landing zone
    assert [t for t in texts if pans_in(t)] == []
