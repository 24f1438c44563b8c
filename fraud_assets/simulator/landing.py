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
from fraud_assets.simulator.config import DEFECT_OUTCOMES, TAG_CHARGEBACK_MESS, SimConfig, rng
from fraud_assets.simulator.feeds import Rows, parquet_bytes, render_chargebacks, render_fx, take
from fraud_assets.simulator.mess import FEEDS, FeedDay, LandedFile, build_feed_day
from fraud_assets.simulator.world import DAY_SECONDS, World, generate_world

GROUND_TRUTH_DIR = "ground_truth"
STATE_FILE = "simulator_state.json"
DUPLICATE_REPORT_DELAY_S = (3_600, 10 * DAY_SECONDS)

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

    def build(d: int) -> dict[str, FeedDay]:
        span = np.arange(bounds[d], bounds[d + 1])
        out = {}
        for feed in FEEDS:
            idx = span[is_b[span] == (feed == "acq_b")]
            if len(idx):
                out[feed] = build_feed_day(world.config, d, feed, take(rows, idx), world.config.terminals)
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


def _chargebacks(world: World) -> tuple[list[LandedFile], list[tuple]]:
    """Chargeback files per report day (up to the last simulated day) and duplicate-report defects."""
    cfg = world.config
    tx = world.transactions
    fraud = tx[tx["tx_fraud"] == 1]
    if fraud.empty:
        return [], []
    reported = fraud["reported_at"].to_numpy().astype("datetime64[s]")
    report_day = _day_index(world, reported)
    order = np.lexsort((fraud["transaction_id"].to_numpy(), reported))
    fraud, reported, report_day = fraud.iloc[order], reported[order], report_day[order]
    pan = fraud["pan"].to_numpy(dtype=object)
    visa = np.char.startswith(pan.astype(str), "4")
    ecom = fraud["channel"].to_numpy() == "ecommerce"
    reason = np.where(
        visa, np.where(ecom, ref.REASON_VISA_CARD_ABSENT, ref.REASON_VISA_CARD_PRESENT), ref.REASON_MASTERCARD
    ).astype(object)
    amount_minor, exponent = _minor_units(fraud)
    base = {
        "transaction_id": fraud["transaction_id"].to_numpy(),
        "pan": pan,
        "tx_datetime": fraud["tx_datetime"].to_numpy().astype("datetime64[s]"),
        "reported_at": reported,
        "reason_code": reason,
        "amount_minor": amount_minor,
        "exponent": exponent,
        "currency": fraud["currency"].to_numpy(dtype=object),
        "copy": np.ones(len(fraud), dtype=np.int64),
    }
    # Duplicate reports: drawn per original report day, arriving 1 hour to 10 days later.
    dup_idx, dup_at = [], []
    bounds = np.searchsorted(report_day, np.arange(cfg.days + 1))
    for d in range(cfg.days):
        lo, hi = bounds[d], bounds[d + 1]
        r = rng(cfg.seed, TAG_CHARGEBACK_MESS, d)
        hit = r.random(hi - lo) < cfg.rate("duplicate_chargeback")
        delay = r.integers(*DUPLICATE_REPORT_DELAY_S, hi - lo)
        dup_idx.append(np.arange(lo, hi)[hit])
        dup_at.append(reported[lo:hi][hit] + delay[hit].astype("timedelta64[s]"))
    dups = np.concatenate(dup_idx)
    reports = {k: np.concatenate([v, v[dups]]) for k, v in base.items()}
    reports["reported_at"] = np.concatenate([reported, np.concatenate(dup_at)])
    reports["copy"] = np.concatenate([base["copy"], np.full(len(dups), 2, dtype=np.int64)])
    day = _day_index(world, reports["reported_at"])
    keep = np.flatnonzero(day < cfg.days)
    keep = keep[
        np.lexsort((reports["copy"][keep], reports["transaction_id"][keep], reports["reported_at"][keep]))
    ]
    reports = {k: v[keep] for k, v in reports.items()}
    day = day[keep]
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
        f = LandedFile("chargebacks", d, file_name("chargebacks", world.day(d)), data)
        files.append(f)
        for j in np.flatnonzero(reports["copy"][s] == 2):
            defects.append(
                ("duplicate_chargeback", int(reports["transaction_id"][lo + j]), f, int(j) + 1, "", d)
            )
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
    c, t = world.customers, world.terminals
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
    day0 = world.start.isoformat()
    return [
        LandedFile("cardholders", 0, file_name("cardholders", day0), parquet_bytes(cardholders)),
        LandedFile("merchants", 0, file_name("merchants", day0), parquet_bytes(merchants)),
    ]


