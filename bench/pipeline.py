"""The whole path a user waits for: landing files to scores with `make pipeline`, beside doing it by hand.

Platform: `python -m fraud_assets.cli.pipeline` (what `make pipeline` runs) in a fresh DAGSTER_HOME (SQLite,
as `make run`) and data folder holding a (hard-linked) copy of the handbook world's landing zone: every
landed day ingested, checked, cleaned and featured in one range run, the models trained, every day scored,
then monitoring. Reported: seconds from the command's start until every day is scored (start-up included),
each job's seconds, monitoring after it, and the peak RSS of the process.

By hand (the fair peer): what a capable data scientist writes for the same result, without contracts,
quarantine, tokenisation, lineage or run history: pandas reads every landing file of the world (both
processors' formats), the 15 handbook baseline features in vectorised pandas (the feature layer's
reference, defs/features/reference.py) on the same rows, a random forest (the handbook's: 100 trees,
depth 20) fitted on 2018-07-25..31 with a 7-day label delay, and every transaction scored; in its own
process, its address space capped at $FRAUD_BENCH_PEER_MEMORY_GB (default 20) GiB, so a world too large
for it reads "out of memory". Its cleaning is
not written: it takes the rows the platform cleaned, so its figure is a lower bound of the by-hand path.

Data: the handbook world in /work/bench-data/handbook (or $FRAUD_BENCH_HANDBOOK) when present, else
simulated (`--quick`: 60 days, 300 customers). One run each: a backfill takes minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import duckdb
import pandas as pd
import psutil

from bench.child import cap_memory, peak_rss_mb, run_child
from fraud_assets.lib.settings import WAREHOUSE_FILE

BENCH = "pipeline"
HANDBOOK = Path(os.environ.get("FRAUD_BENCH_HANDBOOK", "/work/bench-data/handbook"))
REPO = Path(__file__).resolve().parents[1]
KEYS = {
    "FRAUD_PAN_KEY": "bench-pipeline-pan-key-not-a-secret-0123456789",
    "FRAUD_REGISTRY_KEY": "bench-pipeline-registry-key-not-a-secret-0123456789",
}
TRAIN = ("2018-07-25", "2018-07-31")
DELAY_DAYS = 7


def _row(metric: str, value, unit: str, note: str = "") -> dict:
    return {"bench": BENCH, "metric": metric, "value": value, "unit": unit, "note": note}


def _landing(tmp: Path, quick: bool) -> tuple[Path, str]:
    if not quick and (HANDBOOK / "landing").is_dir():
        return HANDBOOK / "landing", f"handbook world at {HANDBOOK}"
    from fraud_assets.simulator import SimConfig, simulate

    cfg = SimConfig(profile="handbook", handbook_labels=True, clean=True)
    if quick:
        cfg = SimConfig(
            profile="handbook", handbook_labels=True, clean=True, days=60, customers=300, terminals=600
        )
    simulate(tmp / "world", cfg)
    return tmp / "world" / "landing", f"simulated handbook profile, {cfg.days} days"


class PeakRss:
    """Peak resident memory of a process and its children, sampled every 0.2 s."""

    def __init__(self, pid: int) -> None:
        self.peak = 0
        self._proc = psutil.Process(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            try:
                procs = [self._proc, *self._proc.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs if p.is_running()))
            except psutil.Error:
                continue

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / 2**30


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def platform_run(landing: Path, work: Path) -> dict:
    """`make pipeline` on a copy of `landing`: job seconds, time until scored, peak RSS."""
    data = work / "data"
    # Hard links where the filesystem allows: the platform only reads its landing zone, and at 100M rows
    # a copy would cost gigabytes of the disk the warehouse needs.
    shutil.copytree(landing, data / "landing", copy_function=_link_or_copy)
    env = {**os.environ, **KEYS, "FRAUD_DATA_DIR": str(data), "DAGSTER_HOME": str(work / "dagster_home")}
    # scripts/with-env calls `python`: this interpreter's, also when the bench runs outside `make`.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("FRAUD_FIRST_BUSINESS_DATE", None)  # the landing zone's first day, as `make pipeline` on it
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(REPO / "scripts" / "with-env"), sys.executable, "-m", "fraud_assets.cli.pipeline"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=(work / "pipeline.stderr").open("w"),
        text=True,
    )
    rss = PeakRss(proc.pid)
    jobs: dict[str, float] = {}
    ended: dict[str, float] = {}
    current = None
    for line in proc.stdout:
        text = line.strip()
        if text.startswith("-> "):
            current = text[3:].split()[0]
        elif text.startswith("ok in ") and current:
            jobs[current] = float(text.split()[2].rstrip("s,"))
            ended[current] = time.monotonic() - started
    code = proc.wait()
    peak = rss.stop()
    total = time.monotonic() - started
    if code != 0:
        tail = (work / "pipeline.stderr").read_text().splitlines()[-30:]
        # The runs go in order and stop at the first failure: monitoring started, so every scoring run ended.
        if current != "monitoring_job":
            raise RuntimeError(f"make pipeline failed (exit {code}); jobs done: {jobs}\n" + "\n".join(tail))
        # The figure the bench is for stands; the monitoring failure is reported beside it.
        print(f"[bench] monitoring failed (exit {code}):\n" + "\n".join(tail), file=sys.stderr)
        total = None
    scored = max(t for job, t in ended.items() if job != "monitoring_job")
    rows = _count(data / WAREHOUSE_FILE)
    return {"jobs": jobs, "to_scores": scored, "total": total, "peak_gib": peak, "exit": code, **rows}


def _count(db: Path) -> dict:
    with duckdb.connect(str(db), read_only=True) as conn:
        tx = conn.execute("SELECT count(*) FROM cleaned.transactions").fetchone()[0]
        scored = conn.execute("SELECT count(*) FROM scoring.transaction_scores").fetchone()[0]
    return {"transactions": int(tx), "scored": int(scored)}


def _read_landing(landing: Path) -> int:
    """Every authorisation and chargeback file read into pandas: what a by-hand path reads first."""
    rows = 0
    for path in sorted(landing.rglob("*")):
        if not path.is_file():
            continue
        name = path.name.removesuffix(".gz")
        if name.endswith(".csv"):
            rows += len(pd.read_csv(path, dtype=str))
        elif name.endswith(".jsonl"):
            rows += len(pd.read_json(path, lines=True, dtype=False))
        elif name.endswith(".parquet"):
            rows += len(pd.read_parquet(path))
    return rows


def peer_run(landing: Path, db: Path) -> dict:
    """The by-hand path's seconds per stage (see module docstring)."""
    from sklearn.ensemble import RandomForestClassifier

    from fraud_assets.defs.features.reference import baseline_features

    t0 = time.perf_counter()
    read_rows = _read_landing(landing)
    t1 = time.perf_counter()
    with duckdb.connect(str(db), read_only=True) as conn:
        tx = conn.execute(
            "SELECT transaction_id, tx_datetime, tx_datetime_local, card_token, terminal_id, tx_amount, "
            "business_date FROM cleaned.transactions"
        ).df()
        labels = conn.execute("SELECT transaction_id, reported_at FROM cleaned.labels").df()
    t2 = time.perf_counter()
    features = baseline_features(tx, labels)
    t3 = time.perf_counter()
    day = tx.set_index("transaction_id")["business_date"].astype(str).reindex(features.index)
    fraud = features.index.isin(labels["transaction_id"])
    # The handbook's training week; a smaller world (`--quick`) trains on a week two weeks before its end.
    days = sorted(day.unique())
    first, last = TRAIN if TRAIN[0] in days else (days[-21], days[-15])
    train = (day >= first) & (day <= last)
    model = RandomForestClassifier(n_estimators=100, max_depth=20, n_jobs=os.cpu_count(), random_state=0)
    model.fit(features[train.to_numpy()], fraud[train.to_numpy()])
    t4 = time.perf_counter()
    model.predict_proba(features)[:, 1]
    t5 = time.perf_counter()
    return {
        "read": t1 - t0,
        "load_cleaned": t2 - t1,
        "features": t3 - t2,
        "fit": t4 - t3,
        "score": t5 - t4,
        "total": t5 - t0 - (t2 - t1),
        "read_rows": read_rows,
        "peak_rss_mb": peak_rss_mb(),
    }


