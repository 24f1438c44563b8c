"""Writing a simulated world as the feeds would deliver it (docs/landing-zone.md), plus the ground
truth the pipeline never reads.

`$FRAUD_DATA_DIR/landing/<source>/<landing-date>/<feed>_<business-date>[_<suffix>].<ext>`:
authorisations per UTC business day and processor (acq_a CSV.gz, acq_b JSONL.gz), chargebacks per
report day, FX rates per rate day (realistic profile), cardholder and merchant snapshots on the
first day. A file is written only once its landing date is within the simulated days; later ones
(late files, re-sends, chargebacks reported after the last day) arrive with `--append-days`.

`$FRAUD_DATA_DIR/ground_truth/`: `transactions.parquet` (the clean world, with the file each
transaction is ingested from), `defects.parquet` (every injected defect in the landed files, with
the platform outcome expected for it) and `simulator_state.json` (what `--append-days` continues).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from fraud_assets.lib.landing import file_name
from fraud_assets.simulator import reference as ref
from fraud_assets.simulator.config import DEFECT_OUTCOMES, TAG_CHARGEBACK_MESS, TAG_DISPUTE, SimConfig
from fraud_assets.simulator.feeds import Rows, parquet_bytes, render_chargebacks, render_fx, take
from fraud_assets.simulator.mess import (
    FEEDS,
    FeedDay,
    LandedFile,
    build_feed_day,
    midnight_pairs,
    shard_suffix,
)
from fraud_assets.simulator.world import DAY_SECONDS, World, generate_world

GROUND_TRUTH_DIR = "ground_truth"
STATE_FILE = "simulator_state.json"
DUPLICATE_REPORT_DELAY_S = (3_600, 10 * DAY_SECONDS)
# A non-fraud dispute (not received, not as described, ...) is reported 1 to 30 days after its transaction.
DISPUTE_DELAY_S = (DAY_SECONDS, 30 * DAY_SECONDS)

DEFECT_COLUMNS = (
    "defect",
    "transaction_id",
    "source_file",
    "row_number",
    "expected_outcome",
    "business_date",
    "landing_date",
    "detail",
)


def _atomic_write(path: Path, data: bytes) -> None:
    """The contract's atomic delivery: a dot-file first, renamed when complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _minor_units(tx: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(amount in minor units, ISO 4217 exponent) of `amount_original`, as the feeds carry it."""
    exponent = tx["currency"].map(ref.CURRENCY_EXPONENT).to_numpy(dtype=np.int64)
    return np.round(tx["amount_original"].to_numpy() * 10.0**exponent).astype(np.int64), exponent


def _auth_rows(world: World) -> Rows:
    tx = world.transactions
    amount_minor, exponent = _minor_units(tx)
    n = len(tx)
    return {
        "transaction_id": tx["transaction_id"].to_numpy(),
        "utc": tx["tx_datetime"].to_numpy().astype("datetime64[s]"),
        "local": tx["tx_datetime_local"].to_numpy().astype("datetime64[s]"),
        "pan": tx["pan"].to_numpy(dtype=object),
        "terminal_id": tx["terminal_id"].to_numpy(),
        "amount_minor": amount_minor,
        "exponent": exponent,
        "currency": tx["currency"].to_numpy(dtype=object),
        "channel": tx["channel"].to_numpy(dtype=object),
        "three_ds": tx["three_ds"].to_numpy(dtype=object),
        "message_type": np.full(n, "auth", dtype=object),
        "original_transaction_id": np.full(n, -1, dtype=np.int64),
    }


def _day_index(world: World, values: np.ndarray) -> np.ndarray:
    start = np.datetime64(world.start, "s")
    return (values.astype("datetime64[s]") - start).astype(np.int64) // DAY_SECONDS


def _authorization_days(world: World, progress: bool) -> list[dict[str, FeedDay]]:
    rows = _auth_rows(world)
    day = _day_index(world, rows["utc"])
    bounds = np.searchsorted(day, np.arange(world.config.days + 1))
    is_b = world.transactions["feed"].to_numpy() == "acq_b"

    carries = world.config.rate("midnight_reversal") > 0  # a file holds the day before's late reversals

    def feed_rows(d: int, feed: str) -> np.ndarray:
        span = np.arange(bounds[d], bounds[d + 1])
        return span[is_b[span] == (feed == "acq_b")]

    def build(d: int) -> dict[str, FeedDay]:
        out = {}
        for feed in FEEDS:
            idx = feed_rows(d, feed)
            previous = take(rows, feed_rows(d - 1, feed)) if carries and d > 0 else None
            # a day without rows of its own still has a file when it carries the day before's reversals
            if len(idx) or (
                previous is not None and len(midnight_pairs(world.config, d - 1, feed, previous)[1]["utc"])
            ):
                out[feed] = build_feed_day(world.config, d, feed, take(rows, idx), previous)
        return out

    days = range(world.config.days)
    # zlib and pyarrow release the GIL: two threads nearly halve the wall time on two cores.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        it = pool.map(build, days)
        return list(
            tqdm(
                it,
                total=len(days),
                desc="writing feeds",
                unit="day",
                disable=None if progress else True,
                leave=False,
            )
        )


