"""How calls spread over replicas of a service: the targets we accept, the service config that
balances over them, and the server setting that lets clients find new replicas. Pure: strings
and numbers in, strings and options out.

A *target* says where a service is, in a form gRPC resolves by itself:

* ``host:port`` — one name or address. A name that resolves to several addresses (a Docker
  Compose service scaled with ``--scale``, a Kubernetes headless Service) reaches all of them;
* ``dns:///host:port`` — the same, with the resolver named;
* ``ipv4:10.0.0.1:50053,10.0.0.2:50053`` and ``ipv6:[::1]:1,[::1]:2`` — a fixed list;
* ``10.0.0.1:50053,10.0.0.2:50053`` — our shorthand for a list, turned into the ``ipv4:`` or
  ``ipv6:`` form (gRPC resolves one name per target, so a list holds IP addresses; for a name
  with several addresses give the name);
* ``unix:PATH`` / ``unix-abstract:NAME`` — a Unix socket.

Channels to our services carry a service config choosing ``round_robin`` over every address
the target resolves to, with client-side health checking: the channel watches
``grpc.health.v1.Health/Watch`` on the service's own name and sends no new call to a replica that
is unreachable or NOT_SERVING (draining on SIGTERM). The channel skips dead replicas, not our
code.

gRPC re-resolves a name only when a connection breaks, so a replica added later would get no
calls from a client already connected. ``UNIWIZARD_MAX_CONNECTION_AGE_S`` makes a server close
each connection gracefully after that long (calls in flight finish): its clients reconnect and
re-resolve, and new replicas join within that time.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Any

SCHEMES = ("dns", "ipv4", "ipv6", "unix", "unix-abstract")
CONNECTION_AGE_ENV = "UNIWIZARD_MAX_CONNECTION_AGE_S"
_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*\.?$")
MAX_CONNECTION_AGE_S = 2**31 // 1000  # gRPC takes milliseconds in a 32-bit int
FORMS = "host:port, dns:///host:port, ipv4:ADDR:PORT,..., ADDR:PORT,ADDR:PORT or unix:PATH"


class BalancingError(ValueError):
    """A target or a balancing setting that cannot be used; the message names it and why."""


def normalize_target(text: str, what: str = "target") -> str:
    """The target gRPC dials for ``text``; raises :class:`BalancingError` naming ``what`` (the
    flag or variable it came from) when it is not a target."""
    target = text.strip()
    if not target:
        raise BalancingError(f"{what}: empty; give {FORMS}")
    scheme, sep, rest = target.partition(":")
    if sep and scheme.lower() in SCHEMES:
        return _with_scheme(scheme.lower(), rest, what, target)
    if "://" in target:
        raise BalancingError(
            f"{what}: {target!r}: unknown scheme {target.split('://')[0]!r}; give {FORMS}"
        )
    entries = [e.strip() for e in target.split(",")]
    if len(entries) == 1:
        _host_port(entries[0], what)
        return entries[0]
    return _address_list(entries, what)


def _with_scheme(scheme: str, rest: str, what: str, target: str) -> str:
    if scheme in ("unix", "unix-abstract"):
        if not rest.strip("/"):
            raise BalancingError(f"{what}: {target!r}: no socket path after {scheme}:")
        return f"{scheme}:{rest}"
    if scheme == "dns":
        name = rest[2:].partition("/")[2] if rest.startswith("//") else rest
        _host_port(name, what)
        return f"{scheme}:{rest}"
    entries = [e.strip() for e in rest.split(",")]
    kinds = {_literal_kind(_host_port(e, what)[0]) for e in entries}
    if kinds != {scheme}:
        raise BalancingError(
            f"{what}: {target!r}: every address after {scheme}: must be an {scheme} address"
        )
    _no_duplicates(entries, what)
    return f"{scheme}:{','.join(entries)}"


def _address_list(entries: list[str], what: str) -> str:
    kinds = [_literal_kind(_host_port(e, what)[0]) for e in entries]
    names = [e for e, kind in zip(entries, kinds, strict=True) if kind is None]
    if names:
        raise BalancingError(
            f"{what}: {names[0]!r} in a list must be an IP address (gRPC resolves one name per "
            "target): give the addresses, or one name that resolves to every replica "
            "(dns:///NAME:PORT)"
        )
    if len(set(kinds)) > 1:
        raise BalancingError(f"{what}: a list mixes IPv4 and IPv6 addresses; gRPC takes one kind")
    _no_duplicates(entries, what)
    return f"{kinds[0]}:{','.join(entries)}"


def _host_port(entry: str, what: str) -> tuple[str, int]:
    """``entry``'s host and port (an IPv6 host without its brackets)."""
    if not entry:
        raise BalancingError(f"{what}: an empty address in the list")
    if entry.startswith("["):
        host, close, tail = entry[1:].partition("]")
        if not close or not tail.startswith(":"):
            raise BalancingError(f"{what}: {entry!r}: an IPv6 address is [ADDR]:PORT")
        port = tail[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise BalancingError(f"{what}: {entry!r}: {host!r} is not an IPv6 address") from None
    else:
        host, sep, port = entry.rpartition(":")
        if not sep:
            raise BalancingError(f"{what}: {entry!r}: no port (host:port)")
        if ":" in host:
            raise BalancingError(f"{what}: {entry!r}: put an IPv6 address in brackets: [ADDR]:PORT")
        if not _HOSTNAME.match(host):
            raise BalancingError(f"{what}: {entry!r}: {host!r} is not a host name or address")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise BalancingError(f"{what}: {entry!r}: the port must be 1..65535, got {port!r}")
    return host, int(port)


def _literal_kind(host: str) -> str | None:
    """The kind of an IP address ("ipv4" or "ipv6"), None for a name."""
    try:
        return f"ipv{ipaddress.ip_address(host).version}"
    except ValueError:
        return None


def _no_duplicates(entries: list[str], what: str) -> None:
    seen: set[str] = set()
    for e in entries:
        if e in seen:
            raise BalancingError(f"{what}: {e!r} is listed twice")
        seen.add(e)


def service_config(health_service: str | None) -> dict[str, Any]:
    """The channel's service config: ``round_robin`` over every resolved address, and client-side
    health checking on ``health_service`` (a full gRPC service name) unless it is None."""
    config: dict[str, Any] = {"loadBalancingConfig": [{"round_robin": {}}]}
    if health_service is not None:
        config["healthCheckConfig"] = {"serviceName": health_service}
    return config


def balanced_options(health_service: str | None) -> list[tuple[str, Any]]:
    """Channel options that apply :func:`service_config`."""
    return [("grpc.service_config", json.dumps(service_config(health_service)))]


def connection_age_options(env: Mapping[str, str]) -> list[tuple[str, Any]]:
    """Server options from ``UNIWIZARD_MAX_CONNECTION_AGE_S`` (unset: connections never age)."""
    raw = env.get(CONNECTION_AGE_ENV, "").strip()
    if not raw:
        return []
    try:
        seconds = float(raw)
    except ValueError:
        raise BalancingError(f"{CONNECTION_AGE_ENV}={raw!r}: must be a number of seconds") from None
    if not 0 < seconds <= MAX_CONNECTION_AGE_S:
        raise BalancingError(
            f"{CONNECTION_AGE_ENV}={raw!r}: must be more than 0 and at most "
            f"{MAX_CONNECTION_AGE_S} seconds"
        )
    return [("grpc.max_connection_age_ms", max(1, round(seconds * 1000)))]
