"""The simulator's landing zone follows docs/landing-zone.md, round-trips to the ground truth, and
injects each defect at its configured rate, each one recorded where it really is.

The files are read back here with a small independent reader (gzip + csv/json), not with the
platform's ingestion: these tests pin the producer side of the contract."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import json
import math
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraud_assets.lib import landing as landing_names
from fraud_assets.lib.pan import luhn_valid
from fraud_assets.lib.reason_codes import FRAUD, NON_FRAUD, classify
from fraud_assets.simulator import (
    DEFAULT_RATES,
    DEFECT_OUTCOMES,
    DEFECT_UNITS,
    SimConfig,
    generate_world,
    simulate,
)
from fraud_assets.simulator import reference as ref
from fraud_assets.simulator.__main__ import main as cli_main
from fraud_assets.simulator.landing import DISPUTE_DELAY_S, append_days
from fraud_assets.simulator.world import EXTRA_ID_BASE

WORLD = {"days": 40, "customers": 400, "terminals": 800}
ACQ_A_FIELDS = 10
MAX_LINE_CHARS = 4096  # the raw layer's limit (docs/landing-zone.md)
# Elevated rates so each kind shows up often enough to measure in a small world.
MESSY_RATES = {
    kind: {"row": 0.02, "file": 0.4, "report": 0.1, "transaction": 0.02}[unit]
    for kind, unit in DEFECT_UNITS.items()
}
# Late files (<= 5 days), truncated files' re-sends and re-sent copies (<= 3 days each): a file of
# a business day this far before the end has surely landed, whatever else happened to it.
SETTLED_DAYS = 12


def _tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _lines(path: Path) -> list[str] | None:
    """Data lines of an authorisation file (header dropped), or None when it cannot be read."""
    try:
        text = gzip.decompress(path.read_bytes()).decode("utf-8")
    except (EOFError, OSError, zlib.error):
        return None
    lines = text.split("\n")
    assert lines[-1] == ""
    lines = lines[:-1]
    return lines[1:] if path.name.startswith("acq_a") else lines


def _parse(line: str, feed: str) -> dict | None:
    """Canonical fields of one line, or None when the line is malformed."""
    if len(line) > MAX_LINE_CHARS:
        return None
    if feed == "acq_a":
        fields = next(csv.reader([line]))
        if len(fields) != ACQ_A_FIELDS:
            return None
        tid, ts, pan, term, amount, ccy, chan, tds, msg, orig = fields
        return {
            "transaction_id": int(tid),
            "utc": pd.Timestamp(ts.rstrip("Z")),
            "local": None,
            "pan": pan,
            "terminal_id": int(term) if term else None,
            "amount": float(amount.replace(",", ".")),
            "currency": ccy,
            "channel": chan,
            "three_ds": tds,
            "message_type": msg,
            "original_transaction_id": int(orig) if orig else None,
        }
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return None
    ccy = obj["ccy"]
    return {
        "transaction_id": int(obj["txn_ref"]),
        "utc": None,
        "local": pd.to_datetime(obj["local_time"], format="%d/%m/%Y %H:%M:%S"),
        "pan": obj["card_number"],
        "terminal_id": obj["term_id"],
        "amount": obj["amount_minor"] / (1 if ccy == "JPY" else 100),
        "currency": ccy,
        "channel": {"CP": "card_present", "ECOM": "ecommerce"}.get(obj["chan"], obj["chan"]),
        "three_ds": obj["tds"] or "",
        "message_type": {"0100": "auth", "0400": "reversal"}[obj["msg"]],
        "original_transaction_id": int(obj["orig_ref"]) if obj["orig_ref"] else None,
    }


class Landing:
    """A landing zone read back: files, lines, parsed rows, reference data, ground truth."""

    def __init__(self, data_dir: Path, cfg: SimConfig):
        self.root = data_dir / "landing"
        self.cfg = cfg
        self.last_day = cfg.start_date + dt.timedelta(days=cfg.days - 1)
        self.truth = pd.read_parquet(data_dir / "ground_truth" / "transactions.parquet")
        self.defects = pd.read_parquet(data_dir / "ground_truth" / "defects.parquet")
        self.merchants = pd.read_parquet(next((self.root / "merchants").rglob("*.parquet")))
        self.cardholders = pd.read_parquet(next((self.root / "cardholders").rglob("*.parquet")))
        self.files = sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())
        self.lines = {f: _lines(self.root / f) for f in self.files if f.startswith("authorizations/")}
        zones = self.merchants.set_index("terminal_id")["timezone"]
        rows = []
        for f, lines in self.lines.items():
            if lines is None:
                continue
            feed = Path(f).name[:5]
            for i, line in enumerate(lines, start=1):
                parsed = _parse(line, feed)
                if parsed is not None:
                    rows.append({**parsed, "source_file": f, "row_number": i, "feed": feed})
        df = pd.DataFrame(rows)
        is_b = (df["feed"] == "acq_b") & df["terminal_id"].isin(zones.index)
        for zone in zones[df.loc[is_b, "terminal_id"]].unique():
            m = is_b & (df["terminal_id"].map(zones) == zone)
            local = pd.DatetimeIndex(df.loc[m, "local"])
            utc = local.tz_localize(zone, ambiguous=np.ones(m.sum(), dtype=bool), nonexistent="shift_forward")
            df.loc[m, "utc"] = utc.tz_convert("UTC").tz_localize(None)
        self.rows = df

    def line(self, source_file: str, row_number: int) -> str:
        return self.lines[source_file][row_number - 1]

    def business_date(self, source_file: str) -> dt.date:
        return dt.date.fromisoformat(Path(source_file).name.split("_")[2][:10])


@pytest.fixture(scope="module")
def messy(tmp_path_factory) -> Landing:
    cfg = SimConfig(profile="realistic", rates=MESSY_RATES, **WORLD)
    data_dir = tmp_path_factory.mktemp("messy")
    simulate(data_dir, cfg)
    return Landing(data_dir, cfg)


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Landing:
    cfg = SimConfig(profile="realistic", clean=True, **WORLD)
    data_dir = tmp_path_factory.mktemp("clean")
    simulate(data_dir, cfg)
    return Landing(data_dir, cfg)


def test_every_file_follows_the_naming_contract(messy):
    for rel in messy.files:
        parsed = landing_names.parse(messy.root, messy.root / rel)
        assert parsed.recognised, rel
        assert parsed.source in landing_names.SOURCES
        ext = {
            "authorizations": ("csv.gz", "jsonl.gz"),
            "chargebacks": ("csv",),
            "cardholders": ("parquet",),
            "merchants": ("parquet",),
            "fx_rates": ("csv",),
        }[parsed.source]
        assert parsed.ext in ext, rel
        assert parsed.business_date <= parsed.landing_date <= messy.last_day.isoformat(), rel
        assert not landing_names.is_in_flight(Path(rel).name)


def test_clean_landing_zone_round_trips_to_the_ground_truth(clean):
    truth, rows = clean.truth, clean.rows
    assert clean.defects.empty
    assert (truth["landing_date"] == truth["tx_datetime"].dt.date).all()  # nothing late when clean
    assert rows["transaction_id"].is_unique
    assert len(rows) == len(truth)
    merged = truth.merge(rows, on="transaction_id", suffixes=("", "_landed"), validate="one_to_one")
    assert (merged["tx_datetime"] == merged["utc"]).all()
    assert (merged["pan"] == merged["pan_landed"]).all()
    assert (merged["terminal_id"] == merged["terminal_id_landed"]).all()
    assert np.allclose(merged["amount_original"], merged["amount"])
    for col in ("currency", "channel", "three_ds", "source_file", "feed"):
        assert (merged[col] == merged[f"{col}_landed"]).all(), col
    assert (merged["message_type"] == "auth").all()
    # Each file holds exactly its UTC business day.
    assert (merged["tx_datetime"].dt.date == merged["source_file"].map(clean.business_date)).all()
    # Reference snapshots and chargebacks agree with the world.
    assert set(clean.cardholders["pan"]) >= set(truth["pan"])
    assert set(clean.merchants["terminal_id"]) >= set(truth["terminal_id"])


def test_chargeback_files_hold_the_reports_of_their_day(clean):
    reports = pd.concat(
        pd.read_csv(clean.root / f, dtype={"pan": str}).assign(folder=Path(f).parent.name)
        for f in clean.files
        if f.startswith("chargebacks/")
    )
    reported = pd.to_datetime(reports["reported_at"].str.rstrip("Z"))
    assert (reported.dt.date.astype(str) == reports["folder"]).all()
    truth = clean.truth
    due = truth[(truth["tx_fraud"] == 1) & (truth["reported_at"].dt.date <= clean.last_day)]
    assert sorted(reports["transaction_id"]) == sorted(due["transaction_id"])
    assert (truth.loc[truth["tx_fraud"] == 0, "reported_at"].isna()).all()
    merged = reports.merge(truth, on="transaction_id", suffixes=("", "_truth"))
    assert (merged["pan"] == merged["pan_truth"]).all()
    assert (reported.to_numpy() == merged["reported_at_truth"].to_numpy()).all()


def test_the_simulator_draws_reason_codes_the_platform_classifies():
    fraud = (ref.REASON_VISA_CARD_PRESENT, ref.REASON_VISA_CARD_ABSENT, ref.REASON_MASTERCARD)
    assert {classify(c) for c in fraud} == {FRAUD}
    assert {classify(c) for c in ref.REASONS_VISA_NON_FRAUD + ref.REASONS_MASTERCARD_NON_FRAUD} == {NON_FRAUD}


def test_messy_chargebacks_are_fraud_reports_or_recorded_non_fraud_disputes(messy):
    files = [f for f in messy.files if f.startswith("chargebacks/")]
    reports = pd.concat(
        pd.read_csv(messy.root / f, dtype=str).assign(source_file=f, row_number=lambda x: x.index + 1)
        for f in files
    )
    kind = reports["reason_code"].map(classify)
    fraud = set(messy.truth.loc[messy.truth["tx_fraud"] == 1, "transaction_id"])
    assert set(kind) == {FRAUD, NON_FRAUD}
    assert reports.loc[kind == FRAUD, "transaction_id"].astype(int).isin(fraud).all()
    disputes = messy.defects[messy.defects["defect"] == "non_fraud_dispute"]
    recorded = set(zip(disputes["source_file"], disputes["row_number"], strict=True))
    landed = reports[kind == NON_FRAUD]
    assert set(zip(landed["source_file"], landed["row_number"], strict=True)) == recorded
    assert not set(landed["transaction_id"].astype(int)) & fraud


def test_fx_files_cover_every_non_euro_currency_every_day(clean):
    fx = [f for f in clean.files if f.startswith("fx_rates/")]
    assert len(fx) == clean.cfg.days
    day = pd.read_csv(clean.root / fx[0])
    assert list(day.columns) == ["rate_date", "base_currency", "quote_currency", "rate"]
    assert set(day["quote_currency"]) == set(clean.truth["currency"]) - {"EUR"}
    assert (day["base_currency"] == "EUR").all()
    assert (day["rate"] > 0).all()


def test_clean_run_injects_nothing(clean):
    assert not [f for f in clean.files if "_resend" in f or "_002" in f]
    assert all(lines is not None for lines in clean.lines.values())
    assert (clean.rows["transaction_id"] < EXTRA_ID_BASE).all()
    assert not clean.rows["pan"].str.contains("[ -]").any()


def _expected(messy: Landing, kind: str) -> tuple[float, int]:
    """(expected count, number of trials) of a defect kind in the landed files."""
    truth, rate, last = messy.truth, MESSY_RATES[kind], messy.last_day
    settled = last - dt.timedelta(days=SETTLED_DAYS)
    unit = DEFECT_UNITS[kind]
    if unit == "row":
        landed = truth[truth["landing_date"] <= last]
        if kind == "comma_decimal":
            landed = landed[(landed["feed"] == "acq_a") & (landed["currency"] != "JPY")]
        return rate * len(landed), len(landed)
    if unit == "file":
        per_day = truth.groupby([truth["tx_datetime"].dt.date, "feed"]).size()
        days = per_day.index.get_level_values(0)
        n = (
            int((days <= settled).sum())
            if kind in ("late_file", "truncated_file", "resent_file")
            else len(per_day)
        )
        return rate * n, n
    if unit == "transaction":  # disputed 1-30 days later: reported by the last day if this early
        genuine = truth[(truth["tx_fraud"] == 0) & (truth["tx_datetime"].dt.date <= _dispute_settled(messy))]
        return rate * len(genuine), len(genuine)
    reports = truth[(truth["tx_fraud"] == 1) & (truth["reported_at"].dt.date <= settled)]
    return rate * len(reports), len(reports)


def _dispute_settled(messy: Landing) -> dt.date:
    return messy.last_day - dt.timedelta(seconds=DISPUTE_DELAY_S[1])


def _observed(messy: Landing, kind: str) -> int:
    d = messy.defects[messy.defects["defect"] == kind]
    settled = messy.last_day - dt.timedelta(days=SETTLED_DAYS)
    if kind in ("late_file", "truncated_file", "resent_file"):
        return int((d["business_date"] <= settled).sum())
    if kind == "reversal":
        return len(d) // 2  # an authorisation and its reversal per event
    if kind == "midnight_reversal":
        return int((d["detail"] == "authorisation").sum())  # its reversal is in the next day's file
    if kind == "duplicate_chargeback":
        first_report = messy.truth.set_index("transaction_id")["reported_at"]
        return int((first_report[d["transaction_id"]].dt.date <= settled).sum())
    if kind == "non_fraud_dispute":
        tx_at = messy.truth.set_index("transaction_id")["tx_datetime"]
        return int((tx_at[d["transaction_id"]].dt.date <= _dispute_settled(messy)).sum())
    return len(d)


@pytest.mark.parametrize("kind", list(DEFECT_UNITS))
def test_each_defect_kind_appears_at_its_configured_rate(messy, kind):
    expected, trials = _expected(messy, kind)
    observed = _observed(messy, kind)
    p = MESSY_RATES[kind]
    sd = math.sqrt(trials * p * (1 - p))
    assert expected > 10, "the test world is too small to measure this kind"
    assert abs(observed - expected) <= 4 * sd + 2, f"{kind}: {observed} observed, {expected:.1f} expected"


@pytest.mark.parametrize("kind", list(DEFECT_UNITS))
def test_each_recorded_defect_is_where_the_ground_truth_says(messy, kind):
    d = messy.defects[messy.defects["defect"] == kind]
    assert len(d) > 0
    assert (d["expected_outcome"] == DEFECT_OUTCOMES[kind]).all()
    assert (d["landing_date"] <= messy.last_day).all()
    real_ids = set(messy.truth["transaction_id"])
    checks = {
        "pan_format": lambda r, p: (
            p["pan"].replace(" ", "").replace("-", "") != p["pan"]
            and luhn_valid(p["pan"].replace(" ", "").replace("-", ""))
        ),
        "comma_decimal": lambda r, p: (
            '"' in messy.line(r.source_file, r.row_number)
            and "," in next(csv.reader([messy.line(r.source_file, r.row_number)]))[4]
        ),
        "negative_amount": lambda r, p: p["amount"] < 0,
        "missing_terminal_id": lambda r, p: p["terminal_id"] is None,
        "unknown_terminal": lambda r, p: p["terminal_id"] not in set(messy.merchants["terminal_id"]),
        "invalid_pan": lambda r, p: not luhn_valid(p["pan"]),
        "unknown_currency": lambda r, p: p["currency"] not in set(messy.truth["currency"]),
        "future_timestamp": lambda r, p: _utc(messy, p) > pd.Timestamp.now(),
        "outside_business_date": lambda r, p: _utc(messy, p).date() < messy.business_date(r.source_file),
    }
    for r in d.itertuples():
        if kind in ("late_file", "truncated_file", "resent_file", "out_of_order"):
            _check_file_defect(messy, kind, r)
            continue
        if kind == "duplicate_chargeback":
            reports = pd.read_csv(messy.root / r.source_file)
            assert reports.iloc[r.row_number - 1]["transaction_id"] == r.transaction_id
            continue
        if kind == "non_fraud_dispute":
            report = pd.read_csv(messy.root / r.source_file, dtype=str).iloc[r.row_number - 1]
            tx = messy.truth.set_index("transaction_id").loc[r.transaction_id]
            assert int(report["transaction_id"]) == r.transaction_id
            assert report["reason_code"] == r.detail
            assert classify(r.detail) == NON_FRAUD
            assert tx["tx_fraud"] == 0, "only genuine transactions are disputed for other reasons"
            assert report["pan"] == tx["pan"]
            delay = pd.Timestamp(report["reported_at"].rstrip("Z")) - tx["tx_datetime"]
            assert pd.Timedelta(days=1) <= delay < pd.Timedelta(days=30)
            continue
        line = messy.line(r.source_file, r.row_number)
        feed = Path(r.source_file).name[:5]
        parsed = _parse(line, feed)
        if kind in ("malformed_line", "huge_line"):
            assert parsed is None, line[:200]
            if kind == "huge_line":
                assert len(line) > MAX_LINE_CHARS
            continue
        assert parsed is not None
        assert parsed["transaction_id"] == r.transaction_id
        repaired = DEFECT_OUTCOMES[kind] == "repaired"
        assert (r.transaction_id in real_ids) == repaired, "repairs touch real rows, the rest are extras"
        if kind == "duplicate":
            same = [ln for ln in messy.lines[r.source_file] if ln == line]
            assert len(same) >= 2
        elif kind == "reversal":
            if parsed["message_type"] == "reversal":
                same_file = messy.rows[messy.rows["source_file"] == r.source_file]
                auth = same_file[same_file["transaction_id"] == parsed["original_transaction_id"]]
                assert len(auth) == 1, "a reversal follows its authorisation in the same file"
                assert auth["message_type"].iloc[0] == "auth"
        elif kind == "midnight_reversal":
            _check_midnight_pair(messy, r, parsed)
        else:
            assert checks[kind](r, parsed), (kind, line)


def _check_midnight_pair(messy: Landing, r, parsed: dict) -> None:
    """An authorisation in the last 10 minutes of its business date; its reversal in the next date's file
    of the same feed, in the first 10 minutes, with its card, amount and currency."""
    business = pd.Timestamp(messy.business_date(r.source_file))
    at, window = _utc(messy, parsed), pd.Timedelta(minutes=10)
    if r.detail == "authorisation":
        assert parsed["message_type"] == "auth"
        assert business + pd.Timedelta(days=1) - window <= at < business + pd.Timedelta(days=1)
        return
    assert parsed["message_type"] == "reversal"
    assert business <= at < business + window
    auth = messy.rows[messy.rows["transaction_id"] == parsed["original_transaction_id"]]
    if auth.empty:
        return  # its own day's file has not landed (yet)
    for a in auth.itertuples():
        assert messy.business_date(a.source_file) == (business - pd.Timedelta(days=1)).date()
        assert a.feed == Path(r.source_file).name[:5]
        assert a.message_type == "auth"
        assert (a.pan, a.amount, a.currency) == (parsed["pan"], parsed["amount"], parsed["currency"])


def _utc(messy: Landing, parsed: dict) -> pd.Timestamp:
    if parsed["utc"] is not None:
        return parsed["utc"]
    zone = messy.merchants.set_index("terminal_id")["timezone"][parsed["terminal_id"]]
    return parsed["local"].tz_localize(zone).tz_convert("UTC").tz_localize(None)


def _check_file_defect(messy: Landing, kind: str, r) -> None:
    path = messy.root / r.source_file
    business = messy.business_date(r.source_file)
    canonical = messy.truth.loc[
        (messy.truth["tx_datetime"].dt.date == business)
        & (messy.truth["feed"] == Path(r.source_file).name[:5]),
        "source_file",
    ].unique()
    assert len(canonical) == 1
    if kind == "truncated_file":
        assert messy.lines[r.source_file] is None
        assert canonical[0].endswith(("_002.csv.gz", "_002.jsonl.gz"))
        resent = messy.root / canonical[0]
        if resent.exists():
            assert messy.lines[canonical[0]] is not None
    elif kind == "resent_file":
        assert "_resend" in r.source_file
        assert path.read_bytes() == (messy.root / canonical[0]).read_bytes()
    elif kind == "late_file":
        assert r.landing_date > business
        assert r.source_file == canonical[0]
    else:  # out_of_order
        ts = messy.rows.loc[messy.rows["source_file"] == r.source_file].sort_values("row_number")
        real = ts[ts["transaction_id"] < EXTRA_ID_BASE]
        assert not real["utc"].is_monotonic_increasing


def test_every_real_transaction_of_a_landed_file_is_there_once_besides_retransmissions(messy):
    landed = messy.truth[messy.truth["landing_date"] <= messy.last_day]
    rows = messy.rows[messy.rows["transaction_id"] < EXTRA_ID_BASE]
    canonical = rows[rows["source_file"].isin(set(landed["source_file"]))]
    counts = canonical.groupby("transaction_id").size()
    dup_ids = set(messy.defects.loc[messy.defects["defect"] == "duplicate", "transaction_id"])
    assert set(counts.index) == set(landed["transaction_id"])
    assert set(counts[counts > 1].index) <= dup_ids
    # Extras never collide with real ids and stay below 10^12 (13+ digits would look like a PAN).
    extras = messy.rows[messy.rows["transaction_id"] >= EXTRA_ID_BASE]
    assert extras["transaction_id"].max() < 10**12
    assert not set(extras["transaction_id"]) & set(messy.truth["transaction_id"])


def test_same_seed_same_bytes(tmp_path):
    cfg = SimConfig(profile="realistic", rates=MESSY_RATES, days=15, customers=150, terminals=300)
    simulate(tmp_path / "a", cfg)
    simulate(tmp_path / "b", cfg)
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert a == b
    assert any(k.endswith(".csv.gz") for k in a)
    assert any(k.endswith(".jsonl.gz") for k in a)


def test_non_fraud_disputes_change_only_the_chargeback_files(tmp_path):
    """Their own stream: a messy world's authorisation files and frauds are the same with or without them
    (stream keys of the older kinds are pinned, so adding a kind moved none)."""
    from fraud_assets.simulator import mess

    assert mess.ORDER_STREAM == 18 == mess.KIND_INDEX["duplicate_chargeback"] + 1
    kw = {"profile": "realistic", "days": 12, "customers": 150, "terminals": 300}
    simulate(tmp_path / "without", SimConfig(rates={**MESSY_RATES, "non_fraud_dispute": 0.0}, **kw))
    simulate(tmp_path / "with", SimConfig(rates=MESSY_RATES, **kw))
    without, with_ = _tree(tmp_path / "without" / "landing"), _tree(tmp_path / "with" / "landing")
    changed = {k for k in without.keys() | with_.keys() if without.get(k) != with_.get(k)}
    assert changed
    assert all(k.startswith("chargebacks/") for k in changed), changed


@pytest.mark.parametrize("shards", [1, 2])
def test_append_days_writes_what_one_longer_run_would_have(tmp_path, shards):
    kw = {"profile": "realistic", "rates": MESSY_RATES, "customers": 150, "terminals": 300, "shards": shards}
    simulate(tmp_path / "long", SimConfig(days=24, **kw))
    simulate(tmp_path / "short", SimConfig(days=10, **kw))
    before = _tree(tmp_path / "short")
    append_days(tmp_path / "short", 6)
    append_days(tmp_path / "short", 8)
    after = _tree(tmp_path / "short")
    assert after == _tree(tmp_path / "long")
    landing_before = {k: v for k, v in before.items() if k.startswith("landing/")}
    assert all(after[k] == v for k, v in landing_before.items()), "appending never rewrites a landed file"


def test_shards_are_worlds_of_their_own_with_disjoint_ids_cards_and_files(tmp_path):
    cfg = SimConfig(profile="realistic", rates=MESSY_RATES, days=12, customers=150, terminals=300, shards=3)
    summary = simulate(tmp_path, cfg)
    truth = pd.read_parquet(tmp_path / "ground_truth" / "transactions.parquet")
    assert summary["transactions"] == len(truth)
    assert summary["shards"] == 3
    assert truth["transaction_id"].is_unique
    assert truth["transaction_id"].max() < EXTRA_ID_BASE
    shard = truth["transaction_id"] // 10**9
    assert sorted(shard.unique()) == [0, 1, 2]
    # one card number per customer, never shared across shards; each shard's ids in its own range
    assert (truth.groupby("pan")["customer_id"].nunique() == 1).all()
    assert (truth.groupby("customer_id")["pan"].nunique() == 1).all()
    assert (truth["customer_id"] // cfg.customers == shard).all()
    assert (truth["terminal_id"] // cfg.terminals == shard).all()
    # shard 0 is the world of the seed itself (its card numbers aside: each shard has its account slice)
    alone = generate_world(SimConfig(profile="realistic", days=12, customers=150, terminals=300))
    first = truth[shard == 0].sort_values("transaction_id").reset_index(drop=True)
    alone_tx = alone.transactions.sort_values("transaction_id").reset_index(drop=True)
    for column in ("transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount", "tx_fraud"):
        assert first[column].tolist() == alone_tx[column].tolist(), column
    files = [p.relative_to(tmp_path / "landing").as_posix() for p in (tmp_path / "landing").rglob("*.*")]
    by_source: dict[str, list[landing_names.FileName]] = {}
    for rel in files:
        name = landing_names.parse_name(rel.rsplit("/", 1)[1])
        assert name is not None, rel
        by_source.setdefault(rel.split("/", 1)[0], []).append(name)
    for source in ("authorizations", "chargebacks", "cardholders"):
        assert {n.suffix.split("_")[0] for n in by_source[source]} == {"s000", "s001", "s002"}, source
    # the latest merchants snapshot is the whole truth about terminals: one file lists every shard's
    [merchants] = (tmp_path / "landing").rglob("merchants_*.parquet")
    terminals = pd.read_parquet(merchants)
    assert len(terminals) == 3 * cfg.terminals
    assert terminals["terminal_id"].is_unique
    assert (
        terminals.groupby("merchant_id")["terminal_id"].min().floordiv(cfg.terminals).is_monotonic_increasing
    )
    assert len(by_source["fx_rates"]) == cfg.days  # the world's rates, once
    # rows the platform must quarantine carry fresh ids, unique across shards and below 13 digits
    defects = pd.read_parquet(tmp_path / "ground_truth" / "defects.parquet")
    extra = defects.loc[defects["transaction_id"] >= EXTRA_ID_BASE, ["transaction_id", "source_file"]]
    assert len(extra) > 0
    assert extra["transaction_id"].max() < 10**12
    assert extra.drop_duplicates()["transaction_id"].is_unique


def test_cli_help_lists_every_option_and_defect(capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in (
        "--profile",
        "--start",
        "--days",
        "--customers",
        "--terminals",
        "--seed",
        "--data-dir",
        "--clean",
        "--handbook-labels",
        "--label-delay-days",
        "--append-days",
        "--rate",
        "--shards",
    ):
        assert option in out
    assert all(kind in out for kind in DEFAULT_RATES)


def test_exact_delay_mode_reports_every_fraud_exactly_that_many_days_later(tmp_path):
    small = [
        "--start",
        "2018-04-01",
        "--days",
        "20",
        "--customers",
        "150",
        "--terminals",
        "300",
        "--clean",
        "--quiet",
    ]
    assert cli_main(["--label-delay-days", "7", "--data-dir", str(tmp_path), *small]) == 0
    files = sorted((tmp_path / "landing" / "chargebacks").rglob("*.csv"))
    reports = pd.concat(pd.read_csv(f).assign(folder=f.parent.name) for f in files)
    tx_at = pd.to_datetime(reports["tx_datetime"].str.rstrip("Z"))
    reported = pd.to_datetime(reports["reported_at"].str.rstrip("Z"))
    assert len(reports) > 0
    assert ((reported - tx_at) == pd.Timedelta(days=7)).all()
    assert ((reported.dt.normalize() - tx_at.dt.normalize()) == pd.Timedelta(days=7)).all()
    assert (reported.dt.date.astype(str) == reports["folder"]).all()  # each lands on its report day
    truth = pd.read_parquet(tmp_path / "ground_truth" / "transactions.parquet")
    due = truth[(truth["tx_fraud"] == 1) & (truth["tx_datetime"] < pd.Timestamp("2018-04-14"))]
    assert sorted(reports["transaction_id"]) == sorted(due["transaction_id"])


def test_cli_writes_then_refuses_to_mix_worlds_then_appends(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FRAUD_DATA_DIR", str(tmp_path))
    small = ["--days", "5", "--customers", "100", "--terminals", "200", "--quiet"]
    assert cli_main(["--profile", "handbook", "--rate", "duplicate=0.05", *small]) == 0
    state = json.loads((tmp_path / "ground_truth" / "simulator_state.json").read_text())
    assert state["config"]["profile"] == "handbook"
    assert state["config"]["rates"] == {"duplicate": 0.05}
    with pytest.raises(SystemExit):
        cli_main(small)  # the landing zone already holds another world
    assert "--append-days" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["--append-days", "2", "--seed", "4"])  # append continues the stored world
    assert cli_main(["--append-days", "2", "--quiet"]) == 0
    assert json.loads((tmp_path / "ground_truth" / "simulator_state.json").read_text())["config"]["days"] == 7
    with pytest.raises(SystemExit):
        cli_main(["--rate", "gremlins=0.1", *small])