def _report_rows(world: World, tx: pd.DataFrame, reported: np.ndarray, reason: np.ndarray) -> Rows:
    """Chargeback report columns of the transactions `tx`, reported at `reported` with `reason`."""
    amount_minor, exponent = _minor_units(tx)
    return {
        "transaction_id": tx["transaction_id"].to_numpy(),
        "pan": tx["pan"].to_numpy(dtype=object),
        "tx_datetime": tx["tx_datetime"].to_numpy().astype("datetime64[s]"),
        "reported_at": reported,
        "reason_code": reason,
        "amount_minor": amount_minor,
        "exponent": exponent,
        "currency": tx["currency"].to_numpy(dtype=object),
        "copy": np.ones(len(tx), dtype=np.int64),
    }


def _disputes(world: World) -> Rows:
    """Non-fraud disputes (messy worlds only): each genuine transaction is disputed with probability
    `non_fraud_dispute`, drawn per transaction day (so appended days reproduce a longer run), reported
    1-30 days later with a non-fraud reason code of its card's scheme."""
    cfg = world.config
    tx = world.transactions
    rate = cfg.rate("non_fraud_dispute")
    day = _day_index(world, tx["tx_datetime"].to_numpy())
    bounds = np.searchsorted(day, np.arange(cfg.days + 1))
    genuine = tx["tx_fraud"].to_numpy() == 0
    picked, delays, codes = [], [], []
    for d in range(cfg.days if rate > 0 else 0):
        lo, hi = bounds[d], bounds[d + 1]
        r = cfg.rng(TAG_DISPUTE, d)
        hit = (r.random(hi - lo) < rate) & genuine[lo:hi]
        delay = r.integers(*DISPUTE_DELAY_S, hi - lo)
        code = r.random(hi - lo)
        picked.append(np.arange(lo, hi)[hit])
        delays.append(delay[hit])
        codes.append(code[hit])
    idx = np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)
    disputed = tx.iloc[idx]
    reported = disputed["tx_datetime"].to_numpy().astype("datetime64[s]") + np.concatenate(
        delays or [np.zeros(0, dtype=np.int64)]
    ).astype("timedelta64[s]")
    u = np.concatenate(codes or [np.zeros(0)])
    visa_codes = np.array(ref.REASONS_VISA_NON_FRAUD, dtype=object)
    mc_codes = np.array(ref.REASONS_MASTERCARD_NON_FRAUD, dtype=object)
    visa = np.char.startswith(disputed["pan"].to_numpy(dtype=object).astype(str), "4")
    reason = np.where(
        visa, visa_codes[(u * len(visa_codes)).astype(int)], mc_codes[(u * len(mc_codes)).astype(int)]
    ).astype(object)
    return _report_rows(world, disputed, reported, reason)


