"""The replica-set deployment of ``deploy/``: the compose file parses, every service says how it is
healthy, the routers' environment is accepted by the router's own settings loader, and the MongoDB
URI asks for what a replica set needs (majority writes, retryable writes)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pymongo import uri_parser

from bot.settings import Settings, load_settings
from conversations.embedded import EmbeddedMongo
from tests.conftest import operator_client

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
# what a user puts in deploy/.env (deploy/example.env), with a key of the right shape
USER_ENV = {"OMNIROUTER_DOMAIN": "chat.example.com", "OMNIROUTER_SECRET_KEY": "ab" * 32}
_VARIABLE = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:-default}`` and ``${NAME:?error}`` against ``env``."""

    def one(m: re.Match[str]) -> str:
        name, kind, rest = m.group(1), m.group(2) or "", m.group(3) or ""
        if env.get(name):
            return env[name]
        if "?" in kind:
            raise AssertionError(f"compose.yaml needs {name}: {rest}")
        return rest

    return _VARIABLE.sub(one, value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def router_env(compose: dict[str, Any]) -> dict[str, str]:
    env = compose["services"]["router"]["environment"]
    assert isinstance(env, dict), "the router's environment is a mapping (NAME: value)"
    return {name: interpolate(str(value), USER_ENV) for name, value in env.items()}


@pytest.fixture(scope="module")
def router_settings(router_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Settings:
    empty = tmp_path_factory.mktemp("deploy") / "omnirouter.toml"
    empty.write_text("")  # the image has no config/omnirouter.toml: the environment alone
    return load_settings(empty, env=router_env)


def test_the_compose_file_has_a_replica_set_routers_and_a_proxy(compose: dict[str, Any]) -> None:
    services = compose["services"]
    mongods = [name for name, s in services.items() if str(s.get("image", "")).startswith("mongo:")]
    assert len(mongods) == 3
    for name in mongods:
        assert services[name]["command"][:3] == ["mongod", "--replSet", "rs0"]
    assert services["router"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (DEPLOY / "Dockerfile").exists()
    assert str(services["caddy"]["image"]).startswith("caddy:")


def test_every_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        check = service.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"service {name} has no healthcheck"


def test_the_router_is_healthy_by_its_health_route(compose: dict[str, Any], router_settings: Settings) -> None:
    from bot.web.ops import routes

    paths = {route.path for route in routes()}  # type: ignore[attr-defined]
    probe = " ".join(compose["services"]["router"]["healthcheck"]["test"])
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", probe)
    assert url and url.group(2) in paths
    assert int(url.group(1)) == router_settings.server.port


def test_the_routers_environment_is_valid_router_settings(router_settings: Settings) -> None:
    assert router_settings.server.host == "0.0.0.0"
    assert router_settings.server.public_url == "https://chat.example.com"
    # one sealing key for every router: a key file each would seal secrets the others cannot open
    assert router_settings.security.secret_key == USER_ENV["OMNIROUTER_SECRET_KEY"]


def test_the_mongodb_uri_asks_a_majority_and_retries_writes(router_settings: Settings, compose: dict[str, Any]) -> None:
    parsed = uri_parser.parse_uri(router_settings.store.mongodb_uri)
    options = parsed["options"]
    assert options["w"] == "majority"
    assert options["retryWrites"] is True
    assert options["replicaSet"] == "rs0"
    assert options["readPreference"] == "primary"  # the message path reads what it wrote
    assert router_settings.store.reports_read_preference == "secondaryPreferred"
    members = {f"{host}:{port}" for host, port in parsed["nodelist"]}
    probe = " ".join(compose["services"]["mongo1"]["healthcheck"]["test"])
    assert "rs.initiate" in probe
    assert set(re.findall(r"host: '([\w.-]+:\d+)'", probe)) == members
    assert {member.split(":")[0] for member in members} <= set(compose["services"])


def test_caddy_balances_the_router_service_and_is_trusted_as_its_proxy(
    compose: dict[str, Any], router_settings: Settings
) -> None:
    import ipaddress

    caddyfile = (DEPLOY / "Caddyfile").read_text()
    upstream = re.search(r"dynamic a \{\s*name (\S+)\s*port (\d+)", caddyfile)
    assert upstream and upstream.group(1) == "router" and int(upstream.group(2)) == router_settings.server.port
    address = compose["services"]["caddy"]["networks"]["web"]["ipv4_address"]
    trusted = [ipaddress.ip_network(n.strip()) for n in router_settings.server.trusted_proxies.split(",")]
    assert [ipaddress.ip_network(address)] == trusted  # Caddy alone, not the routers beside it
    (web,) = compose["networks"]["web"]["ipam"]["config"]
    assert ipaddress.ip_address(address) in ipaddress.ip_network(web["subnet"])
    assert ipaddress.ip_address(address) not in ipaddress.ip_network(web["ip_range"])  # no router takes it


def test_a_missing_secret_key_stops_the_compose_file_with_its_reason(compose: dict[str, Any]) -> None:
    value = compose["services"]["router"]["environment"]["OMNIROUTER_SECRET_KEY"]
    with pytest.raises(AssertionError, match="OMNIROUTER_SECRET_KEY"):
        interpolate(value, {"OMNIROUTER_DOMAIN": "chat.example.com"})


def _compose_missing() -> str:
    """Why ``docker compose`` cannot run here, or "" when it can."""
    if shutil.which("docker") is None:
        return "docker is not on PATH on this machine: `docker compose config` not run"
    done = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        return "docker on this machine has no compose plugin (`docker compose version` fails): not run"
    return ""


_COMPOSE_MISSING = _compose_missing()


@pytest.mark.skipif(bool(_COMPOSE_MISSING), reason=_COMPOSE_MISSING or "docker compose is here")
def test_docker_compose_accepts_the_file() -> None:
    done = subprocess.run(
        ["docker", "compose", "-f", "compose.yaml", "config", "--quiet"],
        cwd=DEPLOY,
        env={**os.environ, **USER_ENV},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(
    shutil.which("caddy") is None, reason="caddy is not on PATH on this machine: Caddyfile not validated"
)
def test_caddy_accepts_the_caddyfile() -> None:
    done = subprocess.run(
        ["caddy", "validate", "--config", "Caddyfile", "--adapter", "caddyfile"],
        cwd=DEPLOY,
        env={**os.environ, "OMNIROUTER_DOMAIN": USER_ENV["OMNIROUTER_DOMAIN"]},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.skipif(
    shutil.which("node") is None, reason="node is not on PATH on this machine: mongosh script not parsed"
)
def test_the_replica_set_initiation_is_valid_javascript(compose: dict[str, Any]) -> None:
    script = compose["services"]["mongo1"]["healthcheck"]["test"][-1]
    check = "new Function(require('fs').readFileSync(0, 'utf8'))"  # parses, runs nothing
    done = subprocess.run(["node", "-e", check], input=script, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


async def test_the_routers_healthcheck_passes_on_a_router_configured_so(
    compose: dict[str, Any], router_settings: Settings, embedded: EmbeddedMongo, db_name: str
) -> None:
    """The router's healthcheck command, run as Docker would, against a router with the compose
    file's settings (the embedded store standing in for the replica set): the Host check lets it
    through and /healthz answers 200."""
    settings = router_settings.replace("store", mongodb_uri=embedded.uri, database=db_name)
    settings = settings.replace("server", host="127.0.0.1").replace("nlu", auto_train=False)
    client = operator_client(settings)
    await client.start_server()
    try:
        probe = compose["services"]["router"]["healthcheck"]["test"]
        assert probe[:2] == ["CMD", "python"]
        command = [part.replace(":8080/", f":{client.port}/") for part in probe[2:]]
        run = await asyncio.create_subprocess_exec(sys.executable, *command, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(run.communicate(), timeout=30)
        assert run.returncode == 0, err.decode()
    finally:
        await client.close()


def test_the_image_copies_what_exists_and_serves_the_projects_console_script() -> None:
    import tomllib

    dockerfile = (DEPLOY / "Dockerfile").read_text()
    root = DEPLOY.parent
    for line in re.findall(r"^COPY (.+)$", dockerfile, flags=re.MULTILINE):
        for source in line.split()[:-1]:
            assert (root / source).exists(), f"deploy/Dockerfile copies {source}, which is not in the repository"
    scripts = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]
    assert re.search(r'^CMD \["(\w+)", "serve"\]$', dockerfile, flags=re.MULTILINE).group(1) in scripts  # type: ignore[union-attr]
