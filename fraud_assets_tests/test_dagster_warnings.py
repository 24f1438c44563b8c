"""The Dagster beta / preview warnings fraud_assets silences (fraud_assets/__init__.py) are exactly the
ones loading the code location raises: none is stale, no new one slips in unlisted, and with the package
imported a process's log carries none of them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from fraud_assets import DELIBERATE_DAGSTER_PREVIEWS

LOAD = """
import json, sys, warnings
import dagster as dg
import fraud_assets
if sys.argv[1] == "unfiltered":
    warnings.resetwarnings()
with warnings.catch_warnings(record=True) as seen:
    if sys.argv[1] == "unfiltered":
        warnings.simplefilter("always")
    import fraud_assets.definitions
    fraud_assets.definitions.defs.get_repository_def()
kinds = (dg.BetaWarning, dg.PreviewWarning)
print(json.dumps(sorted({str(w.message) for w in seen if issubclass(w.category, kinds)})))
"""


def _dagster_warnings(mode: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", LOAD, mode],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONWARNINGS": ""},
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_each_silenced_warning_is_raised_and_no_other_dagster_preview_is_used():
    raised = _dagster_warnings("unfiltered")
    unlisted = [m for m in raised if not any(re.match(p, m) for p in DELIBERATE_DAGSTER_PREVIEWS)]
    stale = [p for p in DELIBERATE_DAGSTER_PREVIEWS if not any(re.match(p, m) for m in raised)]
    assert not unlisted, f"a Dagster beta/preview feature is used but not listed as deliberate: {unlisted}"
    assert not stale, f"listed as deliberate but no longer raised (graduated or unused): {stale}"


def test_loading_the_code_location_logs_no_dagster_preview_warning():
    assert _dagster_warnings("filtered") == []
