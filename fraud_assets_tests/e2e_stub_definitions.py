"""Code location for the fast end-to-end test: the stand-in graph (automation_stubs.py) with the real
sensors, automation policy and alerting, so the daemon-driven machinery is exercised in seconds per run."""

import dagster as dg

from fraud_assets.lib import settings
from fraud_assets_tests.automation_stubs import stub_definitions

# Automation's own runs (scores after the champion) in one process too: stub steps take milliseconds,
# a process per step would be all the test measures.
defs = dg.Definitions.merge(
    stub_definitions(settings.landing_dir()), dg.Definitions(executor=dg.in_process_executor)
)