def child_peer(landing: str, db: str, memory_gb: float) -> dict:
    """`peer_run` in this process, its address space capped at `memory_gb` GiB."""
    cap_memory(memory_gb)
    try:
        return peer_run(Path(landing), Path(db))
    except MemoryError:
        return {"oom": True, "peak_rss_mb": peak_rss_mb()}


def _peer_row(peer: dict, memory_gb: float) -> dict:
    metric = "by hand (pandas + scikit-learn): files to scores"
    if "total" not in peer:
        what = "out of memory" if peer.get("oom") else f"failed (rc {peer.get('returncode')})"
        return _row(metric, what, "", f"address space capped at {memory_gb:g} GiB")
    return _row(
        metric,
        peer["total"],
        "s",
        f"lower bound, no cleaning written: read {peer['read']:.1f}, features {peer['features']:.1f}, "
        f"fit {peer['fit']:.1f}, score {peer['score']:.1f}; peak {peer['peak_rss_mb'] / 1024:.1f} GiB",
    )


def run(args) -> list[dict]:
    quick = bool(getattr(args, "quick", False))
    memory_gb = float(os.environ.get("FRAUD_BENCH_PEER_MEMORY_GB", "20"))
    with tempfile.TemporaryDirectory(prefix="bench_pipeline_") as tmp_dir:
        tmp = Path(tmp_dir)
        landing, what = _landing(tmp, quick)
        platform = platform_run(landing, tmp / "platform")
        db = tmp / "platform" / "data" / WAREHOUSE_FILE
        peer = run_child("bench.pipeline", ["--child-peer", str(landing), str(db), str(memory_gb)])
    n = platform["transactions"]
    jobs = platform["jobs"]
    out = [
        _row("transactions", n, "rows", what),
        _row(
            "make pipeline: landing files to every day scored",
            platform["to_scores"],
            "s",
            f"{n / platform['to_scores']:,.0f} tx/s; start-up included; target <= 180 s; "
            f"{platform['scored']:,} scores",
        ),
    ]
    out += [_row(f"  {job}", seconds, "s", "one run") for job, seconds in jobs.items()]
    out += [
        _row("make pipeline: with monitoring", platform["total"], "s", "drift, performance, shadow")
        if platform["total"] is not None
        else _row(
            "make pipeline: with monitoring", "failed", "", f"exit {platform['exit']}, after every day scored"
        ),
        _row("make pipeline: peak RSS", platform["peak_gib"], "GiB", "the process and its children"),
        _peer_row(peer, memory_gb),
    ]
    if "total" in peer:
        out.append(
            _row(
                "platform / by hand",
                platform["to_scores"] / peer["total"],
                "x",
                "the platform adds contracts, quarantine, tokenisation, lineage, 3 model families, approval",
            )
        )
    return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child-peer"]:
        print(json.dumps(child_peer(sys.argv[2], sys.argv[3], float(sys.argv[4]))), flush=True)
    else:
        import argparse

        p = argparse.ArgumentParser()
        p.add_argument("--quick", action="store_true")
        for r in run(p.parse_args()):
            print(r)
