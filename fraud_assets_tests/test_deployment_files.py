"""The deployment as deploy/ describes it: which process mounts what, where secrets come from, and that
every instance setting names only packages this repository declares (test_e2e_daemon.py runs it)."""

from __future__ import annotations

import re
import subprocess
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import yaml

from fraud_assets.cli.dagster_home import write_dagster_yaml
from fraud_assets_tests.compose import interpolate, local_services, read_dockerfile
from fraud_assets_tests.platform import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
SECRETS = {
    "DAGSTER_PG_PASSWORD": "pg-password-not-a-secret",
    "FRAUD_PAN_KEY": "key-not-a-secret",
    "FRAUD_REGISTRY_KEY": "registry-key-not-a-secret",
}


def services() -> dict[str, dict]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def declared_distributions() -> set[str]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!~\[; ]", dep, maxsplit=1)[0] for dep in project["dependencies"]}
    return {n.lower().replace("_", "-") for n in names}


def yaml_modules(config) -> set[str]:
    """Every `module:` an instance config names, and the storage packages its keys imply."""
    found = set()
    if isinstance(config, dict):
        for key, value in config.items():
            if key == "module" and isinstance(value, str):
                found.add(value)
            elif key == "postgres" and isinstance(value, dict) and "postgres_db" in value:
                found.add("dagster_postgres")
            found |= yaml_modules(value)
    elif isinstance(config, list):
        for value in config:
            found |= yaml_modules(value)
    return found


def test_every_process_that_touches_files_mounts_the_one_data_volume():
    data_dir = read_dockerfile(DEPLOY / "Dockerfile").env["FRAUD_DATA_DIR"]
    mounts = {
        name: {tuple(v.split(":")[:2]) for v in service.get("volumes", [])}
        for name, service in services().items()
        if "build" in service
    }
    # The code server runs the landing sensor, the alert sink and the run workers; the webserver serves the
    # step logs they write. The daemon talks to Postgres and the code server only.
    assert mounts == {
        "code-server": {("fraud-data", data_dir)},
        "webserver": {("fraud-data", data_dir)},
        "daemon": set(),
    }


def test_the_webserver_and_the_daemon_reach_the_code_location_over_grpc():
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    [location] = workspace["load_from"]
    assert set(location) == {"grpc_server"}
    for name in ("webserver", "daemon"):
        command = services()[name]["command"]
        assert command[command.index("--workspace") + 1] == "deploy/workspace.yaml"
        env = services()[name]["environment"]
        assert (env["FRAUD_CODE_SERVER_HOST"], env["FRAUD_CODE_SERVER_PORT"]) == ("code-server", "4000")


def test_the_webserver_is_published_on_the_hosts_loopback_only():
    assert services()["webserver"]["ports"] == ["127.0.0.1:3000:3000"]
    assert all("ports" not in s for name, s in services().items() if name != "webserver")


def test_secrets_are_required_from_the_operators_environment():
    for missing in SECRETS:
        given = {name: "x" for name in SECRETS if name != missing}
        with pytest.raises(ValueError, match=missing):
            local_services(COMPOSE, Path("/nonexistent"), given)
    for service in ("webserver", "daemon"):
        assert "FRAUD_PAN_KEY" not in services()[service]["environment"]
        assert "FRAUD_REGISTRY_KEY" not in services()[service]["environment"]


def test_the_entrypoint_writes_the_containers_postgres_instance_without_its_password(tmp_path):
    code_server = local_services(COMPOSE, tmp_path, SECRETS, stand_ins={"postgres": 5999}).processes[
        "code-server"
    ]
    subprocess.run([code_server.argv[0], "true"], env=code_server.env, cwd=code_server.cwd, check=True)
    text = (Path(code_server.env["DAGSTER_HOME"]) / "dagster.yaml").read_text()
    db = yaml.safe_load(text)["storage"]["postgres"]["postgres_db"]
    assert (db["hostname"], db["port"], db["password"]) == ("127.0.0.1", 5999, {"env": "DAGSTER_PG_PASSWORD"})
    assert SECRETS["DAGSTER_PG_PASSWORD"] not in text


def test_the_instance_names_only_packages_this_repository_declares(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_PG_HOST", "postgres")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "x")
    generated = yaml.safe_load(write_dagster_yaml(tmp_path / "home").read_text())
    documented = [
        yaml.safe_load(block)
        for block in re.findall(r"```yaml\n(.*?)```", (REPO_ROOT / "docs/environments.md").read_text(), re.S)
    ]
    modules = yaml_modules(generated) | yaml_modules(documented)
    assert "dagster_postgres" in modules
    owners = packages_distributions()
    declared = declared_distributions()
    for module in modules:
        package = module.split(".")[0]
        dists = {d.lower().replace("_", "-") for d in owners.get(package, [])}
        assert package == "fraud_assets" or dists & declared, f"{module}: not declared in pyproject.toml"


def test_one_setting_picks_the_feature_engine_for_the_image_and_the_code_server(tmp_path):
    # The image gets Java and pyspark only when built for spark, and the run workers (the code server's
    # subprocesses) run the engine the image was built for: one operator variable drives both.
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "ARG FEATURE_ENGINE=duckdb" in dockerfile
    assert "openjdk-17-jre-headless" in dockerfile
    assert "--extra spark" in dockerfile
    for engine, given in (("duckdb", {}), ("spark", {"FRAUD_FEATURE_ENGINE": "spark"})):
        compose = interpolate(yaml.safe_load(COMPOSE.read_text()), SECRETS | given)
        for name, service in compose["services"].items():
            if "build" in service:
                assert service["build"]["args"] == {"FEATURE_ENGINE": engine}, name
        deployment = local_services(COMPOSE, tmp_path, SECRETS | given, stand_ins={"postgres": 5999})
        code_server = deployment.processes["code-server"]
        assert code_server.env["FRAUD_FEATURE_ENGINE"] == engine
