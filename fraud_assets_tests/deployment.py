"""fraud_assets as deploy/compose.yaml deploys it, run on this machine for tests: a private PostgreSQL
server (postgres.py) stands in for the compose file's postgres service, set up as that service sets up its
own, and the code server, webserver and daemon run as local processes from the compose file (compose.py).

    with deployed_platform(root, env={...}) as platform:   # a Platform: GraphQL, waits, restart("webserver")
        ...

`root/data` is the data volume (FRAUD_DATA_DIR of the processes that mount it). Leaving the block stops
the processes, then the PostgreSQL server, and deletes its cluster.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import yaml

from fraud_assets_tests.compose import interpolate, local_services
from fraud_assets_tests.platform import REPO_ROOT, Platform
from fraud_assets_tests.postgres import PostgresServer

COMPOSE = REPO_ROOT / "deploy" / "compose.yaml"
DATA_VOLUME = "fraud-data"
# What the operator's environment (the secret store) gives `docker compose`.
TEST_SECRETS = {
    "DAGSTER_PG_PASSWORD": "e2e-pg-password-not-a-secret",
    "FRAUD_PAN_KEY": "e2e-key-not-a-secret",
    "FRAUD_REGISTRY_KEY": "e2e-registry-key-not-a-secret-0123456789",
}


@contextmanager
def deployed_platform(
    root: Path, env: Mapping[str, str] | None = None, secrets: Mapping[str, str] = TEST_SECRETS
) -> Iterator[Platform]:
    """`env`: settings added to every process (as a config map would), e.g. a tiny world's thresholds."""
    compose = interpolate(yaml.safe_load(COMPOSE.read_text()), secrets)
    postgres_env = compose["services"]["postgres"]["environment"]
    with PostgresServer(
        user=postgres_env["POSTGRES_USER"],
        database=postgres_env["POSTGRES_DB"],
        password=postgres_env["POSTGRES_PASSWORD"],
    ) as pg:
        local = local_services(
            COMPOSE, root, secrets, stand_ins={"postgres": pg.port}, volumes={DATA_VOLUME: root / "data"}
        )
        with Platform(root, processes=local.processes, port=local.port("webserver"), env=env) as platform:
            yield platform
