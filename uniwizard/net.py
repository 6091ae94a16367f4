"""Service addresses and client channels: over the network, or in-process to a component that
runs in the same process. A network channel to one of our services balances over every replica
its target names (see ``uniwizard.balancing``)."""

from __future__ import annotations

import os
from typing import Any

import grpc

from uniwizard import telemetry
from uniwizard.balancing import balanced_options, normalize_target
from uniwizard.inproc import InProcessChannel, LocalServer
from uniwizard.limits import Limits
from uniwizard.security import client_interceptors, load_security
from uniwizard.v1 import caller_pb2, registry_pb2, router_pb2

DEFAULT_ADDRS = {
    "registry": "127.0.0.1:50051",
    "router": "127.0.0.1:50052",
    "caller": "127.0.0.1:50053",
}
# The full gRPC name of each service: what a channel's health check asks about.
SERVICE_NAMES = {
    "registry": registry_pb2.DESCRIPTOR.services_by_name["Registry"].full_name,
    "router": router_pb2.DESCRIPTOR.services_by_name["Router"].full_name,
    "caller": caller_pb2.DESCRIPTOR.services_by_name["Caller"].full_name,
}
_MAX = Limits().max_message_bytes
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", _MAX),
    ("grpc.max_send_message_length", _MAX),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 5_000),
]
DEFAULT_HTTP_ADDR = "127.0.0.1:50080"  # the HTTP edge (UNIWIZARD_HTTP_ADDR)


def address(service: str) -> str:
    """The address of ``service`` (registry, router, caller) from UNIWIZARD_<NAME>_ADDR."""
    return os.environ.get(f"UNIWIZARD_{service.upper()}_ADDR") or DEFAULT_ADDRS[service]


def http_address() -> str:
    """The HTTP edge's address, from UNIWIZARD_HTTP_ADDR."""
    return os.environ.get("UNIWIZARD_HTTP_ADDR") or DEFAULT_HTTP_ADDR


def channel_options(service: str | None) -> list[tuple[str, Any]]:
    """Options for a client channel to ``service`` (registry, router, caller): round robin over
    its replicas, each health-checked on the service's own name. None: one plain channel."""
    if service is None:
        return list(CHANNEL_OPTIONS)
    return [*CHANNEL_OPTIONS, *balanced_options(SERVICE_NAMES[service])]


def aio_channel(
    target: str, client_service: str, *, service: str | None = None
) -> grpc.aio.Channel:
    """An aio channel from one of our services: traced when telemetry is on, with this process's
    TLS settings and bearer token (see ``uniwizard.security``). With ``service`` (what the
    target serves) the target may name several replicas and calls spread over those serving;
    a target that is not one raises ``uniwizard.balancing.BalancingError``."""
    if service is not None:
        target = normalize_target(target, f"{service} address")
    options = channel_options(service)
    security = load_security()
    interceptors = [*telemetry.client_interceptors(client_service), *client_interceptors(security)]
    creds = security.channel_credentials()
    if creds is not None:
        return grpc.aio.secure_channel(target, creds, options=options, interceptors=interceptors)
    return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)


# How one component reaches another: its address, or a channel already made (in-process).
Link = str | grpc.aio.Channel


def link_channel(
    link: Link, client_service: str, *, service: str | None = None
) -> grpc.aio.Channel:
    """The channel for a link: a network channel to an address (balanced over the replicas of
    ``service`` it names, see :func:`aio_channel`), or the channel given."""
    if isinstance(link, str):
        return aio_channel(link, client_service, service=service)
    return link


def local_channel(server: LocalServer, client_service: str) -> InProcessChannel:
    """An in-process channel from ``client_service`` to a component in this process. Traced like
    a network channel (the same client interceptor makes the client span); no bearer token, which
    is for the network (see ``uniwizard.server.ServiceHost``)."""
    return InProcessChannel(server, client_service, telemetry.client_interceptors(client_service))


def data_dir() -> str:
    """Where state lives (ledger, operator state, generated configs): not in the repo."""
    explicit = os.environ.get("UNIWIZARD_DATA_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return os.path.join(base, "uniwizard")
