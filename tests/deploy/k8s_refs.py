"""The cross-references of a rendered Kubernetes deployment, as a list of problems (empty: all
consistent): what the services and the HTTP edge dial (``UNIWIZARD_*_ADDR``, the ledger URL) is a
Service with that port, selecting the pods that serve it on that port; probes ask the port the
process listens on (gRPC health for the services, ``GET /health`` for the edge); every Secret
key and ConfigMap file named exists."""

from __future__ import annotations

import posixpath
from typing import Any
from urllib.parse import urlsplit

import yaml

from uniwizard.balancing import (
    CONNECTION_AGE_ENV,
    BalancingError,
    connection_age_options,
    normalize_target,
)
from uniwizard.net import SERVICE_NAMES

Doc = dict[str, Any]
OURS = ("registry", "router", "caller")
WORKLOADS = ("Deployment", "StatefulSet")


def check(docs: list[Doc]) -> list[str]:
    by_kind: dict[str, dict[str, Doc]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    services = by_kind.get("Service", {})
    workloads = {n: d for k in WORKLOADS for n, d in by_kind.get(k, {}).items()}
    problems: list[str] = []
    for name, svc in services.items():
        problems += _service(name, svc, workloads)
    for name, w in workloads.items():
        problems += _workload(name, w, by_kind, services, workloads)
    for name in (*OURS, "edge", "postgres"):
        if name not in workloads:
            problems.append(f"no workload {name}")
    return problems


def _container(w: Doc) -> Doc:
    return w["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


def _labels(w: Doc) -> dict[str, str]:
    return w["spec"]["template"]["metadata"]["labels"]  # type: ignore[no-any-return]


def _ports(w: Doc) -> set[int]:
    return {p["containerPort"] for p in _container(w).get("ports", [])}


def _selected(svc: Doc, workloads: dict[str, Doc]) -> list[str]:
    selector = svc["spec"].get("selector", {})
    return [n for n, w in workloads.items() if selector.items() <= _labels(w).items()]


def _service(name: str, svc: Doc, workloads: dict[str, Doc]) -> list[str]:
    chosen = _selected(svc, workloads)
    if chosen != [name]:
        return [f"Service {name} selects {chosen or 'no pods'}, not the {name} workload"]
    problems = []
    for port in svc["spec"]["ports"]:
        if port.get("targetPort", port["port"]) not in _ports(workloads[name]):
            problems.append(f"Service {name}: targetPort {port.get('targetPort')} is no pod port")
    return problems


def _env(c: Doc) -> dict[str, Doc]:
    return {e["name"]: e for e in c.get("env", [])}


def _workload(
    name: str,
    w: Doc,
    by_kind: dict[str, dict[str, Doc]],
    services: dict[str, Doc],
    workloads: dict[str, Doc],
) -> list[str]:
    c = _container(w)
    env = _env(c)
    problems = _secrets(name, env, by_kind.get("Secret", {}))
    problems += _config(name, w, env, by_kind.get("ConfigMap", {}))
    if w["kind"] == "StatefulSet":
        svc = services.get(w["spec"].get("serviceName", ""))
        if svc is None or svc["spec"].get("clusterIP") != "None":
            problems.append(f"StatefulSet {name}: serviceName is no headless Service")
    if name not in (*OURS, "edge"):
        return problems
    listen = _listen(w)
    if _ports(w) != {listen}:
        problems.append(f"{name} listens on {listen} but declares ports {sorted(_ports(w))}")
    if name == "edge":
        return problems + _edge(c, env, services, workloads, listen)
    ready, live = c.get("readinessProbe", {}).get("grpc"), c.get("livenessProbe", {}).get("grpc")
    if not ready or ready["port"] != listen or ready.get("service") != SERVICE_NAMES[name]:
        problems.append(f"{name}: readiness is not grpc.health.v1 of {SERVICE_NAMES[name]}")
    if not live or live["port"] != listen:
        problems.append(f"{name}: liveness is not grpc.health.v1 on {listen}")
    for peer in OURS:
        var = env.get(f"UNIWIZARD_{peer.upper()}_ADDR")
        if var is not None:
            problems += _dials(name, var["value"], peer, services, workloads)
    age = env.get(CONNECTION_AGE_ENV)
    if age is not None:
        try:
            connection_age_options({CONNECTION_AGE_ENV: age.get("value", "")})
        except BalancingError as exc:
            problems.append(f"{name}: {exc}")
    if "UNIWIZARD_LEDGER" in env:
        problems += _ledger(name, env, services, workloads)
    return problems


def _listen(w: Doc) -> int:
    command = _container(w)["command"]
    return int(command[command.index("--address") + 1].rsplit(":", 1)[1])


def _edge(
    c: Doc, env: dict[str, Doc], services: dict[str, Doc], workloads: dict[str, Doc], listen: int
) -> list[str]:
    """The edge: HTTP probes on the port it listens on, and every router behind it."""
    problems = []
    for kind in ("readinessProbe", "livenessProbe"):
        probe = c.get(kind, {}).get("httpGet")
        if not probe or probe.get("port") != listen or probe.get("path") != "/health":
            problems.append(f"edge: {kind} is not GET /health on {listen}")
    var = env.get("UNIWIZARD_ROUTER_ADDR")
    if var is None:
        return [*problems, "edge: no UNIWIZARD_ROUTER_ADDR"]
    return problems + _dials("edge", var["value"], "router", services, workloads)


def _dials(
    name: str, target: str, peer: str, services: dict[str, Doc], workloads: dict[str, Doc]
) -> list[str]:
    try:
        target = normalize_target(target, f"UNIWIZARD_{peer.upper()}_ADDR")
    except BalancingError as exc:
        return [f"{name}: {exc}"]
    host, _, port = target.removeprefix("dns:///").rpartition(":")
    svc = services.get(host)
    if svc is None:
        return [f"{name} dials {target}: no Service {host}"]
    if int(port) not in {p["port"] for p in svc["spec"]["ports"]}:
        return [f"{name} dials {target}: Service {host} has no port {port}"]
    if _selected(svc, workloads) != [peer]:
        return [f"{name} dials {target} for the {peer}, which Service {host} does not select"]
    if peer in ("caller", "router") and not (
        target.startswith("dns:///") and svc["spec"].get("clusterIP") == "None"
    ):
        return [f"{name} dials {target}: replicas need dns:/// and a headless Service"]
    return []


def _secrets(name: str, env: dict[str, Doc], secrets: dict[str, Doc]) -> list[str]:
    problems = []
    for var, e in env.items():
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref is None:
            continue
        secret = secrets.get(ref["name"])
        keys = {**(secret or {}).get("stringData", {}), **(secret or {}).get("data", {})}
        if ref["key"] not in keys:
            problems.append(f"{name}: {var} names {ref['name']}/{ref['key']}, which is not there")
    return problems


def _config(name: str, w: Doc, env: dict[str, Doc], maps: dict[str, Doc]) -> list[str]:
    problems = []
    spec = w["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in _container(w).get("volumeMounts", [])}
    claims = {t["metadata"]["name"] for t in w["spec"].get("volumeClaimTemplates", [])}
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for mount in mounts:
        if mount not in volumes and mount not in claims:
            problems.append(f"{name}: volume mount {mount} has no volume")
    files: dict[str, str] = {}
    for vname, v in volumes.items():
        ref = v.get("configMap", {}).get("name")
        if ref is None:
            continue
        if ref not in maps:
            problems.append(f"{name}: volume {vname} names ConfigMap {ref}, which is not there")
        else:
            data = maps[ref]["data"]
            files.update({posixpath.join(mounts[vname], k): text for k, text in data.items()})
    for var in ("UNIWIZARD_CONFIG", "UNIWIZARD_POLICY"):
        path = env.get(var, {}).get("value")
        if path is not None and path not in files:
            problems.append(f"{name}: {var}={path} is no file of a mounted ConfigMap")
    config = env.get("UNIWIZARD_CONFIG", {}).get("value")
    if config in files:
        identity = yaml.safe_load(files[config]).get("identity") or {}
        for soul in identity.get("soul_files", []):
            if posixpath.join(posixpath.dirname(config), soul) not in files:
                problems.append(f"{name}: soul file {soul} is not in the ConfigMap")
    data = env.get("UNIWIZARD_DATA_DIR", {}).get("value")
    if data is not None and data not in mounts.values():
        problems.append(f"{name}: UNIWIZARD_DATA_DIR={data} is not a mounted volume")
    return problems


def _ledger(
    name: str, env: dict[str, Doc], services: dict[str, Doc], workloads: dict[str, Doc]
) -> list[str]:
    url = urlsplit(env["UNIWIZARD_LEDGER"]["value"])
    if url.password is not None:
        return [f"{name}: UNIWIZARD_LEDGER carries a password; use PGPASSWORD"]
    svc = services.get(url.hostname or "")
    if svc is None or url.port not in {p["port"] for p in svc["spec"]["ports"]}:
        return [f"{name}: UNIWIZARD_LEDGER names {url.hostname}:{url.port}, which is no Service"]
    (db,) = _selected(svc, workloads) or ("",)
    pg = _env(_container(workloads[db])) if db else {}
    want = {
        "user": pg.get("POSTGRES_USER", {}).get("value"),
        "database": pg.get("POSTGRES_DB", {}).get("value"),
        "password": pg.get("POSTGRES_PASSWORD", {}).get("valueFrom"),
    }
    got = {
        "user": url.username,
        "database": url.path.lstrip("/"),
        "password": env.get("PGPASSWORD", {}).get("valueFrom"),
    }
    return [
        f"{name}: the ledger's {k} {got[k]!r} is not the database's {want[k]!r}"
        for k in want
        if got[k] != want[k]
    ]
