"""Simulator benchmark: the handbook default dataset (5,000 customers, 10,000 terminals, 183 days).

Reports generation time and throughput (median of 3; one run with `--quick` on a small world),
the time to write the landing zone and ground truth, and the full-size figures next to the
published ones (Fraud Detection Handbook: 1,754,155 transactions, 0.84 % fraud; scenario shares).
"""

from __future__ import annotations

import statistics
import tempfile
import time

from fraud_assets.simulator import SimConfig, generate_world, simulate
from fraud_assets.simulator.figures import PUBLISHED, observed_figures

BENCH = "simulator"
QUICK = {"customers": 500, "terminals": 1000, "days": 30}


def _row(metric: str, value, unit: str, note: str = "") -> dict:
    return {"bench": BENCH, "metric": metric, "value": value, "unit": unit, "note": note}


def run(args) -> list[dict]:
    quick = bool(getattr(args, "quick", False))
    cfg = SimConfig(profile="handbook", **(QUICK if quick else {}))
    size = "quick world" if quick else "handbook default"
    # CPU seconds next to wall seconds: on a shared machine the wall clock measures the neighbours.
    timings, cpu, world = [], [], None
    for _ in range(1 if quick else 3):
        t0, c0 = time.perf_counter(), time.process_time()
        world = generate_world(cfg)
        timings.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    gen = statistics.median(timings)
    n = len(world.transactions)
    note = f"median of {len(timings)}, in memory; CPU {statistics.median(cpu):.2f} s"
    rows = [
        _row(f"{size}: generation time", round(gen, 3), "s", note),
        _row(f"{size}: generation throughput", round(n / gen), "tx/s", f"{n:,} transactions"),
    ]
    c0 = time.process_time()
    with tempfile.TemporaryDirectory(prefix="bench_simulator_") as tmp:
        summary = simulate(tmp, cfg)
    run_cpu = time.process_time() - c0
    total = summary["generation_seconds"] + summary["writing_seconds"]
    rows += [
        _row(
            f"{size}: landing zone + ground truth write",
            summary["writing_seconds"],
            "s",
            "one run, with mess",
        ),
        _row(f"{size}: end-to-end run", round(total, 3), "s", f"CPU {run_cpu:.1f} s (all threads)"),
    ]
    obs = observed_figures(world)
    scale = "" if not quick else " (quick world: not comparable)"
    tx_diff = obs["transactions"] / PUBLISHED["transactions"] - 1
    rate_diff = obs["fraud_rate"] / PUBLISHED["fraud_rate"] - 1
    rows.append(
        _row(
            "transactions",
            obs["transactions"],
            "tx",
            f"published {PUBLISHED['transactions']:,} ({tx_diff:+.2%}){scale}",
        )
    )
    rows.append(
        _row(
            "fraud rate",
            round(100 * obs["fraud_rate"], 4),
            "%",
            f"published {100 * PUBLISHED['fraud_rate']:.4f} % ({rate_diff:+.2%}){scale}",
        )
    )
    for s in (1, 2, 3):
        share, published = obs["scenario_share"][s], PUBLISHED["scenario_share"][s]
        rows.append(
            _row(
                f"scenario {s} share of frauds",
                round(100 * share, 2),
                "%",
                f"published {100 * published:.2f} % ({100 * (share - published):+.2f} pp){scale}",
            )
        )
    return rows
