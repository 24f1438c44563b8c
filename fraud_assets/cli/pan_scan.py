"""Search this deployment for card numbers (docs/runbooks.md, "Search the deployment for card numbers").

    scripts/with-env python -m fraud_assets.cli.pan_scan        # the landing zone's PANs, anywhere else
    scripts/with-env python -m fraud_assets.cli.pan_scan --any  # any Luhn-valid number (noisy)

Reads $FRAUD_DATA_DIR (landing/ and ground_truth/ left out) and $DAGSTER_HOME, and the Dagster instance
of $DAGSTER_HOME through its API. Prints where, how many and a masked sample; exit status 1 when
anything was found.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fraud_assets.cli.pan_scan", description=__doc__)
    parser.add_argument("--any", action="store_true", help="any Luhn-valid number, not the landed PANs")
    args = parser.parse_args(argv)

    import dagster as dg

    from fraud_assets.lib import settings
    from fraud_assets.lib.pan_scan import collect_pans, scan_deployment

    pans = None if args.any else collect_pans(settings.landing_dir().rglob("*"))
    home = Path(os.environ["DAGSTER_HOME"]) if os.environ.get("DAGSTER_HOME") else None
    instance = dg.DagsterInstance.get() if home else None
    try:
        findings = scan_deployment(settings.data_dir(), home, instance=instance, pans=pans)
    finally:
        if instance is not None:
            instance.dispose()
    for finding in findings:
        print(finding)
    what = "Luhn-valid numbers" if args.any else f"the {len(pans or ())} card numbers of the landing zone"
    print(f"{len(findings)} place(s) hold {what}", file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