def _chargebacks(world: World) -> tuple[list[LandedFile], list[tuple]]:
    """Chargeback files per report day (up to the last simulated day): fraud reports, duplicate-report
    defects and non-fraud disputes."""
    cfg = world.config
    tx = world.transactions
    fraud = tx[tx["tx_fraud"] == 1]
    reported = fraud["reported_at"].to_numpy().astype("datetime64[s]")
    report_day = _day_index(world, reported)
    order = np.lexsort((fraud["transaction_id"].to_numpy(), reported))
    fraud, reported, report_day = fraud.iloc[order], reported[order], report_day[order]
    visa = np.char.startswith(fraud["pan"].to_numpy(dtype=object).astype(str), "4")
    ecom = fraud["channel"].to_numpy() == "ecommerce"
    reason = np.where(
        visa, np.where(ecom, ref.REASON_VISA_CARD_ABSENT, ref.REASON_VISA_CARD_PRESENT), ref.REASON_MASTERCARD
    ).astype(object)
    base = _report_rows(world, fraud, reported, reason)
    # Duplicate reports: drawn per original report day, arriving 1 hour to 10 days later.
    dup_idx, dup_at = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype="datetime64[s]")]
    bounds = np.searchsorted(report_day, np.arange(cfg.days + 1))
    for d in range(cfg.days):
        lo, hi = bounds[d], bounds[d + 1]
        r = cfg.rng(TAG_CHARGEBACK_MESS, d)
        hit = r.random(hi - lo) < cfg.rate("duplicate_chargeback")
        delay = r.integers(*DUPLICATE_REPORT_DELAY_S, hi - lo)
        dup_idx.append(np.arange(lo, hi)[hit])
        dup_at.append(reported[lo:hi][hit] + delay[hit].astype("timedelta64[s]"))
    dups = np.concatenate(dup_idx)
    disputes = _disputes(world)
    reports = {k: np.concatenate([v, v[dups], disputes[k]]) for k, v in base.items()}
    reports["reported_at"] = np.concatenate([reported, np.concatenate(dup_at), disputes["reported_at"]])
    reports["copy"] = np.concatenate([base["copy"], np.full(len(dups), 2, dtype=np.int64), disputes["copy"]])
    is_dispute = np.arange(len(reports["copy"])) >= len(base["copy"]) + len(dups)
    day = _day_index(world, reports["reported_at"])
    keep = np.flatnonzero(day < cfg.days)
    keep = keep[
        np.lexsort((reports["copy"][keep], reports["transaction_id"][keep], reports["reported_at"][keep]))
    ]
    reports = {k: v[keep] for k, v in reports.items()}
    day, is_dispute = day[keep], is_dispute[keep]
    cb_id = pc.binary_join_element_wise(
        "CB",
        pc.cast(pa.array(reports["transaction_id"]), pa.string()),
        "-",
        pc.cast(pa.array(reports["copy"]), pa.string()),
        "",
    ).to_numpy(zero_copy_only=False)
    files, defects = [], []
    bounds = np.searchsorted(day, np.arange(cfg.days + 1))
    for d in range(cfg.days):
        lo, hi = bounds[d], bounds[d + 1]
        if lo == hi:
            continue  # a header-only file would be a defect: no reports, no file
        s = slice(lo, hi)
        data = render_chargebacks(
            cb_id[s],
            reports["transaction_id"][s],
            reports["pan"][s],
            reports["tx_datetime"][s],
            reports["reported_at"][s],
            reports["reason_code"][s],
            reports["amount_minor"][s],
            reports["exponent"][s],
            reports["currency"][s],
        )
        f = LandedFile("chargebacks", d, file_name("chargebacks", world.day(d), shard_suffix(cfg)), data)
        files.append(f)
        for j in np.flatnonzero(reports["copy"][s] == 2):
            defects.append(
                ("duplicate_chargeback", int(reports["transaction_id"][lo + j]), f, int(j) + 1, "", d)
            )
        for j in np.flatnonzero(is_dispute[s]):
            tid, code = int(reports["transaction_id"][lo + j]), str(reports["reason_code"][lo + j])
            defects.append(("non_fraud_dispute", tid, f, int(j) + 1, code, d))
    return files, defects


def _fx_files(world: World) -> list[LandedFile]:
    fx = world.fx_rates
    if fx.empty:
        return []
    files = []
    dates = fx["rate_date"].dt.date.to_numpy()
    for d in range(world.config.days):
        date = world.day(d)
        part = fx[dates == date]
        data = render_fx(date.isoformat(), list(part["quote_currency"]), list(part["rate"]), ref.FX_DECIMALS)
        files.append(LandedFile("fx_rates", d, file_name("fx_rates", date), data))
    return files


def _reference_files(world: World) -> list[LandedFile]:
    c = world.customers
    cardholders = pa.table(
        {
            "customer_id": pa.array(c["customer_id"], pa.int64()),
            "pan": pa.array(c["pan"], pa.string()),
            "home_x": pa.array(c["home_x"], pa.float64()),
            "home_y": pa.array(c["home_y"], pa.float64()),
            "home_country": pa.array(c["home_country"], pa.string()),
            "issued_at": pa.array(c["issued_at"].dt.date, pa.date32()),
        }
    )
    name = file_name("cardholders", world.start, shard_suffix(world.config))
    cards = LandedFile("cardholders", 0, name, parquet_bytes(cardholders))
    return [cards, _merchants_file(world.terminals, world.start)]


