"""`python -m fraud_assets.simulator`: write a simulated landing zone (docs/landing-zone.md)."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from fraud_assets.lib import settings
from fraud_assets.lib.settings import data_dir as default_data_dir
from fraud_assets.simulator.config import (
    DEFAULT_ACQ_B_SHARE,
    DEFAULT_RATES,
    DEFECT_OUTCOMES,
    DEFECT_UNITS,
    PROFILES,
    SimConfig,
)

DESCRIPTION = """\
Simulate card authorisations, chargebacks, cardholders, merchants and FX rates and write them as the
payment feeds would: $FRAUD_DATA_DIR/landing/<source>/<landing-date>/<feed>_<business-date>[_suffix].<ext>
(docs/landing-zone.md). The clean world and every injected defect go to $FRAUD_DATA_DIR/ground_truth/,
which the platform never reads.

Profiles:
  handbook   the Fraud Detection Handbook's generative process and defaults (5000 customers, 10000
             terminals, 183 days from 2018-04-01: ~1.75M transactions, ~0.84 %% fraud, three fraud
             scenarios); one time zone (UTC), EUR, card-present. Luhn-valid PANs with issuer BINs.
  realistic  the same process plus what real feeds carry: merchants with MCC, country, currency and
             IANA time zone (NL/DE/FR EUR, GB, US, CH, SE, JP), the handbook's time of day read as
             the terminal's local time, e-commerce terminals with 3-D Secure outcomes, cardholder
             home country, daily FX rates (EUR is the reporting currency).

