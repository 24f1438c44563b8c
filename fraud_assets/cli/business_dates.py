"""`python -m fraud_assets.cli.business_dates first|last`: the earliest or latest business date with an
authorisation file in the landing zone (nothing when it has none).

`scripts/with-env` sets `FRAUD_FIRST_BUSINESS_DATE` from it when unset, so any world already in
`$FRAUD_DATA_DIR/landing` gets partitions from its first day with no flag (docs/architecture.md).
"""

from __future__ import annotations

import sys

from fraud_assets.lib import settings
from fraud_assets.lib.landing import business_dates_in_landing


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args not in (["first"], ["last"]):
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    dates = business_dates_in_landing(settings.landing_dir())
    if dates:
        print(dates[0] if args == ["first"] else dates[-1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