def _merchants_file(t: pd.DataFrame, start: dt.date) -> LandedFile:
    """The merchants snapshot of the first day. A snapshot is the whole truth about terminals from its date
    on (a terminal it does not list is dropped from then: cleaned/terminals), so a world of several shards
    delivers one file listing all of theirs."""
    merchants = pa.table(
        {
            "terminal_id": pa.array(t["terminal_id"], pa.int64()),
            "merchant_id": pa.array(t["merchant_id"], pa.int64()),
            "mcc": pa.array(t["mcc"], pa.string()),
            "country": pa.array(t["country"], pa.string()),
            "currency": pa.array(t["currency"], pa.string()),
            "timezone": pa.array(t["timezone"], pa.string()),
            "x": pa.array(t["x"], pa.float64()),
            "y": pa.array(t["y"], pa.float64()),
        }
    )
    return LandedFile("merchants", 0, file_name("merchants", start), parquet_bytes(merchants))


def _shard_files(world: World, progress: bool) -> tuple[list[LandedFile], np.ndarray, np.ndarray, list]:
    """Every file of one shard's world (whatever its landing day), the file and landing date each of its
    transactions is ingested from, and its defect rows."""
    cfg = world.config
    auth_days = _authorization_days(world, progress)
    cb_files, cb_defects = _chargebacks(world)
    files: list[LandedFile] = [*_reference_files(world), *cb_files]
    if cfg.shard == 0:
        files += _fx_files(world)  # the world's rates, one set for every shard
    defect_rows: list[tuple] = []
    source_file = np.empty(len(world.transactions), dtype=object)
    landing_date = np.empty(len(world.transactions), dtype="datetime64[D]")
    bounds = np.searchsorted(
        _day_index(world, world.transactions["tx_datetime"].to_numpy()), np.arange(cfg.days + 1)
    )
    is_b = world.transactions["feed"].to_numpy() == "acq_b"
    start = np.datetime64(world.start, "D")
    for d, feeds in enumerate(auth_days):
        span = np.arange(bounds[d], bounds[d + 1])
        for feed, fd in feeds.items():
            idx = span[is_b[span] == (feed == "acq_b")]
            files += fd.files
            source_file[idx] = fd.canonical.relative(world.start)
            landing_date[idx] = start + np.timedelta64(fd.canonical.landing_day, "D")
            defect_rows += [(*defect, d) for defect in fd.defects]
    return files, source_file, landing_date, defect_rows + cb_defects


def simulate(data_dir: str | Path, cfg: SimConfig, progress: bool = False, first_new_day: int = 0) -> dict:
    """Generate the world of `cfg` shard by shard, write every landing file whose landing day is within
    [first_new_day, cfg.days), rewrite the ground truth; returns counts and timings. Memory holds one
    shard at a time (and every shard's terminals, for the one merchants snapshot)."""
    data_dir = Path(data_dir)
    landing_root = data_dir / "landing"
    last = cfg.days - 1
    seconds = Counter()
    written, scenarios = Counter(), Counter()
    transactions = frauds = 0
    defects, terminals = [], []

    def write(files: list[LandedFile], start: dt.date) -> None:
        for f in files:
            if first_new_day <= f.landing_day <= last:
                _atomic_write(landing_root / f.relative(start), f.data)
                written[f.source] += 1

    with _GroundTruth(data_dir, cfg) as truth:
        shards = tqdm(range(cfg.shards), desc="shards", unit="shard", disable=cfg.shards == 1 or not progress)
        for shard in shards:
            t0 = time.perf_counter()
            world = generate_world(cfg.shard_config(shard), progress=progress)
            t1 = time.perf_counter()
            files, source_file, landing_date, defect_rows = _shard_files(world, progress)
            if cfg.shards > 1:  # the merchants snapshot lists every terminal: written once, below
                terminals.append(world.terminals)
                files = [f for f in files if f.source != "merchants"]
            write(files, world.start)
            defects.append(_defects_frame(world, [row for row in defect_rows if row[2].landing_day <= last]))
            truth.add(world.transactions, source_file, landing_date)
            tx = world.transactions
            transactions += len(tx)
            frauds += int(tx["tx_fraud"].sum())
            scenarios.update(tx["tx_fraud_scenario"].value_counts().to_dict())
            seconds["generation"] += t1 - t0
            seconds["writing"] += time.perf_counter() - t1
            del world, tx, files
        t1 = time.perf_counter()
        if terminals:
            write([_merchants_file(pd.concat(terminals, ignore_index=True), cfg.start_date)], cfg.start_date)
        all_defects = _sorted_defects(pd.concat(defects, ignore_index=True))
        truth.close(all_defects)
        seconds["writing"] += time.perf_counter() - t1

    return {
        "data_dir": str(data_dir),
        "profile": cfg.profile,
        "first_day": cfg.start_date.isoformat(),
        "last_day": (cfg.start_date + dt.timedelta(days=last)).isoformat(),
        "days": cfg.days,
        "shards": cfg.shards,
        "transactions": transactions,
        "frauds": frauds,
        "fraud_rate": frauds / transactions if transactions else 0.0,
        "scenario_counts": {int(k): int(v) for k, v in sorted(scenarios.items())},
        "files_written": dict(sorted(written.items())),
        "defects": dict(sorted(Counter(all_defects["defect"]).items())),
        "generation_seconds": round(seconds["generation"], 3),
        "writing_seconds": round(seconds["writing"], 3),
    }