Labels: each fraud's chargeback arrives after a delay (log-normal, median 3 days, ~76 %% within a
week, tail to 120 days) in the chargeback file of its arrival day; --handbook-labels makes every
delay fall within 7 days, the handbook's assumption; --label-delay-days N reports every fraud exactly
N days after it (the handbook's evaluation protocol: nothing known before N days).

The same seed gives the same world and the same bytes. The world depends only on (seed, profile,
start, day index), so --append-days N continues an existing landing zone exactly as a longer run
would have written it."""


def _defect_table() -> str:
    lines = ["defects (--rate KIND=RATE; --clean sets every rate to 0):"]
    lines.append(f"  {'kind':<22} {'per':<11} {'default':>8}  expected platform outcome")
    for kind, unit in DEFECT_UNITS.items():
        lines.append(f"  {kind:<22} {unit:<11} {DEFAULT_RATES[kind]:>8g}  {DEFECT_OUTCOMES[kind]}")
    lines.append(
        "  per row: each real authorisation row of a file is affected (repairs) or spawns an extra"
        " row with a\n  fresh id (quarantine kinds, reversal = auth + reversal) with this probability;"
        " per file: each\n  authorisation file; per report: each chargeback report; per transaction:"
        " each genuine\n  transaction is disputed for a non-fraud reason (not a defect: never a label)."
    )
    return "\n".join(lines)


def _rate(text: str) -> tuple[str, float]:
    kind, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KIND=RATE, got {text!r}")
    if kind not in DEFECT_UNITS:
        raise argparse.ArgumentTypeError(f"unknown defect kind {kind!r}; known: {', '.join(DEFECT_UNITS)}")
    try:
        rate = float(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"rate for {kind} is not a number: {value!r}") from exc
    if not 0.0 <= rate <= 1.0:
        raise argparse.ArgumentTypeError(f"rate for {kind} must be within [0, 1]")
    return kind, rate


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fraud_assets.simulator",
        description=DESCRIPTION,
        epilog=_defect_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    world = p.add_argument_group("world (a new run; --append-days reuses the stored ones)")
    world.add_argument("--profile", choices=PROFILES, help="generative profile (default: realistic)")
    world.add_argument(
        "--start",
        help="first simulated day, YYYY-MM-DD (default: $FRAUD_FIRST_BUSINESS_DATE, else 2018-04-01)",
    )
    world.add_argument("--days", type=_positive, help="number of simulated days (default: 183)")
    world.add_argument("--customers", type=_positive, help="number of customers/cards (default: 5000)")
    world.add_argument("--terminals", type=_positive, help="number of terminals (default: 10000)")
    world.add_argument("--seed", type=int, help="random seed (default: 0)")
    world.add_argument("--clean", action="store_true", default=None, help="inject no defects at all")
    world.add_argument(
        "--handbook-labels",
        action="store_true",
        default=None,
        help="every fraud reported within 7 days (the handbook's assumption)",
    )
    world.add_argument(
        "--label-delay-days",
        type=_positive,
        metavar="N",
        help="every fraud reported exactly N days after it (the handbook's protocol, e.g. 7)",
    )
    world.add_argument(
        "--rate",
        type=_rate,
        action="append",
        metavar="KIND=RATE",
        help="override one defect rate, e.g. --rate duplicate=0.01 (repeatable; kinds below)",
    )
    world.add_argument(
        "--acq-b-share",
        type=float,
        help=f"share of merchants on processor B, feed acq_b (default: {DEFAULT_ACQ_B_SHARE}; 0 = one feed)",
    )
    world.add_argument(
        "--shards",
        type=_positive,
        metavar="N",
        help="N independent populations of --customers x --terminals, one after another in memory, with "
        "their own ids, card numbers and files (suffix _sNNN): volume at the handbook's density (default: 1)",
    )
    out = p.add_argument_group("output")
    out.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_dir(),
        help="where landing/ and ground_truth/ go (default: $FRAUD_DATA_DIR or ./data)",
    )
    out.add_argument(
        "--append-days",
        type=_positive,
        metavar="N",
        help="continue the world already in --data-dir by N days (writes only newly landed files)",
    )
    out.add_argument(
        "--force",
        action="store_true",
        help="delete an existing landing/ and ground_truth/ in --data-dir first",
    )
    out.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    return p


WORLD_OPTIONS = (
    "profile",
    "start",
    "days",
    "customers",
    "terminals",
    "seed",
    "clean",
    "handbook_labels",
    "label_delay_days",
    "rate",
    "acq_b_share",
    "shards",
)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from fraud_assets.simulator.landing import append_days, simulate

    data_dir: Path = args.data_dir
    landing = data_dir / "landing"
    progress = not args.quiet
    if args.append_days:
        given = [f"--{o.replace('_', '-')}" for o in WORLD_OPTIONS if getattr(args, o) is not None]
        if given:
            parser.error(f"--append-days continues the stored world; drop {', '.join(given)}")
        try:
            summary = append_days(data_dir, args.append_days, progress=progress)
        except FileNotFoundError as exc:
            parser.error(str(exc))
    else:
        if args.force:
            for sub in ("landing", "ground_truth"):
                shutil.rmtree(data_dir / sub, ignore_errors=True)
        elif landing.exists() and any(p.is_file() for p in landing.rglob("*")):
            parser.error(
                f"{landing} already has files: use --append-days N to continue that world, "
                "or --force to replace it"
            )
        defaults = SimConfig()
        try:
            cfg = SimConfig(
                profile=args.profile or defaults.profile,
                # The platform's first business day, so a new world and the partitions agree.
                start=args.start or settings.first_business_date(),
                days=args.days or defaults.days,
                customers=args.customers or defaults.customers,
                terminals=args.terminals or defaults.terminals,
                seed=defaults.seed if args.seed is None else args.seed,
                clean=bool(args.clean),
                handbook_labels=bool(args.handbook_labels),
                label_delay_days=args.label_delay_days,
                rates=dict(args.rate or []),
                acq_b_share=defaults.acq_b_share if args.acq_b_share is None else args.acq_b_share,
                shards=args.shards or defaults.shards,
            )
        except ValueError as exc:
            parser.error(str(exc))
        summary = simulate(data_dir, cfg, progress=progress)
    if not args.quiet:
        _print_summary(summary)
    return 0


def _print_summary(s: dict) -> None:
    scen = ", ".join(f"{k}: {v:,}" for k, v in s["scenario_counts"].items())
    shards = f", {s['shards']} shards" if s["shards"] > 1 else ""
    files = ", ".join(f"{k} {v}" for k, v in s["files_written"].items()) or "none"
    defects = ", ".join(f"{k} {v}" for k, v in s["defects"].items()) or "none"
    print(
        f"Simulated {s['profile']} world {s['first_day']} .. {s['last_day']} ({s['days']} days{shards})"
        f" in {s['data_dir']}\n"
        f"  transactions {s['transactions']:,}, frauds {s['frauds']:,} ({s['fraud_rate']:.3%});"
        f" by scenario {scen}\n"
        f"  files written: {files}\n"
        f"  defects in landed files: {defects}\n"
        f"  generation {s['generation_seconds']:.1f} s, writing {s['writing_seconds']:.1f} s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    raise SystemExit(main())
