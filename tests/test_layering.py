"""What may import what (docs/architecture.md), checked by walking every import statement.

* A service (``*_svc``) never imports another service: they meet only through protobuf contracts
  and the shared ``uniwizard`` package.
* The shared package's core (types, config, the provider layer, the transport, conversion)
  imports no service; only the entry points (the CLI and ``up``) start services.
* The provider layer does no I/O: no sockets, no HTTP stack, no gRPC, no event loop.
* The client package and the Evennia side never import a service.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("registry_svc", "router_svc", "caller_svc", "edge_svc")
# Modules of the shared package allowed to import services: they run them (the `uniwizard`
# command, `uniwizard up`, and `uniwizard serve --target ...`, which wires components together).
ENTRY_POINTS = {"uniwizard/cli.py", "uniwizard/up.py", "uniwizard/serve.py"}
IO_MODULES = ("aiohttp", "httpx", "socket", "asyncio", "grpc", "ssl", "urllib.request")


def _imports(path: Path) -> set[str]:
    return _imports_in(path.read_text(encoding="utf-8"))


def _imports_in(source: str) -> set[str]:
    """Every module an import statement names (top level or inside functions)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _files(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "v1" not in p.parts)


def _offending(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for path in files:
        for name in sorted(_imports(path)):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    return bad


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_never_imports_another_service(service: str) -> None:
    others = tuple(s for s in SERVICES if s != service)
    assert _offending(_files(service), others) == []


def test_the_shared_package_imports_no_service_outside_its_entry_points() -> None:
    files = [p for p in _files("uniwizard") if str(p.relative_to(ROOT)) not in ENTRY_POINTS]
    assert _offending(files, SERVICES) == []


def test_the_provider_layer_does_no_io() -> None:
    assert _offending(_files("uniwizard/providers"), IO_MODULES) == []


@pytest.mark.parametrize("package", ["uniwizard_client", "uniwizard_evennia"])
def test_clients_never_import_a_service(package: str) -> None:
    assert _offending(_files(package), SERVICES) == []


def test_the_walker_sees_every_kind_of_import() -> None:
    """Imports inside functions and plain ``import x.y`` count too (so the checks can fail)."""
    source = "import caller_svc.ledger\ndef f():\n    from registry_svc.book import HealthBook\n"
    assert _imports_in(source) == {"caller_svc.ledger", "registry_svc.book"}
    assert _offending([ROOT / "router_svc" / "links.py"], ("grpc",)) != []


def test_the_ledgers_schema_and_rules_do_no_io() -> None:
    """Rows, SQL text, migrations and aggregation are values; only the backends touch a
    database (caller_svc/ledger_sqlite.py, caller_svc/ledger_pg.py)."""
    database = ("sqlite3", "psycopg", "psycopg_pool", *IO_MODULES)
    assert _offending([ROOT / "caller_svc" / "ledger_schema.py"], database) == []