def simulate(data_dir: str | Path, cfg: SimConfig, progress: bool = False, first_new_day: int = 0) -> dict:
    """Generate the world of `cfg`, write every landing file whose landing day is within
    [first_new_day, cfg.days), rewrite the ground truth; returns counts and timings."""
    data_dir = Path(data_dir)
    landing_root = data_dir / "landing"
    t0 = time.perf_counter()
    world = generate_world(cfg, progress=progress)
    t_generated = time.perf_counter()

    auth_days = _authorization_days(world, progress)
    cb_files, cb_defects = _chargebacks(world)
    files: list[LandedFile] = [*_reference_files(world), *_fx_files(world), *cb_files]
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
    defect_rows += cb_defects

    last = cfg.days - 1
    written = Counter()
    for f in files:
        if first_new_day <= f.landing_day <= last:
            _atomic_write(landing_root / f.relative(world.start), f.data)
            written[f.source] += 1
    landed_defects = [row for row in defect_rows if row[2].landing_day <= last]
    defects = _defects_frame(world, landed_defects)
    _write_ground_truth(data_dir, world, source_file, landing_date, defects)
    t_written = time.perf_counter()

    tx = world.transactions
    return {
        "data_dir": str(data_dir),
        "profile": cfg.profile,
        "first_day": world.start.isoformat(),
        "last_day": world.last_day.isoformat(),
        "days": cfg.days,
        "transactions": len(tx),
        "frauds": int(tx["tx_fraud"].sum()),
        "fraud_rate": float(tx["tx_fraud"].mean()) if len(tx) else 0.0,
        "scenario_counts": {
            int(k): int(v) for k, v in tx["tx_fraud_scenario"].value_counts().sort_index().items()
        },
        "files_written": dict(sorted(written.items())),
        "defects": dict(sorted(Counter(defects["defect"]).items())),
        "generation_seconds": round(t_generated - t0, 3),
        "writing_seconds": round(t_written - t_generated, 3),
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
    return df.sort_values(
        ["source_file", "row_number", "defect"], na_position="first", kind="stable"
    ).reset_index(drop=True)


def _write_ground_truth(
    data_dir: Path, world: World, source_file: np.ndarray, landing_date: np.ndarray, defects: pd.DataFrame
) -> None:
    gt = data_dir / GROUND_TRUTH_DIR
    gt.mkdir(parents=True, exist_ok=True)
    tx = world.transactions
    columns = {c: pa.array(tx[c].to_numpy(), from_pandas=True) for c in tx.columns}  # no pandas copy
    columns["source_file"] = pa.array(source_file, pa.string())
    columns["landing_date"] = pa.array(landing_date)  # datetime64[D] -> date32
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(columns), sink, compression="zstd", coerce_timestamps="us")
    _atomic_write(gt / "transactions.parquet", sink.getvalue().to_pybytes())
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(defects, preserve_index=False), sink, compression="zstd")
    _atomic_write(gt / "defects.parquet", sink.getvalue().to_pybytes())
    state = {"config": world.config.to_state(), "last_day": world.last_day.isoformat()}
    _atomic_write(gt / STATE_FILE, (json.dumps(state, indent=2, sort_keys=True) + "\n").encode())


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