def _defects_frame(world: World, rows: list[tuple]) -> pd.DataFrame:
    start = world.start
    records = [
        {
            "defect": kind,
            "transaction_id": tid if tid >= 0 else None,
            "source_file": f.relative(start),
            "row_number": row if row >= 0 else None,
            "expected_outcome": DEFECT_OUTCOMES[kind],
            "business_date": start + dt.timedelta(days=int(bday)),
            "landing_date": start + dt.timedelta(days=f.landing_day),
            "detail": detail,
        }
        for kind, tid, f, row, detail, bday in rows
    ]
    df = pd.DataFrame.from_records(records, columns=list(DEFECT_COLUMNS))
    df["transaction_id"] = df["transaction_id"].astype("Int64")
    df["row_number"] = df["row_number"].astype("Int64")
    df["business_date"] = pd.to_datetime(df["business_date"]).dt.date
    df["landing_date"] = pd.to_datetime(df["landing_date"]).dt.date
    return _sorted_defects(df)


def _sorted_defects(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(
        ["source_file", "row_number", "defect"], na_position="first", kind="stable"
    ).reset_index(drop=True)


class _GroundTruth:
    """`ground_truth/`: the transactions of every shard streamed into one Parquet file, then the
    defects and the simulator state; each file replaces the old one only when complete."""

    def __init__(self, data_dir: Path, cfg: SimConfig):
        self.dir = data_dir / GROUND_TRUTH_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cfg = cfg
        self.tmp = self.dir / ".transactions.parquet.tmp"
        self.writer: pq.ParquetWriter | None = None

    def __enter__(self) -> _GroundTruth:
        return self

    def add(self, tx: pd.DataFrame, source_file: np.ndarray, landing_date: np.ndarray) -> None:
        columns = {c: pa.array(tx[c].to_numpy(), from_pandas=True) for c in tx.columns}  # no pandas copy
        columns["source_file"] = pa.array(source_file, pa.string())
        columns["landing_date"] = pa.array(landing_date)  # datetime64[D] -> date32
        table = pa.table(columns)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.tmp, table.schema, compression="zstd", coerce_timestamps="us")
        self.writer.write_table(table.cast(self.writer.schema))

    def close(self, defects: pd.DataFrame) -> None:
        self.writer.close()
        self.writer = None
        os.replace(self.tmp, self.dir / "transactions.parquet")
        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pandas(defects, preserve_index=False), sink, compression="zstd")
        _atomic_write(self.dir / "defects.parquet", sink.getvalue().to_pybytes())
        last_day = self.cfg.start_date + dt.timedelta(days=self.cfg.days - 1)
        state = {"config": self.cfg.to_state(), "last_day": last_day.isoformat()}
        _atomic_write(self.dir / STATE_FILE, (json.dumps(state, indent=2, sort_keys=True) + "\n").encode())

    def __exit__(self, *exc) -> None:
        if self.writer is not None:  # an error before close(): keep the previous ground truth
            self.writer.close()
            self.tmp.unlink(missing_ok=True)


def load_state(data_dir: str | Path) -> SimConfig:
    path = Path(data_dir) / GROUND_TRUTH_DIR / STATE_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: --append-days continues a run made by this simulator")
    return SimConfig.from_state(json.loads(path.read_text())["config"])


def append_days(data_dir: str | Path, days: int, progress: bool = False) -> dict:
    """Continue the world in `data_dir` by `days` days: regenerate it longer (the first days come out
    identical) and write only the files whose landing day is new."""
    if days < 1:
        raise ValueError("append at least one day")
    cfg = load_state(data_dir)
    return simulate(data_dir, cfg.with_days(cfg.days + days), progress=progress, first_new_day=cfg.days)
