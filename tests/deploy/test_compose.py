"""docker-compose.yml scales: `docker compose up --scale caller=3 --scale router=2` needs no fixed
host port and no container name on a scaled service, every service has a health check on the
port it listens on, routers find every caller by name, and the ledger is the postgres service's
(on a volume, its password never in a URL). Read from the real compose binary's own rendering of
the file (no engine needed)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import compose
import pytest

from uniwizard.balancing import normalize_target

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = str(Path(compose.__file__).parent / "docker-compose")
SCALED = ("router", "caller")
OURS = ("registry", "caller", "router", "edge", "sim")  # run from our image


def rendered(path: Path = ROOT / "docker-compose.yml") -> dict[str, Any]:
    """The file as compose resolves it, every profile on, with no variable set."""
    proc = subprocess.run(
        [COMPOSE, "-f", str(path), "--project-directory", str(ROOT), "--profile", "sim",
         "--profile", "tracing", "config", "--format", "json"],
        capture_output=True, text=True, cwd=ROOT, env={"PATH": "/usr/bin:/bin"}, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return rendered()["services"]  # type: ignore[no-any-return]


def listen_port(service: dict[str, Any]) -> int:
    command = service["command"]
    return int(command[command.index("--address") + 1].rsplit(":", 1)[1])


@pytest.mark.parametrize("name", SCALED)
def test_a_scaled_service_publishes_no_fixed_host_port_and_has_no_fixed_name(
    services: dict[str, Any], name: str
) -> None:
    service = services[name]
    assert "container_name" not in service
    for port in service.get("ports", []):
        assert not port.get("published"), f"{name}: host port {port['published']} is fixed"
        assert port["host_ip"] == "127.0.0.1"  # and only on the loopback of the host
        assert port["target"] == listen_port(service)


def test_every_service_has_a_health_check_on_its_own_port(services: dict[str, Any]) -> None:
    assert set(services) == {"registry", "caller", "router", "edge", "postgres", "sim", "jaeger"}
    for name, service in services.items():
        if name == "jaeger":  # a third-party image without a shell: see the comment in the file
            assert "healthcheck" not in service
            continue
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD", name
        if name in ("registry", "caller", "router"):
            assert test[1:3] == ["python", "/usr/local/bin/uniwizard-healthcheck"]
            assert test[3] == f"127.0.0.1:{listen_port(service)}", name
    edge = services["edge"]  # HTTP: GET /health on its own port
    assert edge["healthcheck"]["test"][1:] == [
        "python",
        "/usr/local/bin/uniwizard-healthcheck",
        "--http",
        f"127.0.0.1:{listen_port(edge)}",
    ]
    assert services["postgres"]["healthcheck"]["test"][1] == "pg_isready"


def test_the_edge_is_the_front_door_in_front_of_every_router(services: dict[str, Any]) -> None:
    edge = services["edge"]
    assert edge["environment"]["UNIWIZARD_ROUTER_ADDR"] == "dns:///router:50052"
    assert edge["depends_on"]["router"]["condition"] == "service_healthy"
    (port,) = edge["ports"]  # one replica on a fixed loopback port of the host
    assert (port["host_ip"], port["published"], port["target"]) == ("127.0.0.1", "50080", 50080)
    assert listen_port(edge) == 50080


def test_routers_reach_every_caller_and_clients_every_router(services: dict[str, Any]) -> None:
    for name in OURS:
        env = services[name]["environment"]
        for target, peer in (
            (env["UNIWIZARD_CALLER_ADDR"], "caller"),
            (env["UNIWIZARD_ROUTER_ADDR"], "router"),
            (env["UNIWIZARD_REGISTRY_ADDR"], "registry"),
        ):
            assert normalize_target(target) == target
            host_port = target.removeprefix("dns:///")
            assert host_port == f"{peer}:{listen_port(services[peer])}", (name, target)
    # Replicas are found by name (every address the name has), not by a fixed list.
    assert services["router"]["environment"]["UNIWIZARD_CALLER_ADDR"].startswith("dns:///")
    for name in SCALED:
        assert services[name]["environment"]["UNIWIZARD_MAX_CONNECTION_AGE_S"] == "300"
    assert "UNIWIZARD_MAX_CONNECTION_AGE_S" not in services["registry"]["environment"]


def test_state_lives_on_volumes_only_where_it_belongs(services: dict[str, Any]) -> None:
    def named(service: dict[str, Any]) -> dict[str, str]:
        volumes = service.get("volumes", [])
        return {v["target"]: v["source"] for v in volumes if v["type"] == "volume"}

    assert named(services["registry"]) == {"/data": "registry-data"}
    assert named(services["postgres"]) == {"/var/lib/postgresql/data": "postgres-data"}
    for name in SCALED:
        assert named(services[name]) == {}, f"{name} is a stateless replica"


def test_callers_share_the_postgres_ledger_without_a_password_in_the_url(
    services: dict[str, Any],
) -> None:
    caller, pg = services["caller"], services["postgres"]
    url = caller["environment"]["UNIWIZARD_LEDGER"]
    assert url == (
        f"postgresql://{pg['environment']['POSTGRES_USER']}@postgres:5432/"
        f"{pg['environment']['POSTGRES_DB']}"
    )
    assert "PGPASSWORD" in caller["environment"] and "POSTGRES_PASSWORD" in pg["environment"]
    assert caller["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert caller["depends_on"]["registry"]["condition"] == "service_healthy"
    assert services["router"]["depends_on"]["caller"]["condition"] == "service_healthy"
    assert "ports" not in pg  # reachable inside the network only


def test_the_same_password_variable_feeds_postgres_and_the_callers(tmp_path: Path) -> None:
    proc = subprocess.run(
        [COMPOSE, "-f", str(ROOT / "docker-compose.yml"), "--project-directory", str(ROOT),
         "config", "--format", "json"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
        env={"PATH": "/usr/bin:/bin", "UNIWIZARD_PG_PASSWORD": "pw-from-env"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)["services"]
    assert s["postgres"]["environment"]["POSTGRES_PASSWORD"] == "pw-from-env"
    assert s["caller"]["environment"]["PGPASSWORD"] == "pw-from-env"
    assert "pw-from-env" not in s["caller"]["environment"]["UNIWIZARD_LEDGER"]


def test_a_fixed_host_port_on_a_scaled_service_would_be_caught(tmp_path: Path) -> None:
    """The check above can fail: the old file's fixed port is seen."""
    text = (ROOT / "docker-compose.yml").read_text()
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text.replace('"127.0.0.1::50053"', '"127.0.0.1:50053:50053"', 1))
    port = rendered(broken)["services"]["caller"]["ports"][0]
    assert port["published"] == "50053"
