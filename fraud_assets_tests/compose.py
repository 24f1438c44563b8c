"""A compose file's services as local processes: the commands, environment and mounts the file declares,
run without a Docker engine, so a test keeps deploy/compose.yaml and deploy/Dockerfile honest.

    deployment = local_services(COMPOSE, root, variables={...}, stand_ins={"postgres": pg.port})
    deployment.processes  # {"code-server": Process(argv, env, cwd, ready), "webserver": ..., "daemon": ...}
    deployment.port("webserver")  # the free loopback port its container port became

What a container sees is mapped onto this machine:
- `${VAR}`, `${VAR:-default}`, `${VAR:?message}` are filled from `variables`, as `docker compose` fills them
  from the operator's environment (a missing `:?` variable is an error, as there).
- The Dockerfile gives the entrypoint, WORKDIR and ENV. WORKDIR is the repository the image is built from
  (its `.venv` is the image's); every other path is private to the service (`root/<service>/rootfs/...`)
  unless a named volume is mounted there, which is one directory shared by the services that mount it.
- Service names (the compose network's host names) in environment values are 127.0.0.1; each port a
  service listens on (`expose`, `ports`) is a free loopback port wherever it appears as a whole argument
  or value; a bind to every interface (0.0.0.0) binds loopback only.
- A service named in `stand_ins` is not run: something local already serves it on the given port.
- A service's healthcheck (`CMD` form) is its readiness command: the next service starts once it passes.
- The environment is the image's and the service's only (plus HOME and what the caller adds), not the
  test's: a variable the compose file forgets is missing here too.
Not reproduced: the image's USER (processes run as the test's user), read-only (`:ro`) mounts, restart
policies and resource limits.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import yaml

from fraud_assets_tests.platform import REPO_ROOT, Process, free_port

LOOPBACK = "127.0.0.1"
EVERY_INTERFACE = "0.0.0.0"  # noqa: S104 - the container-side bind this module maps to loopback
_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}|\$(\w+)")


@dataclass(frozen=True)
class Image:
    workdir: str
    env: dict[str, str]
    entrypoint: list[str]


@dataclass
class Deployment:
    """The local form of a compose file: processes in start order and where each service listens."""

    processes: dict[str, Process]
    ports: dict[tuple[str, str], int] = field(default_factory=dict)  # (service, container port) -> local
    volumes: dict[str, Path] = field(default_factory=dict)

    def port(self, service: str) -> int:
        [port] = [local for (name, _), local in self.ports.items() if name == service]
        return port


def interpolate(value, variables: Mapping[str, str]):
    """Compose's variable substitution, applied to every string value of a parsed file."""
    if isinstance(value, dict):
        return {k: interpolate(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, variables) for v in value]
    if not isinstance(value, str):
        return value

    def fill(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, arg = m.group(2), m.group(3)
        current = variables.get(name)
        if op in (":?", "?") and (current is None or (op == ":?" and current == "")):
            raise ValueError(f"compose variable {name} is required: {arg}")
        if op in (":-", "-") and (current is None or (op == ":-" and current == "")):
            return arg
        return current or ""

    return _VARIABLE.sub(fill, value)


def read_dockerfile(path: Path) -> Image:
    """WORKDIR, ENV and the exec-form ENTRYPOINT of a single-stage Dockerfile."""
    text = re.sub(r"\\\n", " ", path.read_text())
    workdir, env, entrypoint = "/", {}, []
    for line in text.splitlines():
        instruction, _, rest = line.strip().partition(" ")
        if instruction == "WORKDIR":
            workdir = rest.strip()
        elif instruction == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                env[key] = value
        elif instruction == "ENTRYPOINT":
            entrypoint = json.loads(rest)
    return Image(workdir, env, entrypoint)


def _container_ports(service: dict) -> list[str]:
    ports = [str(p) for p in service.get("expose", [])]
    ports += [str(p).rsplit(":", 1)[-1] for p in service.get("ports", [])]
    return ports


def _start_order(services: Mapping[str, dict]) -> list[str]:
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in order:
            return
        if name in path:
            raise ValueError(f"depends_on cycle through {name}")
        for dep in services[name].get("depends_on") or []:
            visit(dep, (*path, name))
        order.append(name)

    for name in services:
        visit(name, ())
    return order


class _ServiceView:
    """Maps one service's tokens (command arguments, environment values) onto this machine."""

    def __init__(
        self, name: str, root: Path, image: Image, mounts: dict[str, Path], hosts: dict[str, str], ports: dict
    ):
        self.root = root / name / "rootfs"
        self.image = image
        self.mounts = mounts  # container path -> local directory
        self.hosts = hosts  # service names -> 127.0.0.1
        self.ports = ports  # container ports and 0.0.0.0 -> local values

    def path(self, container_path: str) -> str:
        p = PurePosixPath(container_path)
        for target, local in sorted(self.mounts.items(), key=lambda kv: -len(kv[0])):
            if p == PurePosixPath(target) or PurePosixPath(target) in p.parents:
                return str(local / p.relative_to(target))
        workdir = PurePosixPath(self.image.workdir)
        if p == workdir or workdir in p.parents:
            return str(REPO_ROOT / p.relative_to(workdir))
        return str(self.root / p.relative_to("/"))

    def argument(self, value: str) -> str:
        """A command-line argument: a port, a bind address or a path (a service name there is a word)."""
        if value in self.ports:
            return self.ports[value]
        return self.path(value) if value.startswith("/") else value

    def setting(self, value: str) -> str:
        """An environment value: as an argument, and a service name is that service's host."""
        return self.hosts.get(value) or self.argument(value)

    def search_path(self, value: str, host_path: str) -> str:
        parts = [host_path if part in ("$PATH", "${PATH}") else self.path(part) for part in value.split(":")]
        return ":".join(parts)


def local_services(
    compose_file: Path,
    root: Path,
    variables: Mapping[str, str],
    stand_ins: Mapping[str, int] | None = None,
    volumes: Mapping[str, Path] | None = None,
    host_path: str = "/usr/local/bin:/usr/bin:/bin",
) -> Deployment:
    """The compose file's services (all but `stand_ins`) as local processes; `volumes` places named volumes
    (default `root/volumes/<name>`)."""
    compose = interpolate(yaml.safe_load(compose_file.read_text()), variables)
    services: dict[str, dict] = compose["services"]
    stand_ins = dict(stand_ins or {})
    deployment = Deployment(processes={})
    for name in compose.get("volumes") or {}:
        deployment.volumes[name] = Path((volumes or {}).get(name) or root / "volumes" / name)
    hosts = dict.fromkeys(services, LOOPBACK)
    ports = {EVERY_INTERFACE: LOOPBACK}
    for name, service in services.items():
        for port in _container_ports(service):
            if port in ports:
                raise ValueError(f"port {port} is used by two services: map it by service instead")
            local = stand_ins[name] if name in stand_ins else free_port()
            deployment.ports[(name, port)] = local
            ports[port] = str(local)
    for name in _start_order(services):
        if name in stand_ins:
            continue
        service = services[name]
        build = service["build"]
        image = read_dockerfile(compose_file.parent / build["context"] / build["dockerfile"])
        mounts = {}
        for spec in service.get("volumes") or []:
            source, target, *_ = spec.split(":")
            mounts[target] = deployment.volumes[source]
            mounts[target].mkdir(parents=True, exist_ok=True)
        view = _ServiceView(name, root, image, mounts, hosts, ports)
        env = {"HOME": view.path("/root")}
        for key, value in {**image.env, **(service.get("environment") or {})}.items():
            env[key] = view.search_path(value, host_path) if key == "PATH" else view.setting(str(value))
        entrypoint = service.get("entrypoint", image.entrypoint)
        argv = [view.argument(str(a)) for a in [*entrypoint, *service.get("command", [])]]
        check = (service.get("healthcheck") or {}).get("test")
        ready = [view.argument(str(a)) for a in check[1:]] if check and check[0] == "CMD" else None
        deployment.processes[name] = Process(
            argv=argv, env=env, cwd=Path(view.path(image.workdir)), ready=ready
        )
    return deployment
